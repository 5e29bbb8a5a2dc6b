// JPEG decoding with libjpeg directly: OpenCV 4.6's reader supplies missing data as grey without
// a word, so a half-received photograph would be segmented. Every libjpeg warning ("Premature end
// of JPEG file", "Corrupt JPEG data: ...") refuses the file, as runtime/decode.py does with
// simplejpeg (libjpeg-turbo, strict); the pixels are libjpeg's defaults (accurate DCT, fancy
// upsampling), the same as OpenCV's and simplejpeg's.
#pragma once

#include <cstdint>
#include <vector>

#include <opencv2/core.hpp>

#include "fundus/status.h"

namespace fundus {

// True when the bytes start with a JPEG SOI marker (FF D8 FF).
bool isJpeg(const std::vector<std::uint8_t>& bytes);

// CV_8UC3 in RGB order, or CV_8UC1 for a one-component JPEG; kImageRead errors carry libjpeg's
// message ("Premature end of JPEG file"), not the file's name. CMYK and YCCK files are refused.
Result<cv::Mat> decodeJpeg(const std::vector<std::uint8_t>& bytes);

}  // namespace fundus
