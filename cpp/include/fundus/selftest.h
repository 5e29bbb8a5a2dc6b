// fundus-infer --self-test (C++): every backend and precision this binary can run on this machine,
// held to ONNX Runtime CPU FP32 within the bundle's parity tolerances (runtime/selftest.py's C++ twin).
// The binary has no ONNX Runtime, so the reference is stored in the bundle: BUNDLE/selftest/
// (written by `fundus-export selftest-reference`, registered as files.selftest_reference in
// model.json): a synthetic fundus photograph with its FOV and vessels, ONNX Runtime CPU FP32's
// stitched probability of it and its raw outputs on tiles cropped at recorded places, and the
// tolerances. Every file is checked against its sha256; a reference made from another model.onnx
// is refused.
#pragma once

#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "fundus/status.h"

namespace fundus {

struct SelfTestOptions {
    std::string bundleDir;
    std::string outputDir;  // self-test.json is written here (atomically)
    int threads = 0;        // OpenCV threads (0: all)
    std::vector<int> batches = {1, 4, 8};
    int repeats = 3;  // timed calls per batch size (median), after one warm-up call
};

// Runs the self-test, prints the table on stdout, writes OUTDIR/self-test.json. Exit status:
// 0 all candidates ran within tolerance, 1 one was outside tolerance or failed to run,
// 2 the bundle, its self-test reference or the output folder is unusable (message on stderr).
int runSelfTest(const SelfTestOptions& options, const std::string& program);

}  // namespace fundus
