#include "fundus/pipeline.h"

#include <chrono>

#include <opencv2/imgproc.hpp>

#include "fundus/bundle.h"
#include "fundus/fov.h"
#include "fundus/preprocess.h"
#include "fundus/tiling.h"

namespace fundus {

Result<cv::Mat> predictPlane(const cv::Mat& plane, Backend& backend, int tile, int overlap, int batch,
                             const cv::Mat& region) {
    const TileGrid grid = makeGrid(plane.rows, plane.cols, tile, overlap);
    const cv::Mat padded = padToGrid(plane, grid);
    Stitcher stitcher(grid);
    std::vector<cv::Point> origins;  // the tiles to run
    for (const cv::Point& origin : grid.origins()) {
        if (region.empty() || tileTouches(grid, origin, region)) {
            origins.push_back(origin);
        } else {
            stitcher.skip(origin);
        }
    }
    const std::size_t kBatch = std::size_t(std::max(1, batch));  // one batch of tiles in memory at a time
    std::vector<cv::Mat> tiles, predictions;
    for (std::size_t start = 0; start < origins.size(); start += kBatch) {
        tiles.clear();
        const std::size_t end = std::min(origins.size(), start + kBatch);
        for (std::size_t i = start; i < end; ++i)
            tiles.push_back(padded(cv::Rect(origins[i], cv::Size(tile, tile))).clone());
        Status status = backend.predict(tiles, predictions);
        if (!status) return status;
        if (predictions.size() != tiles.size()) {
            return Status::error(ErrorCode::kBackend, "backend returned " + std::to_string(predictions.size()) +
                                                          " tiles for " + std::to_string(tiles.size()));
        }
        for (std::size_t i = start; i < end; ++i) stitcher.add(origins[i], predictions[i - start]);
    }
    return stitcher.result();
}

namespace {
int roundUp(int n, int multiple) {
    return (n + multiple - 1) / multiple * multiple;
}
}  // namespace

bool fitsWhole(const cv::Mat& plane, int wholeImage) {
    const int multiple = bundleLimit("whole_multiple");
    return wholeImage > 0 && std::max(roundUp(plane.rows, multiple), roundUp(plane.cols, multiple)) <= wholeImage;
}

Result<cv::Mat> predictWhole(const cv::Mat& plane, Backend& backend) {
    const int multiple = bundleLimit("whole_multiple");
    const cv::Size padded(roundUp(plane.cols, multiple), roundUp(plane.rows, multiple));
    std::vector<cv::Mat> input{padPlane(plane, padded)}, output;
    Status status = backend.predict(input, output);
    if (!status) return status;
    if (output.size() != 1 || output[0].size() != padded) {
        return Status::error(ErrorCode::kBackend, "backend returned no " + std::to_string(padded.width) + "x" +
                                                      std::to_string(padded.height) + " plane for a whole-image pass");
    }
    return output[0](cv::Rect(0, 0, plane.cols, plane.rows)).clone();
}

Result<Segmentation> segmentImage(const cv::Mat& imageRgb, const Bundle& bundle, Backend& backend,
                                  const FovSetting& fov, double threshold, int batch, const ScaleRequest& scale) {
    using Clock = std::chrono::steady_clock;
    auto seconds = [](Clock::time_point a, Clock::time_point b) {
        return std::chrono::duration<double>(b - a).count();
    };
    Segmentation seg;
    seg.imageRgb = imageRgb;
    const auto start = Clock::now();
    if (fov.mode == "none") {
        seg.fov = cv::Mat(imageRgb.size(), CV_8UC1, cv::Scalar(1));
    } else if (fov.mode == "file") {
        if (fov.fileMask.size() != imageRgb.size()) {
            return Status::error(ErrorCode::kImageFormat, "FOV mask is " + std::to_string(fov.fileMask.cols) + "x" +
                                                              std::to_string(fov.fileMask.rows) + ", image is " +
                                                              std::to_string(imageRgb.cols) + "x" +
                                                              std::to_string(imageRgb.rows));
        }
        seg.fov = fov.fileMask;
    } else {
        auto computed = fovFromImage(imageRgb);
        if (!computed) return computed.status();
        seg.fov = *computed;
    }
    seg.scale = decideScale(seg.fov, bundle.scale, scale);
    auto input = preprocess(resampleImage(imageRgb, seg.scale.factor), bundle.preprocess);
    if (!input) return input.status();
    seg.input = *input;
    const cv::Mat modelFov = resampleMask(seg.fov, seg.scale.factor);

    const auto prepared = Clock::now();
    // tiles holding no FOV pixel are not run (their probability is 0), as runtime.pipeline
    // small planes in one pass when the bundle and backend allow it (runtime.pipeline Segmenter.whole_image)
    auto probability = backend.anySize() && fitsWhole(seg.input, bundle.wholeImage)
                           ? predictWhole(seg.input, backend)
                           : predictPlane(seg.input, backend, bundle.tile, bundle.overlap, batch, modelFov);
    if (!probability) return probability.status();
    seg.probability = resampleBack(*probability, imageRgb.size());
    const auto inferred = Clock::now();

    // vessel where probability >= threshold inside the FOV (vectorised OpenCV passes, not a pixel loop)
    cv::compare(seg.probability, double(float(threshold)), seg.mask, cv::CMP_GE);  // float32 p >= float32 t
    cv::Mat outside;
    cv::compare(seg.fov, 0, outside, cv::CMP_EQ);
    seg.mask.setTo(0, outside);
    const long long inside = (long long)seg.fov.total() - cv::countNonZero(outside);
    const long long vessels = cv::countNonZero(seg.mask);
    seg.fovPixels = int(inside);
    seg.vesselFraction = inside ? double(vessels) / double(inside) : 0.0;
    seg.preprocessSeconds = seconds(start, prepared);
    seg.inferenceSeconds = seconds(prepared, inferred);
    seg.postprocessSeconds = seconds(inferred, Clock::now());
    return seg;
}

cv::Mat probabilityImage(const cv::Mat& probability) {
    // round(p * 255), half to even, saturated: the one OpenCV call runtime/outputs.py probability_png makes
    cv::Mat out;
    cv::addWeighted(probability, 255.0, probability, 0.0, 0.0, out, CV_8U);
    return out;
}

cv::Mat overlayImage(const cv::Mat& imageRgb, const cv::Mat& mask) {
    auto u8 = toUint8(imageRgb);
    cv::Mat out;
    if (!u8) return out;
    if (u8->channels() == 1) {
        cv::cvtColor(*u8, out, cv::COLOR_GRAY2RGB);
    } else {
        out = u8->clone();
    }
    // runtime/pictures.py overlay_rgb: the ring of pixels next to a vessel, not vessel themselves
    cv::Mat grown, ring;
    cv::dilate(mask, grown, cv::Mat::ones(3, 3, CV_8U));
    cv::compare(grown, mask, ring, cv::CMP_GT);  // the dilation covers every vessel pixel: larger only on the ring
    out.setTo(cv::Scalar(kOutlineRgb[0], kOutlineRgb[1], kOutlineRgb[2]), ring);
    return out;
}

}  // namespace fundus
