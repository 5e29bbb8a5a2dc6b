#include "fundus/backend.h"

#include <iostream>

#include "fundus/opencv_backend.h"
#include "fundus/trt_backend.h"

namespace fundus {

std::string compiledBackends() {
#ifdef FUNDUS_WITH_TENSORRT
    return "opencv, trt";
#else
    return "opencv";
#endif
}

Result<std::unique_ptr<Backend>> createBackend(const Bundle& bundle, const BackendOptions& options) {
    if (options.backend == "trt") {
#ifdef FUNDUS_WITH_TENSORRT
        return createTrtBackend(bundle, options.precision);
#else
        return Status::error(
            ErrorCode::kBackend,
            "backend 'trt': this binary was built without TensorRT (compiled backends: " + compiledBackends() + ")");
#endif
    }
    if (options.backend == "auto") {
#ifdef FUNDUS_WITH_TENSORRT
        if (!findEngine(bundle, options.precision, currentTrtDevice()).enginePath.empty()) {
            auto trt = createTrtBackend(bundle, options.precision);
            if (trt) return trt;
            // as runtime/backends/__init__.py: a TensorRT engine that fails to start falls back
            std::cerr << "fundus-infer: warning: backend auto: TensorRT failed to start (" << trt.status().message()
                      << "); using OpenCV DNN\n";
        }
#endif
        return OpenCVBackend::create(bundle, options.precision, options.threads);
    }
    if (options.backend == "opencv") return OpenCVBackend::create(bundle, options.precision, options.threads);
    return Status::error(ErrorCode::kUsage, "unknown backend '" + options.backend + "' (auto, opencv, trt)");
}

}  // namespace fundus
