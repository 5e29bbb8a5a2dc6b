#include "fundus/fov.h"

#include <algorithm>

#include <opencv2/imgproc.hpp>

#include "fundus/preprocess.h"

namespace fundus {
namespace {

// runtime/fov.py FOV_WORK_SIDE: a photograph whose longer side is above this finds its FOV on a copy shrunk
// to it (INTER_AREA); the mask comes back by nearest neighbour.
constexpr int kFovWorkSide = 1024;

// fovFromImage at the size of `image` (8-bit).
cv::Mat fovMask(const cv::Mat& image, int threshold) {
    const int channels = image.channels();
    cv::Mat plane(image.size(), CV_8UC1);
    for (int y = 0; y < image.rows; ++y) {
        const auto* src = image.ptr<std::uint8_t>(y);
        auto* dst = plane.ptr<std::uint8_t>(y);
        for (int x = 0; x < image.cols; ++x, src += channels) {
            if (channels >= 3) {
                const std::uint8_t brightest = std::max(src[0], std::max(src[1], src[2]));
                dst[x] = std::max<std::uint8_t>(src[0], brightest / 2);
            } else {
                dst[x] = src[0];
            }
        }
    }
    cv::Mat binary = plane > threshold;  // 0/255
    binary.setTo(1, binary);
    cv::morphologyEx(binary, binary, cv::MORPH_OPEN, cv::getStructuringElement(cv::MORPH_ELLIPSE, {7, 7}));
    cv::Mat labels, stats, centroids;
    const int count = cv::connectedComponentsWithStats(binary, labels, stats, centroids, 8);
    if (count <= 1) return cv::Mat(image.size(), CV_8UC1, cv::Scalar(1));
    int largest = 1;
    for (int i = 2; i < count; ++i) {
        if (stats.at<int>(i, cv::CC_STAT_AREA) > stats.at<int>(largest, cv::CC_STAT_AREA)) largest = i;
    }
    cv::Mat mask = labels == largest;
    // fill holes: flood the background from a 1-px zero border; everything not reached is inside
    cv::Mat flood;
    cv::copyMakeBorder(mask / 255, flood, 1, 1, 1, 1, cv::BORDER_CONSTANT, cv::Scalar(0));
    cv::floodFill(flood, cv::Point(0, 0), cv::Scalar(2));
    mask = flood(cv::Rect(1, 1, image.cols, image.rows)) != 2;
    mask.setTo(1, mask);
    cv::erode(mask, mask, cv::getStructuringElement(cv::MORPH_ELLIPSE, {5, 5}));
    return mask;
}

}  // namespace

Result<cv::Mat> fovFromImage(const cv::Mat& imageRgb, int threshold) {
    auto u8 = toUint8(imageRgb);
    if (!u8) return u8.status();
    const cv::Mat& image = *u8;
    const double factor = double(kFovWorkSide) / std::max(image.rows, image.cols);
    if (factor >= 1) return fovMask(image, threshold);
    const cv::Size size(std::max(1, int(image.cols * factor + 0.5)), std::max(1, int(image.rows * factor + 0.5)));
    cv::Mat small, mask;
    cv::resize(image, small, size, 0, 0, cv::INTER_AREA);
    cv::resize(fovMask(small, threshold), mask, image.size(), 0, 0, cv::INTER_NEAREST);
    return mask;
}

}  // namespace fundus
