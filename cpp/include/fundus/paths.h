// Path helpers on std::filesystem (paths stay byte strings: file names need not be UTF-8).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace fundus {

// The last component of `path` ("a/b.png" -> "b.png"; "a/" -> "").
inline std::string fileName(const std::string& path) {
    return std::filesystem::path(path).filename().string();
}

// The file name without its last extension, as Python's Path.stem ("a/b.tar.gz" -> "b.tar"; ".x" -> ".x").
inline std::string fileStem(const std::string& path) {
    return std::filesystem::path(path).stem().string();
}

// `name` inside `folder` ("a" + "b.png" -> "a/b.png"); an absolute `name` or an empty `folder` gives `name`.
inline std::string joinPath(const std::string& folder, const std::string& name) {
    return (std::filesystem::path(folder) / name).string();
}

inline bool isFile(const std::string& path) {
    std::error_code error;
    return std::filesystem::is_regular_file(path, error);
}

inline bool isDirectory(const std::string& path) {
    std::error_code error;
    return std::filesystem::is_directory(path, error);
}

// The entries of `folder` (full paths, unsorted); empty when it cannot be listed.
inline std::vector<std::string> folderEntries(const std::string& folder) {
    std::vector<std::string> entries;
    std::error_code error;
    for (std::filesystem::directory_iterator it(folder, error), end; !error && it != end; it.increment(error)) {
        entries.push_back(it->path().string());
    }
    return entries;
}

}  // namespace fundus
