// TensorRT backend (TensorRT 10/11 C++ API), compiled only with FUNDUS_WITH_TENSORRT.
// Runs the engine `fundus-export build-engine` cached for this device. Naming and staleness mirror
// the one Python implementation (runtime/backends/device.py, runtime/backends/engines.py):
//   BUNDLE/engines/<gpu key>-trt<major.minor.patch>-<precision>.engine, gpu key =
//   <name slug>-sm<major><minor>-mp<multiprocessors> (cudaDeviceProp of device 0: CUDA_VISIBLE_DEVICES holds),
// and its sidecar JSON (<same stem>.json) must record the same gpu_key, tensorrt, precision and
// source_sha256 (the bundle's current ONNX file); an engine without one is stale.
// The functions above the #ifdef are pure file logic, compiled (and unit-tested) without TensorRT.
#pragma once

#include <map>
#include <string>

#include "fundus/backend.h"

namespace fundus {

struct EngineChoice {
    std::string enginePath;
    std::string reason;  // why no engine was chosen (empty when enginePath is set)
};

struct TrtDevice {
    std::string gpuName;  // cudaDeviceProp::name of device 0; empty: no usable CUDA device
    int ccMajor = 0;      // compute capability
    int ccMinor = 0;
    int multiprocessors = 0;  // cudaDeviceProp::multiProcessorCount (AGX Orin 16, Orin Nano 8)
    std::string trtVersion;   // linked TensorRT, "10.3.0"
    std::string error;        // why gpuName is empty (CUDA's own error text)
};

// "NVIDIA H100 80GB HBM3", 9.0, 132 SMs -> "nvidia-h100-80gb-hbm3-sm90-mp132"
std::string gpuKey(const TrtDevice& device);
// "10.3.0.26" -> "10.3.0" (empty if not a version)
std::string trtVersionKey(const std::string& version);
// "<gpu key>-trt<version key>-<precision>.engine"
std::string engineFileName(const TrtDevice& device, const std::string& precision);
// What a loader checks in the sidecar: gpu_key, tensorrt, precision, source_sha256.
std::map<std::string, std::string> engineIdentity(const TrtDevice& device, const std::string& precision,
                                                  const std::string& sourceSha256);
// Empty when `enginePath` exists and its sidecar matches `wanted` on every key, else why not.
std::string engineStaleReason(const std::string& enginePath, const std::map<std::string, std::string>& wanted);
// The current engine for `precision` built for `device`, or the reason there is none.
EngineChoice findEngine(const Bundle& bundle, const std::string& precision, const TrtDevice& device);

#ifdef FUNDUS_WITH_TENSORRT
TrtDevice currentTrtDevice();
Result<std::unique_ptr<Backend>> createTrtBackend(const Bundle& bundle, const std::string& precision);
#endif

}  // namespace fundus
