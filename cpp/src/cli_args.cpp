#include "fundus/cli_args.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>
#include <optional>
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

namespace {

// One option: its spellings, whether it takes a value, and what it does to CliArgs (a usage error if bad).
struct Flag {
    std::vector<std::string> names;
    bool takesValue;
    std::function<Status(CliArgs&, const std::string&)> apply;
};

using Apply = std::function<Status(CliArgs&, const std::string&)>;

Apply setFlag(bool CliArgs::*field) {
    return [field](CliArgs& args, const std::string&) {
        args.*field = true;
        return Status::ok();
    };
}

Apply setText(std::string CliArgs::*field) {
    return [field](CliArgs& args, const std::string& value) {
        args.*field = value;
        return Status::ok();
    };
}

// One of `choices`; else "<flag> must be a, b or c (got 'x'<note>)".
Apply setChoice(std::string CliArgs::*field, const std::string& flag, const std::vector<std::string>& choices,
                const std::string& note = "") {
    return [=](CliArgs& args, const std::string& value) {
        if (std::find(choices.begin(), choices.end(), value) == choices.end()) {
            std::string listed;
            for (std::size_t k = 0; k < choices.size(); ++k)
                listed += (k == 0 ? "" : (k + 1 == choices.size() ? " or " : ", ")) + choices[k];
            return usageError(flag + " must be " + listed + " (got '" + value + "'" + note + ")");
        }
        args.*field = value;
        return Status::ok();
    };
}

Apply setPositiveInt(int CliArgs::*field, const std::string& flag) {
    return [=](CliArgs& args, const std::string& value) {
        if (!parsePositiveInt(value, args.*field))
            return usageError(flag + " must be a positive integer (got '" + value + "')");
        return Status::ok();
    };
}

Status applyThreshold(CliArgs& args, const std::string& value) {
    args.thresholdSet = true;
    if (!parseDouble(value, args.threshold) || args.threshold < 0 || args.threshold > 1)
        return usageError("--threshold must be a number in [0, 1] (got '" + value + "')");
    return Status::ok();
}

Status applyScale(CliArgs& args, const std::string& value) {
    auto request = parseScale(value);
    if (!request) return request.status();
    args.scale = *request;
    return Status::ok();
}

// --save: a comma list of mask, prob, overlay; duplicates once, blanks ignored.
Status applySave(CliArgs& args, const std::string& value) {
    args.save.clear();
    std::stringstream items(value);
    std::string item;
    while (std::getline(items, item, ',')) {
        item.erase(0, item.find_first_not_of(' '));
        item.erase(item.find_last_not_of(' ') + 1);
        if (item == "mask" || item == "prob" || item == "overlay") {
            if (std::find(args.save.begin(), args.save.end(), item) == args.save.end()) args.save.push_back(item);
        } else if (!item.empty()) {
            return usageError("--save: unknown output(s) " + item + "; choose from mask, prob, overlay");
        }
    }
    return Status::ok();
}

// Every option of the C++ fundus-infer (usageText() describes them; runtime/cli.py's names).
const std::vector<Flag>& flags() {
    static const std::vector<Flag> table = {
        {{"-h", "--help"}, false, setFlag(&CliArgs::showHelp)},
        {{"--version"}, false, setFlag(&CliArgs::showVersion)},
        {{"--self-test"}, false, setFlag(&CliArgs::selfTest)},
        {{"--quiet", "-q"}, false, setFlag(&CliArgs::quiet)},
        {{"-o", "--output", "--output-dir", "--out"}, true, setText(&CliArgs::outputDir)},
        {{"--model"}, true, setText(&CliArgs::model)},
        {{"--backend"},
         true,
         setChoice(&CliArgs::backend, "--backend", {"auto", "opencv", "trt"},
                   "; ort and torch are in the Python fundus-infer only")},
        {{"--precision"}, true, setChoice(&CliArgs::precision, "--precision", {"fp32", "fp16", "int8"})},
        {{"--fov"}, true, setText(&CliArgs::fov)},
        {{"--scale"}, true, applyScale},
        {{"--quality"}, true, setChoice(&CliArgs::quality, "--quality", {"flag", "refuse", "off"})},
        {{"--threshold"}, true, applyThreshold},
        {{"--threads"}, true, setPositiveInt(&CliArgs::threads, "--threads")},
        {{"--save"}, true, applySave},
        {{"--batch"}, true, setPositiveInt(&CliArgs::batch, "--batch")},
        {{"--max-pixels"}, true, setPositiveInt(&CliArgs::maxPixels, "--max-pixels")},
        {{"--debug-dump"}, true, setText(&CliArgs::debugDump)},  // hidden: float planes for the parity tests
    };
    return table;
}

const Flag* findFlag(const std::string& name) {
    for (const Flag& flag : flags()) {
        if (std::find(flag.names.begin(), flag.names.end(), name) != flag.names.end()) return &flag;
    }
    return nullptr;
}

}  // namespace

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
        std::optional<std::string> value;  // --name=value
        const auto eq = arg.rfind("--", 0) == 0 ? arg.find('=') : std::string::npos;
        if (eq != std::string::npos) {
            value = arg.substr(eq + 1);
            arg = arg.substr(0, eq);
        }
        const Flag* flag = findFlag(arg);
        if (!flag) return usageError("unknown option " + arg);
        if (flag->takesValue && !value) {
            if (i + 1 >= argc) return usageError(arg + " needs a value");
            value = argv[++i];
        }
        Status status = flag->apply(args, value.value_or(""));
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
