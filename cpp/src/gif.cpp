#include "fundus/gif.h"

#include <algorithm>
#include <array>
#include <string>

namespace fundus {
namespace {

constexpr int kMaxCodes = 4096;                // LZW codes have at most 12 bits
constexpr double kMaxPixels = 2.0 * 89478485;  // Pillow refuses images above this (decompression bomb)

using Palette = std::array<cv::Vec3b, 256>;

Status gifError(const std::string& why) {
    return Status::error(ErrorCode::kImageRead, why);
}

// Bounds-checked cursor over the file: callers ask has(n) before reading n bytes.
class Reader {
public:
    explicit Reader(const std::vector<std::uint8_t>& bytes) : bytes_(bytes) {}
    bool has(std::size_t n) const { return bytes_.size() - pos_ >= n; }
    std::uint8_t u8() { return bytes_[pos_++]; }
    int u16() {
        const int value = bytes_[pos_] | bytes_[pos_ + 1] << 8;  // little-endian
        pos_ += 2;
        return value;
    }
    const std::uint8_t* take(std::size_t n) {
        const std::uint8_t* start = bytes_.data() + pos_;
        pos_ += n;
        return start;
    }

private:
    const std::vector<std::uint8_t>& bytes_;
    std::size_t pos_ = 0;
};

// A colour table of 2^(1 + (flags & 7)) RGB entries follows when bit 7 of `flags` is set.
Status readColourTable(Reader& in, std::uint8_t flags, std::vector<std::uint8_t>& table) {
    table.clear();
    if (!(flags & 0x80)) return Status::ok();
    const std::size_t size = std::size_t(3) << ((flags & 7) + 1);
    if (!in.has(size)) return gifError("truncated GIF (colour table)");
    const std::uint8_t* start = in.take(size);
    table.assign(start, start + size);
    return Status::ok();
}

// A table of i -> (i,i,i), or none: Pillow then reads the frame as gray levels (mode "L").
bool isGrayLevels(const std::vector<std::uint8_t>& table) {
    for (std::size_t i = 0; i < table.size(); ++i) {
        if (std::size_t(table[i]) != i / 3) return false;
    }
    return true;
}

// Index -> RGB as Pillow maps it: gray levels for all 256 indices when isGrayLevels(table);
// otherwise indices past the table are black.
Palette makePalette(const std::vector<std::uint8_t>& table) {
    const bool grayLevels = isGrayLevels(table);
    Palette palette{};
    for (std::size_t i = 0; i < palette.size(); ++i) {
        if (grayLevels) {
            palette[i] = cv::Vec3b::all(std::uint8_t(i));
        } else if (3 * i + 2 < table.size()) {
            palette[i] = cv::Vec3b(table[3 * i], table[3 * i + 1], table[3 * i + 2]);
        }
    }
    return palette;
}

// Skips a chain of data sub-blocks (a length byte, that many bytes; length 0 ends the chain).
Status skipSubBlocks(Reader& in) {
    while (true) {
        if (!in.has(1)) return gifError("truncated GIF (extension block)");
        const std::size_t size = in.u8();
        if (size == 0) return Status::ok();
        if (!in.has(size)) return gifError("truncated GIF (extension block)");
        in.take(size);
    }
}

// An extension (after '!'): a Graphic Control Extension (label 0xF9) with its transparency flag
// set gives the transparent index; comment, application and plain-text extensions are skipped.
Status readExtension(Reader& in, int& transparent) {
    if (!in.has(1)) return gifError("truncated GIF (extension block)");
    const std::uint8_t label = in.u8();
    if (label == 0xF9 && in.has(1)) {
        const std::size_t size = in.u8();
        if (size == 0) return Status::ok();
        if (!in.has(size)) return gifError("truncated GIF (graphic control extension)");
        const std::uint8_t* block = in.take(size);
        if (size >= 4 && (block[0] & 1)) transparent = block[3];
    }
    return skipSubBlocks(in);
}

// The frame's LZW bytes: its complete sub-blocks joined. Like Pillow, a chain cut off by the end
// of the file is used up to its last complete sub-block (decodeLzw then reports missing pixels).
std::vector<std::uint8_t> readImageData(Reader& in) {
    std::vector<std::uint8_t> data;
    while (in.has(1)) {
        const std::size_t size = in.u8();
        if (size == 0 || !in.has(size)) break;
        const std::uint8_t* start = in.take(size);
        data.insert(data.end(), start, start + size);
    }
    return data;
}

// Variable-width codes packed least significant bit first.
class CodeReader {
public:
    explicit CodeReader(const std::vector<std::uint8_t>& data) : data_(data) {}
    // The next code of `width` bits, or -1 when the data has run out.
    int read(int width) {
        while (bits_ < width) {
            if (pos_ == data_.size()) return -1;
            buffer_ |= std::uint32_t(data_[pos_++]) << bits_;
            bits_ += 8;
        }
        const int code = int(buffer_ & ((1u << width) - 1));
        buffer_ >>= width;
        bits_ -= width;
        return code;
    }

private:
    const std::vector<std::uint8_t>& data_;
    std::size_t pos_ = 0;
    std::uint32_t buffer_ = 0;
    int bits_ = 0;
};

// The LZW string table: each code is its prefix code plus one last index.
struct LzwTable {
    std::vector<std::uint16_t> prefix = std::vector<std::uint16_t>(kMaxCodes);
    std::vector<std::uint16_t> length = std::vector<std::uint16_t>(kMaxCodes);
    std::vector<std::uint8_t> last = std::vector<std::uint8_t>(kMaxCodes);
    std::vector<std::uint8_t> first = std::vector<std::uint8_t>(kMaxCodes);

