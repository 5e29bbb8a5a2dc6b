#include "fundus/bundle.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include <opencv2/core.hpp>

#include "fundus/sha256.h"

namespace fundus {
namespace {

constexpr const char* kModelJson = "model.json";

Status bundleError(const std::string& message) { return Status::error(ErrorCode::kBundle, message); }

bool readNumber(const cv::FileNode& node, double& out) {
    if (node.empty() || !(node.isReal() || node.isInt())) return false;
    out = node.isInt() ? double(int(node)) : double(node);
    return true;
}

bool readInt(const cv::FileNode& node, int& out) {
    if (node.empty() || !node.isInt()) return false;
    out = int(node);
    return true;
}

}  // namespace

std::string joinPath(const std::string& folder, const std::string& name) {
    if (folder.empty() || (!name.empty() && name[0] == '/')) return name;
    return folder.back() == '/' ? folder + name : folder + "/" + name;
}

bool isFile(const std::string& path) {
    struct stat info {};
    return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

bool isDirectory(const std::string& path) {
    struct stat info {};
    return ::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

Result<std::string> Bundle::modelPath(const std::string& precision, bool verify) const {
    auto it = files.find(precision);
    if (it == files.end()) {
        std::string have;
        for (const auto& entry : files) have += (have.empty() ? "" : ", ") + entry.first;
        return bundleError(root + ": no " + precision + " model in " + kModelJson + " (has: " +
                           (have.empty() ? "none" : have) + ")");
    }
    const std::string path = joinPath(root, it->second.path);
    if (!isFile(path)) return bundleError(path + ": listed in " + std::string(kModelJson) + " but missing");
    if (verify) {
        auto digest = sha256File(path);
        if (!digest) return digest.status();
        if (*digest != it->second.sha256) {
            return bundleError(path + ": sha256 does not match " + std::string(kModelJson) +
                               " (file changed or corrupted)");
        }
    }
    return path;
}

Result<Bundle> loadBundle(const std::string& root) {
    const std::string metaPath = joinPath(root, kModelJson);
    if (!isDirectory(root)) return bundleError(root + ": bundle folder not found");
    if (!isFile(metaPath)) return bundleError(root + ": not a model bundle (" + std::string(kModelJson) + " missing)");

    std::ifstream in(metaPath, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    if (text.str().find_first_not_of(" \t\r\n") == std::string::npos) return bundleError(metaPath + ": file is empty");

    cv::FileStorage fs;
    try {
        fs.open(text.str(), cv::FileStorage::READ | cv::FileStorage::MEMORY | cv::FileStorage::FORMAT_JSON);
    } catch (const cv::Exception& e) {
        return bundleError(metaPath + ": not valid JSON (" + e.msg + ")");
    }
    if (!fs.isOpened()) return bundleError(metaPath + ": not valid JSON");

    const cv::FileNode top = fs.root();
    for (const char* key : {"preprocess", "tiling", "output", "threshold", "input", "files"}) {
        if (top[key].empty()) return bundleError(metaPath + ": required key '" + key + "' missing");
    }

    Bundle bundle;
    bundle.root = root;
    if (top["name"].isString()) {
        bundle.name = std::string(top["name"]);
    } else {
        std::string folder = root;
        while (folder.size() > 1 && folder.back() == '/') folder.pop_back();
        const auto slash = folder.find_last_of('/');
        bundle.name = slash == std::string::npos ? folder : folder.substr(slash + 1);
    }
    const cv::FileNode pre = top["preprocess"];
    PreprocessConfig& p = bundle.preprocess;
    if (!pre["channel"].isString() || !readNumber(pre["clahe_clip"], p.claheClip) ||
        !readInt(pre["clahe_grid"], p.claheGrid) || !readNumber(pre["mean"], p.mean) || !readNumber(pre["std"], p.std)) {
        return bundleError(metaPath + ": bad preprocess section (need channel, clahe_clip, clahe_grid, mean, std)");
    }
    p.channel = std::string(pre["channel"]);
    if (p.channel != "gray" && p.channel != "green") {
        return bundleError(metaPath + ": bad preprocess section (channel must be 'gray' or 'green', got '" + p.channel + "')");
    }
    if (p.claheClip <= 0 || p.claheGrid < 1 || p.std <= 0) {
        return bundleError(metaPath + ": bad preprocess section (invalid clahe_clip, clahe_grid or std)");
    }

    const cv::FileNode tiling = top["tiling"];
    if (!readInt(tiling["tile"], bundle.tile) || !readInt(tiling["overlap"], bundle.overlap)) {
        return bundleError(metaPath + ": bad tiling section (need integer tile and overlap)");
    }
    if (bundle.tile <= 0 || bundle.overlap < 0 || bundle.overlap >= bundle.tile) {
        return bundleError(metaPath + ": bad tiling section (need 0 <= overlap < tile)");
    }
    if (!readInt(top["output"]["vessel_index"], bundle.vesselIndex) || bundle.vesselIndex < 0) {
        return bundleError(metaPath + ": bad output section (need integer vessel_index)");
    }
    if (!readNumber(top["threshold"], bundle.threshold)) return bundleError(metaPath + ": threshold must be a number");
    if (!readInt(top["input"]["channels"], bundle.inChannels)) {
        return bundleError(metaPath + ": bad input section (need integer channels)");
    }
    if (bundle.inChannels != 1) {
        return bundleError(metaPath + ": input channels " + std::to_string(bundle.inChannels) +
                           " not supported (expected 1)");
    }
    const cv::FileNode files = top["files"];
    if (!files.isMap()) return bundleError(metaPath + ": 'files' must be an object");
    for (const cv::FileNode& entry : files) {
        if (!entry.isMap() || !entry["path"].isString() || !entry["sha256"].isString()) {
            return bundleError(metaPath + ": files." + entry.name() + " needs string 'path' and 'sha256'");
        }
        bundle.files[entry.name()] = ModelFile{std::string(entry["path"]), std::string(entry["sha256"])};
    }
    return bundle;
}

}  // namespace fundus
