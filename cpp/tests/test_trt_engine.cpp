// Engine naming and staleness of the C++ TensorRT loader: the same names and rules as the Python
// builder (runtime/backends/device.py, runtime/backends/engines.py). Pure file logic: no TensorRT.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "fundus/trt_backend.h"

namespace {

int failures = 0;

void expect(bool ok, const std::string& what) {
    if (!ok) {
        std::cerr << "FAIL: " << what << "\n";
        ++failures;
    }
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

fundus::TrtDevice device(const std::string& name, int major, int minor, int sms, const std::string& trt) {
    fundus::TrtDevice d;
    d.gpuName = name;
    d.ccMajor = major;
    d.ccMinor = minor;
    d.multiprocessors = sms;
    d.trtVersion = trt;
    return d;
}

void write(const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
}

}  // namespace

int main() {
    const auto agx = device("Orin", 8, 7, 16, "10.3.0");
    const auto nano = device("Orin", 8, 7, 8, "10.3.0");
    const auto h100 = device("NVIDIA H100 80GB HBM3", 9, 0, 132, "10.3.0");
    expect(fundus::gpuKey(agx) == "orin-sm87-mp16", "AGX Orin key");
    expect(fundus::gpuKey(nano) == "orin-sm87-mp8", "Orin Nano key differs from AGX Orin");
    expect(fundus::gpuKey(h100) == "nvidia-h100-80gb-hbm3-sm90-mp132", "H100 key");
    expect(fundus::trtVersionKey("10.3.0.26") == "10.3.0" && fundus::trtVersionKey("10.x").empty(), "version key");
    expect(fundus::engineFileName(agx, "fp16") == "orin-sm87-mp16-trt10.3.0-fp16.engine", "engine file name");

    char folder[] = "/tmp/fundus-trt-test-XXXXXX";
    if (!::mkdtemp(folder)) return 2;
    const std::string engine = std::string(folder) + "/" + fundus::engineFileName(agx, "fp16");
    const std::string sidecar = engine.substr(0, engine.size() - 7) + ".json";
    const auto wanted = fundus::engineIdentity(agx, "fp16", "abc");
    expect(contains(fundus::engineStaleReason(engine, wanted), "no such engine"), "missing engine");
    write(engine, "plan");
    expect(contains(fundus::engineStaleReason(engine, wanted), "nothing says"), "no sidecar is stale");
    // what runtime/backends/trt_build.py writes (extra keys are ignored)
    write(sidecar,
          "{\"gpu_key\": \"orin-sm87-mp16\", \"tensorrt\": \"10.3.0\", \"precision\": \"fp16\", "
          "\"source_sha256\": \"abc\", \"gpu\": \"Orin\", \"multiprocessors\": 16}");
    expect(fundus::engineStaleReason(engine, wanted).empty(), "current engine accepted");
    expect(contains(fundus::engineStaleReason(engine, fundus::engineIdentity(nano, "fp16", "abc")), "gpu_key"),
           "Orin Nano rejects the AGX Orin engine");
    expect(contains(fundus::engineStaleReason(engine, fundus::engineIdentity(agx, "fp16", "changed")), "source_sha256"),
           "changed ONNX makes the engine stale");
    std::remove(sidecar.c_str());
    std::remove(engine.c_str());
    ::rmdir(folder);
    if (failures == 0) std::cout << "test_trt_engine: all passed\n";
    return failures == 0 ? 0 : 1;
}
