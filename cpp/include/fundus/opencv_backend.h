// OpenCV DNN backend: the bundle's static 1x1xTxT FP32 model (files.fp32_static), one tile per call.
// Debian's OpenCV 4.6 DNN loads only ONNX without Shape ops, no FP16/QDQ, sizes a multiple of 16.
#pragma once

#include <opencv2/dnn.hpp>

#include "fundus/backend.h"

namespace fundus {

class OpenCVBackend : public Backend {
public:
    static Result<std::unique_ptr<Backend>> create(const Bundle& bundle, const std::string& precision, int threads);

    std::string name() const override { return "opencv"; }
    std::string precision() const override { return "fp32"; }
    std::string modelPath() const override { return modelPath_; }
    Status predict(const std::vector<cv::Mat>& tiles, std::vector<cv::Mat>& out) override;
    // DNN infers the static graph's shapes again from each input
    bool anySize() const override { return true; }

private:
    cv::dnn::Net net_;
    std::string modelPath_;
    int vesselIndex_ = 1;
    int tile_ = 0;
};

}  // namespace fundus
