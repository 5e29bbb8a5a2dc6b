// NumPy .npy files of float32 planes: the parity tests' --debug-dump and the self-test's stored reference.
#pragma once

#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "fundus/status.h"

namespace fundus {

// A float32 array: its data as rows x last-dimension (CV_32F) and its shape as the file gives it.
struct NpyArray {
    cv::Mat data;
    std::vector<int> shape;
};

// A little-endian float32 C-order .npy file (format 1, 2 or 3); kBundle error naming the file otherwise.
Result<NpyArray> readNpy(const std::string& path);

// `plane` as a 2-D float32 .npy file, written atomically.
Status writeNpy(const std::string& path, const cv::Mat& plane);

}  // namespace fundus
