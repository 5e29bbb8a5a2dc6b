// fundus-infer (C++): segment retinal vessels in fundus photographs with a model bundle.
// Mirrors the Python runtime/cli.py (outputs, summary.json, exit codes); cpp/README.md lists the
// supported subset.
#include <malloc.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>

#include <opencv2/core/utility.hpp>

#include "fundus/backend.h"
#include "fundus/bundle.h"
#include "fundus/cli_args.h"
#include "fundus/exit_status.h"
#include "fundus/imageio.h"
#include "fundus/npy.h"
#include "fundus/output_guard.h"
#include "fundus/paths.h"
#include "fundus/pipeline.h"
#include "fundus/quality.h"
#include "fundus/results_csv.h"
#include "fundus/selftest.h"
#include "fundus/sha256.h"
#include "fundus/summary.h"

#ifndef FUNDUS_VERSION
#define FUNDUS_VERSION "0.0.0"
#endif

namespace {

using fundus::ExitStatus;

constexpr const char* kProg = "fundus-infer";

// runtime/imageio.py IMAGE_SUFFIXES (DICOM files are listed to be refused by name, not skipped)
const char* const kImageSuffixes[] = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".gif",
                                      ".bmp", ".ppm",  ".pgm", ".dcm", ".dicom"};

// A name without a suffix: DICOM cameras write such files (runtime/imageio.py list_images looks at them too).
bool hasNoSuffix(const std::string& name) {
    const auto dot = name.find_last_of('.');
    return dot == std::string::npos || dot == 0;
}

bool hasDicomPreamble(const std::string& path) {
    std::FILE* file = std::fopen(path.c_str(), "rb");
    if (!file) return false;
    char magic[4] = {};
    const bool found = std::fseek(file, 128, SEEK_SET) == 0 && std::fread(magic, 1, 4, file) == 4 && magic[0] == 'D' &&
                       magic[1] == 'I' && magic[2] == 'C' && magic[3] == 'M';
    std::fclose(file);
    return found;
}

