#include "fundus/cli_args.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <sstream>

#include "fundus/backend.h"
#include "fundus/bundle.h"

#ifndef FUNDUS_DEFAULT_MODEL
#define FUNDUS_DEFAULT_MODEL "unet-multicamera"  // runtime/bundle.py DEFAULT_MODEL
#endif

namespace fundus {
namespace {

Status usageError(const std::string& message) {
    return Status::error(ErrorCode::kUsage, message);
}

// A finite number and nothing else: "nan", "inf" and "1e999" are refused (runtime/cli.py: same rule).
bool parseDouble(const std::string& text, double& out) {
    char* end = nullptr;
    out = std::strtod(text.c_str(), &end);
    return !text.empty() && end && *end == '\0' && std::isfinite(out);
}

// An integer in [1, 2^31): "0", "-1", "2.5", "nan" are refused.
bool parsePositiveInt(const std::string& text, int& out) {
    double n = 0;
    if (!parseDouble(text, n) || n < 1 || n > double(std::numeric_limits<int>::max()) || n != std::floor(n))
        return false;
    out = int(n);
    return true;
}

}  // namespace

// $FUNDUS_MODEL (a folder or a shipped name), else the shipped default bundle's folder: never a folder
// of that name in the working directory (runtime/bundle.py DEFAULT_BUNDLE: the same rule).
std::string defaultModelDir() {
    const char* env = std::getenv("FUNDUS_MODEL");
    if (env && *env) return env;
    const std::vector<std::string> dirs = shippedBundleDirs();
    for (const std::string& dir : dirs) {
        const std::string folder = joinPath(dir, FUNDUS_DEFAULT_MODEL);
        if (isFile(joinPath(folder, "model.json"))) return folder;
    }
    return joinPath(dirs.back(), FUNDUS_DEFAULT_MODEL);  // missing: loadBundle() names this path
}

std::string usageText(const std::string& program) {
    std::string shipped;
    for (const std::string& name : shippedBundleNames()) shipped += (shipped.empty() ? "" : ", ") + name;
    std::ostringstream out;
    out << "usage: " << program
        << " INPUT... -o OUTDIR [--model BUNDLE] [--backend auto|opencv|trt]\n"
           "       [--precision fp32|fp16|int8] [--fov auto|none|MASK_FILE] [--scale auto|none|FACTOR]\n"
           "       [--threshold T]"
           " [--quality flag|refuse|off]\n"
           "       [--save mask,prob,overlay] [--batch N] [--threads N] [--quiet]\n"
           "       "
        << program
        << " --self-test -o OUTDIR [--model BUNDLE] [--threads N]\n"
           "       "
        << program
        << " --version [--model BUNDLE]\n\n"
           "Retinal vessel segmentation of fundus photographs (C++ runtime of fundus-infer).\n\n"
           "  INPUT...             image files or folders (PNG, JPEG, TIFF, GIF, BMP, PPM/PGM; 8/16-bit,\n"
           "                       gray, RGB or RGBA; GIF: the first frame, decoded by cpp/src/gif.cpp)\n"
           "  -o, --output OUTDIR  writes <stem>_mask.png, <stem>_prob.png, <stem>_overlay.png and\n"
           "                       summary.json (all written atomically; --output-dir, --out: old spellings)\n"
           "  --model BUNDLE       bundle folder, or the name of a shipped bundle ("
        << (shipped.empty() ? std::string("none found") : shipped)
        << ")\n"
           "                       (default: $FUNDUS_MODEL, else "
        << FUNDUS_DEFAULT_MODEL
        << ")\n"
           "  --backend NAME       auto (TensorRT engine if present, else OpenCV), opencv, trt\n"
           "                       (default: auto; compiled in: "
        << compiledBackends()
        << ")\n"
           "  --precision P        fp32, fp16, int8 (default: fp32); fp16/int8 need a TensorRT engine\n"
           "  --fov MODE           auto: from the photograph; none: whole image; or a mask image file\n"
           "                       (applied to every input); tiles holding no FOV pixel are not run\n"
           "                       (probability 0) (default: auto)\n"
           "  --scale MODE         auto: resample so the FOV diameter matches model.json's scale\n"
           "                       reference; none: not at all; or a fixed FACTOR in [0.01, 4];\n"
           "                       outputs keep the input's size (default: auto)\n"
           "  --threshold T        vessel if probability >= T (default: model.json's)\n"
           "  --quality MODE       image quality gate: flag (verdict in summary.json), refuse (no\n"
           "                       outputs for a rejected image), off (default: flag)\n"
           "  --save LIST          comma-separated: mask, prob, overlay (default: mask,prob,overlay)\n"
           "  --batch N            tiles per model call (TensorRT; OpenCV DNN runs one at a time)\n"
           "                       (default: 4)\n"
           "  --threads N          CPU threads for OpenCV (default: all)\n"
           "  --max-pixels N       refuse an image whose header declares more pixels, before\n"
           "                       decoding it (default: 100000000)\n"
           "  --quiet              no per-image progress lines\n"
           "  --self-test          no INPUT: every backend/precision this binary runs here vs ONNX\n"
           "                       Runtime CPU FP32 outputs stored in the bundle; writes\n"
           "                       OUTDIR/self-test.json (exit 1 outside tolerance)\n"
           "  --version            print the version, bundle, ONNX Runtime (none: OpenCV DNN) and\n"
           "                       OpenCV versions and exit\n"
           "  -h, --help           this help\n\n"
           "examples:\n  "
        << program << " photo.jpg more_photos/ -o out            # the default bundle\n  " << program
        << " photos/ -o out --model unet-drive --quality refuse\n  " << program
        << " --self-test -o selftest                   # every backend here vs the stored reference\n\n"
           "exit status:\n"
           "  0  every image segmented\n"
           "  1  some image failed (named on stderr and in summary.json; the batch goes on)\n"
           "  2  usage, bundle, backend or output-folder error (nothing ran)\n"
           "  4  --quality refuse refused some image (5: refused and failed)\n\n"
           "Not supported here (Python fundus-infer only): backends ort and torch, --checkpoint, --demo.\n";
    return out.str();
}

Result<CliArgs> parseArgs(int argc, char** argv) {
    CliArgs args;
    args.model = defaultModelDir();
    bool onlyPositional = false;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (onlyPositional || arg.empty() || arg[0] != '-' || arg == "-") {
            args.inputs.push_back(arg);
            continue;
        }
        if (arg == "--") {
            onlyPositional = true;
            continue;
        }
        std::string value;
        bool hasInlineValue = false;
        if (arg.rfind("--", 0) == 0) {
            const auto eq = arg.find('=');
            if (eq != std::string::npos) {
                value = arg.substr(eq + 1);
                arg = arg.substr(0, eq);
                hasInlineValue = true;
            }
        }
        auto takeValue = [&](std::string& out) -> Status {
            if (hasInlineValue) {
                out = value;
            } else if (i + 1 < argc) {
                out = argv[++i];
            } else {
                return usageError(arg + " needs a value");
            }
            return Status::ok();
        };
        Status status;
        if (arg == "-h" || arg == "--help") {
            args.showHelp = true;
        } else if (arg == "--version") {
            args.showVersion = true;
        } else if (arg == "--self-test") {
            args.selfTest = true;
        } else if (arg == "--quiet" || arg == "-q") {
            args.quiet = true;
        } else if (arg == "-o" || arg == "--output" || arg == "--output-dir" || arg == "--out") {
            status = takeValue(args.outputDir);
        } else if (arg == "--model") {
            status = takeValue(args.model);
        } else if (arg == "--backend") {
            status = takeValue(args.backend);
            if (status && args.backend != "auto" && args.backend != "opencv" && args.backend != "trt") {
                status = usageError("--backend must be auto, opencv or trt (got '" + args.backend +
                                    "'; ort and torch are in the Python fundus-infer only)");
            }
        } else if (arg == "--precision") {
            status = takeValue(args.precision);
            if (status && args.precision != "fp32" && args.precision != "fp16" && args.precision != "int8") {
                status = usageError("--precision must be fp32, fp16 or int8 (got '" + args.precision + "')");
            }
        } else if (arg == "--fov") {
            status = takeValue(args.fov);
        } else if (arg == "--scale") {
            std::string text;
            status = takeValue(text);
            if (status) {
                auto request = parseScale(text);
                if (request) {
                    args.scale = *request;
                } else {
                    status = request.status();
                }
            }
        } else if (arg == "--quality") {
            status = takeValue(args.quality);
            if (status && args.quality != "flag" && args.quality != "refuse" && args.quality != "off") {
                status = usageError("--quality must be flag, refuse or off (got '" + args.quality + "')");
            }
        } else if (arg == "--threshold") {
            std::string text;
            status = takeValue(text);
            if (status && (!parseDouble(text, args.threshold) || args.threshold < 0 || args.threshold > 1)) {
                status = usageError("--threshold must be a number in [0, 1] (got '" + text + "')");
            }
            args.thresholdSet = true;
        } else if (arg == "--threads") {
            std::string text;
            status = takeValue(text);
            if (status && !parsePositiveInt(text, args.threads)) {
                status = usageError("--threads must be a positive integer (got '" + text + "')");
            }
        } else if (arg == "--save") {
            std::string text;
            status = takeValue(text);
            args.save.clear();
            std::stringstream items(text);
            std::string item;
            while (status && std::getline(items, item, ',')) {
                item.erase(0, item.find_first_not_of(' '));
                item.erase(item.find_last_not_of(' ') + 1);
                if (item == "mask" || item == "prob" || item == "overlay") {
                    if (std::find(args.save.begin(), args.save.end(), item) == args.save.end())
                        args.save.push_back(item);
                } else if (!item.empty()) {
                    status = usageError("--save: unknown output(s) " + item + "; choose from mask, prob, overlay");
                }
            }
        } else if (arg == "--batch") {
            std::string text;
            status = takeValue(text);
            if (status && !parsePositiveInt(text, args.batch)) {
                status = usageError("--batch must be a positive integer (got '" + text + "')");
            }
        } else if (arg == "--max-pixels") {
            std::string text;
            status = takeValue(text);
            if (status && !parsePositiveInt(text, args.maxPixels)) {
                status = usageError("--max-pixels must be a positive integer (got '" + text + "')");
            }
        } else if (arg == "--debug-dump") {  // hidden: float planes for the parity tests
            status = takeValue(args.debugDump);
        } else {
            status = usageError("unknown option " + arg);
        }
        if (!status) return status;
    }
    args.model = resolveBundle(args.model);
    if (args.showHelp || args.showVersion) return args;
    if (args.selfTest && !args.inputs.empty()) return usageError("--self-test takes no INPUT images");
    if (args.inputs.empty() && !args.selfTest) return usageError("no INPUT images given");
    if (args.outputDir.empty()) return usageError("-o OUTDIR is required");
    return args;
}

}  // namespace fundus
