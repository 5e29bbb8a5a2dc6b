// GIF decoding, the project's own (Debian's OpenCV 4.6 has no GIF decoder): the first image frame,
// composited onto the logical screen the way Pillow's Image.open(p) does, with the channels
// runtime/imageio.read_image gives it (RGB, or gray for a gray-level palette).
#pragma once

#include <cstdint>
#include <vector>

#include <opencv2/core.hpp>

#include "fundus/status.h"

namespace fundus {

// True when the bytes start with "GIF87a" or "GIF89a".
bool isGif(const std::vector<std::uint8_t>& bytes);

// First frame as CV_8UC3 in RGB order, or as CV_8UC1 when its colour table is i -> (i,i,i) or
// there is none (Pillow's mode "L", which runtime/imageio.read_image keeps as one channel). Like
// Pillow: pixels outside the frame get the colour of the transparent index if the frame has one,
// else of index 0; transparent pixels keep their index's colour; with a gray-level table, or none,
// index i is gray i; indices past the table are black; a frame reaching past the logical screen
// enlarges the image; LZW code sizes 1..8 (size 1: clear 2, end 3, codes 2 bits wide throughout).
// Corrupt or truncated data gives a kImageRead error naming the problem ("truncated GIF ...",
// "bad LZW code", ...), not the file.
Result<cv::Mat> decodeGif(const std::vector<std::uint8_t>& bytes);

}  // namespace fundus