bool hasImageSuffix(const std::string& name) {
    std::string lower = name;
    for (char& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
    for (const std::string suffix : kImageSuffixes) {
        if (lower.size() > suffix.size() && lower.compare(lower.size() - suffix.size(), suffix.size(), suffix) == 0) {
            return true;
        }
    }
    return false;
}

struct Job {
    std::string path;    // as found (bytes)
    std::string source;  // as reported: fundus::printable(path)
    std::string stem;
};

Job makeJob(const std::string& path) {
    return {path, fundus::printable(path), fundus::fileStem(path)};
}

struct Failure {
    std::string file;
    std::string error;
};

// Files stay as given (a missing one fails later, by name); folders expand to their images.
std::vector<Job> collectJobs(const std::vector<std::string>& inputs, std::vector<Failure>& failures) {
    std::vector<Job> jobs;
    for (const std::string& input : inputs) {
        if (!fundus::isDirectory(input)) {
            jobs.push_back(makeJob(input));
            continue;
        }
        std::vector<std::string> found;
        for (const std::string& path : fundus::folderEntries(input)) {
            const std::string name = fundus::fileName(path);
            const bool image = hasImageSuffix(name) || (name[0] != '.' && hasNoSuffix(name) && hasDicomPreamble(path));
            if (image && fundus::isFile(path)) found.push_back(path);
        }
        std::sort(found.begin(), found.end());
        if (found.empty()) failures.push_back({fundus::printable(input), "folder holds no images"});
        for (const std::string& path : found) jobs.push_back(makeJob(path));
    }
    return jobs;
}

// --threads, at most the CPUs this process may run on (runtime/cli.py usable_threads: same rule and note).
int usableThreads(int threads, bool quiet) {
    cpu_set_t set;
    CPU_ZERO(&set);
    const int cpus = ::sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
    if (threads <= cpus) return threads;
    if (!quiet) {
        std::cerr << kProg << ": --threads " << threads << ": using " << cpus << ", the CPUs this process may use\n";
    }
    return cpus;
}

// `text` as one line: lines joined by a space, OpenCV's '>' quote marks dropped (runtime/cli.py one_line).
std::string oneLine(const std::string& text) {
    std::string out, line;
    std::istringstream lines(text);
    while (std::getline(lines, line)) {
        const auto start = line.find_first_not_of(" \t\r>");
        if (start == std::string::npos) continue;
        line = line.substr(start);
        line.erase(line.find_last_not_of(" \t\r") + 1);
        out += (out.empty() ? "" : " ") + line;
    }
    return out;
}

void usageFailure(const std::string& message) {
    std::cerr << kProg << ": error: " << oneLine(message) << "\n";
}

// Creates OUTDIR and proves a file can be written there.
fundus::Status prepareOutputDir(const std::string& dir) {
    fundus::Status status = fundus::makeDirectories(dir);
    if (!status) return status;
    std::string probe = fundus::joinPath(dir, ".fundus-infer-probe-XXXXXX");
    std::vector<char> name(probe.begin(), probe.end());
    name.push_back('\0');
    const int fd = ::mkstemp(name.data());
    if (fd < 0) return fundus::Status::error(fundus::ErrorCode::kIo, dir + ": output folder not writable");
    ::close(fd);
    ::unlink(name.data());
    return fundus::Status::ok();
}

fundus::Status writeOutputs(const fundus::CliArgs& args, const std::string& stem, const fundus::Segmentation& seg,
                            fundus::Json& outputs) {
    for (const std::string& kind : args.save) {
        cv::Mat image;
        if (kind == "mask") image = seg.mask;
        if (kind == "prob") image = fundus::probabilityImage(seg.probability);
        if (kind == "overlay") image = fundus::overlayImage(seg.imageRgb, seg.mask);
        const std::string name = stem + "_" + kind + ".png";
        fundus::Status status = fundus::writeImageAtomic(fundus::joinPath(args.outputDir, name), image);
        if (!status) return status;
        outputs.set(kind, name);
    }
    if (!args.debugDump.empty()) {
        const std::string base = fundus::joinPath(args.debugDump, stem);
        fundus::Status status;
        if (!(status = fundus::writeNpy(base + "_input.npy", seg.input))) return status;
        if (!(status = fundus::writeNpy(base + "_prob.npy", seg.probability))) return status;
        if (!(status = fundus::writeNpy(base + "_fov.npy", seg.fov))) return status;
    }
    return fundus::Status::ok();
}

// The summary entry's description of the input image (channels: what the file stores, alpha included).
fundus::Json imageEntry(const Job& job, const cv::Mat& image) {
    const int stored = fundus::storedChannels(job.path);
    const int depth = image.depth();
    const int bitDepth = depth == CV_16U || depth == CV_16S ? 16 : (depth == CV_32F ? 32 : (depth == CV_64F ? 64 : 8));
    fundus::Json entry = fundus::Json::object();
    entry.set("file", job.source)
        .set("width", image.cols)
        .set("height", image.rows)
        .set("channels", stored > 0 ? stored : image.channels())
        .set("bit_depth", bitDepth);
    return entry;
}

// Everything set up before the first image: the bundle, its backend, the FOV rule and the threshold.
struct Setup {
    fundus::Bundle bundle;
    std::unique_ptr<fundus::Backend> backend;
    fundus::FovSetting fov;
    double threshold = 0.5;
};

// What one image gave: its summary entry and the line shown for it (refused: --quality refuse said no).
struct JobOutcome {
    fundus::Json entry;
    std::string progress;
    bool refused = false;
};

// One image: read, grade, segment, write; its outcome, or the Status naming why it failed.
// With --quality refuse a rejected image is not segmented: the outcome is refused, its entry says why.
fundus::Result<JobOutcome> runJob(const Job& job, const fundus::CliArgs& args, const Setup& run) {
    const auto start = std::chrono::steady_clock::now();
    auto image = fundus::readImage(job.path);
    if (!image) return image.status();
    fundus::Result<fundus::Quality> quality = fundus::Quality();
    if (args.quality != "off" && !(quality = fundus::assessImage(*image))) return quality.status();
    if (args.quality == "refuse" && quality->rejected()) {
        fundus::Json entry = imageEntry(job, *image)
                                 .set("refused", fundus::Json::boolean(true))
                                 .set("quality", fundus::qualityJson(*quality))
                                 .set("outputs", fundus::Json::object());
        return JobOutcome{std::move(entry), job.source + ": refused: " + fundus::joinReasons(*quality), true};
    }
    fundus::Backend& backend = *run.backend;
    auto seg = fundus::segmentImage(*image, run.bundle, backend, run.fov, run.threshold, args.batch, args.scale);
    if (!seg) return seg.status();
    fundus::Json outputs = fundus::Json::object();
    fundus::Status status = writeOutputs(args, job.stem, *seg, outputs);
    if (!status) return status;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    char line[64];
    std::snprintf(line, sizeof(line), ": vessels %.1f%% of FOV, %.2f s", 100.0 * seg->vesselFraction, seconds);
    JobOutcome outcome{imageEntry(job, *image), job.source + line, false};
    fundus::Json timings = fundus::Json::object();
    timings.set("preprocess", fundus::roundTo(seg->preprocessSeconds, 4))
        .set("inference", fundus::roundTo(seg->inferenceSeconds, 4))
        .set("postprocess", fundus::roundTo(seg->postprocessSeconds, 4));
    outcome.entry.set("backend", backend.name())
        .set("precision", backend.precision())
        .set("seconds", fundus::roundTo(seconds, 4))
        .set("vessel_fraction", fundus::roundTo(seg->vesselFraction, 6))
        .set("scale", seg->scale.json())
        .set("timings", timings)
        .set("outputs", outputs);
    if (args.quality != "off") {
        fundus::assessVessels(*quality, seg->mask, seg->fov);
        fundus::assessScale(*quality, seg->scale);
        outcome.entry.set("quality", fundus::qualityJson(*quality));
        outcome.progress += ", quality " + quality->verdict;
    }
    return outcome;
}

// runJob, with any exception turned into the Status that names it (one bad image must not stop the batch).
fundus::Result<JobOutcome> runJobSafely(const Job& job, const fundus::CliArgs& args, const Setup& run) {
    try {
        return runJob(job, args, run);
    } catch (const cv::Exception& e) {
        return fundus::Status::error(fundus::ErrorCode::kBackend, "OpenCV: " + oneLine(e.err));
    } catch (const std::exception& e) {
        return fundus::Status::error(fundus::ErrorCode::kBackend, e.what());
    }
}

fundus::Json bundleSummary(const fundus::Bundle& bundle, const fundus::Backend& backend) {
    auto metaSha = fundus::sha256File(fundus::joinPath(bundle.root, "model.json"));
    auto modelSha = fundus::sha256File(backend.modelPath());
    fundus::Json out = fundus::Json::object();
    out.set("name", bundle.name)
        .set("path", bundle.root)
        .set("model_json_sha256", metaSha ? *metaSha : std::string())
        .set("model_file", fundus::fileName(backend.modelPath()))
        .set("model_sha256", modelSha ? *modelSha : std::string());
    return out;
}

// Everything that must succeed before the first image (else exit status 2), in runtime/cli.py setup()'s order.
fundus::Result<Setup> setup(const fundus::CliArgs& args) {
    fundus::setMaxPixels(std::uint64_t(args.maxPixels));
    Setup run;
    if (args.fov == "auto" || args.fov == "none") {
        run.fov.mode = args.fov;
    } else {
        auto mask = fundus::readBinaryMask(args.fov);
        if (!mask) return fundus::Status::error(fundus::ErrorCode::kUsage, "--fov: " + mask.status().message());
        run.fov.mode = "file";
        run.fov.fileMask = *mask;
    }
    const std::string clash = fundus::inputFolderClash(args.outputDir, args.inputs);
    if (!clash.empty()) return fundus::Status::error(fundus::ErrorCode::kUsage, clash);
    fundus::Status status = prepareOutputDir(args.outputDir);
    if (!status) return status;
    if (!args.debugDump.empty() && !(status = fundus::makeDirectories(args.debugDump))) return status;
    auto bundle = fundus::loadBundle(args.model);
    if (!bundle) return bundle.status();
    run.bundle = std::move(*bundle);
    run.threshold = args.thresholdSet ? args.threshold : run.bundle.threshold;
    fundus::BackendOptions options;
    options.backend = args.backend;
    options.precision = args.precision;
    options.threads = usableThreads(args.threads, args.quiet);
    auto backend = fundus::createBackend(run.bundle, options);
    if (!backend) return backend.status();
    run.backend = std::move(*backend);
    return run;
}

// What the batch gave so far: summary entries, failures, and the counts of the last line.
struct Tally {
    fundus::Json images = fundus::Json::array();
    std::vector<Failure> failures;
    int succeeded = 0;
    int refused = 0;
};

// summary.json (runtime/cli.py build_summary): the run's settings, counts, entries and failures.
fundus::Json buildSummary(const fundus::CliArgs& args, const Setup& run, const Tally& tally) {
    fundus::Json failureList = fundus::Json::array();
    for (const Failure& f : tally.failures)
        failureList.push(fundus::Json::object().set("file", f.file).set("error", f.error));
    fundus::Json summary = fundus::Json::object();
    summary.set("tool", kProg)
        .set("runtime", "c++")
        .set("bundle", bundleSummary(run.bundle, *run.backend))
        .set("backend", run.backend->name())
        .set("precision", run.backend->precision())
        .set("threshold", run.threshold)
        .set("fov", args.fov)
        .set("quality", args.quality)
        .set("succeeded", tally.succeeded)
        .set("refused", tally.refused)
        .set("failed", int(tally.failures.size()))
        .set("images", tally.images)
        .set("failures", failureList);
    return summary;
}

// One job's result into the tally, with its line on the terminal.
void record(const Job& job, fundus::Result<JobOutcome> outcome, bool quiet, Tally& tally) {
    if (!outcome) {
        // one line, names as summary.json has them
        const std::string reason = oneLine(fundus::printable(outcome.status().message()));
        tally.failures.push_back({job.source, reason});
        const bool named = reason.find(job.source) != std::string::npos;
        std::cerr << kProg << ": " << (named ? reason : job.source + ": " + reason) << "\n";
        return;
    }
    if (outcome->refused) {
        ++tally.refused;
        std::cerr << kProg << ": " << outcome->progress << "\n";
    } else {
        ++tally.succeeded;
        if (!quiet) {
            std::printf("%s\n", outcome->progress.c_str());
            std::fflush(stdout);
        }
    }
    tally.images.push(std::move(outcome->entry));
}

// The batch itself, with OUTDIR locked: every image, then summary.json and results.csv.
int runLocked(const fundus::CliArgs& args, const Setup& run) {
    Tally tally;
    const std::vector<Job> jobs = collectJobs(args.inputs, tally.failures);
    for (const Failure& f : tally.failures) std::cerr << kProg << ": " << f.file << ": " << f.error << "\n";
    std::vector<std::string> inputFiles;
    for (const Job& job : jobs) inputFiles.push_back(job.path);
    fundus::OutputPlan plan(args.outputDir, inputFiles);
    for (const Job& job : jobs) {
        std::vector<std::string> names;
        for (const std::string& kind : args.save) names.push_back(job.stem + "_" + kind + ".png");
        const std::string refusal = plan.claim(job.source, job.stem, names);
        record(job,
               refusal.empty() ? runJobSafely(job, args, run)
                               : fundus::Result<JobOutcome>(fundus::Status::error(fundus::ErrorCode::kUsage, refusal)),
               args.quiet, tally);
    }
    const fundus::Json summary = buildSummary(args, run, tally);
    const std::string summaryPath = fundus::joinPath(args.outputDir, "summary.json");
    fundus::Status status = fundus::writeJsonAtomic(summaryPath, summary);
    if (status) status = fundus::writeResultsCsv(fundus::joinPath(args.outputDir, "results.csv"), summary);
    if (!status) {
        usageFailure(status.message());
        return fundus::exitCode(ExitStatus::kUsage);
    }
    if (!args.quiet) {
        std::cerr << tally.succeeded << " segmented, " << tally.refused << " refused, " << tally.failures.size()
                  << " failed -> " << summaryPath << "\n";
    }
    return fundus::exitCode(!tally.failures.empty(), tally.refused > 0);
}

int runBatch(const fundus::CliArgs& args) {
    auto run = setup(args);
    if (!run) {
        usageFailure(run.status().message());
        return fundus::exitCode(ExitStatus::kUsage);
    }
    auto lock = fundus::acquireOutputLock(args.outputDir, kProg);
    if (!lock) {
        usageFailure(lock.status().message());
        return fundus::exitCode(ExitStatus::kUsage);
    }
    const int exitStatus = runLocked(args, *run);
    fundus::releaseOutputLock(args.outputDir, *lock);
    return exitStatus;
}

// Freed image buffers stay in the process (runtime/allocator.py, the same values): glibc would hand them back
// to the kernel and fault them in again, zeroed, for the next photograph (kernel time 17 -> 9 % of the CPU
// samples on eight 3504x2336 photographs, 13 % fewer samples in all); peak resident memory is unchanged.
void keepFreedImageMemory() {
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, 32 << 20);  // blocks below 32 MB from the heap (glibc's upper limit for this setting)
    mallopt(M_TRIM_THRESHOLD, 1 << 30);   // bytes free at the heap's top before any goes back to the kernel
#endif
}

}  // namespace

