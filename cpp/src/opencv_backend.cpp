#include "fundus/opencv_backend.h"

namespace fundus {

Result<std::unique_ptr<Backend>> OpenCVBackend::create(const Bundle& bundle, const std::string& precision,
                                                       int threads) {
    if (precision != "fp32") {
        return Status::error(ErrorCode::kBackend, "backend 'opencv' runs fp32 only, not '" + precision +
                                                      "' (OpenCV DNN loads no FP16/QDQ models)");
    }
    if (bundle.tile % 16 != 0) {
        return Status::error(ErrorCode::kBundle, bundle.root + ": tile " + std::to_string(bundle.tile) +
                                                     " is not a multiple of 16, which OpenCV DNN needs");
    }
    auto path = bundle.modelPath("fp32_static");
    if (!path) return path.status();
    std::unique_ptr<OpenCVBackend> backend(new OpenCVBackend());
    backend->modelPath_ = *path;
    backend->vesselIndex_ = bundle.vesselIndex;
    backend->tile_ = bundle.tile;
    if (threads > 0) cv::setNumThreads(threads);
    try {
        backend->net_ = cv::dnn::readNetFromONNX(*path);
#if CV_VERSION_MAJOR < 5  // OpenCV 5's graph engine runs on the CPU and warns when a target is set
        backend->net_.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
        backend->net_.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
#endif
    } catch (const cv::Exception& e) {
        return Status::error(ErrorCode::kBundle, *path + ": OpenCV DNN cannot load it (" + e.msg + ")");
    }
    if (backend->net_.empty()) return Status::error(ErrorCode::kBundle, *path + ": OpenCV DNN loaded an empty network");
    return std::unique_ptr<Backend>(std::move(backend));
}

Status OpenCVBackend::predict(const std::vector<cv::Mat>& tiles, std::vector<cv::Mat>& out) {
    out.clear();
    for (const cv::Mat& tile : tiles) {
        const int shape[] = {1, 1, tile.rows, tile.cols};
        cv::Mat blob(4, shape, CV_32F);
        tile.copyTo(cv::Mat(tile.rows, tile.cols, CV_32F, blob.ptr<float>()));
        cv::Mat probabilities;
        try {
            net_.setInput(blob);
            probabilities = net_.forward();
        } catch (const cv::Exception& e) {
            return Status::error(ErrorCode::kBackend, modelPath_ + ": inference failed (" + e.msg + ")");
        }
        if (probabilities.dims != 4 || probabilities.size[0] != 1 || probabilities.size[2] != tile.rows ||
            probabilities.size[3] != tile.cols || vesselIndex_ >= probabilities.size[1]) {
            return Status::error(ErrorCode::kBackend, modelPath_ + ": model output is not (1, classes, " +
                                                          std::to_string(tile.rows) + ", " + std::to_string(tile.cols) +
                                                          ") with vessel_index " + std::to_string(vesselIndex_));
        }
        const float* plane = probabilities.ptr<float>(0, vesselIndex_);
        out.push_back(cv::Mat(tile.rows, tile.cols, CV_32F, const_cast<float*>(plane)).clone());
    }
    return Status::ok();
}

}  // namespace fundus
