#include "fundus/imageio.h"

#include <fcntl.h>
#include <tiffio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <utility>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "fundus/diagnostics.h"
#include "fundus/gif.h"
#include "fundus/jpeg.h"
#include "fundus/paths.h"
#include "fundus/png_writer.h"

#include <sys/stat.h>

namespace fundus {
namespace {

Status readError(const std::string& path, const std::string& why) {
    return Status::error(ErrorCode::kImageRead, path + ": " + why);
}

void printTiffMessage(const char* module, const char* format, va_list args) {
    if (module && *module) std::fprintf(stderr, "%s: ", module);  // OpenCV 5's layout
    std::vfprintf(stderr, format, args);
    std::fprintf(stderr, "\n");
}

// OpenCV 4.6 silences libtiff (TIFFSetErrorHandler, once, when its TIFF decoder first runs); ours
// print into the captured standard error, so a TIFF libtiff complains about is refused as in
// runtime/decode.py. Set before every decode, after a first decode has run OpenCV's setup.
void reportTiffDiagnostics() {
    static const bool openCvSetUp = [] {
        std::vector<std::uint8_t> tiny;
        cv::imencode(".tif", cv::Mat(1, 1, CV_8UC1, cv::Scalar(0)), tiny);
        cv::imdecode(tiny, cv::IMREAD_UNCHANGED);
        return true;
    }();
    (void)openCvSetUp;
    TIFFSetErrorHandler(printTiffMessage);
    TIFFSetWarningHandler(printTiffMessage);
}

std::string lowerExtension(const std::string& path) {
    const auto slash = path.find_last_of('/');
    const auto dot = path.find_last_of('.');
    if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
    std::string ext = path.substr(dot);
    for (char& c : ext) c = char(std::tolower(static_cast<unsigned char>(c)));
    return ext;
}

constexpr unsigned char kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
constexpr int kTiffSamplesPerPixel = 277;

int pngColourChannels(unsigned char colourType) {
    switch (colourType) {
        case 0:
            return 1;  // gray
        case 2:
            return 3;  // RGB
        case 3:
            return 3;  // palette
        case 4:
            return 2;  // gray + alpha
        case 6:
            return 4;  // RGBA
        default:
            return 0;
    }
}

std::uint32_t readUnsigned(const unsigned char* bytes, int size, bool little) {
    std::uint32_t value = 0;
    for (int i = 0; i < size; ++i) {
        const int shift = 8 * (little ? i : size - 1 - i);
        value |= std::uint32_t(bytes[i]) << shift;
    }
    return value;
}

// SamplesPerPixel of the first IFD (TIFF's default 1 when the tag is absent).
int tiffSamples(std::ifstream& in, const unsigned char* head, bool little) {
    in.seekg(std::streamoff(readUnsigned(head + 4, 4, little)));
    unsigned char countBytes[2];
    if (!in.read(reinterpret_cast<char*>(countBytes), 2)) return 0;
    const std::uint32_t count = readUnsigned(countBytes, 2, little);
    std::vector<unsigned char> entries(12 * std::size_t(count));
    if (!in.read(reinterpret_cast<char*>(entries.data()), std::streamsize(entries.size()))) return 0;
    for (std::uint32_t i = 0; i < count; ++i) {
        const unsigned char* entry = entries.data() + 12 * i;
        if (readUnsigned(entry, 2, little) != kTiffSamplesPerPixel) continue;
        const bool isShort = readUnsigned(entry + 2, 2, little) == 3;
        return int(readUnsigned(entry + 8, isShort ? 2 : 4, little));
    }
    return 1;
}

std::uint64_t gMaxPixels = kDefaultMaxPixels;

std::uint64_t readBig(const std::vector<std::uint8_t>& d, std::size_t at, int size) {
    std::uint64_t value = 0;
    for (int i = 0; i < size; ++i) value = (value << 8) | d[at + std::size_t(i)];
    return value;
}

std::uint64_t readLittle(const std::vector<std::uint8_t>& d, std::size_t at, int size) {
    std::uint64_t value = 0;
    for (int i = size - 1; i >= 0; --i) value = (value << 8) | d[at + std::size_t(i)];
    return value;
}

bool isJpegSof(int marker) {
    return marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
}

bool jpegSize(const std::vector<std::uint8_t>& d, std::uint64_t& width, std::uint64_t& height) {
    std::size_t at = 2;
    while (at + 4 <= d.size()) {
        if (d[at] != 0xFF) return false;
        const int marker = d[at + 1];
        if (marker == 0xFF) {  // fill byte
            at += 1;
            continue;
        }
        if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) {  // no length
            at += 2;
            continue;
        }
        if (isJpegSof(marker)) {
            if (at + 9 > d.size()) return false;
            height = readBig(d, at + 5, 2);
            width = readBig(d, at + 7, 2);
            return true;
        }
        if (marker == 0xDA) return false;  // start of scan before any frame header
        at += 2 + std::size_t(readBig(d, at + 2, 2));
    }
    return false;
}

bool tiffSize(const std::vector<std::uint8_t>& d, bool little, std::uint64_t& width, std::uint64_t& height) {
    auto read = [&](std::size_t at, int size) { return little ? readLittle(d, at, size) : readBig(d, at, size); };
    const std::uint64_t ifd = read(4, 4);
    if (ifd + 2 > d.size()) return false;
    const std::uint64_t count = read(std::size_t(ifd), 2);
    bool haveWidth = false, haveHeight = false;
    for (std::uint64_t i = 0; i < count; ++i) {
        const std::uint64_t entry = ifd + 2 + 12 * i;
        if (entry + 12 > d.size()) break;
        const std::uint64_t tag = read(std::size_t(entry), 2), kind = read(std::size_t(entry) + 2, 2);
        if ((tag != 256 && tag != 257) || (kind != 3 && kind != 4)) continue;
        const std::uint64_t value = read(std::size_t(entry) + 8, kind == 3 ? 2 : 4);
        if (tag == 256) {
            width = value;
            haveWidth = true;
        } else {
            height = value;
            haveHeight = true;
        }
    }
    return haveWidth && haveHeight;
}

// PBM/PGM/PPM: width and height, whitespace-separated, '#' comments to the end of the line (first 4096 bytes).
bool pnmSize(const std::vector<std::uint8_t>& d, std::uint64_t& width, std::uint64_t& height) {
    std::uint64_t numbers[2] = {0, 0};
    int found = 0;
    const std::size_t end = std::min<std::size_t>(d.size(), 4096);
    std::size_t at = 2;
    while (found < 2 && at < end) {
        const int c = d[at];
        if (c == '#') {
            while (at < end && d[at] != '\n' && d[at] != '\r') ++at;
        } else if (c >= '0' && c <= '9') {
            std::uint64_t value = 0;
            int digits = 0;
            while (at < end && d[at] >= '0' && d[at] <= '9') {
                if (digits++ < 12) value = value * 10 + std::uint64_t(d[at] - '0');  // as Python: first 12 digits
                ++at;
            }
            numbers[found++] = value;
            continue;
        } else if (!(c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f')) {
            return false;
        }
        ++at;
    }
    if (found < 2) return false;
    width = numbers[0];
    height = numbers[1];
    return true;
}

// At least one finite sample in a float image (an all-NaN TIFF is not a photograph).
bool hasFinitePixel(const cv::Mat& image) {
    cv::Mat samples;
    image.reshape(1, 1).convertTo(samples, CV_64F);
    for (int i = 0; i < samples.cols; ++i) {
        if (std::isfinite(samples.at<double>(0, i))) return true;
    }
    return false;
}

// runtime/imageio.py unsupported_pixels: the same words.
std::string signedPixelType(int depth) {
    switch (depth) {
        case CV_8S:
            return "int8";
        case CV_16S:
            return "int16";
        case CV_32S:
            return "int32";
        default:
            return "";
    }
}

std::string unsupportedSigned(const std::string& type) {
    return "unsupported pixel type " + type + " (images are 8- or 16-bit unsigned, or floating point)";
}

std::string unsupportedColourFloat64(int channels) {
    return "unsupported pixel type float64 with " + std::to_string(channels) +
           " channels (colour images are 8- or 16-bit unsigned, or float32)";
}

// A TIFF whose first IFD stores signed-integer or 64-bit floating-point colour samples: OpenCV 4.6's decoder
// fails inside imdecode on some of them with its own multi-line text, so they are refused from the header,
// with runtime/imageio.py's words. Empty when the file is none of these.
std::string tiffUnsupported(const std::vector<std::uint8_t>& d) {
    if (d.size() < 8 || !(std::memcmp(d.data(), "II*\0", 4) == 0 || std::memcmp(d.data(), "MM\0*", 4) == 0)) {
        return "";
    }
    const bool little = d[0] == 'I';
    auto read = [&](std::uint64_t at, int size) -> std::uint64_t {
        if (at + std::uint64_t(size) > d.size()) return 0;
        return little ? readLittle(d, std::size_t(at), size) : readBig(d, std::size_t(at), size);
    };
    const std::uint64_t ifd = read(4, 4);
    const std::uint64_t count = read(ifd, 2);
    std::uint64_t samples = 1, bits = 0, format = 1;
    for (std::uint64_t i = 0; i < count && ifd + 14 + 12 * i <= d.size(); ++i) {
        const std::uint64_t entry = ifd + 2 + 12 * i;
        const std::uint64_t tag = read(entry, 2), kind = read(entry + 2, 2), n = read(entry + 4, 4);
        if (kind != 3) continue;  // SHORT values only
        const std::uint64_t first = n * 2 <= 4 ? read(entry + 8, 2) : read(read(entry + 8, 4), 2);
        if (tag == 277) samples = first;
        if (tag == 258) bits = first;
        if (tag == 339) format = first;
    }
    if (format == 2 && (bits == 8 || bits == 16 || bits == 32)) return unsupportedSigned("int" + std::to_string(bits));
    if (format == 3 && bits == 64 && samples > 1) return unsupportedColourFloat64(int(samples));
    return "";
}

// A DICOM Part 10 file: a 128-byte preamble, then "DICM".
bool isDicom(const std::vector<std::uint8_t>& data) {
    return data.size() >= 132 && data[128] == 'D' && data[129] == 'I' && data[130] == 'C' && data[131] == 'M';
}

}  // namespace

void setMaxPixels(std::uint64_t limit) {
    gMaxPixels = limit;
    // OpenCV's own decoders refuse above it too (read at its first decode)
    ::setenv("OPENCV_IO_MAX_IMAGE_PIXELS", std::to_string(limit).c_str(), 1);
}

bool declaredSize(const std::vector<std::uint8_t>& d, std::uint64_t& width, std::uint64_t& height) {
    if (d.size() >= 24 && std::memcmp(d.data(), kPngSignature, 8) == 0 && std::memcmp(d.data() + 12, "IHDR", 4) == 0) {
        width = readBig(d, 16, 4);
        height = readBig(d, 20, 4);
        return true;
    }
    if (d.size() >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return jpegSize(d, width, height);
    if (d.size() >= 10 && (std::memcmp(d.data(), "GIF87a", 6) == 0 || std::memcmp(d.data(), "GIF89a", 6) == 0)) {
        width = readLittle(d, 6, 2);
        height = readLittle(d, 8, 2);
        return true;
    }
    if (d.size() >= 26 && d[0] == 'B' && d[1] == 'M') {
        if (readLittle(d, 14, 4) == 12) {  // OS/2 BITMAPCOREHEADER: 16-bit fields
            width = readLittle(d, 18, 2);
            height = readLittle(d, 20, 2);
            return true;
        }
        const auto w = std::int32_t(std::uint32_t(readLittle(d, 18, 4)));
        const auto h = std::int32_t(std::uint32_t(readLittle(d, 22, 4)));
        width = std::uint64_t(w < 0 ? -std::int64_t(w) : w);
        height = std::uint64_t(h < 0 ? -std::int64_t(h) : h);
        return true;
    }
    if (d.size() >= 8 && (std::memcmp(d.data(), "II*\0", 4) == 0 || std::memcmp(d.data(), "MM\0*", 4) == 0)) {
        return tiffSize(d, d[0] == 'I', width, height);
    }
    if (d.size() >= 2 && d[0] == 'P' && d[1] >= '1' && d[1] <= '6') return pnmSize(d, width, height);
    return false;
}

Status checkPixels(const std::string& path, std::uint64_t width, std::uint64_t height) {
    if (width == 0 || height <= gMaxPixels / width) return Status::ok();  // no overflow: 12-digit PNM sizes
    char text[160];
    std::snprintf(text, sizeof(text),
                  "image too large (%llux%llu = %g megapixels; limit %g megapixels, --max-pixels changes it)",
                  static_cast<unsigned long long>(width), static_cast<unsigned long long>(height),
                  std::nearbyint(double(width) * double(height) / 1e6 * 10) / 10,
                  std::nearbyint(double(gMaxPixels) / 1e6 * 10) / 10);
    return Status::error(ErrorCode::kImageRead, path + ": " + text);
}

Result<cv::Mat> readImage(const std::string& path) {
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0) return readError(path, "no such file");
    if (!S_ISREG(info.st_mode)) return readError(path, "not a regular file");  // a FIFO would block the reader
    if (info.st_size == 0) return readError(path, "file is empty");
    std::ifstream in(path, std::ios::binary);
    std::vector<std::uint8_t> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) return readError(path, "cannot read file");
    if (isDicom(data)) {  // OpenCV's GDAL plug-in would read some DICOM files, with wrong colours
        return Status::error(ErrorCode::kImageFormat,
                             path +
                                 ": DICOM is not supported by the C++ binary; use the Python fundus-infer with "
                                 "the 'clinic' extra (pip install 'fundus-vessels[clinic]')");
    }
    std::uint64_t width = 0, height = 0;
    if (declaredSize(data, width, height)) {
        Status allowed = checkPixels(path, width, height);
        if (!allowed) return allowed;
    }
    if (isGif(data)) {  // OpenCV 4.6 has no GIF decoder: the project's own, already RGB-ordered
        auto decoded = decodeGif(data);
        if (!decoded) {
            const std::string& why = decoded.status().message();
            return readError(
                path, (mentionsTruncation(why) ? "image file is truncated (GIF: " : "not a readable image (GIF: ") +
                          why + ")");
        }
        return std::move(*decoded);
    }
    if (isJpeg(data)) {  // libjpeg directly: OpenCV 4.6 hides truncation
        auto decoded = decodeJpeg(data);
        if (!decoded) {
            const std::string& why = decoded.status().message();
            if (decoded.status().code() == ErrorCode::kImageFormat)
                return Status::error(ErrorCode::kImageFormat, path + ": " + why);
            return readError(
                path, (mentionsTruncation(why) ? "image file is truncated (" : "corrupt image data (") + why + ")");
        }
        return std::move(*decoded);
    }
    const std::string unsupported = tiffUnsupported(data);
    if (!unsupported.empty()) return readError(path, unsupported);
    // Any warning or error the decoder prints refuses the file (runtime/decode.py: same rule)
    cv::Mat image;
    std::string failure = "OpenCV could not decode it";
    std::vector<std::string> diagnostics;
    reportTiffDiagnostics();
    {
        CapturedStderr captured;
        try {
            image = cv::imdecode(data, cv::IMREAD_UNCHANGED);
        } catch (const cv::Exception& e) {
            failure = e.msg;
        }
        diagnostics = captured.lines();
    }
    if (!diagnostics.empty()) return readError(path, decoderRefusal(diagnostics));
    if (image.empty()) return readError(path, "not a readable image (" + failure + ")");
    if (image.dims != 2 || image.total() == 0) return readError(path, "image has no pixels");
    if (!signedPixelType(image.depth()).empty())
        return readError(path, unsupportedSigned(signedPixelType(image.depth())));
    if (image.depth() == CV_64F && image.channels() > 1)
        return readError(path, unsupportedColourFloat64(image.channels()));
    if ((image.depth() == CV_32F || image.depth() == CV_64F) && !hasFinitePixel(image)) {  // runtime/imageio.py
        return readError(path, "image holds no finite pixel values (all NaN or infinite)");
    }
    if (image.channels() == 4) {
        cv::cvtColor(image, image, cv::COLOR_BGRA2RGB);
    } else if (image.channels() == 3) {
        cv::cvtColor(image, image, cv::COLOR_BGR2RGB);
    } else if (image.channels() != 1) {
        return Status::error(ErrorCode::kImageFormat,
                             path + ": unsupported channel count " + std::to_string(image.channels()));
    }
    return image;
}

