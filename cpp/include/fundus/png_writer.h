// PNG encoding of 8-bit images with ISA-L's deflate, large ones in parallel stripes (runtime/png_writer.py):
// Sub filter on every row, ISA-L level 1, each stripe of rows compressed by its own thread and ended by
// a full flush, so the file holds one ordinary zlib stream that every reader decodes.
#pragma once

#include <string>

#include <opencv2/core.hpp>

namespace fundus {

// Below this many pixels one stream is as fast (runtime/png_writer.py PARALLEL_MIN_PIXELS).
constexpr long long kParallelPngMinPixels = 2000000;

// The CPUs this process may run on.
int usableCpus();
// Whether encodePng writes `image`: CV_8U with 1, 3 or 4 channels.
bool pngEncodable(const cv::Mat& image);
// Stripes encodePng uses by default: every usable CPU for kParallelPngMinPixels or more, else 1.
int defaultPngWorkers(const cv::Mat& image);
// PNG bytes of a CV_8U gray, RGB or RGBA image (channels in PNG order), compressed by `workers`
// threads in as many stripes (0: defaultPngWorkers). Empty on a deflate failure.
std::string encodePng(const cv::Mat& image, int workers = 0);

}  // namespace fundus
