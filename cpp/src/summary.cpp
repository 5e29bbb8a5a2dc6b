#include "fundus/summary.h"

#include <cmath>
#include <cstdio>
#include <sstream>

#include "fundus/imageio.h"

namespace fundus {
namespace {

std::string number(double value) {
    if (!std::isfinite(value)) return "0";
    char text[32];
    std::snprintf(text, sizeof(text), "%.17g", value);
    // shortest representation that round-trips, like Python's repr
    for (int digits = 1; digits <= 17; ++digits) {
        char shorter[32];
        std::snprintf(shorter, sizeof(shorter), "%.*g", digits, value);
        if (std::strtod(shorter, nullptr) == value) return shorter;
    }
    return text;
}

std::string quoted(const std::string& text) { return "\"" + jsonEscape(text) + "\""; }

}  // namespace

std::string jsonEscape(const std::string& text) {
    std::string out;
    for (unsigned char c : text) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    char buffer[8];
                    std::snprintf(buffer, sizeof(buffer), "\\u%04x", c);
                    out += buffer;
                } else {
                    out.push_back(char(c));
                }
        }
    }
    return out;
}

std::string summaryJson(const RunInfo& run, const std::vector<ImageRecord>& records) {
    std::ostringstream out;
    int failed = 0;
    for (const auto& r : records) failed += r.ok ? 0 : 1;
    out << "{\n"
        << "  \"runtime\": \"fundus-infer (C++)\",\n"
        << "  \"model\": " << quoted(run.model) << ",\n"
        << "  \"model_file\": " << quoted(run.modelFile) << ",\n"
        << "  \"backend\": " << quoted(run.backend) << ",\n"
        << "  \"precision\": " << quoted(run.precision) << ",\n"
        << "  \"threshold\": " << number(run.threshold) << ",\n"
        << "  \"fov\": " << quoted(run.fov) << ",\n"
        << "  \"count\": " << records.size() << ",\n"
        << "  \"failed\": " << failed << ",\n"
        << "  \"images\": [";
    bool first = true;
    for (const auto& r : records) {
        if (!r.ok) continue;
        out << (first ? "\n" : ",\n") << "    {\"file\": " << quoted(r.file) << ", \"width\": " << r.width
            << ", \"height\": " << r.height << ", \"backend\": " << quoted(r.backend)
            << ", \"precision\": " << quoted(r.precision) << ", \"seconds\": " << number(r.seconds)
            << ", \"vessel_fraction\": " << number(r.vesselFraction) << ", \"fov_pixels\": " << r.fovPixels
            << ", \"outputs\": {";
        for (std::size_t i = 0; i < r.outputs.size(); ++i) {
            out << (i ? ", " : "") << quoted(r.outputs[i].first) << ": " << quoted(r.outputs[i].second);
        }
        out << "}}";
        first = false;
    }
    out << (first ? "],\n" : "\n  ],\n") << "  \"failures\": [";
    first = true;
    for (const auto& r : records) {
        if (r.ok) continue;
        out << (first ? "\n" : ",\n") << "    {\"file\": " << quoted(r.file) << ", \"error\": " << quoted(r.error)
            << "}";
        first = false;
    }
    out << (first ? "]\n" : "\n  ]\n") << "}\n";
    return out.str();
}

Status writeSummary(const std::string& path, const RunInfo& run, const std::vector<ImageRecord>& records) {
    return writeFileAtomic(path, summaryJson(run, records));
}

Status writeNpy(const std::string& path, const cv::Mat& plane) {
    cv::Mat data;
    plane.convertTo(data, CV_32F);
    data = data.isContinuous() ? data : data.clone();
    std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(data.rows) + ", " +
                         std::to_string(data.cols) + "), }";
    while ((10 + header.size() + 1) % 64 != 0) header.push_back(' ');
    header.push_back('\n');
    std::string bytes = "\x93NUMPY";
    bytes.push_back('\x01');
    bytes.push_back('\x00');
    bytes.push_back(char(header.size() & 0xff));
    bytes.push_back(char(header.size() >> 8));
    bytes += header;
    bytes.append(reinterpret_cast<const char*>(data.data), data.total() * sizeof(float));
    return writeFileAtomic(path, bytes);
}

}  // namespace fundus
