// Unit tests of fundus-infer's pure logic (run by ctest): flag parsing, JSON numbers, decoder
// diagnostics and the GIF reader. No framework: each CHECK that fails prints its line; the exit
// status is the number of failures.
#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <limits>
#include <string>
#include <vector>

#include "fundus/cli_args.h"
#include "fundus/diagnostics.h"
#include "fundus/gif.h"
#include "fundus/imageio.h"
#include "fundus/jpeg.h"
#include "fundus/output_guard.h"
#include "fundus/summary.h"

namespace {

int failures = 0;

#define CHECK(cond)                                                                \
    do {                                                                           \
        if (!(cond)) {                                                             \
            std::fprintf(stdout, "%s:%d: FAILED %s\n", __FILE__, __LINE__, #cond); \
            ++failures;                                                            \
        }                                                                          \
    } while (0)

fundus::Result<fundus::CliArgs> parse(std::initializer_list<std::string> args) {
    std::vector<std::string> words = {"fundus-infer"};
    words.insert(words.end(), args);
    std::vector<char*> argv;
    for (std::string& w : words) argv.push_back(w.data());
    return fundus::parseArgs(int(argv.size()), argv.data());
}

void testFlags() {
    auto ok = parse({"a.png", "-o", "out", "--threshold", "0.25", "--threads", "2", "--batch", "8"});
    CHECK(ok && ok->thresholdSet && ok->threshold == 0.25 && ok->threads == 2 && ok->batch == 8);
    for (const char* bad : {"nan", "NaN", "inf", "-inf", "1e999", "half", "1.5", "-0.1", ""}) {
        auto r = parse({"a.png", "-o", "out", "--threshold", bad});
        CHECK(!r && r.status().message().find("--threshold must be a number in [0, 1]") == 0);
    }
    for (const char* bad : {"0", "-1", "2.5", "nan", "inf", "1e12", "x"}) {
        auto threads = parse({"a.png", "-o", "out", "--threads", bad});
        CHECK(!threads && threads.status().message().find("--threads must be a positive integer") == 0);
        auto batch = parse({"a.png", "-o", "out", "--batch", bad});
        CHECK(!batch && batch.status().message().find("--batch must be a positive integer") == 0);
    }
    auto inline_value = parse({"a.png", "--output=out", "--threshold=1"});
    CHECK(inline_value && inline_value->outputDir == "out" && inline_value->threshold == 1.0);
    CHECK(!parse({"a.png"}));                              // no -o
    CHECK(!parse({"a.png", "-o", "out", "--threshold"}));  // value missing
    CHECK(!parse({"a.png", "-o", "out", "--bogus"}));
    auto save = parse({"a.png", "-o", "out", "--save", "mask, mask,prob"});
    CHECK(save && save->save == std::vector<std::string>({"mask", "prob"}));
}

void testJsonNumbers() {
    CHECK(fundus::jsonNumber(std::nan("")) == "null");
    CHECK(fundus::jsonNumber(std::numeric_limits<double>::infinity()) == "null");
    CHECK(fundus::jsonNumber(-std::numeric_limits<double>::infinity()) == "null");
    CHECK(fundus::jsonNumber(0.0) == "0.0");
    CHECK(fundus::jsonNumber(0.5) == "0.5");
    CHECK(fundus::jsonNumber(1e-5) == "1e-05");
    CHECK(fundus::jsonNumber(100000.0) == "100000.0");
    CHECK(fundus::Json::object().set("t", std::nan("")).dump() == "{\n  \"t\": null\n}");
    CHECK(fundus::jsonEscape("a\"b\\\n\x01") == "a\\\"b\\\\\\n\\u0001");
}

void testDiagnostics() {
    CHECK(fundus::decoderRefusal({"Premature end of JPEG file"}) ==
          "image file is truncated (Premature end of JPEG file)");
    CHECK(fundus::decoderRefusal({"libpng error: IDAT: CRC error"}) ==
          "corrupt image data (libpng error: IDAT: CRC error)");
    CHECK(fundus::decoderRefusal({"x", "LZWDecode: Not enough data at scanline 3"}).find("image file is truncated") ==
          0);
    CHECK(fundus::mentionsTruncation("Seek error accessing TIFF directory"));
    CHECK(!fundus::mentionsTruncation("Corrupt JPEG data: premature end of data segment"));
    fundus::CapturedStderr captured;
    std::fprintf(stderr, "[ WARN:0@1.5] global grfmt_tiff.cpp (746) readData OpenCV TIFF: failed\n\n  second  \n");
    const std::vector<std::string> lines = captured.lines();
    CHECK(lines == std::vector<std::string>({"OpenCV TIFF: failed", "second"}));
}

// A 2x2 GIF written by Pillow (table black/white/red/green, LZW code size 8): indices 0 1 / 2 3.
std::vector<std::uint8_t> tinyGif() {
    return {71,  73, 70, 56, 55, 97, 2, 0, 2, 0, 129, 0, 0, 0, 0, 0, 255, 255, 255, 255, 0,  0, 0,
            255, 0,  44, 0,  0,  0,  0, 2, 0, 2, 0,   0, 8, 7, 0, 1, 4,   16,  48,  32,  32, 0, 59};
}

void testGif() {
    const auto bytes = tinyGif();
    CHECK(fundus::isGif(bytes));
    auto image = fundus::decodeGif(bytes);
    CHECK(image && image->rows == 2 && image->cols == 2 && image->type() == CV_8UC3);
    if (image) {
        CHECK(image->at<cv::Vec3b>(0, 0) == cv::Vec3b(0, 0, 0));
        CHECK(image->at<cv::Vec3b>(0, 1) == cv::Vec3b(255, 255, 255));
        CHECK(image->at<cv::Vec3b>(1, 0) == cv::Vec3b(255, 0, 0));
        CHECK(image->at<cv::Vec3b>(1, 1) == cv::Vec3b(0, 255, 0));
    }
    for (std::size_t keep : {std::size_t(8), std::size_t(20), std::size_t(36)}) {
        auto cut = fundus::decodeGif(std::vector<std::uint8_t>(bytes.begin(), bytes.begin() + long(keep)));
        CHECK(!cut && fundus::mentionsTruncation(cut.status().message()));
    }
    CHECK(!fundus::isGif({'G', 'I', 'F', '8', '7'}));
}

void testJpegRefusesTruncation() {
    CHECK(!fundus::isJpeg({0xFF, 0xD8}) && fundus::isJpeg({0xFF, 0xD8, 0xFF}));
    auto header = fundus::decodeJpeg({0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0});
    CHECK(!header && header.status().message() == "JPEG: Premature end of JPEG file");
}

// runtime/outputs_guard.py printable: Python's decode("utf-8", "backslashreplace")
void testPrintable() {
    CHECK(fundus::printable("caf\xc3\xa9.png") == "caf\xc3\xa9.png");  // valid UTF-8 passes
    CHECK(fundus::printable("caf\xe9.png") == "caf\\xe9.png");
    CHECK(fundus::printable("\xed\xa0\x80") == "\\xed\\xa0\\x80");  // an encoded surrogate is not UTF-8
    CHECK(fundus::printable("\xe2\x82") == "\\xe2\\x82");           // cut short
    CHECK(fundus::jsonEscape("caf\xe9") == "caf\\\\xe9");           // JSON: the backslash escaped
}

// runtime/image_header.py declared_size
void testDeclaredSize() {
    std::uint64_t w = 0, h = 0;
    const std::vector<std::uint8_t> gif = {'G', 'I', 'F', '8', '9', 'a', 0x10, 0x27, 0x20, 0x4E};
    CHECK(fundus::declaredSize(gif, w, h) && w == 10000 && h == 20000);
    const std::string pgm = "P5\n# c\n 123456789012345 7\n255\n";
    CHECK(fundus::declaredSize(std::vector<std::uint8_t>(pgm.begin(), pgm.end()), w, h) && w == 123456789012ull &&
          h == 7);
    CHECK(!fundus::declaredSize({'P', '5', '\n', 'x'}, w, h));
    CHECK(!fundus::declaredSize({0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02}, w, h));  // scan before any frame header
    CHECK(!fundus::checkPixels("a.pgm", 123456789012ull, 7));
    CHECK(fundus::checkPixels("a.pgm", 10000, 10000));
    CHECK(!fundus::checkPixels("a.pgm", 10000, 10001));
    CHECK(fundus::checkPixels("a.pgm", 20000, 20000).message() ==
          "a.pgm: image too large (20000x20000 = 400 megapixels; limit 100 megapixels, --max-pixels changes it)");
}

}  // namespace

int main() {
    testFlags();
    testJsonNumbers();
    testDiagnostics();
    testGif();
    testJpegRefusesTruncation();
    testPrintable();
    testDeclaredSize();
    std::printf(failures ? "%d unit checks FAILED\n" : "all unit checks passed\n", failures);
    return failures;
}