Result<cv::Mat> readBinaryMask(const std::string& path) {
    auto image = readImage(path);
    if (!image) return image.status();
    cv::Mat plane = *image;
    if (plane.channels() > 1) {
        std::vector<cv::Mat> channels;
        cv::split(plane, channels);
        plane = channels[0];
        for (std::size_t i = 1; i < channels.size(); ++i) plane = cv::max(plane, channels[i]);
    }
    double maxValue = 0;
    cv::minMaxLoc(plane, nullptr, &maxValue);
    cv::Mat mask = maxValue > 1 ? (plane > 127) : (plane > 0);
    mask.setTo(1, mask);
    return mask;
}

Status makeDirectories(const std::string& path) {
    std::string partial;
    std::size_t pos = 0;
    while (pos != std::string::npos) {
        pos = path.find('/', pos + 1);
        partial = path.substr(0, pos);
        if (partial.empty()) continue;
        if (::mkdir(partial.c_str(), 0777) != 0 && errno != EEXIST) {
            return Status::error(ErrorCode::kIo, partial + ": cannot create folder (" + std::strerror(errno) + ")");
        }
    }
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
        return Status::error(ErrorCode::kIo, path + ": not a folder");
    }
    return Status::ok();
}

Status writeFileAtomic(const std::string& path, const std::string& bytes) {
    const auto slash = path.find_last_of('/');
    const std::string folder = slash == std::string::npos ? "." : path.substr(0, slash);
    const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
    std::string tmp = folder + "/." + name + ".XXXXXX.tmp";
    std::vector<char> tmpl(tmp.begin(), tmp.end());
    tmpl.push_back('\0');
    const int fd = ::mkstemps(tmpl.data(), 4);
    if (fd < 0)
        return Status::error(ErrorCode::kIo, path + ": cannot create temporary file (" + std::strerror(errno) + ")");
    tmp = tmpl.data();
    std::size_t written = 0;
    bool ok = true;
    while (ok && written < bytes.size()) {
        const ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
        if (n < 0 && errno == EINTR) continue;
        ok = n > 0;
        if (ok) written += std::size_t(n);
    }
    ok = ok && ::fsync(fd) == 0;
    const int savedErrno = errno;
    ::close(fd);
    if (ok) ::chmod(tmp.c_str(), 0644);  // mkstemp creates 0600; outputs are meant to be shared
    if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
        const int err = ok ? errno : savedErrno;
        ::unlink(tmp.c_str());
        return Status::error(ErrorCode::kIo, path + ": write failed (" + std::strerror(err) + ")");
    }
    return Status::ok();
}

