// What every backend provides: a batch of normalised tiles -> vessel probability per tile.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "fundus/bundle.h"
#include "fundus/status.h"

namespace fundus {

class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string name() const = 0;       // "opencv" or "trt", as on the command line
    virtual std::string precision() const = 0;  // "fp32", "fp16", "int8"
    virtual std::string modelPath() const = 0;  // the ONNX file or engine it runs
    // tiles: tile x tile CV_32F model inputs; out: tile x tile CV_32F vessel probabilities.
    virtual Status predict(const std::vector<cv::Mat>& tiles, std::vector<cv::Mat>& out) = 0;
    // Whether predict() also takes one plane of any size (sides multiples of 16): whole-image passes.
    virtual bool anySize() const { return false; }
};

struct BackendOptions {
    std::string backend = "auto";  // auto | opencv | trt
    std::string precision = "fp32";
    int threads = 0;  // 0: library default
};

// Backends compiled into this binary, e.g. "opencv" or "opencv, trt".
std::string compiledBackends();
// auto: TensorRT when compiled in and a current engine for `precision` exists for this GPU, else OpenCV
// (also when that TensorRT engine fails to start: a warning on stderr, then OpenCV).
// Errors have code kBundle (bundle/model file problems) or kBackend (cannot run here).
Result<std::unique_ptr<Backend>> createBackend(const Bundle& bundle, const BackendOptions& options);

}  // namespace fundus
