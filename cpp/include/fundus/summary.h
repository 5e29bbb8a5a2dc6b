// summary.json: one record per input (ok or failed with its reason), written atomically.
#pragma once

#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "fundus/status.h"

namespace fundus {

struct ImageRecord {
    std::string file;
    bool ok = false;
    std::string error;  // when !ok
    int width = 0;
    int height = 0;
    std::string backend;
    std::string precision;
    double seconds = 0.0;
    double vesselFraction = 0.0;  // vessel pixels / FOV pixels
    int fovPixels = 0;
    std::vector<std::pair<std::string, std::string>> outputs;  // kind -> file name
};

struct RunInfo {
    std::string model;        // bundle folder
    std::string modelFile;    // ONNX file or engine run
    std::string backend;
    std::string precision;
    double threshold = 0.5;
    std::string fov;
};

std::string jsonEscape(const std::string& text);
std::string summaryJson(const RunInfo& run, const std::vector<ImageRecord>& records);
Status writeSummary(const std::string& path, const RunInfo& run, const std::vector<ImageRecord>& records);
// A float32 2-D plane as a NumPy .npy file (for the parity tests' --debug-dump).
Status writeNpy(const std::string& path, const cv::Mat& plane);

}  // namespace fundus
