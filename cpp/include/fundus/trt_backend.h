// TensorRT backend (TensorRT 10/11 C++ API), compiled only with FUNDUS_WITH_TENSORRT.
// Runs the engine `fundus-export build-engine` cached for this device, named as
// runtime/backends/trt.py does: BUNDLE/engines/<gpu-slug>-sm<major><minor>-trt<version>-<precision>.engine.
// Its sidecar JSON (<same stem>.json, export/engine.py) records "source_sha256"; an engine built
// from an ONNX file that has since changed is skipped as stale.
#pragma once

#include "fundus/backend.h"

namespace fundus {

struct EngineChoice {
    std::string enginePath;
    std::string reason;  // why no engine was chosen (empty when enginePath is set)
};

struct TrtDevice {
    std::string gpuName;     // cudaDeviceProp::name of device 0; empty: no CUDA device
    std::string capability;  // "90" for sm_90
    std::string trtVersion;  // linked TensorRT, "10.3.0"
};

// Finds the engine for `precision` built for `device` (pure file logic, testable without a GPU).
EngineChoice findEngine(const Bundle& bundle, const std::string& precision, const TrtDevice& device);

#ifdef FUNDUS_WITH_TENSORRT
TrtDevice currentTrtDevice();
Result<std::unique_ptr<Backend>> createTrtBackend(const Bundle& bundle, const std::string& precision);
#endif

}  // namespace fundus
