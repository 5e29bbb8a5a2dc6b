// TensorRT backend (TensorRT 10+ C++ API), compiled only with FUNDUS_WITH_TENSORRT.
// Runs an engine built on this device by `fundus-export build-engine`: BUNDLE/engines/*.engine,
// each with a sidecar JSON (same path + ".json", or ".engine" replaced by ".json") that says
// at least its "precision"; when present, "compute_capability" and "tensorrt" (version) must
// match this GPU and the linked TensorRT, and "sha256" must match the engine file.
#pragma once

#include "fundus/backend.h"

namespace fundus {

struct EngineChoice {
    std::string enginePath;
    std::string reason;  // why no engine was chosen (empty when enginePath is set)
};

// Finds an engine for `precision` that fits this GPU and TensorRT version.
EngineChoice findEngine(const Bundle& bundle, const std::string& precision);

#ifdef FUNDUS_WITH_TENSORRT
Result<std::unique_ptr<Backend>> createTrtBackend(const Bundle& bundle, const std::string& precision);
#endif

}  // namespace fundus
