// One photograph through the runtime: read, preprocess, tile, predict, stitch, threshold, FOV.
#pragma once

#include <string>

#include <opencv2/core.hpp>

#include "fundus/backend.h"
#include "fundus/bundle.h"
#include "fundus/scale.h"
#include "fundus/status.h"

namespace fundus {

struct Segmentation {
    cv::Mat imageRgb;     // the photograph as read (RGB order or gray, original depth)
    cv::Mat input;        // CV_32F preprocessed plane at the model's scale (model input before tiling)
    cv::Mat probability;  // CV_32F vessel probability, input size (0 in tiles holding no FOV pixel)
    cv::Mat fov;          // CV_8U 0/1
    cv::Mat mask;         // CV_8U 0/255: probability >= threshold inside the FOV
    double vesselFraction = 0.0;
    int fovPixels = 0;
    ScaleDecision scale;              // how the photograph was resampled for the model (runtime/scale.py)
    double preprocessSeconds = 0.0;   // timings as runtime.pipeline: preprocess + FOV,
    double inferenceSeconds = 0.0;    // tiles + backend + stitch,
    double postprocessSeconds = 0.0;  // threshold
};

struct FovSetting {
    std::string mode = "auto";  // auto | none | file
    cv::Mat fileMask;           // CV_8U 0/1 when mode == "file"
};

// Vessel probability of a preprocessed plane: tiles (reflect-padded), backend, blended stitch.
// With a `region` (CV_8U, plane size; e.g. the FOV), tiles holding none of it are not run and
// count as probability 0: every pixel of the region keeps the value it has with all tiles run.
Result<cv::Mat> predictPlane(const cv::Mat& plane, Backend& backend, int tile, int overlap, int batch = 4,
                             const cv::Mat& region = cv::Mat());
// A plane whose sides padded to multiples of bundleLimit("whole_multiple") (the U-Net halves it 4 times) are
// both <= wholeImage (0: never) runs in one pass when the backend takes any size (runtime/inference.py
// fits_whole; model.json tiling.whole_image).
bool fitsWhole(const cv::Mat& plane, int wholeImage);
// Vessel probability of a preprocessed plane in one model pass: padded like tiles, cropped back
// (runtime/inference.py predict_whole).
Result<cv::Mat> predictWhole(const cv::Mat& plane, Backend& backend);
Result<Segmentation> segmentImage(const cv::Mat& imageRgb, const Bundle& bundle, Backend& backend,
                                  const FovSetting& fov, double threshold, int batch = 4,
                                  const ScaleRequest& scale = ScaleRequest());

// FOV from the full photograph, then (runtime/pipeline.py Segmenter.segment) the scale decision: the
// photograph and its FOV are resampled by its factor, preprocessed and tiled there (tiles outside
// the resampled FOV skipped), and the probability is brought back to the input's size bilinearly;
// the mask is thresholded inside the full-size FOV.
// Outline colour of the overlay, as runtime/pictures.py (OUTLINE_RGB).
constexpr int kOutlineRgb[3] = {0, 255, 255};

// Output images: prob as round(p * 255) (half to even); overlay = the photograph as 8-bit RGB
// with a one-pixel kOutlineRgb ring just outside every vessel (3x3 dilation minus the vessel).
cv::Mat probabilityImage(const cv::Mat& probability);
cv::Mat overlayImage(const cv::Mat& imageRgb, const cv::Mat& mask);

}  // namespace fundus
