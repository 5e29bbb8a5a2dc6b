// Image quality gate, exactly as runtime/quality.py: the same measures, checks, reasons and verdicts.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <opencv2/core.hpp>

#include "fundus/scale.h"
#include "fundus/status.h"
#include "fundus/summary.h"

namespace fundus {

// The gate's answer for one image. Measures keep runtime/quality.py's order (summary.json keys).
struct Quality {
    std::string verdict = "good";  // good | usable | reject
    std::vector<std::string> reasons;
    std::vector<std::pair<std::string, double>> measures;

    double measure(const std::string& name) const;
    bool rejected() const { return verdict == "reject"; }
};

// Pre-segmentation measures of an RGB-ordered (or gray, RGBA) photograph of any depth, graded.
Result<Quality> assessImage(const cv::Mat& imageRgb);
// Adds vessel_fraction and vessel_connected of a mask (CV_8U, nonzero = vessel) inside fov
// (CV_8U 0/1) and grades them; the verdict only gets worse.
void assessVessels(Quality& quality, const cv::Mat& mask, const cv::Mat& fov);
// Adds scale_factor and scale_in_domain (1 or 0) and grades them: a photograph whose scale could not
// be estimated or falls outside the model's factor_range is at best usable (runtime/quality.py assess_scale).
void assessScale(Quality& quality, const ScaleDecision& scale);

// summary.json's quality object: verdict, reasons, measures rounded to 6 digits (runtime.quality.rounded).
Json qualityJson(const Quality& quality);
// The reasons joined by "; " (the refusal message).
std::string joinReasons(const Quality& quality);

}  // namespace fundus
