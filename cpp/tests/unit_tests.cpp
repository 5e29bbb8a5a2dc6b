// Unit tests of fundus-infer's pure logic (run by ctest): flag parsing, JSON numbers, decoder
// diagnostics and the GIF reader. No framework: each CHECK that fails prints its line; the exit
// status is the number of failures.
#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <limits>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "fundus/cli_args.h"
#include "fundus/diagnostics.h"
#include "fundus/gif.h"
#include "fundus/imageio.h"
#include "fundus/jpeg.h"
#include "fundus/output_guard.h"
#include "fundus/png_writer.h"
#include "fundus/quality.h"
#include "fundus/results_csv.h"
#include "fundus/scale.h"
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

// A CV_8U 0/1 mask of `size` holding a filled disc of `diameter` px centred in the frame.
cv::Mat disc(cv::Size size, int diameter) {
    cv::Mat mask = cv::Mat::zeros(size, CV_8UC1);
    cv::circle(mask, {size.width / 2, size.height / 2}, diameter / 2, cv::Scalar(1), cv::FILLED);
    return mask;
}

// runtime/scale.py's rule: diameter, factor, snap, fallback, domain, sizes, flag and JSON.
void testScaleRule() {
    using fundus::ScaleConfig, fundus::ScaleRequest, fundus::decideScale;
    const ScaleConfig config{540.0, 0.05, 0.1, 1.5};
    const ScaleRequest autoScale;
    // the larger side of the bounding box: a disc clipped at the top and bottom keeps its width
    cv::Mat clipped = disc({800, 600}, 721);
    CHECK(fundus::fovDiameter(clipped) == 721.0);
    auto d = decideScale(clipped, config, autoScale);
    CHECK(d.method == "fov" && d.factor == 540.0 / 721.0 && d.fovDiameter == 721.0 && d.inDomain && d.note.empty());
    // within the tolerance of 1: snapped, nothing resampled
    d = decideScale(disc({600, 600}, 553), config, autoScale);
    CHECK(d.method == "fov" && d.factor == 1.0 && d.fovDiameter == 553.0 && d.inDomain);
    // a FOV far smaller than the reference: out of the model's range, said in the note
    d = decideScale(disc({400, 400}, 301), config, autoScale);
    CHECK(d.factor == 540.0 / 301.0 && !d.inDomain &&
          d.note == "scale factor 1.79 outside the model's range [0.1, 1.5]");
    // not found (every pixel, or nothing): the longer image side, out of domain
    for (const cv::Mat& none :
         {cv::Mat(cv::Mat::ones(300, 1000, CV_8UC1)), cv::Mat(cv::Mat::zeros(300, 1000, CV_8UC1))}) {
        d = decideScale(none, config, autoScale);
        CHECK(std::isnan(fundus::fovDiameter(none)) && d.method == "image-size" && d.fovDiameter == 1000.0 &&
              d.factor == 0.54 && !d.inDomain && d.note == "FOV not found: scaled by image size");
    }
    // a disc filling the frame touches every border but covers < 97 %: found
    CHECK(fundus::fovDiameter(disc({401, 401}, 401)) == 401.0);
    // fixed factors: range-checked, never snapped; none and a bundle without reference: factor 1
    d = decideScale(clipped, config, {"fixed", 1.02});
    CHECK(d.method == "fixed" && d.factor == 1.02 && d.inDomain && std::isnan(d.fovDiameter));
    d = decideScale(clipped, config, {"fixed", 2.0});
    CHECK(!d.inDomain && d.note == "scale factor 2 outside the model's range [0.1, 1.5]");
    d = decideScale(clipped, config, {"none", 1.0});
    CHECK(d.method == "none" && d.factor == 1.0 && d.inDomain && d.note.empty());
    d = decideScale(clipped, ScaleConfig(), autoScale);
    CHECK(d.method == "none" && d.factor == 1.0 && d.note == "bundle has no scale reference");
    // sizes: Python round() (half to even), at least 1 px; images and masks resampled, probability back
    CHECK(fundus::scaledSize({5, 7}, 0.5) == cv::Size(2, 4));
    CHECK(fundus::scaledSize({3, 3}, 0.01) == cv::Size(1, 1));
    const cv::Mat photo(584, 565, CV_8UC3, cv::Scalar(10, 120, 30));
    const cv::Mat small = fundus::resampleImage(photo, 540.0 / 721.0);
    CHECK(small.size() == cv::Size(423, 437) && small.type() == CV_8UC3 && small.at<cv::Vec3b>(5, 5)[1] == 120);
    CHECK(fundus::resampleImage(photo, 1.0).data == photo.data);
    const cv::Mat big = fundus::resampleMask(disc({100, 80}, 60), 1.5);
    CHECK(big.size() == cv::Size(150, 120) && big.type() == CV_8UC1 && big.at<std::uint8_t>(60, 75) == 1);
    const cv::Mat back = fundus::resampleBack(cv::Mat(437, 423, CV_32FC1, cv::Scalar(0.25)), photo.size());
    CHECK(back.size() == photo.size() && back.at<float>(583, 564) == 0.25f);
    // --scale: runtime/scale.py parse_scale's rule and words
    auto fixed = fundus::parseScale("0.25");
    CHECK(fixed && fixed->mode == "fixed" && fixed->factor == 0.25);
    CHECK(fundus::parseScale("none") && fundus::parseScale("none")->mode == "none");
    CHECK(fundus::parseScale("big").status().message() == "--scale must be auto, none or a positive number, got 'big'");
    for (const char* bad : {"9", "0", "-1", "nan", "inf", "0.001"}) {
        CHECK(fundus::parseScale(bad).status().message() ==
              std::string("--scale factor must be in [0.01, 4], got '") + bad + "'");
    }
    CHECK(!fundus::parseScale("0x1p-2") && !fundus::parseScale(""));
    auto args = parse({"a.png", "-o", "out", "--scale", "0.5"});
    CHECK(args && args->scale.mode == "fixed" && args->scale.factor == 0.5);
    CHECK(parse({"a.png", "-o", "out"})->scale.mode == "auto");
    CHECK(!parse({"a.png", "-o", "out", "--scale=4.5"}));
    // summary.json's entry: rounded like ScaleDecision.to_dict(), fov_diameter null when not measured
    d = decideScale(clipped, config, autoScale);
    CHECK(d.json().dump() ==
          "{\n  \"factor\": 0.749,\n  \"method\": \"fov\",\n  \"fov_diameter\": 721.0,\n  \"in_domain\": true\n}");
    d = decideScale(clipped, config, {"fixed", 2.0});
    CHECK(d.json().dump().find("\"fov_diameter\": null,\n  \"in_domain\": false,\n  \"note\": \"scale factor 2") !=
          std::string::npos);
    // the quality verdict: out of domain is at best usable, with the reason
    fundus::Quality quality;
    fundus::assessScale(quality, d);
    CHECK(quality.verdict == "usable" && quality.measure("scale_factor") == 2.0 &&
          quality.measure("scale_in_domain") == 0.0 &&
          quality.reasons ==
              std::vector<std::string>({"out of domain: scale not estimated or outside the model's range"}));
    fundus::Quality fine;
    fundus::assessScale(fine, decideScale(clipped, config, autoScale));
    CHECK(fine.verdict == "good" && fine.reasons.empty());
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

// results.csv: Python's csv.QUOTE_MINIMAL cells; an entry without "scale" reads 1.0 / none.
void testResultsCsv() {
    CHECK(fundus::csvCell("a.png") == "a.png");
    CHECK(fundus::csvCell("a,b.png") == "\"a,b.png\"");
    CHECK(fundus::csvCell("say \"hi\"") == "\"say \"\"hi\"\"\"");
    fundus::Json quality = fundus::Json::object();
    quality.set("verdict", "usable").set("reasons", fundus::Json::array().push("noisy").push("dim"));
    fundus::Json entry = fundus::Json::object();
    entry.set("file", "x.png").set("seconds", 0.5).set("vessel_fraction", 0.125).set("quality", quality);
    fundus::Json summary = fundus::Json::object();
    summary.set("images", fundus::Json::array().push(entry))
        .set("failures", fundus::Json::array().push(fundus::Json::object().set("file", "y").set("error", "bad")));
    CHECK(fundus::resultsCsv(summary) ==
          "file,status,reason,quality_verdict,quality_reasons,scale_factor,scale_method,vessel_fraction,seconds\n"
          "x.png,ok,,usable,noisy; dim,1.0,none,0.125,0.5\n"
          "y,failed,bad,,,,,,\n");
}

// ISA-L PNG stripes decode to the same pixels (any stripe count, gray/RGB/RGBA, odd sizes, random data).
void testParallelPng() {
    cv::RNG rng(7);
    for (const cv::Size size : {cv::Size(1, 1), cv::Size(9, 1), cv::Size(37, 50), cv::Size(203, 301)}) {
        for (int channels : {1, 3, 4}) {
            cv::Mat image(size, CV_8UC(channels));
            rng.fill(image, cv::RNG::UNIFORM, 0, 256);
            for (int workers : {1, 2, 3, 8}) {
                const std::string png = fundus::encodePng(image, workers);
                const std::vector<unsigned char> bytes(png.begin(), png.end());
                cv::Mat decoded = cv::imdecode(bytes, cv::IMREAD_UNCHANGED);
                if (channels == 3) cv::cvtColor(decoded, decoded, cv::COLOR_BGR2RGB);
                if (channels == 4) cv::cvtColor(decoded, decoded, cv::COLOR_BGRA2RGBA);
                CHECK(!png.empty() && decoded.size() == image.size() && decoded.type() == image.type() &&
                      cv::countNonZero(cv::Mat(decoded != image).reshape(1)) == 0);
            }
        }
    }
    CHECK(fundus::pngEncodable(cv::Mat(100, 100, CV_8UC3)) && !fundus::pngEncodable(cv::Mat(20, 10, CV_16UC1)));
    CHECK(!fundus::pngEncodable(cv::Mat(20, 10, CV_8UC2)));
    CHECK(fundus::defaultPngWorkers(cv::Mat(100, 100, CV_8UC3)) == 1);
    CHECK(fundus::defaultPngWorkers(cv::Mat(2000, 1000, CV_8UC1)) == fundus::usableCpus());
}

int main() {
    testParallelPng();
    testFlags();
    testResultsCsv();
    testJsonNumbers();
    testDiagnostics();
    testGif();
    testJpegRefusesTruncation();
    testScaleRule();
    testPrintable();
    testDeclaredSize();
    std::printf(failures ? "%d unit checks FAILED\n" : "all unit checks passed\n", failures);
    return failures;
}
