// Image reading (8/16-bit, gray/RGB/RGBA; RGB channel order like runtime/imageio.py) and
// atomic writes (temporary file in the same folder, fsync, rename).
#pragma once

#include <string>

#include <opencv2/core.hpp>

#include "fundus/status.h"

namespace fundus {

// Gray or 3-channel RGB-ordered image at its own bit depth; alpha is dropped. Errors name the file.
Result<cv::Mat> readImage(const std::string& path);
// Channels a PNG or TIFF file stores, alpha included, from its header (OpenCV hides it: a gray+alpha
// PNG decodes to 4 channels, a gray+alpha TIFF to 1); 0 for other formats or an unreadable header.
// Twin of runtime/image_header.py; summary.json reports it.
int storedChannels(const std::string& path);
// Mask file -> CV_8U 0/1: any channel set; values > 127 when the image's maximum is above 1.
Result<cv::Mat> readBinaryMask(const std::string& path);

Status writeFileAtomic(const std::string& path, const std::string& bytes);
// Encodes by the file's extension; 3-channel input is RGB-ordered.
Status writeImageAtomic(const std::string& path, const cv::Mat& image);
Status makeDirectories(const std::string& path);

// Last path component without its final extension ("a/b/01_test.tif" -> "01_test").
std::string pathStem(const std::string& path);

}  // namespace fundus
