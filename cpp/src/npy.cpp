#include "fundus/npy.h"

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "fundus/imageio.h"

namespace fundus {

Result<NpyArray> readNpy(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Status::error(ErrorCode::kBundle, path + ": cannot open");
    std::stringstream buffer;
    buffer << in.rdbuf();
    const std::string bytes = buffer.str();
    const Status bad = Status::error(ErrorCode::kBundle, path + ": not a little-endian float32 C-order .npy file");
    if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) return bad;
    const int major = static_cast<unsigned char>(bytes[6]);
    std::size_t headerLength = 0, offset = 0;
    if (major == 1) {
        headerLength =
            std::size_t(static_cast<unsigned char>(bytes[8])) | std::size_t(static_cast<unsigned char>(bytes[9])) << 8;
        offset = 10;
    } else if (major == 2 || major == 3) {
        if (bytes.size() < 12) return bad;
        for (int i = 0; i < 4; ++i) headerLength |= std::size_t(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
        offset = 12;
    } else {
        return bad;
    }
    if (bytes.size() < offset + headerLength) return bad;
    const std::string header = bytes.substr(offset, headerLength);
    if (header.find("'descr': '<f4'") == std::string::npos ||
        header.find("'fortran_order': False") == std::string::npos) {
        return bad;
    }
    const auto open = header.find("'shape': (");
    const auto close = open == std::string::npos ? open : header.find(')', open);
    if (close == std::string::npos) return bad;
    std::vector<int> shape;
    std::stringstream dims(header.substr(open + 10, close - open - 10));
    std::string dim;
    std::size_t count = 1;
    while (std::getline(dims, dim, ',')) {
        dim.erase(0, dim.find_first_not_of(' '));
        if (dim.empty()) continue;
        char* end = nullptr;
        const long value = std::strtol(dim.c_str(), &end, 10);
        if (*end != '\0' || value <= 0 || value > (1 << 20)) return bad;
        shape.push_back(int(value));
        count *= std::size_t(value);
    }
    if (shape.empty() || bytes.size() != offset + headerLength + 4 * count) return bad;
    const int cols = shape.back();
    cv::Mat out(int(count / std::size_t(cols)), cols, CV_32F);
    std::memcpy(out.data, bytes.data() + offset + headerLength, 4 * count);  // little-endian hosts only
    return NpyArray{out, shape};
}

Status writeNpy(const std::string& path, const cv::Mat& plane) {
    cv::Mat data;
    plane.convertTo(data, CV_32F);
    if (!data.isContinuous()) data = data.clone();
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
