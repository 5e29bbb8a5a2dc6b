#include "fundus/trt_backend.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#ifdef FUNDUS_WITH_TENSORRT
#include <NvInfer.h>
#include <cuda_runtime_api.h>
#endif

namespace fundus {
namespace {

// runtime/backends/device.py GpuInfo.key: lower-case name, runs of other characters -> '-'
std::string gpuSlug(const std::string& name) {
    std::string out;
    bool dash = false;
    for (char c : name) {
        const char lower = char(std::tolower(static_cast<unsigned char>(c)));
        if ((lower >= 'a' && lower <= 'z') || (lower >= '0' && lower <= '9')) {
            if (dash && !out.empty()) out.push_back('-');
            out.push_back(lower);
            dash = false;
        } else {
            dash = true;
        }
    }
    return out.empty() ? "gpu" : out;
}

std::string readSidecarString(const cv::FileStorage& fs, const std::string& key, bool& found) {
    const cv::FileNode node = fs.root()[key];
    found = node.isString();
    return found ? std::string(node) : std::string();
}

}  // namespace

std::string gpuKey(const TrtDevice& device) {
    return gpuSlug(device.gpuName) + "-sm" + std::to_string(device.ccMajor) + std::to_string(device.ccMinor) + "-mp" +
           std::to_string(device.multiprocessors);
}

std::string trtVersionKey(const std::string& version) {
    std::istringstream in(version);
    std::string part, out;
    for (int i = 0; i < 3; ++i) {
        if (!std::getline(in, part, '.') || part.empty() || part.find_first_not_of("0123456789") != std::string::npos) {
            return "";
        }
        out += (i ? "." : "") + part;
    }
    return out;
}

std::string engineFileName(const TrtDevice& device, const std::string& precision) {
    return gpuKey(device) + "-trt" + trtVersionKey(device.trtVersion) + "-" + precision + ".engine";
}

std::map<std::string, std::string> engineIdentity(const TrtDevice& device, const std::string& precision,
                                                  const std::string& sourceSha256) {
    return {{"gpu_key", gpuKey(device)},
            {"tensorrt", trtVersionKey(device.trtVersion)},
            {"precision", precision},
            {"source_sha256", sourceSha256}};
}

std::string engineStaleReason(const std::string& enginePath, const std::map<std::string, std::string>& wanted) {
    if (!isFile(enginePath)) return enginePath + ": no such engine";
    const std::string sidecar = enginePath.substr(0, enginePath.size() - std::string(".engine").size()) + ".json";
    cv::FileStorage fs;
    try {
        if (isFile(sidecar)) fs.open(sidecar, cv::FileStorage::READ | cv::FileStorage::FORMAT_JSON);
    } catch (const cv::Exception&) {
    }
    if (!fs.isOpened()) return sidecar + ": missing or unreadable, so nothing says what the engine was built from";
    std::string changed;
    for (const auto& [key, value] : wanted) {
        bool found = false;
        const std::string recorded = readSidecarString(fs, key, found);
        if (!found || recorded != value) {
            changed += (changed.empty() ? "" : ", ") + key + " '" + recorded + "' != '" + value + "'";
        }
    }
    return changed.empty() ? "" : enginePath + ": built for something else (" + changed + ")";
}

EngineChoice findEngine(const Bundle& bundle, const std::string& precision, const TrtDevice& device) {
    if (device.gpuName.empty()) return {"", device.error.empty() ? "no CUDA device visible" : device.error};
    if (!bundle.has(precision)) return {"", "the bundle has no " + precision + " ONNX file to build an engine from"};
    const std::string engine = joinPath(joinPath(bundle.root, "engines"), engineFileName(device, precision));
    const std::string stale =
        engineStaleReason(engine, engineIdentity(device, precision, bundle.files.at(precision).sha256));
    if (stale.empty()) return {engine, ""};
    return {"", stale + "; build it on this device with `fundus-export build-engine --bundle " + bundle.root +
                    " --precision " + precision + "`"};
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
            return Status::error(ErrorCode::kBackend, enginePath +
                                                          ": TensorRT cannot deserialize it (built for "
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

TrtDevice currentTrtDevice() {
    TrtDevice info;
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        info.error = std::string("the CUDA runtime cannot start: ") + cudaGetErrorName(err) + " (" +
                     cudaGetErrorString(err) + ")";
        return info;
    }
    if (count == 0) {
        const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
        info.error = std::string("no CUDA device visible") +
                     (visible ? std::string(" (CUDA_VISIBLE_DEVICES='") + visible + "')" : std::string());
        return info;
    }
    cudaDeviceProp props{};
    err = cudaGetDeviceProperties(&props, 0);
    if (err != cudaSuccess) {
        info.error = std::string("cudaGetDeviceProperties(0) failed: ") + cudaGetErrorName(err);
        return info;
    }
    info.gpuName = props.name;
    info.ccMajor = props.major;
    info.ccMinor = props.minor;
    info.multiprocessors = props.multiProcessorCount;
    const int version = getInferLibVersion();  // TensorRT >= 10: major * 10000 + minor * 100 + patch
    info.trtVersion = std::to_string(version / 10000) + "." + std::to_string((version / 100) % 100) + "." +
                      std::to_string(version % 100);
    return info;
}

Result<std::unique_ptr<Backend>> createTrtBackend(const Bundle& bundle, const std::string& precision) {
    const EngineChoice choice = findEngine(bundle, precision, currentTrtDevice());
    if (choice.enginePath.empty()) return Status::error(ErrorCode::kBackend, "backend 'trt': " + choice.reason);
    std::unique_ptr<TrtBackend> backend(new TrtBackend());
    Status status = backend->init(bundle, precision, choice.enginePath);
    if (!status) return status;
    return std::unique_ptr<Backend>(std::move(backend));
}
#endif

}  // namespace fundus
