#include "fundus/trt_backend.h"

#include <dirent.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>

#include "fundus/sha256.h"

#ifdef FUNDUS_WITH_TENSORRT
#include <cuda_runtime_api.h>

#include <NvInfer.h>
#endif

namespace fundus {
namespace {

std::string digitsOnly(const std::string& text) {
    std::string out;
    for (char c : text) {
        if (std::isdigit(static_cast<unsigned char>(c))) out.push_back(c);
    }
    return out;
}

// "8.6", "sm86", "sm_86", 8.6 -> "86"
std::string normaliseCapability(const cv::FileNode& node) {
    if (node.isString()) return digitsOnly(std::string(node));
    if (node.isReal() || node.isInt()) {
        std::ostringstream text;
        text << double(node);
        return digitsOnly(text.str());
    }
    return "";
}

std::vector<std::string> listEngines(const std::string& folder) {
    std::vector<std::string> out;
    DIR* dir = ::opendir(folder.c_str());
    if (!dir) return out;
    while (dirent* entry = ::readdir(dir)) {
        const std::string name = entry->d_name;
        if (name.size() > 7 && name.compare(name.size() - 7, 7, ".engine") == 0) out.push_back(joinPath(folder, name));
    }
    ::closedir(dir);
    std::sort(out.begin(), out.end());
    return out;
}

struct DeviceInfo {
    std::string capability;  // "86"
    std::string trtVersion;  // "10.3.0"
};

DeviceInfo currentDevice() {
    DeviceInfo info;
#ifdef FUNDUS_WITH_TENSORRT
    int device = 0;
    cudaDeviceProp props{};
    if (cudaGetDevice(&device) == cudaSuccess && cudaGetDeviceProperties(&props, device) == cudaSuccess) {
        info.capability = std::to_string(props.major) + std::to_string(props.minor);
    }
    const int version = getInferLibVersion();  // TensorRT >= 10: major * 10000 + minor * 100 + patch
    info.trtVersion = std::to_string(version / 10000) + "." + std::to_string((version / 100) % 100) + "." +
                      std::to_string(version % 100);
#endif
    return info;
}

bool sameVersionPrefix(const std::string& sidecar, const std::string& linked) {
    // the sidecar may say "10.3" or "10.3.0.26": compare the components both name, up to three
    std::istringstream a(sidecar), b(linked);
    std::string x, y;
    int compared = 0;
    while (compared < 3 && std::getline(a, x, '.') && std::getline(b, y, '.')) {
        if (std::atoi(x.c_str()) != std::atoi(y.c_str())) return false;
        ++compared;
    }
    return compared >= 2;
}

}  // namespace

EngineChoice findEngine(const Bundle& bundle, const std::string& precision) {
    const std::string folder = joinPath(bundle.root, "engines");
    const std::vector<std::string> engines = listEngines(folder);
    if (engines.empty()) return {"", "no engines in " + folder + " (build one with `fundus-export build-engine`)"};
    const DeviceInfo device = currentDevice();
    std::string reasons;
    for (const std::string& engine : engines) {
        std::string sidecar = engine + ".json";
        if (!isFile(sidecar)) sidecar = engine.substr(0, engine.size() - 7) + ".json";
        if (!isFile(sidecar)) {
            reasons += "\n  " + engine + ": no sidecar JSON";
            continue;
        }
        cv::FileStorage fs;
        try {
            fs.open(sidecar, cv::FileStorage::READ | cv::FileStorage::FORMAT_JSON);
        } catch (const cv::Exception& e) {
            reasons += "\n  " + sidecar + ": not valid JSON";
            continue;
        }
        const cv::FileNode root = fs.root();
        if (!root["precision"].isString() || std::string(root["precision"]) != precision) {
            reasons += "\n  " + engine + ": precision is not " + precision;
            continue;
        }
        const std::string capability = normaliseCapability(root["compute_capability"]);
        if (!capability.empty() && !device.capability.empty() && capability != device.capability) {
            reasons += "\n  " + engine + ": built for sm" + capability + ", this GPU is sm" + device.capability;
            continue;
        }
        for (const char* key : {"tensorrt", "tensorrt_version", "trt_version"}) {
            if (root[key].isString() && !device.trtVersion.empty() &&
                !sameVersionPrefix(std::string(root[key]), device.trtVersion)) {
                reasons += "\n  " + engine + ": built with TensorRT " + std::string(root[key]) + ", linked " +
                           device.trtVersion;
                goto next_engine;
            }
        }
        if (root["sha256"].isString()) {
            auto digest = sha256File(engine);
            if (!digest || *digest != std::string(root["sha256"])) {
                reasons += "\n  " + engine + ": sha256 does not match its sidecar";
                continue;
            }
        }
        return {engine, ""};
    next_engine:;
    }
    return {"", "no usable " + precision + " engine in " + folder + ":" + reasons};
}

#ifdef FUNDUS_WITH_TENSORRT
namespace {

class TrtLogger : public nvinfer1::ILogger {
public:
    void log(Severity severity, const char* message) noexcept override {
        if (severity <= Severity::kWARNING) std::cerr << "[TensorRT] " << message << "\n";
    }
};

TrtLogger& logger() {
    static TrtLogger instance;
    return instance;
}

Status cudaError(const std::string& what, cudaError_t err) {
    return Status::error(ErrorCode::kBackend, what + " failed: " + cudaGetErrorString(err));
}

class TrtBackend : public Backend {
public:
    ~TrtBackend() override {
        context_.reset();
        engine_.reset();
        runtime_.reset();
        if (input_) cudaFree(input_);
        if (output_) cudaFree(output_);
        if (stream_) cudaStreamDestroy(stream_);
    }