int main(int argc, char** argv) {
    keepFreedImageMemory();
    auto args = fundus::parseArgs(argc, argv);
    if (!args) {
        // one line per problem, like every other error; the 25-line usage only on --help
        std::cerr << kProg << ": error: " << args.status().message() << " (see " << kProg << " --help)\n";
        return fundus::exitCode(ExitStatus::kUsage);
    }
    if (args->showHelp) {
        std::cout << fundus::usageText(kProg);
        return fundus::exitCode(ExitStatus::kOk);
    }
    if (args->showVersion) {
        // the fields of runtime/cli_common.py version_text(), plus the backends compiled in
        auto bundle = fundus::loadBundle(args->model);
        std::cout << kProg << " " << FUNDUS_VERSION << " (C++); bundle "
                  << (bundle ? bundle->name : args->model + " (not found)")
                  << "; ONNX Runtime none (OpenCV DNN); OpenCV " << CV_VERSION
                  << "; backends: " << fundus::compiledBackends() << "\n";
        return fundus::exitCode(ExitStatus::kOk);
    }
    try {
        if (args->selfTest) {
            fundus::SelfTestOptions options;
            options.bundleDir = args->model;
            options.outputDir = args->outputDir;
            options.threads = args->threads;
            return fundus::runSelfTest(options, kProg);
        }
        return runBatch(*args);
    } catch (const cv::Exception& e) {
        std::cerr << kProg << ": error: OpenCV: " << e.msg << "\n";
        return fundus::exitCode(ExitStatus::kUsage);
    }
}
