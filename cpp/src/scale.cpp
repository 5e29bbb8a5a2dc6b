#include "fundus/scale.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include <opencv2/imgproc.hpp>

namespace fundus {
namespace {

ScaleDecision snapped(ScaleDecision decision, const ScaleConfig& config) {
    if (std::fabs(decision.factor - 1.0) < config.tolerance) decision.factor = 1.0;
    return decision;
}

ScaleDecision withDomain(ScaleDecision decision, const ScaleConfig& config) {
    if (config.factorLow <= decision.factor && decision.factor <= config.factorHigh) return decision;
    char note[160];
    std::snprintf(note, sizeof(note), "scale factor %.3g outside the model's range [%g, %g]", decision.factor,
                  config.factorLow, config.factorHigh);
    decision.inDomain = false;
    decision.note = note;
    return decision;
}

}  // namespace

Json ScaleDecision::json() const {
    Json out = Json::object();
    out.set("factor", roundTo(factor, 4))
        .set("method", method)
        .set("fov_diameter", std::isnan(fovDiameter) ? fovDiameter : roundTo(fovDiameter, 1))  // NaN: null
        .set("in_domain", Json::boolean(inDomain));
    if (!note.empty()) out.set("note", note);
    return out;
}

double fovDiameter(const cv::Mat& fov) {
    int top = -1, bottom = -1, left = fov.cols, right = -1;
    long long inside = 0;
    for (int y = 0; y < fov.rows; ++y) {
        const int count = cv::countNonZero(fov.row(y));
        if (count == 0) continue;
        inside += count;
        const auto* row = fov.ptr<std::uint8_t>(y);
        int first = 0, last = fov.cols - 1;  // the row holds a non-zero pixel: both scans stop
        while (!row[first]) ++first;
        while (!row[last]) --last;
        if (top < 0) top = y;
        bottom = y;
        left = std::min(left, first);
        right = std::max(right, last);
    }
    if (top < 0) return std::nan("");
    const bool touchesAll = top == 0 && left == 0 && bottom == fov.rows - 1 && right == fov.cols - 1;
    if (touchesAll && double(inside) > kFovFoundMaxCover * double(fov.total())) return std::nan("");
    return double(std::max(bottom - top + 1, right - left + 1));
}

ScaleDecision decideScale(const cv::Mat& fov, const ScaleConfig& config, const ScaleRequest& request) {
    ScaleDecision decision;
    if (request.mode == "none" || (request.mode == "auto" && !config.enabled())) {
        if (request.mode != "none") decision.note = "bundle has no scale reference";
        return decision;
    }
    if (request.mode == "fixed") {
        decision.factor = request.factor;
        decision.method = "fixed";
        return withDomain(decision, config);
    }
    const double diameter = fovDiameter(fov);
    if (std::isnan(diameter)) {
        decision.fovDiameter = double(std::max(fov.rows, fov.cols));
        decision.factor = config.referenceDiameter / decision.fovDiameter;
        decision.method = "image-size";
        decision.inDomain = false;
        decision.note = "FOV not found: scaled by image size";
        return snapped(decision, config);
    }
    decision.fovDiameter = diameter;
    decision.factor = config.referenceDiameter / diameter;
    decision.method = "fov";
    return withDomain(snapped(decision, config), config);
}

cv::Size scaledSize(const cv::Size& size, double factor) {
    // Python round(): half to even, as std::nearbyint in the default rounding mode
    const int width = int(std::nearbyint(double(size.width) * factor));
    const int height = int(std::nearbyint(double(size.height) * factor));
    return cv::Size(std::max(1, width), std::max(1, height));
}

cv::Mat resampleImage(const cv::Mat& image, double factor) {
    if (factor == 1.0) return image;
    cv::Mat out;
    cv::resize(image, out, scaledSize(image.size(), factor), 0, 0, factor < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
    return out;
}

cv::Mat resampleMask(const cv::Mat& mask, double factor) {
    if (factor == 1.0) return mask;
    cv::Mat out;
    cv::resize(mask, out, scaledSize(mask.size(), factor), 0, 0, cv::INTER_NEAREST);
    return out;
}

cv::Mat resampleBack(const cv::Mat& probability, const cv::Size& size) {
    if (probability.size() == size) return probability;
    cv::Mat out;
    cv::resize(probability, out, size, 0, 0, cv::INTER_LINEAR);
    return out;
}

Result<ScaleRequest> parseScale(const std::string& value) {
    ScaleRequest request;
    if (value == "auto" || value == "none") {
        request.mode = value;
        return request;
    }
    // Python float(): decimal text, nan and inf; not hexadecimal (which strtod would read)
    char* end = nullptr;
    const double factor = std::strtod(value.c_str(), &end);
    if (value.empty() || *end != '\0' || value.find_first_of("xX") != std::string::npos) {
        return Status::error(ErrorCode::kUsage, "--scale must be auto, none or a positive number, got '" + value + "'");
    }
    if (!(0.01 <= factor && factor <= 4)) {
        return Status::error(ErrorCode::kUsage, "--scale factor must be in [0.01, 4], got '" + value + "'");
    }
    request.mode = "fixed";
    request.factor = factor;
    return request;
}

}  // namespace fundus
