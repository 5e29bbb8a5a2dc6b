#include "fundus/bundle.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <vector>

#include <opencv2/core.hpp>

#include "fundus/bundle_rules.h"
#include "fundus/paths.h"
#include "fundus/sha256.h"

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

// runtime/bundle_rules.json, embedded at build time: the contract runtime/bundle_schema.py checks, walked
// here in the same order with the same messages: "<file>: <dotted.key> must be <rule> (got <value>)" or
// "<file>: <dotted.key> missing (must be <rule>)".
const cv::FileNode& rules() {
    static const cv::FileStorage storage(
        kBundleRulesJson, cv::FileStorage::READ | cv::FileStorage::MEMORY | cv::FileStorage::FORMAT_JSON);
    static const cv::FileNode root = storage.root();
    return root;
}

// A rule's bound: a number, or the name of an entry of the rules' "limits".
double limitOf(const cv::FileNode& bound) {
    return bound.isString() ? double(rules()["limits"][std::string(bound)]) : double(bound);
}

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

// The rule text with {limit} names and {bound} (a sibling relation's value) filled in.
std::string ruleText(const cv::FileNode& rule, int bound) {
    std::string text = std::string(rule["rule"]), out;
    for (size_t i = 0; i < text.size(); ++i) {
        const size_t close = text[i] == '{' ? text.find('}', i) : std::string::npos;
        if (close == std::string::npos) {
            out += text[i];
            continue;
        }
        const std::string name = text.substr(i + 1, close - i - 1);
        out += std::to_string(name == "bound" ? bound : int(rules()["limits"][name]));
        i = close;
    }
    return out;
}