Status writeImageAtomic(const std::string& path, const cv::Mat& image) {
    const std::string lower = lowerExtension(path);
    if ((lower.empty() || lower == ".png") && pngEncodable(image)) {  // ISA-L deflate, large ones on every CPU
        const std::string png = encodePng(image);
        if (png.empty()) return Status::error(ErrorCode::kIo, path + ": ISA-L could not encode the image");
        return writeFileAtomic(path, png);
    }
    cv::Mat toEncode = image;
    if (image.channels() == 3) cv::cvtColor(image, toEncode, cv::COLOR_RGB2BGR);
    std::string ext = lowerExtension(path);
    std::vector<std::uint8_t> encoded;
    try {
        if (!cv::imencode(ext.empty() ? ".png" : ext, toEncode, encoded)) {
            return Status::error(ErrorCode::kIo, path + ": OpenCV could not encode the image");
        }
    } catch (const cv::Exception& e) {
        return Status::error(ErrorCode::kIo, path + ": OpenCV could not encode the image (" + e.msg + ")");
    }
    return writeFileAtomic(path, std::string(encoded.begin(), encoded.end()));
}

int storedChannels(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    unsigned char head[26] = {};
    if (!in.read(reinterpret_cast<char*>(head), sizeof(head)) && in.gcount() < 8) return 0;
    if (std::memcmp(head, kPngSignature, 8) == 0 && std::memcmp(head + 12, "IHDR", 4) == 0 && in.gcount() == 26) {
        return pngColourChannels(head[25]);
    }
    const bool little = std::memcmp(head, "II*\0", 4) == 0;
    if (little || std::memcmp(head, "MM\0*", 4) == 0) return tiffSamples(in, head, little);
    return 0;
}

}  // namespace fundus
