// Command line of the C++ fundus-infer: the subset of runtime/cli.py's contract it supports.
#pragma once

#include <string>
#include <vector>

#include "fundus/scale.h"
#include "fundus/status.h"

namespace fundus {

struct CliArgs {
    std::vector<std::string> inputs;  // files or folders (folders: their image files, sorted)
    std::string outputDir;
    std::string model;               // bundle folder
    std::string backend = "auto";    // auto | opencv | trt
    std::string precision = "fp32";  // fp32 | fp16 | int8 (opencv: fp32 only)
    std::string fov = "auto";        // auto | none | path to a mask image
    ScaleRequest scale;              // --scale auto | none | FACTOR (runtime/scale.py parse_scale)
    std::string quality = "flag";    // flag | refuse | off (runtime/quality.py gate)
    bool thresholdSet = false;
    double threshold = 0.5;                                       // used only when thresholdSet
    std::vector<std::string> save = {"mask", "prob", "overlay"};  // in the order given
    int batch = 4;  // tiles per backend call, runtime/inference.py DEFAULT_BATCH (OpenCV: one by one)
    bool quiet = false;
    int threads = 0;
    int maxPixels = 100000000;  // --max-pixels: imageio.h kDefaultMaxPixels
    std::string debugDump;      // hidden: write float planes (.npy) for parity tests
    bool showHelp = false;
    bool showVersion = false;
    bool selfTest = false;  // --self-test: every backend here vs the bundle's stored reference
};

// Parses argv; errors (code kUsage) name the offending flag.
Result<CliArgs> parseArgs(int argc, char** argv);
std::string usageText(const std::string& program);
std::string defaultModelDir();

}  // namespace fundus
