// Photograph -> model input plane, exactly as runtime/preprocess.py:
// any bit depth -> uint8, weighted gray (or green), CLAHE, (x/255 - mean) / std.
#pragma once

#include <opencv2/core.hpp>

#include "fundus/bundle.h"
#include "fundus/status.h"

namespace fundus {

// 8-bit unchanged; 16-bit scaled by 1/257 (rounded); float in [0,1] scaled by 255 (rounded, clipped).
Result<cv::Mat> toUint8(const cv::Mat& image);
// RGB(A)-ordered or gray image -> one uint8 plane: 0.299 R + 0.587 G + 0.114 B (+0.5, truncated) or G.
Result<cv::Mat> toSingleChannel(const cv::Mat& imageRgb, const std::string& channel);
cv::Mat applyClahe(const cv::Mat& plane, double clip, int grid);
// CLAHE-enhanced uint8 plane (what the overlay is drawn on in panels).
Result<cv::Mat> enhance(const cv::Mat& imageRgb, const PreprocessConfig& config);
// uint8 plane -> CV_32F plane (x / 255 - mean) / std, in float32 arithmetic like numpy.
cv::Mat normalise(const cv::Mat& planeU8, const PreprocessConfig& config);
Result<cv::Mat> preprocess(const cv::Mat& imageRgb, const PreprocessConfig& config);

}  // namespace fundus