bool numberOf(const cv::FileNode& node, double& out) {
    out = node.isInt() ? double(int(node)) : node.isReal() ? node.real() : NAN;
    return std::isfinite(out);
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

// runtime/bundle_schema.py TYPES: the JSON type a rule's "type" names.
bool hasType(const cv::FileNode& node, const std::string& type) {
    double number = 0;
    if (type == "object") return node.isMap();
    if (type == "string") return node.isString() && !node.string().empty();
    if (type == "integer") return node.isInt();
    if (type == "number") return numberOf(node, number);
    if (type == "number_pair") {
        double second = 0;
        return node.isSeq() && node.size() == 2 && numberOf(node[0], number) && numberOf(node[1], second);
    }
    if (type != "string_list" || !node.isSeq()) return false;
    for (const cv::FileNode& item : node) {
        if (!item.isString() || item.string().empty()) return false;
    }
    return true;
}

// runtime/bundle_schema.py _in_bounds: min/max inclusive, above/below exclusive, multiple_of, a sibling relation.
bool inBounds(const cv::FileNode& rule, double value, int bound) {
    const cv::FileNode min = rule["min"], max = rule["max"], above = rule["above"], below = rule["below"],
                       multiple = rule["multiple_of"];
    if ((!min.empty() && value < limitOf(min)) || (!max.empty() && value > limitOf(max)) ||
        (!above.empty() && value <= limitOf(above)) || (!below.empty() && value >= limitOf(below)) ||
        (!multiple.empty() && std::fmod(value, limitOf(multiple)) != 0)) {
        return false;
    }
    if (!rule["below_field"].empty()) return value < bound;
    return rule["index_into"].empty() || value <= bound;
}

bool meets(const cv::FileNode& rule, const cv::FileNode& node, int bound) {
    const std::string type = rule["type"];
    double value = 0;
    if (type == "string") {
        const std::string text = node, pattern = rule["pattern"].empty() ? "" : std::string(rule["pattern"]);
        bool listed = rule["one_of"].empty();
        for (const cv::FileNode& allowed : rule["one_of"]) listed = listed || std::string(allowed) == text;
        return listed && (pattern != "sha256" || isSha256(text)) &&
               (pattern != "relative_path" || relativeInside(text));
    }
    if (type == "integer" || type == "number") return numberOf(node, value) && inBounds(rule, value, bound);
    if (type == "string_list") return int(node.size()) >= int(rule["min_items"]);
    if (type == "number_pair") {
        double low = 0, high = 0;
        numberOf(node[0], low);
        numberOf(node[1], high);
        const cv::FileNode lows = rule["low"], highs = rule["high"];
        return double(lows[0]) <= low && low <= double(lows[1]) && double(highs[0]) <= high && high <= double(highs[1]);
    }
    return true;
}

bool hasKey(const cv::FileNode& map, const std::string& key) {
    for (const cv::FileNode& child : map) {
        if (child.name() == key) return true;
    }
    return false;
}

// The bound a relation to a sibling (checked before it) sets, as the rule shows it; 0 without one.
int relationBound(const cv::FileNode& rule, const cv::FileNode& section) {
    if (!rule["below_field"].empty()) return int(section[std::string(rule["below_field"])]);
    if (!rule["index_into"].empty()) return int(section[std::string(rule["index_into"])].size()) - 1;
    return 0;
}

class Checker {
public:
    explicit Checker(std::string source) : source_(std::move(source)) {}

    Status fail(const std::string& key, const std::string& rule, const cv::FileNode& node) const {
        if (node.empty()) return bundleError(source_ + ": " + key + " missing (must be " + rule + ")");
        return bundleError(source_ + ": " + key + " must be " + rule + " (got " + shown(node) + ")");
    }

    // Checks `section`'s keys by `fieldRules` in order (`prefix` is the dotted path of `section`).
    Status fields(const cv::FileNode& section, const cv::FileNode& fieldRules, const std::string& prefix) const {
        for (const cv::FileNode& rule : fieldRules) {
            const std::string name = rule["name"];
            if (!rule["optional"].empty() && int(rule["optional"]) != 0 && !hasKey(section, name)) continue;
            FUNDUS_RETURN_IF_ERROR(value(section, name, rule, prefix + name));
        }
        return Status::ok();
    }

    Status value(const cv::FileNode& section, const std::string& name, const cv::FileNode& rule,
                 const std::string& key) const {
        const cv::FileNode node = section[name];
        const int bound = relationBound(rule, section);
        const std::string type = rule["type"];
        if (node.empty() || !hasType(node, type) || !meets(rule, node, bound)) {
            return fail(key, ruleText(rule, bound), node);
        }
        if (type != "object") return Status::ok();
        if (!rule["closed"].empty() && int(rule["closed"]) != 0)
            FUNDUS_RETURN_IF_ERROR(knownKeys(node, key, rule["fields"]));
        FUNDUS_RETURN_IF_ERROR(fields(node, rule["fields"], key + "."));
        if (rule["each"].empty()) return Status::ok();
        for (const cv::FileNode& child : node)
            FUNDUS_RETURN_IF_ERROR(value(node, child.name(), rule["each"], key + "." + child.name()));
        return Status::ok();
    }

private:
    Status knownKeys(const cv::FileNode& section, const std::string& prefix, const cv::FileNode& fieldRules) const {
        std::vector<std::string> known;
        std::string list;
        for (const cv::FileNode& rule : fieldRules) {
            known.push_back(rule["name"]);
            list += (list.empty() ? "" : ", ") + known.back();
        }
        for (const cv::FileNode& child : section) {
            if (std::find(known.begin(), known.end(), child.name()) == known.end()) {
                return bundleError(source_ + ": " + prefix + "." + child.name() +
                                   " is not a known key (known: " + list + ")");
            }
        }
        return Status::ok();
    }

    std::string source_;
};

double realOf(const cv::FileNode& node) {
    double value = 0;
    numberOf(node, value);
    return value;
}

// The contract values of a model.json that Checker::fields passed.
void readContract(const cv::FileNode& top, Bundle& bundle) {
    bundle.inChannels = int(top["input"]["channels"]);
    const cv::FileNode pre = top["preprocess"], tiling = top["tiling"], scale = top["scale"];
    bundle.preprocess = {std::string(pre["channel"]), realOf(pre["clahe_clip"]), int(pre["clahe_grid"]),
                         realOf(pre["mean"]), realOf(pre["std"])};
    bundle.tile = int(tiling["tile"]);
    bundle.overlap = int(tiling["overlap"]);
    bundle.wholeImage = tiling["whole_image"].empty() ? 0 : int(tiling["whole_image"]);
    if (hasKey(top, "scale")) {
        bundle.scale.referenceDiameter = realOf(scale["reference_diameter"]);
        bundle.scale.tolerance = realOf(scale["tolerance"]);
        bundle.scale.factorLow = realOf(scale["factor_range"][0]);
        bundle.scale.factorHigh = realOf(scale["factor_range"][1]);
    }
    bundle.vesselIndex = int(top["output"]["vessel_index"]);
    bundle.threshold = realOf(top["threshold"]);
    for (const cv::FileNode& entry : top["files"]) {
        bundle.files[entry.name()] = {std::string(entry["path"]), std::string(entry["sha256"])};
    }
}

}  // namespace

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
    std::error_code error;
    const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", error);
    if (!error)
        dirs.push_back((exe.parent_path().parent_path() / FUNDUS_INSTALLED_MODELS_DIR).string());  // PREFIX/bin/..
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

int bundleLimit(const std::string& name) {
    return int(rules()["limits"][name]);
}

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
    FUNDUS_RETURN_IF_ERROR(check.fields(top, rules()["fields"], ""));
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
    readContract(top, bundle);
    return bundle;
}

}  // namespace fundus
