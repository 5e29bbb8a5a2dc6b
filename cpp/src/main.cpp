// fundus-infer (C++): segment retinal vessels in fundus photographs with a model bundle.
// Mirrors the Python runtime (runtime/cli.py); see cpp/README.md for the supported subset.
#include <dirent.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>

#include <opencv2/core/utility.hpp>

#include "fundus/backend.h"
#include "fundus/bundle.h"
#include "fundus/cli_args.h"
#include "fundus/imageio.h"
#include "fundus/pipeline.h"
#include "fundus/summary.h"

#ifndef FUNDUS_VERSION
#define FUNDUS_VERSION "0.0.0"
#endif

namespace {

constexpr int kExitOk = 0;
constexpr int kExitImageFailed = 1;
constexpr int kExitUsage = 2;

const char* const kImageSuffixes[] = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".gif", ".bmp", ".ppm", ".pgm"};

bool hasImageSuffix(const std::string& name) {
    std::string lower = name;
    for (char& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
    for (const char* suffix : kImageSuffixes) {
        const std::string s = suffix;
        if (lower.size() > s.size() && lower.compare(lower.size() - s.size(), s.size(), s) == 0) return true;
    }
    return false;
}

// Files stay as given (a missing one fails later, by name); folders expand to their images.
std::vector<std::string> expandInputs(const std::vector<std::string>& inputs) {
    std::vector<std::string> out;
    for (const std::string& input : inputs) {
        if (!fundus::isDirectory(input)) {
            out.push_back(input);
            continue;
        }
        std::vector<std::string> found;
        if (DIR* dir = ::opendir(input.c_str())) {
            while (dirent* entry = ::readdir(dir)) {
                const std::string path = fundus::joinPath(input, entry->d_name);
                if (hasImageSuffix(entry->d_name) && fundus::isFile(path)) found.push_back(path);
            }
            ::closedir(dir);
        }
        std::sort(found.begin(), found.end());
        out.insert(out.end(), found.begin(), found.end());
    }
    return out;
}

fundus::Status writeOutputs(const fundus::CliArgs& args, const std::string& stem, const fundus::Segmentation& seg,
                            fundus::ImageRecord& record) {
    auto write = [&](const std::string& kind, const cv::Mat& image) {
        const std::string name = stem + "_" + kind + ".png";
        fundus::Status status = fundus::writeImageAtomic(fundus::joinPath(args.outputDir, name), image);
        if (status) record.outputs.emplace_back(kind, name);
        return status;
    };
    fundus::Status status;
    if (args.saveMask && !(status = write("mask", seg.mask))) return status;
    if (args.saveProb && !(status = write("prob", fundus::probabilityImage(seg.probability)))) return status;
    if (args.saveOverlay && !(status = write("overlay", fundus::overlayImage(seg.imageRgb, seg.mask)))) return status;
    if (!args.debugDump.empty()) {
        const std::string base = fundus::joinPath(args.debugDump, stem);
        if (!(status = fundus::writeNpy(base + "_input.npy", seg.input))) return status;
        if (!(status = fundus::writeNpy(base + "_prob.npy", seg.probability))) return status;
        if (!(status = fundus::writeNpy(base + "_fov.npy", seg.fov))) return status;
    }
    return fundus::Status::ok();
}

int run(const fundus::CliArgs& args) {
    auto bundle = fundus::loadBundle(args.model);
    if (!bundle) {
        std::cerr << "fundus-infer: error: " << bundle.status().message() << "\n";
        return kExitUsage;
    }
    const double threshold = args.thresholdSet ? args.threshold : bundle->threshold;

    fundus::FovSetting fov;
    if (args.fov == "auto" || args.fov == "none") {
        fov.mode = args.fov;
    } else {
        auto mask = fundus::readBinaryMask(args.fov);
        if (!mask) {
            std::cerr << "fundus-infer: error: --fov: " << mask.status().message() << "\n";
            return kExitUsage;
        }
        fov.mode = "file";
        fov.fileMask = *mask;
    }

    fundus::BackendOptions options;
    options.backend = args.backend;
    options.precision = args.precision;
    options.threads = args.threads;
    auto backend = fundus::createBackend(*bundle, options);
    if (!backend) {
        std::cerr << "fundus-infer: error: " << backend.status().message() << "\n";
        return kExitUsage;
    }
    fundus::Status status = fundus::makeDirectories(args.outputDir);
    if (!status) {
        std::cerr << "fundus-infer: error: " << status.message() << "\n";
        return kExitUsage;
    }
    if (!args.debugDump.empty() && !(status = fundus::makeDirectories(args.debugDump))) {
        std::cerr << "fundus-infer: error: " << status.message() << "\n";
        return kExitUsage;
    }

    const std::vector<std::string> inputs = expandInputs(args.inputs);
    if (inputs.empty()) {
        std::cerr << "fundus-infer: error: no images found in the given folders\n";
        return kExitUsage;
    }
    std::vector<fundus::ImageRecord> records;
    int failures = 0;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        const std::string& path = inputs[i];
        fundus::ImageRecord record;
        record.file = path;
        record.backend = (*backend)->name();
        record.precision = (*backend)->precision();
        const auto start = std::chrono::steady_clock::now();
        fundus::Status outcome;
        try {
            auto image = fundus::readImage(path);
            outcome = image.status();
            if (image) {
                record.width = image->cols;
                record.height = image->rows;
                auto seg = fundus::segmentImage(*image, *bundle, **backend, fov, threshold);
                if (seg) {
                    outcome = writeOutputs(args, fundus::pathStem(path), *seg, record);
                    record.vesselFraction = seg->vesselFraction;
                    record.fovPixels = seg->fovPixels;
                } else {
                    outcome = seg.status();
                }
            }
        } catch (const cv::Exception& e) {
            outcome = fundus::Status::error(fundus::ErrorCode::kBackend, "OpenCV: " + e.msg);
        }
        record.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (outcome.isOk()) {
            record.ok = true;
            if (!args.quiet) {
                std::printf("[%zu/%zu] %s: %dx%d, vessels %.2f%% of FOV, %.2f s\n", i + 1, inputs.size(), path.c_str(),
                            record.width, record.height, 100.0 * record.vesselFraction, record.seconds);
                std::fflush(stdout);
            }
        } else {
            ++failures;
            // messages from readImage already start with the file name
            const std::string& why = outcome.message();
            record.error = why.rfind(path, 0) == 0 ? why : path + ": " + why;
            std::cerr << "fundus-infer: error: " << record.error << "\n";
        }
        records.push_back(std::move(record));
    }

    fundus::RunInfo info;
    info.model = bundle->root;
    info.modelFile = (*backend)->modelPath();
    info.backend = (*backend)->name();
    info.precision = (*backend)->precision();
    info.threshold = threshold;
    info.fov = fov.mode == "file" ? args.fov : fov.mode;
    status = fundus::writeSummary(fundus::joinPath(args.outputDir, "summary.json"), info, records);
    if (!status) {
        std::cerr << "fundus-infer: error: " << status.message() << "\n";
        return kExitImageFailed;
    }
    if (!args.quiet) {
        std::printf("%zu image(s), %d failed; summary in %s\n", inputs.size(), failures,
                    fundus::joinPath(args.outputDir, "summary.json").c_str());
    }
    return failures ? kExitImageFailed : kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
    auto args = fundus::parseArgs(argc, argv);
    if (!args) {
        std::cerr << fundus::usageText("fundus-infer") << "\nfundus-infer: error: " << args.status().message() << "\n";
        return kExitUsage;
    }
    if (args->showHelp) {
        std::cout << fundus::usageText("fundus-infer");
        return kExitOk;
    }
    if (args->showVersion) {
        std::cout << "fundus-infer " << FUNDUS_VERSION << " (C++; OpenCV " << CV_VERSION
                  << "; backends: " << fundus::compiledBackends() << ")\n";
        return kExitOk;
    }
    try {
        return run(*args);
    } catch (const cv::Exception& e) {
        std::cerr << "fundus-infer: error: OpenCV: " << e.msg << "\n";
        return kExitImageFailed;
    }
}
