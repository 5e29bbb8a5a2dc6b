#include "fundus/png_writer.h"

#include <sched.h>
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include <isa-l/igzip_lib.h>

namespace fundus {

namespace {

constexpr std::size_t kIdatBytes = 1 << 20;  // runtime/png_writer.py IDAT_BYTES
constexpr int kDeflateLevel = 1;             // runtime/png_writer.py DEFLATE_LEVEL (ISA-L levels 0-3)
constexpr std::uint32_t kLevelBufBytes = ISAL_DEF_LVL1_DEFAULT;
constexpr unsigned char kSignature[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

int colourType(int channels) {
    return channels == 1 ? 0 : (channels == 3 ? 2 : 6);
}

struct Stripe {
    std::string deflated;
    uLong adler = 0;
    std::size_t length = 0;
    bool ok = false;
};

// Rows [begin, end): Sub-filtered, deflated (a full flush ends it unless `last`), their Adler-32.
void encodeStripe(const cv::Mat& image, int begin, int end, bool last, Stripe& out) {
    const int rowBytes = image.cols * image.channels();
    const int step = image.channels();
    std::vector<unsigned char> filtered(std::size_t(end - begin) * std::size_t(rowBytes + 1));
    unsigned char* dst = filtered.data();
    for (int y = begin; y < end; ++y) {
        const unsigned char* row = image.ptr<unsigned char>(y);
        *dst++ = 1;  // filter type Sub
        for (int i = 0; i < step; ++i) *dst++ = row[i];
        for (int i = step; i < rowBytes; ++i) *dst++ = static_cast<unsigned char>(row[i] - row[i - step]);
    }
    out.length = filtered.size();
    out.adler = isal_adler32(1, filtered.data(), filtered.size());  // Adler-32 starts at 1
    // raw deflate, at most the stored-block size (5 header bytes per 64 KiB) plus ISA-L's own slack
    out.deflated.resize(filtered.size() + filtered.size() / 16 + 1024);
    std::unique_ptr<std::uint8_t[]> levelBuf(new std::uint8_t[kLevelBufBytes]);
    isal_zstream zs;
    isal_deflate_init(&zs);
    zs.level = kDeflateLevel;
    zs.level_buf = levelBuf.get();
    zs.level_buf_size = kLevelBufBytes;
    zs.flush = last ? NO_FLUSH : FULL_FLUSH;
    zs.end_of_stream = last ? 1 : 0;
    zs.next_in = filtered.data();
    zs.avail_in = std::uint32_t(filtered.size());
    zs.next_out = reinterpret_cast<std::uint8_t*>(&out.deflated[0]);
    zs.avail_out = std::uint32_t(out.deflated.size());
    const int result = isal_deflate(&zs);
    const bool done = last ? zs.internal_state.state == ZSTATE_END : zs.avail_in == 0;
    out.ok = result == COMP_OK && done && zs.avail_out > 0;
    out.deflated.resize(out.deflated.size() - zs.avail_out);
}

void putUint32(std::string& out, std::uint32_t v) {
    const char bytes[] = {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
    out.append(bytes, 4);
}

void putChunk(std::string& out, const char* kind, const char* data, std::size_t length) {
    putUint32(out, std::uint32_t(length));
    out.append(kind, 4);
    out.append(data, length);
    uLong crc = crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(kind), 4);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(data), uInt(length));
    putUint32(out, std::uint32_t(crc));
}

}  // namespace

int usableCpus() {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
    return std::max(1u, std::thread::hardware_concurrency());
}

bool pngEncodable(const cv::Mat& image) {
    const int channels = image.channels();
    return image.depth() == CV_8U && (channels == 1 || channels == 3 || channels == 4);
}

int defaultPngWorkers(const cv::Mat& image) {
    return (long long)image.rows * image.cols >= kParallelPngMinPixels ? usableCpus() : 1;
}

std::string encodePng(const cv::Mat& image, int workers) {
    const int stripes = std::max(1, std::min(workers > 0 ? workers : defaultPngWorkers(image), image.rows));
    std::vector<Stripe> parts(stripes);
    if (stripes == 1) {
        encodeStripe(image, 0, image.rows, true, parts[0]);
    } else {
        std::vector<std::thread> threads;
        for (int i = 0; i < stripes; ++i) {
            // the same row bounds as numpy.linspace(0, rows, stripes + 1).astype(int)
            const int begin = int(double(image.rows) * i / stripes);
            const int end = i + 1 == stripes ? image.rows : int(double(image.rows) * (i + 1) / stripes);
            threads.emplace_back(encodeStripe, std::cref(image), begin, end, i + 1 == stripes, std::ref(parts[i]));
        }
        for (std::thread& t : threads) t.join();
    }
    std::string stream("\x78\x01", 2);
    uLong adler = parts[0].adler;
    for (int i = 0; i < stripes; ++i) {
        if (!parts[i].ok) return std::string();
        if (i > 0) adler = adler32_combine(adler, parts[i].adler, z_off_t(parts[i].length));
        stream += parts[i].deflated;
    }
    putUint32(stream, std::uint32_t(adler));

    std::string png(reinterpret_cast<const char*>(kSignature), sizeof(kSignature));
    std::string header;
    putUint32(header, std::uint32_t(image.cols));
    putUint32(header, std::uint32_t(image.rows));
    const char rest[] = {8, char(colourType(image.channels())), 0, 0, 0};
    header.append(rest, sizeof(rest));
    putChunk(png, "IHDR", header.data(), header.size());
    for (std::size_t at = 0; at < stream.size(); at += kIdatBytes) {
        putChunk(png, "IDAT", stream.data() + at, std::min(kIdatBytes, stream.size() - at));
    }
    putChunk(png, "IEND", "", 0);
    return png;
}

}  // namespace fundus