    std::string name() const override { return "trt"; }
    std::string precision() const override { return precision_; }
    std::string modelPath() const override { return enginePath_; }

    Status init(const Bundle& bundle, const std::string& precision, const std::string& enginePath) {
        precision_ = precision;
        enginePath_ = enginePath;
        vesselIndex_ = bundle.vesselIndex;
        tile_ = bundle.tile;
        std::ifstream in(enginePath, std::ios::binary);
        std::vector<char> blob((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (blob.empty()) return Status::error(ErrorCode::kBackend, enginePath + ": cannot read engine");
        runtime_.reset(nvinfer1::createInferRuntime(logger()));
        if (!runtime_) return Status::error(ErrorCode::kBackend, "TensorRT: createInferRuntime failed");
        engine_.reset(runtime_->deserializeCudaEngine(blob.data(), blob.size()));
        if (!engine_) {
            return Status::error(ErrorCode::kBackend, enginePath + ": TensorRT cannot deserialize it (built for "
                                                                   "another GPU or TensorRT version?)");
        }
        for (int i = 0; i < engine_->getNbIOTensors(); ++i) {
            const char* tensor = engine_->getIOTensorName(i);
            if (engine_->getTensorIOMode(tensor) == nvinfer1::TensorIOMode::kINPUT) {
                inputName_ = tensor;
            } else if (outputName_.empty() || std::string(tensor) == "probabilities") {
                outputName_ = tensor;
            }
        }
        if (inputName_.empty() || outputName_.empty()) {
            return Status::error(ErrorCode::kBackend, enginePath + ": engine lacks an input or output tensor");
        }
        inputType_ = engine_->getTensorDataType(inputName_.c_str());
        outputType_ = engine_->getTensorDataType(outputName_.c_str());
        for (nvinfer1::DataType type : {inputType_, outputType_}) {
            if (type != nvinfer1::DataType::kFLOAT && type != nvinfer1::DataType::kHALF) {
                return Status::error(ErrorCode::kBackend, enginePath + ": engine I/O must be float32 or float16");
            }
        }
        const nvinfer1::Dims inputShape = engine_->getTensorShape(inputName_.c_str());
        maxBatch_ = 1;
        if (inputShape.nbDims == 4 && inputShape.d[0] < 0) {
            const nvinfer1::Dims maxShape =
                engine_->getProfileShape(inputName_.c_str(), 0, nvinfer1::OptProfileSelector::kMAX);
            maxBatch_ = int(std::max<int64_t>(1, maxShape.d[0]));
        } else if (inputShape.nbDims == 4) {
            maxBatch_ = int(inputShape.d[0]);
        }
        if (inputShape.nbDims != 4 || (inputShape.d[2] >= 0 && inputShape.d[2] != tile_) ||
            (inputShape.d[3] >= 0 && inputShape.d[3] != tile_)) {
            return Status::error(ErrorCode::kBackend, enginePath + ": engine input is not (N, 1, " +
                                                          std::to_string(tile_) + ", " + std::to_string(tile_) + ")");
        }
        context_.reset(engine_->createExecutionContext());
        if (!context_) return Status::error(ErrorCode::kBackend, enginePath + ": cannot create execution context");
        cudaError_t err = cudaStreamCreate(&stream_);
        if (err != cudaSuccess) return cudaError("cudaStreamCreate", err);
        const std::size_t plane = std::size_t(tile_) * tile_;
        classes_ = 2;
        const nvinfer1::Dims outputShape = engine_->getTensorShape(outputName_.c_str());
        if (outputShape.nbDims == 4 && outputShape.d[1] > 0) classes_ = int(outputShape.d[1]);
        if (vesselIndex_ >= classes_) {
            return Status::error(ErrorCode::kBackend, enginePath + ": vessel_index beyond the output classes");
        }
        err = cudaMalloc(&input_, maxBatch_ * plane * elementSize(inputType_));
        if (err != cudaSuccess) return cudaError("cudaMalloc(input)", err);
        err = cudaMalloc(&output_, maxBatch_ * classes_ * plane * elementSize(outputType_));
        if (err != cudaSuccess) return cudaError("cudaMalloc(output)", err);
        return Status::ok();
    }

    Status predict(const std::vector<cv::Mat>& tiles, std::vector<cv::Mat>& out) override {
        out.clear();
        const std::size_t plane = std::size_t(tile_) * tile_;
        for (std::size_t start = 0; start < tiles.size(); start += std::size_t(maxBatch_)) {
            const int n = int(std::min<std::size_t>(maxBatch_, tiles.size() - start));
            const int hostType = inputType_ == nvinfer1::DataType::kHALF ? CV_16F : CV_32F;
            cv::Mat hostIn(n, int(plane), hostType);
            for (int i = 0; i < n; ++i) {
                cv::Mat row = tiles[start + i].reshape(1, 1);
                row.convertTo(hostIn.row(i), hostType);
            }
            cudaError_t err = cudaMemcpyAsync(input_, hostIn.data, hostIn.total() * hostIn.elemSize(),
                                              cudaMemcpyHostToDevice, stream_);
            if (err != cudaSuccess) return cudaError("cudaMemcpyAsync(input)", err);
            if (!context_->setInputShape(inputName_.c_str(), nvinfer1::Dims4{n, 1, tile_, tile_}) ||
                !context_->setTensorAddress(inputName_.c_str(), input_) ||
                !context_->setTensorAddress(outputName_.c_str(), output_)) {
                return Status::error(ErrorCode::kBackend, enginePath_ + ": cannot bind batch of " + std::to_string(n));
            }
            if (!context_->enqueueV3(stream_)) {
                return Status::error(ErrorCode::kBackend, enginePath_ + ": enqueueV3 failed");
            }
            const int outType = outputType_ == nvinfer1::DataType::kHALF ? CV_16F : CV_32F;
            cv::Mat hostOut(n * classes_, int(plane), outType);
            err = cudaMemcpyAsync(hostOut.data, output_, hostOut.total() * hostOut.elemSize(), cudaMemcpyDeviceToHost,
                                  stream_);
            if (err != cudaSuccess) return cudaError("cudaMemcpyAsync(output)", err);
            err = cudaStreamSynchronize(stream_);
            if (err != cudaSuccess) return cudaError("cudaStreamSynchronize", err);
            for (int i = 0; i < n; ++i) {
                cv::Mat probability;
                hostOut.row(i * classes_ + vesselIndex_).convertTo(probability, CV_32F);
                out.push_back(probability.reshape(1, tile_).clone());
            }
        }
        return Status::ok();
    }

private:
    static std::size_t elementSize(nvinfer1::DataType type) { return type == nvinfer1::DataType::kHALF ? 2 : 4; }

    std::unique_ptr<nvinfer1::IRuntime> runtime_;
    std::unique_ptr<nvinfer1::ICudaEngine> engine_;
    std::unique_ptr<nvinfer1::IExecutionContext> context_;
    cudaStream_t stream_ = nullptr;
    void* input_ = nullptr;
    void* output_ = nullptr;
    std::string inputName_, outputName_, precision_, enginePath_;
    nvinfer1::DataType inputType_ = nvinfer1::DataType::kFLOAT;
    nvinfer1::DataType outputType_ = nvinfer1::DataType::kFLOAT;
    int maxBatch_ = 1;
    int classes_ = 2;
    int vesselIndex_ = 1;
    int tile_ = 0;
};

}  // namespace

Result<std::unique_ptr<Backend>> createTrtBackend(const Bundle& bundle, const std::string& precision) {
    const EngineChoice choice = findEngine(bundle, precision);
    if (choice.enginePath.empty()) return Status::error(ErrorCode::kBackend, "backend 'trt': " + choice.reason);
    std::unique_ptr<TrtBackend> backend(new TrtBackend());
    Status status = backend->init(bundle, precision, choice.enginePath);
    if (!status) return status;
    return std::unique_ptr<Backend>(std::move(backend));
}
#endif

}  // namespace fundus
