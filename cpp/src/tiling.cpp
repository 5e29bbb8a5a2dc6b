#include "fundus/tiling.h"

#include <cmath>

namespace fundus {

std::vector<int> tileOrigins(int length, int tile, int stride) {
    if (length <= tile) return {0};
    std::vector<int> origins;
    for (int o = 0; o <= length - tile; o += stride) origins.push_back(o);
    if (origins.back() != length - tile) origins.push_back(length - tile);
    return origins;
}

cv::Mat blendWindow(int tile, double floor) {
    // numpy.linspace: start + i * step, with the last sample set to stop exactly.
    std::vector<double> ramp(tile);
    const double step = tile > 1 ? 2.0 / double(tile - 1) : 0.0;
    for (int i = 0; i < tile; ++i) {
        double v = (tile > 1 && i == tile - 1) ? 1.0 : double(i) * step + -1.0;
        ramp[i] = std::max(1.0 - std::fabs(v), floor);
    }
    cv::Mat window(tile, tile, CV_32FC1);
    for (int y = 0; y < tile; ++y) {
        auto* row = window.ptr<float>(y);
        for (int x = 0; x < tile; ++x) row[x] = float(ramp[y] * ramp[x]);
    }
    return window;
}

std::vector<cv::Point> TileGrid::origins() const {
    const cv::Size padded = paddedSize();
    std::vector<cv::Point> out;
    for (int y : tileOrigins(padded.height, tile, stride)) {
        for (int x : tileOrigins(padded.width, tile, stride)) out.emplace_back(x, y);
    }
    return out;
}

TileGrid makeGrid(int height, int width, int tile, int overlap) {
    return {height, width, tile, tile - overlap};
}

cv::Mat padToGrid(const cv::Mat& plane, const TileGrid& grid) {
    return padPlane(plane, grid.paddedSize());
}

cv::Mat padPlane(const cv::Mat& plane, cv::Size padded) {
    const int padY = padded.height - plane.rows;
    const int padX = padded.width - plane.cols;
    if (padY == 0 && padX == 0) return plane;
    const int mode = (padY < plane.rows && padX < plane.cols) ? cv::BORDER_REFLECT_101 : cv::BORDER_REFLECT;
    cv::Mat out;
    cv::copyMakeBorder(plane, out, 0, padY, 0, padX, mode);
    return out;
}

bool tileTouches(const TileGrid& grid, cv::Point origin, const cv::Mat& region) {
    const cv::Rect inside = cv::Rect(origin, cv::Size(grid.tile, grid.tile)) & cv::Rect(0, 0, region.cols, region.rows);
    return !inside.empty() && cv::countNonZero(region(inside)) > 0;
}

Stitcher::Stitcher(const TileGrid& grid)
    : grid_(grid),
      window_(blendWindow(grid.tile)),
      sum_(cv::Mat::zeros(grid.paddedSize(), CV_32FC1)),
      weight_(cv::Mat::zeros(grid.paddedSize(), CV_32FC1)) {}

void Stitcher::add(cv::Point origin, const cv::Mat& prediction) {
    const int t = grid_.tile;
    for (int y = 0; y < t; ++y) {
        const auto* pred = prediction.ptr<float>(y);
        const auto* win = window_.ptr<float>(y);
        auto* sum = sum_.ptr<float>(origin.y + y) + origin.x;
        auto* weight = weight_.ptr<float>(origin.y + y) + origin.x;
        for (int x = 0; x < t; ++x) {
            sum[x] += pred[x] * win[x];
            weight[x] += win[x];
        }
    }
}

void Stitcher::skip(cv::Point origin) {
    const cv::Rect rect(origin, cv::Size(grid_.tile, grid_.tile));
    weight_(rect) += window_;  // the blend weights stay those of the whole grid, as runtime/tiling.py
}

cv::Mat Stitcher::result() const {
    cv::Mat out(grid_.height, grid_.width, CV_32FC1);
    for (int y = 0; y < grid_.height; ++y) {
        const auto* sum = sum_.ptr<float>(y);
        const auto* weight = weight_.ptr<float>(y);
        auto* dst = out.ptr<float>(y);
        for (int x = 0; x < grid_.width; ++x) dst[x] = sum[x] / weight[x];
    }
    return out;
}

}  // namespace fundus
