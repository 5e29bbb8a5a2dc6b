// Image reading (8/16-bit, gray/RGB/RGBA; RGB channel order like runtime/imageio.py) and
// atomic writes (temporary file in the same folder, fsync, rename).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "fundus/status.h"

namespace fundus {

// The pixel cap (--max-pixels): an image whose header declares more is refused before decoding
// (runtime/imageio.py DEFAULT_MAX_PIXELS, same default and message).
constexpr std::uint64_t kDefaultMaxPixels = 100000000;
void setMaxPixels(std::uint64_t limit);
// (width, height) a PNG, JPEG, GIF, BMP, TIFF or PNM header declares; false for other formats or a
// header too damaged to say. Twin of runtime/image_header.py declared_size.
bool declaredSize(const std::vector<std::uint8_t>& data, std::uint64_t& width, std::uint64_t& height);
// Refuses (kImageRead, naming `path`) an image of more pixels than the cap.
Status checkPixels(const std::string& path, std::uint64_t width, std::uint64_t height);

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

}  // namespace fundus
