#include "fundus/bundle.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iomanip>
#include <sstream>
#include <vector>

#include <opencv2/core.hpp>

#include "fundus/paths.h"
#include "fundus/sha256.h"

#include <sys/stat.h>

#ifndef FUNDUS_SOURCE_MODELS_DIR
#define FUNDUS_SOURCE_MODELS_DIR "models"
#endif
#ifndef FUNDUS_INSTALLED_MODELS_DIR
#define FUNDUS_INSTALLED_MODELS_DIR "share/fundus-vessels/models"  // relative to the install prefix
#endif

namespace fundus {
namespace {

constexpr const char* kModelJson = "model.json";

Status bundleError(const std::string& message) {
    return Status::error(ErrorCode::kBundle, message);
}

// The rules of runtime/bundle_schema.py, in its order and with its wording:
// "<file>: <dotted.key> must be <rule> (got <value>)" or "<file>: <dotted.key> missing (must be <rule>)".
constexpr int kTileMultiple = 32;
constexpr int kMaxReferenceDiameter = 4096;  // px (runtime/bundle_schema.py MAX_REFERENCE_DIAMETER)
constexpr int kMaxTile = 2048;               // runtime/bundle_schema.py MAX_TILE: a valid bundle cannot exhaust memory
constexpr int kMaxClaheGrid = 64;            // runtime/bundle_schema.py MAX_CLAHE_GRID

// A value as runtime/bundle_schema.py's shown() writes it: strings quoted, floats as Python's repr.
std::string shown(const cv::FileNode& node) {
    if (node.isString()) return "'" + std::string(node) + "'";
    if (node.isInt()) return std::to_string(int(node));
    if (node.isMap()) return "an object";
    if (node.isSeq()) return "a list";
    if (!node.isReal()) return "null";
    const double value = node.real();
    if (std::isnan(value)) return "nan";
    if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
    std::string text;
    for (int precision = 1; precision <= 17; ++precision) {  // shortest text that reads back exactly
        std::ostringstream out;
        out << std::setprecision(precision) << value;
        text = out.str();
        if (std::strtod(text.c_str(), nullptr) == value) break;
    }
    if (text.find_first_of(".e") == std::string::npos) text += ".0";
    return text;
}

class Checker {
public:
    explicit Checker(std::string source) : source_(std::move(source)) {}

    Status fail(const std::string& key, const std::string& rule, const cv::FileNode& node) const {
        if (node.empty()) return bundleError(source_ + ": " + key + " missing (must be " + rule + ")");
        return bundleError(source_ + ": " + key + " must be " + rule + " (got " + shown(node) + ")");
    }

    Status section(const cv::FileNode& node, const std::string& key) const {
        return node.isMap() ? Status::ok() : fail(key, "an object", node);
    }

    Status integer(const cv::FileNode& node, const std::string& key, const std::string& rule,
                   const std::function<bool(int)>& ok, int& out) const {
        if (!node.isInt() || !ok(int(node))) return fail(key, rule, node);
        out = int(node);
        return Status::ok();
    }

    Status number(const cv::FileNode& node, const std::string& key, const std::string& rule,
                  const std::function<bool(double)>& ok, double& out) const {
        const double value = node.isInt() ? double(int(node)) : node.isReal() ? node.real() : NAN;
        if (!std::isfinite(value) || !ok(value)) return fail(key, rule, node);
        out = value;
        return Status::ok();
    }

    Status string(const cv::FileNode& node, const std::string& key, const std::string& rule,
                  const std::function<bool(const std::string&)>& ok, std::string& out) const {
        if (!node.isString() || !ok(std::string(node))) return fail(key, rule, node);
        out = std::string(node);
        return Status::ok();
    }

