// Field-of-view mask computed from the photograph, exactly as runtime/fov.py.
#pragma once

#include <opencv2/core.hpp>

#include "fundus/status.h"

namespace fundus {

// CV_8U mask (1 inside the FOV, 0 outside) of an RGB-ordered or gray photograph: threshold
// max(R, max(R,G,B)/2) > threshold, open (7x7 ellipse), largest 8-connected component, fill
// holes, erode (5x5 ellipse). No component -> everything is inside.
Result<cv::Mat> fovFromImage(const cv::Mat& imageRgb, int threshold = 20);

}  // namespace fundus
