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