    Status knownKeys(const cv::FileNode& section, const std::string& prefix,
                     const std::vector<std::string>& known) const {
        std::string list;
        for (const std::string& name : known) list += (list.empty() ? "" : ", ") + name;
        for (const cv::FileNode& child : section) {
            if (std::find(known.begin(), known.end(), child.name()) == known.end()) {
                return bundleError(source_ + ": " + prefix + "." + child.name() +
                                   " is not a known key (known: " + list + ")");
            }
        }
        return Status::ok();
    }

private:
    std::string source_;
};

bool hasKey(const cv::FileNode& map, const std::string& key) {
    for (const cv::FileNode& child : map) {
        if (child.name() == key) return true;
    }
    return false;
}

bool nonEmpty(const std::string& text) {
    return !text.empty();
}
bool anything(double) {
    return true;
}

bool relativeInside(const std::string& path) {
    if (path.empty() || path[0] == '/') return false;
    std::stringstream parts(path);
    std::string part;
    bool any = false;
    while (std::getline(parts, part, '/')) {
        if (part == "..") return false;
        any = any || (!part.empty() && part != ".");
    }
    return any;
}

bool isSha256(const std::string& text) {
    return text.size() == 64 && std::all_of(text.begin(), text.end(),
                                            [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

Status readInput(const Checker& check, const cv::FileNode& input, Bundle& bundle) {
    std::string text;
    Status s;
    if (!(s = check.section(input, "input"))) return s;
    if (!(s = check.string(input["name"], "input.name", "a non-empty string", nonEmpty, text))) return s;
    if (!(s = check.integer(
              input["channels"], "input.channels", "1 (one input plane)", [](int c) { return c == 1; },
              bundle.inChannels))) {
        return s;
    }
    auto equals = [](const char* want) { return [want](const std::string& v) { return v == want; }; };
    if (!(s = check.string(input["layout"], "input.layout", "'NCHW'", equals("NCHW"), text))) return s;
    return check.string(input["dtype"], "input.dtype", "'float32'", equals("float32"), text);
}

Status readPreprocess(const Checker& check, const cv::FileNode& pre, PreprocessConfig& p) {
    Status s;
    if (!(s = check.section(pre, "preprocess"))) return s;
    if (!(s = check.knownKeys(pre, "preprocess", {"channel", "clahe_clip", "clahe_grid", "mean", "std"}))) return s;
    auto channel = [](const std::string& v) { return v == "gray" || v == "green"; };
    if (!(s = check.string(pre["channel"], "preprocess.channel", "'gray' or 'green'", channel, p.channel))) return s;
    auto positive = [](double v) { return v > 0; };
    if (!(s = check.number(pre["clahe_clip"], "preprocess.clahe_clip", "a finite number > 0", positive, p.claheClip))) {
        return s;
    }
    if (!(s = check.integer(
              pre["clahe_grid"], "preprocess.clahe_grid", "an integer in [1, " + std::to_string(kMaxClaheGrid) + "]",
              [](int v) { return 1 <= v && v <= kMaxClaheGrid; }, p.claheGrid))) {
        return s;
    }
    if (!(s = check.number(pre["mean"], "preprocess.mean", "a finite number", anything, p.mean))) return s;
    return check.number(pre["std"], "preprocess.std", "a finite number > 0", positive, p.std);
}

Status readTiling(const Checker& check, const cv::FileNode& tiling, Bundle& bundle) {
    Status s;
    if (!(s = check.section(tiling, "tiling"))) return s;
    if (!(s = check.knownKeys(tiling, "tiling", {"tile", "overlap", "whole_image"}))) return s;
    const std::string multiple = std::to_string(kTileMultiple);
    auto tileOk = [](int t) { return t >= kTileMultiple && t <= kMaxTile && t % kTileMultiple == 0; };
    if (!(s = check.integer(
              tiling["tile"], "tiling.tile",
              "an integer >= " + multiple + ", <= " + std::to_string(kMaxTile) + " and a multiple of " + multiple,
              tileOk, bundle.tile))) {
        return s;
    }
    const int tile = bundle.tile;
    if (!(s = check.integer(
              tiling["overlap"], "tiling.overlap",
              "an integer with 0 <= overlap < tiling.tile (" + std::to_string(tile) + ")",
              [tile](int o) { return 0 <= o && o < tile; }, bundle.overlap))) {
        return s;
    }
    bundle.wholeImage = 0;
    if (tiling["whole_image"].empty()) return Status::ok();
    return check.integer(
        tiling["whole_image"], "tiling.whole_image",
        "an integer with 0 <= whole_image <= " + std::to_string(kMaxTile) + " (0: always tiles)",
        [](int w) { return 0 <= w && w <= kMaxTile; }, bundle.wholeImage);
}

// runtime/bundle_schema.py _scale(): the optional section, checked after tiling and before output
// ("scale": null cannot reach here: cv::FileStorage refuses null, the file is "not valid JSON")
Status readScale(const Checker& check, const cv::FileNode& scale, ScaleConfig& config) {
    Status s;
    if (!(s = check.section(scale, "scale"))) return s;
    if (!(s = check.knownKeys(scale, "scale", {"reference_diameter", "tolerance", "factor_range"}))) return s;
    const std::string rule =
        "a finite number in [0, " + std::to_string(kMaxReferenceDiameter) + "] (pixels; 0: no scale normalisation)";
    if (!(s = check.number(
              scale["reference_diameter"], "scale.reference_diameter", rule,
              [](double v) { return 0 <= v && v <= kMaxReferenceDiameter; }, config.referenceDiameter))) {
        return s;
    }
    if (!(s = check.number(
              scale["tolerance"], "scale.tolerance", "a finite number in [0, 0.5)",
              [](double v) { return 0 <= v && v < 0.5; }, config.tolerance))) {
        return s;
    }
    const cv::FileNode limits = scale["factor_range"];
    auto number = [](const cv::FileNode& node, double& out) {
        out = node.isInt() ? double(int(node)) : node.isReal() ? node.real() : NAN;
        return std::isfinite(out);
    };
    double low = NAN, high = NAN;
    const bool ok = limits.isSeq() && limits.size() == 2 && number(limits[0], low) && number(limits[1], high) &&
                    0.01 <= low && low <= 1 && 1 <= high && high <= 4;
    if (!ok) return check.fail("scale.factor_range", "[low, high] with 0.01 <= low <= 1 <= high <= 4", limits);
    config.factorLow = low;
    config.factorHigh = high;
    return Status::ok();
}

Status readOutput(const Checker& check, const cv::FileNode& output, Bundle& bundle) {
    std::string text;
    Status s;
    if (!(s = check.section(output, "output"))) return s;
    if (!(s = check.string(output["name"], "output.name", "a non-empty string", nonEmpty, text))) return s;
    const cv::FileNode classes = output["classes"];
    bool namesOk = classes.isSeq() && classes.size() >= 2;
    for (size_t i = 0; namesOk && i < classes.size(); ++i)
        namesOk = classes[int(i)].isString() && !classes[int(i)].string().empty();
    if (!namesOk) return check.fail("output.classes", "a list of at least 2 class names", classes);
    const int count = int(classes.size());
    if (!(s = check.integer(
              output["vessel_index"], "output.vessel_index",
              "an integer index into output.classes (0 to " + std::to_string(count - 1) + ")",
              [count](int i) { return 0 <= i && i < count; }, bundle.vesselIndex))) {
        return s;
    }
    return check.string(
        output["activation"], "output.activation", "'softmax'", [](const std::string& v) { return v == "softmax"; },
        text);
}

Status readFiles(const Checker& check, const cv::FileNode& files, Bundle& bundle) {
    Status s;
    if (!(s = check.section(files, "files"))) return s;
    for (const cv::FileNode& entry : files) {
        const std::string key = "files." + entry.name();
        if (!entry.isMap()) return check.fail(key, "an object with path, sha256 and bytes", entry);
        ModelFile file;
        int bytes = 0;
        if (!(s = check.string(entry["path"], key + ".path", "a relative path inside the bundle", relativeInside,
                               file.path)) ||
            !(s = check.string(entry["sha256"], key + ".sha256", "64 lower-case hex digits", isSha256, file.sha256)) ||
            !(s = check.integer(
                  entry["bytes"], key + ".bytes", "an integer >= 0", [](int n) { return n >= 0; }, bytes))) {
            return s;
        }
        bundle.files[entry.name()] = file;
    }
    return Status::ok();
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
        return bundleError(root + ": no " + precision + " model in " + kModelJson +
                           " (has: " + (have.empty() ? "none" : have) + ")");
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

std::vector<std::string> shippedBundleDirs() {
    std::vector<std::string> dirs;
    std::vector<char> exe(4096, '\0');
    const ssize_t n = ::readlink("/proc/self/exe", exe.data(), exe.size() - 1);
    if (n > 0) {
        std::string bin(exe.data(), size_t(n));
        bin = bin.substr(0, bin.find_last_of('/'));  // PREFIX/bin
        const auto slash = bin.find_last_of('/');
        const std::string prefix = slash == std::string::npos || slash == 0 ? "" : bin.substr(0, slash);
        dirs.push_back(joinPath(prefix.empty() ? "/" : prefix, FUNDUS_INSTALLED_MODELS_DIR));
    }
    dirs.push_back(FUNDUS_SOURCE_MODELS_DIR);
    return dirs;
}

std::string resolveBundle(const std::string& model) {
    if (model.empty() || model.find('/') != std::string::npos || isDirectory(model)) return model;
    for (const std::string& dir : shippedBundleDirs()) {
        const std::string folder = joinPath(dir, model);
        if (isFile(joinPath(folder, kModelJson))) return folder;
    }
    return model;
}

std::vector<std::string> shippedBundleNames() {
    std::vector<std::string> names;
    for (const std::string& dir : shippedBundleDirs()) {
        for (const std::string& folder : folderEntries(dir)) {
            const std::string name = fileName(folder);
            if (name[0] != '.' && isFile(joinPath(folder, kModelJson))) names.push_back(name);
        }
    }
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    return names;
}

namespace {

// model.json nests 4 deep; OpenCV's JSON parser recurses per level and overflows the stack near 100 000
// (runtime/bundle.py MAX_JSON_DEPTH: the same limit, checked before parsing).
constexpr int kMaxJsonDepth = 64;

int jsonDepth(const std::string& text) {
    int depth = 0, deepest = 0;
    bool inString = false, escaped = false;
    for (const char c : text) {
        if (inString) {
            if (escaped) {
                escaped = false;
            } else if (c == '\\') {
                escaped = true;
            } else if (c == '"') {
                inString = false;
            }
        } else if (c == '"') {
            inString = true;
        } else if (c == '{' || c == '[') {
            deepest = std::max(deepest, ++depth);
        } else if (c == '}' || c == ']') {
            --depth;
        }
    }
    return deepest;
}

}  // namespace

Result<Bundle> loadBundle(const std::string& root) {
    const std::string metaPath = joinPath(root, kModelJson);
    if (!isDirectory(root)) {
        std::string shipped;
        for (const std::string& name : shippedBundleNames()) shipped += (shipped.empty() ? "" : ", ") + name;
        return bundleError(root + ": bundle folder not found (shipped bundles: " +
                           (shipped.empty() ? std::string("none found") : shipped) + ")");
    }
    if (!isFile(metaPath)) return bundleError(root + ": not a model bundle (" + std::string(kModelJson) + " missing)");

    std::ifstream in(metaPath, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    if (text.str().find_first_not_of(" \t\r\n") == std::string::npos) return bundleError(metaPath + ": file is empty");

    if (jsonDepth(text.str()) > kMaxJsonDepth) return bundleError(metaPath + ": not a model.json (nested too deeply)");
    cv::FileStorage fs;
    try {
        fs.open(text.str(), cv::FileStorage::READ | cv::FileStorage::MEMORY | cv::FileStorage::FORMAT_JSON);
    } catch (const cv::Exception& e) {
        return bundleError(metaPath + ": not valid JSON (" + e.msg + ")");
    }
    if (!fs.isOpened()) return bundleError(metaPath + ": not valid JSON");

    const cv::FileNode top = fs.root();
    const Checker check(metaPath);
    if (!top.isMap()) return check.fail("content", "a JSON object", top);
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
    std::string format;
    Status s = check.string(
        top["format"], "format", "'fundus-bundle/1'", [](const std::string& v) { return v == "fundus-bundle/1"; },
        format);
    if (!s || !(s = readInput(check, top["input"], bundle)) ||
        !(s = readPreprocess(check, top["preprocess"], bundle.preprocess)) ||
        !(s = readTiling(check, top["tiling"], bundle)) ||
        (hasKey(top, "scale") && !(s = readScale(check, top["scale"], bundle.scale))) ||
        !(s = readOutput(check, top["output"], bundle)) ||
        !(s = check.number(
              top["threshold"], "threshold", "a finite number in (0, 1)", [](double t) { return 0 < t && t < 1; },
              bundle.threshold)) ||
        !(s = readFiles(check, top["files"], bundle))) {
        return s;
    }
    return bundle;
}

}  // namespace fundus
