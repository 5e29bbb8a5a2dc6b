#include "fundus/selftest.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>

#include "fundus/backend.h"
#include "fundus/bundle.h"
#include "fundus/exit_status.h"
#include "fundus/fov.h"
#include "fundus/imageio.h"
#include "fundus/npy.h"
#include "fundus/opencv_backend.h"
#include "fundus/paths.h"
#include "fundus/pipeline.h"
#include "fundus/preprocess.h"
#include "fundus/scale.h"
#include "fundus/sha256.h"
#include "fundus/summary.h"
#include "fundus/tiling.h"
#include "fundus/trt_backend.h"

namespace fundus {
namespace {

constexpr const char* kReferenceKey = "selftest_reference";  // model.json files.<key>
constexpr const char* kReferenceFormat = "fundus-selftest-reference/1";
constexpr const char* kSelfTestJson = "self-test.json";

// Limits of one precision, as runtime/agreement.py Tolerance; unset: not checked. Points are x100.
struct Tolerance {
    std::optional<double> maxAbs, agreement, miouPoints, f1Points;
};

// reference.json "scaled" (optional; written since scale normalisation): a larger photograph, the
// scale rule's decision on it, the resampled plane ONNX Runtime ran and its probability brought back.
struct ScaledReference {
    bool present = false;
    std::string imageFile;  // "selftest/scaled.png"
    cv::Mat imageRgb;
    cv::Mat fov;  // CV_8U 0/1: the drawn FOV (where probabilities are compared)
    ScaleConfig config;
    ScaleDecision decision;  // as recorded (factor exact)
    cv::Mat plane;           // CV_32F at the decision's factor
    cv::Mat probability;     // CV_32F, photograph size
    // this binary's side: its FOV and decision on the photograph, and the tiles' region at the factor
    ScaleDecision own;
    cv::Mat region;  // CV_8U 0/1, plane size: the found FOV resampled (tiles outside it are not run)
};

struct Reference {
    std::string path;  // reference.json
    std::string name;  // "onnxruntime CPU fp32"
    std::string onnxruntime;
    std::string modelFile;
    std::string imageFile;  // as named in the report, e.g. "selftest/fundus.png"
    cv::Mat imageRgb;
    cv::Mat fov;          // CV_8U 0/1
    cv::Mat vessels;      // CV_8U 0/1
    cv::Mat plane;        // CV_32F: the preprocessed photograph ONNX Runtime ran (every backend gets it)
    cv::Mat probability;  // CV_32F, image size
    std::vector<cv::Mat> tiles;
    std::vector<cv::Point> origins;  // top-left (x, y) of each reference tile in the preprocessed plane
    double threshold = 0.5;
    double miou = 0.0, f1 = 0.0;
    std::map<std::string, Tolerance> tolerances;
    ScaledReference scaled;
};

Status referenceError(const std::string& message) {
    return Status::error(ErrorCode::kBundle, message);
}

std::string dirName(const std::string& path) {
    const auto slash = path.find_last_of('/');
    return slash == std::string::npos ? "." : path.substr(0, slash);
}

bool readDouble(const cv::FileNode& node, double& out) {
    if (!node.isReal() && !node.isInt()) return false;
    out = double(node);
    return true;
}

// reference.json's entry `key` ({"path", "sha256"}): the file's path once its sha256 matches.
Result<std::string> checkedFile(const cv::FileNode& top, const std::string& key, const std::string& refPath) {
    const cv::FileNode entry = top[key];
    if (!entry.isMap() || !entry["path"].isString() || !entry["sha256"].isString()) {
        return referenceError(refPath + ": '" + key + "' needs string 'path' and 'sha256'");
    }
    const std::string path = joinPath(dirName(refPath), std::string(entry["path"]));
    if (!isFile(path)) return referenceError(path + ": listed in " + refPath + " but missing");
    auto digest = sha256File(path);
    if (!digest) return digest.status();
    if (*digest != std::string(entry["sha256"])) {
        return referenceError(path + ": sha256 does not match " + refPath + " (file changed or corrupted)");
    }
    return path;
}

// The float32 .npy file under `key`, checked against model.json's sha256 and the expected `shape`.
Result<cv::Mat> readArray(const cv::FileNode& entry, const std::string& key, const std::string& refPath,
                          const std::vector<int>& shape) {
    FUNDUS_TRY(const std::string path, checkedFile(entry, key, refPath));
    FUNDUS_TRY(NpyArray array, readNpy(path));
    if (array.shape != shape) {
        std::string expected;
        for (const int n : shape) expected += (expected.empty() ? "" : ", ") + std::to_string(n);
        return referenceError(path + ": shape is not (" + expected + ")");
    }
    return array.data;
}

// A plane of `size` (rows, cols).
Result<cv::Mat> readPlane(const cv::FileNode& entry, const std::string& key, const std::string& refPath,
                          const cv::Size& size) {
    return readArray(entry, key, refPath, {size.height, size.width});
}

Result<ScaledReference> loadScaled(const cv::FileNode& top, const std::string& refPath) {
    ScaledReference scaled;
    const cv::FileNode node = top["scaled"];
    if (node.empty()) return scaled;  // a reference written before scale normalisation
    const cv::FileNode config = node["scale"], decision = node["decision"];
    const cv::FileNode range = config["factor_range"];
    if (!node.isMap() || !config.isMap() || !decision.isMap() || !range.isSeq() || range.size() != 2 ||
        !readDouble(config["reference_diameter"], scaled.config.referenceDiameter) ||
        !readDouble(config["tolerance"], scaled.config.tolerance) || !readDouble(range[0], scaled.config.factorLow) ||
        !readDouble(range[1], scaled.config.factorHigh) || !readDouble(decision["factor"], scaled.decision.factor) ||
        !decision["method"].isString() || !(scaled.decision.factor > 0)) {
        return referenceError(refPath + ": 'scaled' needs 'scale' {reference_diameter, tolerance, factor_range} " +
                              "and 'decision' {factor, method}");
    }
    scaled.decision.method = std::string(decision["method"]);
    if (!readDouble(decision["fov_diameter"], scaled.decision.fovDiameter)) scaled.decision.fovDiameter = NAN;
    auto imagePath = checkedFile(node, "image", refPath);
    if (!imagePath) return imagePath.status();
    scaled.imageFile = "selftest/" + fundus::fileName(*imagePath);
    auto image = readImage(*imagePath);
    if (!image) return image.status();
    scaled.imageRgb = *image;
    auto fovPath = checkedFile(node, "fov", refPath);
    if (!fovPath) return fovPath.status();
    auto fov = readBinaryMask(*fovPath);
    if (!fov) return fov.status();
    if (fov->size() != scaled.imageRgb.size()) return referenceError(*fovPath + ": not the size of the image");
    scaled.fov = *fov;
    FUNDUS_TRY(scaled.plane,
               readPlane(node, "plane", refPath, scaledSize(scaled.imageRgb.size(), scaled.decision.factor)));
    FUNDUS_TRY(scaled.probability, readPlane(node, "probability", refPath, scaled.imageRgb.size()));
    auto found = fovFromImage(scaled.imageRgb);
    if (!found) return found.status();
    scaled.own = decideScale(*found, scaled.config, ScaleRequest());
    scaled.region = resampleMask(*found, scaled.decision.factor);
    scaled.present = true;
    return scaled;
}

Result<Reference> loadReference(const Bundle& bundle) {
    const std::string hint = "; write it with `fundus-export selftest-reference --bundle " + bundle.root + "`";
    if (!bundle.has(kReferenceKey)) {
        return referenceError(bundle.root + ": model.json lists no " + std::string(kReferenceKey) + hint);
    }
    auto refPath = bundle.modelPath(kReferenceKey);  // checks its sha256 against model.json
    if (!refPath) return refPath.status();
    Reference ref;
    ref.path = *refPath;
    cv::FileStorage fs;
    try {
        fs.open(ref.path, cv::FileStorage::READ | cv::FileStorage::FORMAT_JSON);
    } catch (const cv::Exception& e) {
        return referenceError(ref.path + ": not valid JSON (" + e.msg + ")");
    }
    if (!fs.isOpened()) return referenceError(ref.path + ": not valid JSON");
    const cv::FileNode top = fs.root();
    if (!top["format"].isString() || std::string(top["format"]) != kReferenceFormat) {
        return referenceError(ref.path + ": format is not " + std::string(kReferenceFormat));
    }
    for (const char* key : {"reference", "onnxruntime", "model_file", "model_sha256"}) {
        if (!top[key].isString()) return referenceError(ref.path + ": string '" + key + "' missing");
    }
    ref.name = std::string(top["reference"]);
    ref.onnxruntime = std::string(top["onnxruntime"]);
    ref.modelFile = std::string(top["model_file"]);
    const auto fp32 = bundle.files.find("fp32");
    const std::string modelSha = std::string(top["model_sha256"]);
    if (fp32 == bundle.files.end() || fp32->second.sha256 != modelSha) {
        return referenceError(ref.path + ": stale, made from a " + ref.modelFile + " with sha256 " + modelSha +
                              ", not this bundle's fp32 model" + hint);
    }
    if (!readDouble(top["threshold"], ref.threshold) || !readDouble(top["scores"]["miou"], ref.miou) ||
        !readDouble(top["scores"]["f1"], ref.f1)) {
        return referenceError(ref.path + ": needs number 'threshold' and 'scores' {miou, f1}");
    }

    auto imagePath = checkedFile(top, "image", ref.path);
    if (!imagePath) return imagePath.status();
    ref.imageFile = "selftest/" + fundus::fileName(*imagePath);
    auto image = readImage(*imagePath);
    if (!image) return image.status();
    ref.imageRgb = *image;
    for (auto [key, mask] : {std::pair<const char*, cv::Mat*>{"fov", &ref.fov}, {"vessels", &ref.vessels}}) {
        auto path = checkedFile(top, key, ref.path);
        if (!path) return path.status();
        auto read = readBinaryMask(*path);
        if (!read) return read.status();
        if (read->size() != ref.imageRgb.size()) return referenceError(*path + ": not the size of the image");
        *mask = *read;
    }
    FUNDUS_TRY(ref.plane, readPlane(top, "plane", ref.path, ref.imageRgb.size()));
    FUNDUS_TRY(ref.probability, readPlane(top, "probability", ref.path, ref.imageRgb.size()));
    FUNDUS_TRY(const std::string tilesPath, checkedFile(top, "tiles", ref.path));
    FUNDUS_TRY(NpyArray tiles, readNpy(tilesPath));
    const std::vector<int>& shape = tiles.shape;
    const cv::FileNode origins = top["tile_origins_xy"];
    if (shape.size() != 3 || shape[1] != bundle.tile || shape[2] != bundle.tile || !origins.isSeq() ||
        int(origins.size()) != shape[0] || shape[0] == 0) {
        return referenceError(tilesPath + ": not (n, " + std::to_string(bundle.tile) + ", " +
                              std::to_string(bundle.tile) + ") with one 'tile_origins_xy' entry per tile");
    }
    for (int i = 0; i < shape[0]; ++i) {
        const cv::FileNode xy = origins[i];
        const cv::Point origin = xy.isSeq() && xy.size() == 2 ? cv::Point(int(xy[0]), int(xy[1])) : cv::Point(-1, -1);
        if (origin.x < 0 || origin.y < 0 || origin.x + bundle.tile > ref.imageRgb.cols ||
            origin.y + bundle.tile > ref.imageRgb.rows) {
            return referenceError(ref.path + ": tile_origins_xy[" + std::to_string(i) + "] is not [x, y] of a tile " +
                                  "inside the image");
        }
        ref.origins.push_back(origin);
        ref.tiles.push_back(tiles.data.rowRange(i * bundle.tile, (i + 1) * bundle.tile).clone());
    }
    const cv::FileNode tolerances = top["tolerances"];
    if (!tolerances.isMap()) return referenceError(ref.path + ": 'tolerances' missing");
    for (const cv::FileNode& entry : tolerances) {
        Tolerance tol;
        double value = 0;
        if (readDouble(entry["max_abs"], value)) tol.maxAbs = value;
        if (readDouble(entry["agreement"], value)) tol.agreement = value;
        if (readDouble(entry["miou_points"], value)) tol.miouPoints = value;
        if (readDouble(entry["f1_points"], value)) tol.f1Points = value;
        ref.tolerances[entry.name()] = tol;
    }
    FUNDUS_TRY(ref.scaled, loadScaled(top, ref.path));
    return ref;
}

struct Counts {
    long long tp = 0, fp = 0, fn = 0, tn = 0;
    // runtime/metrics.py scores_from_counts: MIoU = mean of vessel and background IoU
    double miou() const { return 0.5 * (double(tp) / double(tp + fp + fn) + double(tn) / double(tn + fn + fp)); }
    double f1() const { return double(2 * tp) / double(2 * tp + fp + fn); }
};

struct Comparison {
    double tileMax = 0, tileMean = 0, imageMax = 0, imageMean = 0, agreement = 0, miou = 0, f1 = 0;
};

// runtime/agreement.py compare(): |dp| on tiles and inside the FOV, mask agreement, pooled scores.
Comparison compare(const Reference& ref, const cv::Mat& probability, const std::vector<cv::Mat>& tiles) {
    Comparison c;
    double tileSum = 0;
    long long tilePixels = 0;
    for (std::size_t i = 0; i < tiles.size(); ++i) {
        cv::Mat diff;
        cv::absdiff(tiles[i], ref.tiles[i], diff);
        double worst = 0;
        cv::minMaxLoc(diff, nullptr, &worst);
        c.tileMax = std::max(c.tileMax, worst);
        tileSum += cv::sum(diff)[0];
        tilePixels += diff.total();
    }
    c.tileMean = tileSum / double(tilePixels);
    const float t = float(ref.threshold);
    double imageSum = 0;
    long long inside = 0, agree = 0;
    Counts counts;
    for (int y = 0; y < probability.rows; ++y) {
        const float* p = probability.ptr<float>(y);
        const float* r = ref.probability.ptr<float>(y);
        const uchar* fov = ref.fov.ptr<uchar>(y);
        const uchar* truth = ref.vessels.ptr<uchar>(y);
        for (int x = 0; x < probability.cols; ++x) {
            if (!fov[x]) continue;
            const double d = std::fabs(double(p[x]) - double(r[x]));
            c.imageMax = std::max(c.imageMax, d);
            imageSum += d;
            ++inside;
            const bool predicted = p[x] >= t;
            agree += predicted == (r[x] >= t);
            if (truth[x]) {
                predicted ? ++counts.tp : ++counts.fn;
            } else {
                predicted ? ++counts.fp : ++counts.tn;
            }
        }
    }
    c.imageMean = imageSum / double(inside);
    c.agreement = double(agree) / double(inside);
    c.miou = counts.miou();
    c.f1 = counts.f1();
    return c;
}

struct ScaledComparison {
    bool run = false;
    double imageMax = 0, imageMean = 0, agreement = 0;
};

// The scaled photograph: a backend's probability (brought back to the photograph's size) vs the
// stored one, inside the drawn FOV: |dp| and mask agreement at the reference's threshold.
ScaledComparison compareScaled(const Reference& ref, const cv::Mat& probability) {
    const ScaledReference& scaled = ref.scaled;
    ScaledComparison c;
    c.run = true;
    const float t = float(ref.threshold);
    double sum = 0;
    long long inside = 0, agree = 0;
    for (int y = 0; y < probability.rows; ++y) {
        const float* p = probability.ptr<float>(y);
        const float* r = scaled.probability.ptr<float>(y);
        const uchar* fov = scaled.fov.ptr<uchar>(y);
        for (int x = 0; x < probability.cols; ++x) {
            if (!fov[x]) continue;
            const double d = std::fabs(double(p[x]) - double(r[x]));
            c.imageMax = std::max(c.imageMax, d);
            sum += d;
            ++inside;
            agree += (p[x] >= t) == (r[x] >= t);
        }
    }
    c.imageMean = inside ? sum / double(inside) : 0.0;
    c.agreement = inside ? double(agree) / double(inside) : 0.0;
    return c;
}

std::string format(const char* pattern, double value) {
    char text[64];
    std::snprintf(text, sizeof(text), pattern, value);
    return text;
}

// runtime/agreement.py failures(): the same limits, the same words.
std::vector<std::string> failures(const Comparison& c, double miouDelta, double f1Delta, const Tolerance& tol) {
    std::vector<std::string> broken;
    const double worst = std::max(c.tileMax, c.imageMax);
    if (tol.maxAbs && !(worst <= *tol.maxAbs)) {
        broken.push_back("max|Δp| " + format("%.3g", worst) + " > " + format("%g", *tol.maxAbs));
    }
    if (tol.agreement && !(c.agreement >= *tol.agreement)) {
        broken.push_back("agreement " + format("%.4f", 100 * c.agreement) + "% < " +
                         format("%g", 100 * *tol.agreement) + "%");
    }
    if (tol.miouPoints && !(std::fabs(miouDelta) <= *tol.miouPoints)) {
        broken.push_back("MIOU Δ " + format("%+.3f", miouDelta) + " points > " + format("%g", *tol.miouPoints));
    }
    if (tol.f1Points && !(std::fabs(f1Delta) <= *tol.f1Points)) {
        broken.push_back("F1 Δ " + format("%+.3f", f1Delta) + " points > " + format("%g", *tol.f1Points));
    }
    return broken;
}

// The scaled photograph's limits: the same max |dp| and agreement, named "scaled".
void scaledFailures(const ScaledComparison& c, const Tolerance& tol, std::vector<std::string>& broken) {
    if (!c.run) return;
    if (tol.maxAbs && !(c.imageMax <= *tol.maxAbs)) {
        broken.push_back("scaled: max|Δp| " + format("%.3g", c.imageMax) + " > " + format("%g", *tol.maxAbs));
    }
    if (tol.agreement && !(c.agreement >= *tol.agreement)) {
        broken.push_back("scaled: agreement " + format("%.4f", 100 * c.agreement) + "% < " +
                         format("%g", 100 * *tol.agreement) + "%");
    }
}

// Median tiles/s of `repeats` calls on `batch` tiles (cycled from `tiles`), after one warm-up call.
Result<double> tilesPerSecond(Backend& backend, const std::vector<cv::Mat>& tiles, int batch, int repeats) {
    std::vector<cv::Mat> input, out;
    for (int i = 0; i < batch; ++i) input.push_back(tiles[std::size_t(i) % tiles.size()]);
    Status status = backend.predict(input, out);
    if (!status) return status;
    std::vector<double> seconds;
    for (int r = 0; r < std::max(1, repeats); ++r) {
        const auto start = std::chrono::steady_clock::now();
        if (!(status = backend.predict(input, out))) return status;
        seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    std::sort(seconds.begin(), seconds.end());
    const std::size_t n = seconds.size();
    const double median = n % 2 ? seconds[n / 2] : 0.5 * (seconds[n / 2 - 1] + seconds[n / 2]);
    return roundTo(double(batch) / median, 2);
}

struct Candidate {
    std::string kind, precision;
    std::string name() const { return kind + "_" + precision; }
};

const Candidate kCandidates[] = {{"ort", "fp32"}, {"ort", "fp16"}, {"ort", "int8"}, {"opencv", "fp32"},
                                 {"trt", "fp32"}, {"trt", "fp16"}, {"trt", "int8"}};

// The backend of one candidate, or why it cannot run here: `skip` (nothing to judge) or an error.
Result<std::unique_ptr<Backend>> openCandidate(const Bundle& bundle, const Candidate& c, int threads,
                                               std::string& skip) {
    if (c.kind == "ort") {
        skip = "the C++ binary has no ONNX Runtime (the Python fundus-infer --self-test runs it, CPU and CUDA)";
        return Status::ok();
    }
    const std::string key = c.kind == "opencv" ? "fp32_static" : c.precision;
    if (!bundle.has(key)) {
        skip = "model.json lists no " + key + " model";
        return Status::ok();
    }
    if (c.kind == "opencv") return OpenCVBackend::create(bundle, c.precision, threads);
#ifdef FUNDUS_WITH_TENSORRT
    const TrtDevice device = currentTrtDevice();
    if (device.gpuName.empty()) {
        skip = "no CUDA device (" + device.error + ")";
        return Status::ok();
    }
    const EngineChoice engine = findEngine(bundle, c.precision, device);
    if (engine.enginePath.empty()) {
        skip = "no current engine: " + engine.reason + " (build it: fundus-export build-engine --bundle " +
               bundle.root + " --precision " + c.precision + "; this binary does not build engines)";
        return Status::ok();
    }
    return createTrtBackend(bundle, c.precision);
#else
    skip =
        "TensorRT is not compiled into this binary (cmake -DFUNDUS_WITH_TENSORRT=ON where TensorRT >= 10 and "
        "CUDA are installed)";
    return Status::ok();
#endif
}

Json toleranceJson(const Tolerance& tol) {
    Json out = Json::object();
    if (tol.maxAbs) out.set("max_abs", *tol.maxAbs);
    if (tol.agreement) out.set("agreement", *tol.agreement);
    if (tol.miouPoints) out.set("miou_points", *tol.miouPoints);
    if (tol.f1Points) out.set("f1_points", *tol.f1Points);
    return out;
}

// One candidate's numbers: its comparison with the reference, its speed, the limits it broke.
struct Outcome {
    std::string name, backend, precision, modelFile;
    Comparison c;
    ScaledComparison scaled;
    double miouDelta = 0, f1Delta = 0;
    std::vector<std::pair<int, double>> speed;  // batch -> tiles/s
    Tolerance tol;
    std::vector<std::string> failures;

    bool pass() const { return failures.empty(); }
    // an entry of self-test.json "results", keys as runtime/selftest.py run_candidate()
    Json json() const {
        Json rates = Json::object(), broken = Json::array();
        for (const auto& [batch, rate] : speed) rates.set(std::to_string(batch), rate);
        for (const std::string& f : failures) broken.push(f);
        Json out = Json::object();
        out.set("backend", backend)
            .set("precision", precision)
            .set("model_file", modelFile)
            .set("tile_max_abs_diff", c.tileMax)
            .set("tile_mean_abs_diff", c.tileMean)
            .set("image_max_abs_diff", c.imageMax)
            .set("image_mean_abs_diff", c.imageMean)
            .set("mask_agreement", c.agreement)
            .set("miou", c.miou)
            .set("miou_delta_points", miouDelta)
            .set("f1", c.f1)
            .set("f1_delta_points", f1Delta)
            .set("drawn_tile_max_abs_diff", c.tileMax);
        if (scaled.run) {
            out.set("scaled_image_max_abs_diff", scaled.imageMax)
                .set("scaled_image_mean_abs_diff", scaled.imageMean)
                .set("scaled_mask_agreement", scaled.agreement);
        }
        out.set("tiles_per_second", rates)
            .set("tolerance", toleranceJson(tol))
            .set("pass", Json::boolean(pass()))
            .set("failures", broken);
        return out;
    }
};

// One candidate vs the reference: the whole photograph (tiled at the largest batch) and the tiles.
Result<Outcome> runCandidate(Backend& backend, const std::string& name, const Reference& ref, const Bundle& bundle,
                             const SelfTestOptions& options) {
    const cv::Mat& plane = ref.plane;
    Outcome o;
    o.name = name;
    o.backend = backend.name();
    o.precision = backend.precision();
    o.modelFile = fundus::fileName(backend.modelPath());
    const std::string tolKey = o.backend == "opencv" ? "fp32_static" : o.precision;
    const auto tol = ref.tolerances.find(tolKey);
    if (tol == ref.tolerances.end())
        return Status::error(ErrorCode::kBundle, ref.path + ": no tolerance for " + tolKey);
    o.tol = tol->second;
    const int batch = *std::max_element(options.batches.begin(), options.batches.end());
    auto probability = predictPlane(plane, backend, bundle.tile, bundle.overlap, batch);
    if (!probability) return probability.status();
    std::vector<cv::Mat> crops, tiles;
    for (const cv::Point& at : ref.origins)
        crops.push_back(plane(cv::Rect(at, cv::Size(bundle.tile, bundle.tile))).clone());
    Status status = backend.predict(crops, tiles);
    if (!status) return status;
    if (tiles.size() != crops.size()) {
        return Status::error(ErrorCode::kBackend, "backend returned " + std::to_string(tiles.size()) + " tiles for " +
                                                      std::to_string(crops.size()));
    }
    o.c = compare(ref, *probability, tiles);
    o.miouDelta = 100.0 * (o.c.miou - ref.miou);
    o.f1Delta = 100.0 * (o.c.f1 - ref.f1);
    o.failures = failures(o.c, o.miouDelta, o.f1Delta, o.tol);
    if (ref.scaled.present) {  // the stored resampled plane, tiled in the resampled FOV, brought back
        const ScaledReference& scaled = ref.scaled;
        auto small = predictPlane(scaled.plane, backend, bundle.tile, bundle.overlap, batch, scaled.region);
        if (!small) return small.status();
        o.scaled = compareScaled(ref, resampleBack(*small, scaled.imageRgb.size()));
        scaledFailures(o.scaled, o.tol, o.failures);
    }
    for (int b : options.batches) {
        auto rate = tilesPerSecond(backend, tiles, b, options.repeats);
        if (!rate) return rate.status();
        o.speed.emplace_back(b, *rate);
    }
    return o;
}

// Columns `text` takes on a terminal: UTF-8 code points, so "Δ" counts one.
std::size_t columns(const std::string& text) {
    std::size_t shown = 0;
    for (unsigned char ch : text) shown += (ch & 0xC0) != 0x80;
    return shown;
}

std::string padded(const std::string& text, std::size_t width, bool right = false) {
    const std::size_t shown = columns(text);
    const std::string pad(shown < width ? width - shown : 0, ' ');
    return right ? pad + text : text + pad;
}

using Reasons = std::vector<std::pair<std::string, std::string>>;  // candidate -> why

// The self-test as text: one row per candidate, then what was not run or failed and why.
void printTable(const std::vector<Outcome>& rows, const Reasons& skipped, const Reasons& errors,
                const std::string& preprocessLine, const SelfTestOptions& options, const Reference& ref, bool pass) {
    std::string header = padded("candidate", 12) + " " + padded("backend", 10) + " " + padded("max|Δp|", 9, true) +
                         " " + padded("agree %", 9, true) + " " + padded("ΔMIoU", 7, true) + " " +
                         padded("ΔF1", 7, true);
    for (int b : options.batches) header += " " + padded("b" + std::to_string(b) + " t/s", 9, true);
    header += "  result";
    std::cout << "reference: " << ref.name << " (onnxruntime " << ref.onnxruntime << ", stored in " << ref.path << ")\n"
              << header << "\n"
              << std::string(columns(header), '-') << "\n";
    for (const Outcome& r : rows) {
        std::string line = padded(r.name, 12) + " " + padded(r.backend, 10) + " " +
                           padded(format("%.3g", std::max(r.c.tileMax, r.c.imageMax)), 9, true) + " " +
                           padded(format("%.4f", 100 * r.c.agreement), 9, true) + " " +
                           padded(format("%+.3f", r.miouDelta), 7, true) + " " +
                           padded(format("%+.3f", r.f1Delta), 7, true);
        for (const auto& rate : r.speed) line += " " + padded(format("%.1f", rate.second), 9, true);
        std::string verdict = r.pass() ? "ok" : "FAIL:";
        for (std::size_t i = 0; i < r.failures.size(); ++i) verdict += (i ? "; " : " ") + r.failures[i];
        std::cout << line << "  " << verdict << "\n";
    }
    for (const auto& [name, why] : skipped) std::cout << padded(name, 12) << " not run: " << why << "\n";
    for (const auto& [name, why] : errors) std::cout << padded(name, 12) << " ERROR: " << why << "\n";
    std::cout << preprocessLine << "\n" << (pass ? "PASS" : "FAIL") << std::endl;
}

}  // namespace

int runSelfTest(const SelfTestOptions& options, const std::string& program) {
    auto fail = [&](const std::string& message) {
        std::cerr << program << ": error: " << message << "\n";
        return exitCode(ExitStatus::kUsage);
    };
    Status status = makeDirectories(options.outputDir);
    if (!status) return fail(status.message());
    auto bundle = loadBundle(options.bundleDir);
    if (!bundle) return fail(bundle.status().message());
    auto ref = loadReference(*bundle);
    if (!ref) return fail(ref.status().message());
    auto plane = preprocess(ref->imageRgb, bundle->preprocess);
    if (!plane) return fail(ref->imageFile + ": " + plane.status().message());
    // this binary's preprocessing of the photograph vs the plane ONNX Runtime ran: reported, not judged
    cv::Mat planeDiff;
    cv::absdiff(*plane, ref->plane, planeDiff);
    double planeMax = 0;
    cv::minMaxLoc(planeDiff, nullptr, &planeMax);
    const int planeDiffering = cv::countNonZero(planeDiff);
    const std::string preprocessLine = "this binary's preprocessing of " + ref->imageFile + ": " +
                                       std::to_string(planeDiffering) + " of " + std::to_string(planeDiff.total()) +
                                       " pixels differ from the stored plane (max |Δ| " + format("%.3g", planeMax) +
                                       "); reported, not judged: the backends above all ran the stored plane";

    std::vector<Outcome> rows;
    Reasons skipped, errors;
    // scale normalisation: this binary's rule must decide what the reference decided (judged); its
    // resampled preprocessing vs the stored plane is reported, like the plane above
    std::string scaledLine;
    Json scaledJson = Json::object();
    if (ref->scaled.present) {
        const ScaledReference& sc = ref->scaled;
        const bool sameDiameter = std::isnan(sc.own.fovDiameter) ? std::isnan(sc.decision.fovDiameter)
                                                                 : sc.own.fovDiameter == sc.decision.fovDiameter;
        const bool matches = sc.own.method == sc.decision.method && sameDiameter &&
                             std::fabs(sc.own.factor - sc.decision.factor) <= 1e-12;
        if (!matches) {
            errors.emplace_back("scale rule", "on " + sc.imageFile + " this binary decided factor " +
                                                  format("%.6g", sc.own.factor) + " (" + sc.own.method +
                                                  "), the reference " + format("%.6g", sc.decision.factor) + " (" +
                                                  sc.decision.method + ")");
        }
        auto scaledPlane = preprocess(resampleImage(sc.imageRgb, sc.decision.factor), bundle->preprocess);
        if (!scaledPlane) return fail(sc.imageFile + ": " + scaledPlane.status().message());
        cv::Mat diff;
        cv::absdiff(*scaledPlane, sc.plane, diff);
        double worst = 0;
        cv::minMaxLoc(diff, nullptr, &worst);
        const int differing = cv::countNonZero(diff);
        scaledLine = "\nscale normalisation of " + sc.imageFile + ": factor " + format("%.4f", sc.own.factor) + " (" +
                     sc.own.method + ", FOV " + format("%.0f", sc.own.fovDiameter) + " px), " +
                     (matches ? "as the reference decided" : "NOT as the reference decided") + "; " +
                     std::to_string(differing) + " of " + std::to_string(diff.total()) +
                     " resampled plane pixels differ from the stored one (max |Δ| " + format("%.3g", worst) +
                     "); reported, not judged: the backends above ran the stored plane";
        scaledJson.set("image", sc.imageFile)
            .set("decision", sc.own.json())
            .set("reference_decision", sc.decision.json())
            .set("decision_matches", Json::boolean(matches))
            .set("plane_pixels", int(diff.total()))
            .set("plane_pixels_differing", differing)
            .set("plane_max_abs_diff", worst);
    }
    for (const Candidate& candidate : kCandidates) {
        std::string skip;
        auto backend = openCandidate(*bundle, candidate, options.threads, skip);
        if (!skip.empty()) {
            skipped.emplace_back(candidate.name(), skip);
            continue;
        }
        Result<Outcome> outcome = backend.status();
        if (backend) {
            try {
                outcome = runCandidate(**backend, candidate.name(), *ref, *bundle, options);
            } catch (const cv::Exception& e) {
                outcome = Status::error(ErrorCode::kBackend, "OpenCV error: " + e.msg);
            } catch (const std::exception& e) {
                outcome = Status::error(ErrorCode::kBackend, e.what());
            }
        }
        if (outcome) {
            rows.push_back(*outcome);
        } else {
            errors.emplace_back(candidate.name(), outcome.status().message());
        }
    }
    const bool pass = !rows.empty() && errors.empty() &&
                      std::all_of(rows.begin(), rows.end(), [](const Outcome& o) { return o.pass(); });
    Json results = Json::object(), skippedJson = Json::object(), errorsJson = Json::object();
    for (const Outcome& o : rows) results.set(o.name, o.json());
    for (const auto& [name, why] : skipped) skippedJson.set(name, why);
    for (const auto& [name, why] : errors) errorsJson.set(name, why);

    Json reference = Json::object();
    reference.set("name", ref->name + " (stored: selftest/reference.json)")
        .set("onnxruntime", ref->onnxruntime)
        .set("model_file", ref->modelFile)
        .set("tiles_per_second", Json::object());
    Json inputs = Json::object();
    inputs.set("images", Json::array().push(ref->imageFile))
        .set("image_size", ref->imageRgb.cols)
        .set("plane_tiles", int(makeGrid(plane->rows, plane->cols, bundle->tile, bundle->overlap).origins().size()))
        .set("drawn_tiles", int(ref->tiles.size()))
        .set("mask_region", "fov")
        .set("plane", "selftest/plane.npy (stored: the input every backend ran)");
    Json preprocessJson = Json::object();
    preprocessJson.set("pixels", int(planeDiff.total()))
        .set("pixels_differing", planeDiffering)
        .set("max_abs_diff", planeMax)
        .set("judged", Json::boolean(false));
    Json report = Json::object();
    report.set("tool", "fundus-infer --self-test")
        .set("runtime", "c++")
        .set("bundle", Json::object().set("name", bundle->name).set("path", bundle->root))
        .set("reference", reference)
        .set("inputs", inputs)
        .set("preprocess_vs_stored_plane", preprocessJson)
        .set("scaled", scaledJson)
        .set("results", results)
        .set("skipped", skippedJson)
        .set("errors", errorsJson)
        .set("pass", Json::boolean(pass));
    printTable(rows, skipped, errors, preprocessLine + scaledLine, options, *ref, pass);
    status = writeJsonAtomic(joinPath(options.outputDir, kSelfTestJson), report);
    if (!status) return fail(status.message());
    return exitCode(pass ? ExitStatus::kOk : ExitStatus::kImageFailed);
}

}  // namespace fundus
