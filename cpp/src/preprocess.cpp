#include "fundus/preprocess.h"

#include <opencv2/imgproc.hpp>

namespace fundus {

// Build with -ffp-contract=off: numpy evaluates these float32 expressions without fused
// multiply-add, and a different rounding flips the +0.5 truncation on some pixels.

Result<cv::Mat> toUint8(const cv::Mat& image) {
    const int depth = image.depth();
    if (depth == CV_8U) return image;
    cv::Mat out(image.size(), CV_MAKETYPE(CV_8U, image.channels()));
    const int n = image.cols * image.channels();
    if (depth == CV_16U) {
        for (int y = 0; y < image.rows; ++y) {
            const auto* src = image.ptr<std::uint16_t>(y);
            auto* dst = out.ptr<std::uint8_t>(y);
            for (int i = 0; i < n; ++i) dst[i] = std::uint8_t(float(src[i]) / 257.0f + 0.5f);
        }
        return out;
    }
    if (depth == CV_32F || depth == CV_64F) {
        cv::Mat f32;
        image.convertTo(f32, CV_MAKETYPE(CV_32F, image.channels()));
        for (int y = 0; y < image.rows; ++y) {
            const auto* src = f32.ptr<float>(y);
            auto* dst = out.ptr<std::uint8_t>(y);
            for (int i = 0; i < n; ++i) {
                float v = src[i] * 255.0f + 0.5f;
                v = v < 0.0f ? 0.0f : (v > 255.0f ? 255.0f : v);
                dst[i] = std::uint8_t(v);
            }
        }
        return out;
    }
    return Status::error(ErrorCode::kImageFormat, "unsupported pixel type (depth " + std::to_string(depth) +
                                                      "; expected 8-bit, 16-bit or float)");
}

Result<cv::Mat> toSingleChannel(const cv::Mat& imageRgb, const std::string& channel) {
    auto u8 = toUint8(imageRgb);
    if (!u8) return u8.status();
    const cv::Mat& image = *u8;
    const int channels = image.channels();
    if (channels == 1) return image;
    if (channels != 3 && channels != 4) {
        return Status::error(ErrorCode::kImageFormat,
                             "expected a gray, RGB or RGBA image, got " + std::to_string(channels) + " channels");
    }
    cv::Mat out(image.size(), CV_8UC1);
    const float wr = 0.299f, wg = 0.587f, wb = 0.114f;
    for (int y = 0; y < image.rows; ++y) {
        const auto* src = image.ptr<std::uint8_t>(y);
        auto* dst = out.ptr<std::uint8_t>(y);
        for (int x = 0; x < image.cols; ++x, src += channels) {
            if (channel == "green") {
                dst[x] = src[1];
                continue;
            }
            float gray = float(src[0]) * wr + float(src[1]) * wg;
            gray = gray + float(src[2]) * wb;
            gray = gray + 0.5f;
            gray = gray < 0.0f ? 0.0f : (gray > 255.0f ? 255.0f : gray);
            dst[x] = std::uint8_t(gray);
        }
    }
    return out;
}

cv::Mat applyClahe(const cv::Mat& plane, double clip, int grid) {
    cv::Mat out;
    cv::createCLAHE(clip, cv::Size(grid, grid))->apply(plane, out);
    return out;
}

Result<cv::Mat> enhance(const cv::Mat& imageRgb, const PreprocessConfig& config) {
    auto plane = toSingleChannel(imageRgb, config.channel);
    if (!plane) return plane.status();
    return applyClahe(*plane, config.claheClip, config.claheGrid);
}

cv::Mat normalise(const cv::Mat& planeU8, const PreprocessConfig& config) {
    const float mean = float(config.mean);
    const float stdev = float(config.std);
    cv::Mat out(planeU8.size(), CV_32FC1);
    for (int y = 0; y < planeU8.rows; ++y) {
        const auto* src = planeU8.ptr<std::uint8_t>(y);
        auto* dst = out.ptr<float>(y);
        for (int x = 0; x < planeU8.cols; ++x) dst[x] = (float(src[x]) / 255.0f - mean) / stdev;
    }
    return out;
}

Result<cv::Mat> preprocess(const cv::Mat& imageRgb, const PreprocessConfig& config) {
    auto enhanced = enhance(imageRgb, config);
    if (!enhanced) return enhanced.status();
    return normalise(*enhanced, config);
}

}  // namespace fundus