    // Appends the string of `code` (written back to front along its prefixes), cut at `limit`.
    void append(int code, std::vector<std::uint8_t>& out, std::size_t limit) const {
        const std::size_t start = out.size();
        const std::size_t end = start + length[code];
        out.resize(std::min(end, limit));
        for (std::size_t i = end; i-- > start; code = prefix[code]) {
            if (i < out.size()) out[i] = last[code];
        }
    }
};

// GIF LZW -> `count` colour indices: clear and end codes, the code width growing when the next
// code needs another bit, no new codes once all 4096 exist (a "deferred clear"). Codes after the
// last pixel are ignored, as Pillow does. Code size 1 (clear 2, end 3) also follows Pillow: the
// width grows when the code 2^width - 1 is defined, and the first free code, 4, is past 3, so the
// codes stay 2 bits wide (only literals, clear and end fit).
Result<std::vector<std::uint8_t>> decodeLzw(const std::vector<std::uint8_t>& data, int minCodeSize, std::size_t count) {
    const int clear = 1 << minCodeSize;
    const int end = clear + 1;
    LzwTable table;
    for (int code = 0; code < clear; ++code) {
        table.last[code] = table.first[code] = std::uint8_t(code);
        table.length[code] = 1;
    }
    std::vector<std::uint8_t> out;
    CodeReader codes(data);
    int width = minCodeSize + 1, next = end + 1, prev = -1;
    while (out.size() < count) {
        const int code = codes.read(width);
        if (code < 0 || code == end) {
            return gifError("truncated GIF (image data ends after " + std::to_string(out.size()) + " of " +
                            std::to_string(count) + " pixels)");
        }
        if (code == clear) {  // back to the first codes
            width = minCodeSize + 1;
            next = end + 1;
            prev = -1;
            continue;
        }
        if (prev < 0 ? code >= clear : code > next) return gifError("bad LZW code " + std::to_string(code));
        if (prev >= 0 && next < kMaxCodes) {  // new code: prev's string + the first index of code's
            table.prefix[next] = std::uint16_t(prev);
            table.first[next] = table.first[prev];
            table.last[next] = table.first[code == next ? prev : code];
            table.length[next] = std::uint16_t(table.length[prev] + 1);
            if (++next == 1 << width && width < 12) ++width;
        }
        table.append(code, out, count);
        prev = code;
    }
    return out;
}

// Image row of each stored row: interlaced frames store rows 0,8,16..; 4,12..; 2,6..; 1,3,5..
std::vector<int> rowOrder(int height, bool interlaced) {
    std::vector<int> rows;
    if (!interlaced) {
        for (int y = 0; y < height; ++y) rows.push_back(y);
        return rows;
    }
    const int start[] = {0, 4, 2, 1}, step[] = {8, 8, 4, 2};
    for (int pass = 0; pass < 4; ++pass) {
        for (int y = start[pass]; y < height; y += step[pass]) rows.push_back(y);
    }
    return rows;
}

// A decoded frame's indices, in stored row order, and where it lies on the logical screen.
struct Frame {
    const std::vector<std::uint8_t>& indices;
    std::vector<int> rows;  // image row of each stored row
    int left, top, width;
};

// Writes the frame into `image` (of Pixel elements), each index through `colour`.
template <typename Pixel, typename Colour>
void paintFrame(cv::Mat& image, const Frame& frame, Colour colour) {
    for (std::size_t i = 0; i < frame.rows.size(); ++i) {
        const std::uint8_t* source = frame.indices.data() + i * std::size_t(frame.width);
        Pixel* target = image.ptr<Pixel>(frame.top + frame.rows[i]) + frame.left;
        for (int x = 0; x < frame.width; ++x) target[x] = colour(source[x]);
    }
}

// After ',': image descriptor, local colour table, LZW data -> the frame on the logical screen.
Result<cv::Mat> decodeFrame(Reader& in, int screenWidth, int screenHeight, const std::vector<std::uint8_t>& global,
                            int transparent) {
    if (!in.has(9)) return gifError("truncated GIF (image descriptor)");
    const int left = in.u16(), top = in.u16(), width = in.u16(), height = in.u16();
    const std::uint8_t flags = in.u8();
    const std::string size = std::to_string(width) + "x" + std::to_string(height);
    if (width == 0 || height == 0) return gifError("GIF image frame is empty (" + size + ")");
    std::vector<std::uint8_t> local;
    if (Status status = readColourTable(in, flags, local); !status) return status;
    const int canvasWidth = std::max(screenWidth, left + width), canvasHeight = std::max(screenHeight, top + height);
    if (double(canvasWidth) * canvasHeight > kMaxPixels) {
        return gifError("GIF is too large (" + std::to_string(canvasWidth) + "x" + std::to_string(canvasHeight) + ")");
    }
    if (!in.has(1)) return gifError("truncated GIF (image data)");
    const int minCodeSize = in.u8();
    if (minCodeSize < 1 || minCodeSize > 8) return gifError("bad LZW code size " + std::to_string(minCodeSize));
    auto indices = decodeLzw(readImageData(in), minCodeSize, std::size_t(width) * std::size_t(height));
    if (!indices) return indices.status();

    const std::vector<std::uint8_t>& table = (flags & 0x80) ? local : global;
    const Palette palette = makePalette(table);
    const cv::Vec3b fill = palette[transparent >= 0 ? transparent : 0];  // what Pillow puts outside the frame
    const bool gray = isGrayLevels(table);  // one channel, as runtime/imageio.read_image gives it
    cv::Mat image(canvasHeight, canvasWidth, gray ? CV_8UC1 : CV_8UC3, cv::Scalar(fill[0], fill[1], fill[2]));
    const Frame frame{*indices, rowOrder(height, (flags & 0x40) != 0), left, top, width};
    if (gray) {
        paintFrame<std::uint8_t>(image, frame, [](std::uint8_t index) { return index; });
    } else {
        paintFrame<cv::Vec3b>(image, frame, [&palette](std::uint8_t index) { return palette[index]; });
    }
    return image;
}

}  // namespace

bool isGif(const std::vector<std::uint8_t>& bytes) {
    const std::string head(bytes.begin(), bytes.begin() + std::ptrdiff_t(std::min<std::size_t>(6, bytes.size())));
    return head == "GIF87a" || head == "GIF89a";
}

Result<cv::Mat> decodeGif(const std::vector<std::uint8_t>& bytes) {
    if (!isGif(bytes)) return gifError("not a GIF file");
    Reader in(bytes);
    in.take(6);
    if (!in.has(7)) return gifError("truncated GIF (logical screen descriptor)");
    const int screenWidth = in.u16(), screenHeight = in.u16();
    const std::uint8_t flags = in.u8();
    in.take(2);  // background colour index (Pillow ignores it for the first frame), aspect ratio
    std::vector<std::uint8_t> global;
    if (Status status = readColourTable(in, flags, global); !status) return status;
    int transparent = -1;
    while (in.has(1)) {
        const std::uint8_t introducer = in.u8();
        if (introducer == ',') return decodeFrame(in, screenWidth, screenHeight, global, transparent);
        if (introducer == ';') break;  // trailer
        if (introducer == '!') {
            if (Status status = readExtension(in, transparent); !status) return status;
        }
        // any other byte between blocks is skipped, as Pillow does
    }
    return gifError("GIF has no image frame");
}

}  // namespace fundus
