// Tiles cut from the (reflect-padded) plane and stitched back with a tent window, on the grid of
// runtime/tiling.py (last tile aligned to the end). Sums accumulate in float32 here and in float64
// in Python; the stitched maps agree to float rounding (the parity test holds masks equal and the
// probability PNGs within 1/255).
#pragma once

#include <vector>

#include <opencv2/core.hpp>

namespace fundus {

// Start offsets along one axis; tiles of `tile` px with `stride` cover `length` px.
std::vector<int> tileOrigins(int length, int tile, int stride);
// tile x tile CV_32F outer product of max(1 - |linspace(-1, 1, tile)|, floor).
cv::Mat blendWindow(int tile, double floor = 0.05);

struct TileGrid {
    int height = 0;
    int width = 0;
    int tile = 0;
    int stride = 0;

    cv::Size paddedSize() const { return {std::max(width, tile), std::max(height, tile)}; }
    std::vector<cv::Point> origins() const;  // (x, y) top-left corners, rows first like Python
};

TileGrid makeGrid(int height, int width, int tile, int overlap);
// Whether the tile at `origin` holds at least one non-zero pixel of `region` (CV_8U, image size).
bool tileTouches(const TileGrid& grid, cv::Point origin, const cv::Mat& region);
// Bottom/right padding up to the grid's padded size: numpy 'reflect' (BORDER_REFLECT_101) when
// both pads are smaller than the image, else 'symmetric' (BORDER_REFLECT).
cv::Mat padToGrid(const cv::Mat& plane, const TileGrid& grid);
// The same padding up to `size` (runtime/tiling.py pad_plane).
cv::Mat padPlane(const cv::Mat& plane, cv::Size size);

class Stitcher {
public:
    explicit Stitcher(const TileGrid& grid);
    void add(cv::Point origin, const cv::Mat& prediction);  // tile x tile CV_32F
    void skip(cv::Point origin);                            // a tile not run: prediction 0, weight kept
    cv::Mat result() const;                                 // height x width CV_32F weighted mean

private:
    TileGrid grid_;
    cv::Mat window_;
    cv::Mat sum_;
    cv::Mat weight_;
};

}  // namespace fundus
