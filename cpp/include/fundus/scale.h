// Scale normalisation, exactly as runtime/scale.py: resample a photograph so that its field of
// view has the bundle's reference diameter, segment there, and bring the probability back.
//
// - FOV diameter = larger side of the FOV mask's bounding box; "not found" when the mask touches
//   all four borders and covers more than 97 % of the frame;
// - factor = reference / diameter, snapped to 1 within `tolerance`; not found: diameter = longer
//   image side (method "image-size", out of domain, said in `note`);
// - outside `factor_range` the decision is out of domain (the quality verdict warns);
// - images: INTER_AREA when shrinking, INTER_LINEAR when enlarging; masks INTER_NEAREST; the
//   probability comes back to the input size with INTER_LINEAR.
#pragma once

#include <cmath>
#include <string>

#include <opencv2/core.hpp>

#include "fundus/status.h"
#include "fundus/summary.h"

namespace fundus {

// runtime/scale.py FOV_FOUND_MAX_COVER
constexpr double kFovFoundMaxCover = 0.97;

// model.json's optional "scale" section (runtime/scale.py ScaleConfig); absent: disabled.
struct ScaleConfig {
    double referenceDiameter = 0.0;  // px; 0: no scale normalisation
    double tolerance = 0.05;
    double factorLow = 0.1;
    double factorHigh = 1.5;

    bool enabled() const { return referenceDiameter > 0; }
};

// --scale: "auto", "none" or "fixed" with `factor`.
struct ScaleRequest {
    std::string mode = "auto";
    double factor = 1.0;
};

// How one photograph is resampled (runtime/scale.py ScaleDecision).
struct ScaleDecision {
    double factor = 1.0;
    std::string method = "none";        // fov | image-size | fixed | none
    double fovDiameter = std::nan("");  // px as measured; NaN: not measured (null in JSON)
    bool inDomain = true;
    std::string note;

    // summary.json's "scale" entry: factor (4 decimals), method, fov_diameter (1 decimal), in_domain[, note]
    Json json() const;
};

// Diameter in pixels of the FOV disc of a CV_8U mask (nonzero = inside); NaN when not found.
double fovDiameter(const cv::Mat& fov);
ScaleDecision decideScale(const cv::Mat& fov, const ScaleConfig& config, const ScaleRequest& request);
// Size of an image of `size` resampled by `factor` (each side rounded half to even, at least 1).
cv::Size scaledSize(const cv::Size& size, double factor);
// factor 1: the image itself; else area averaging (shrinking) or bilinear (enlarging).
cv::Mat resampleImage(const cv::Mat& image, double factor);
// factor 1: the mask itself; else nearest neighbour.
cv::Mat resampleMask(const cv::Mat& mask, double factor);
// A probability plane brought back bilinearly to `size` (itself when already that size).
cv::Mat resampleBack(const cv::Mat& probability, const cv::Size& size);
// --scale's value, with runtime/scale.py parse_scale's messages (code kUsage).
Result<ScaleRequest> parseScale(const std::string& value);

}  // namespace fundus
