#include "fundus/quality.h"

#include <algorithm>
#include <cmath>

#include <opencv2/imgproc.hpp>

#include "fundus/fov.h"
#include "fundus/preprocess.h"
#include "fundus/quality_limits.h"

namespace fundus {
namespace {

const char* const kVerdicts[] = {"good", "usable", "reject"};

struct Check {
    std::string measure;
    bool low;       // true: too low is bad
    double usable;  // NaN: no limit
    double reject;
    std::string reason;

    int grade(double value) const {
        auto beyond = [&](double limit) { return !std::isnan(limit) && (low ? value < limit : value > limit); };
        return beyond(reject) ? 2 : (beyond(usable) ? 1 : 0);
    }
};

// runtime/quality_limits.json (embedded at build time): the sizes the measures use and every check.
struct Limits {
    int workSide = 0;
    double focusDiameter = 0;
    int patchSide = 0;
    int edgeMargin = 0;
    int clipLevel = 0;
    double contrastFloor = 0;
    double connectedSpan = 0;
    std::vector<Check> imageChecks, vesselChecks, scaleChecks;
};

double limitOf(const cv::FileNode& node) {
    return node.empty() ? std::nan("") : double(node);
}

std::vector<Check> readChecks(const cv::FileNode& group) {
    std::vector<Check> checks;
    for (const cv::FileNode& c : group) {
        checks.push_back({std::string(c["measure"]), int(c["low"]) != 0, limitOf(c["usable"]), limitOf(c["reject"]),
                          std::string(c["reason"])});
    }
    return checks;
}

const Limits& limits() {
    static const Limits parsed = [] {
        cv::FileStorage fs(kQualityLimitsJson,
                           cv::FileStorage::READ | cv::FileStorage::MEMORY | cv::FileStorage::FORMAT_JSON);
        const cv::FileNode constants = fs["constants"], checks = fs["checks"];
        Limits l;
        l.workSide = int(constants["work_side"]);
        l.focusDiameter = double(constants["focus_diameter"]);
        l.patchSide = int(constants["patch_side"]);
        l.edgeMargin = int(constants["edge_margin"]);
        l.clipLevel = int(constants["clip_level"]);
        l.contrastFloor = double(constants["contrast_floor"]);
        l.connectedSpan = double(constants["connected_span"]);
        l.imageChecks = readChecks(checks["image"]);
        l.vesselChecks = readChecks(checks["vessel"]);
        l.scaleChecks = readChecks(checks["scale"]);
        return l;
    }();
    return parsed;
}

void grade(Quality& quality, const std::vector<Check>& checks) {
    int worst = 0;
    while (worst < 2 && quality.verdict != kVerdicts[worst]) ++worst;
    for (const Check& check : checks) {
        const int g = check.grade(quality.measure(check.measure));
        if (g && std::find(quality.reasons.begin(), quality.reasons.end(), check.reason) == quality.reasons.end()) {
            quality.reasons.push_back(check.reason);
        }
        worst = std::max(worst, g);
    }
    quality.verdict = kVerdicts[worst];
}

cv::Size scaledSize(int rows, int cols, double scale) {
    return {std::max(1, int(std::floor(cols * scale + 0.5))), std::max(1, int(std::floor(rows * scale + 0.5)))};
}

// Area averaging to shrink, bilinear to enlarge.
cv::Mat resized(const cv::Mat& image, cv::Size size) {
    cv::Mat out;
    const bool shrink = double(size.width) * size.height < double(image.cols) * image.rows;
    cv::resize(image, out, size, 0, 0, shrink ? cv::INTER_AREA : cv::INTER_LINEAR);
    return out;
}

// Lower median of non-negative integer values (the value at rank (n-1)/2).
int lowerMedian(const std::vector<int>& values) {
    if (values.empty()) return 0;
    const int top = *std::max_element(values.begin(), values.end());
    std::vector<long long> counts(std::size_t(top) + 1, 0);
    for (int v : values) ++counts[std::size_t(v)];
    const long long rank = (long long)(values.size() - 1) / 2 + 1;
    long long seen = 0;
    for (int v = 0; v <= top; ++v) {
        seen += counts[std::size_t(v)];
        if (seen >= rank) return v;
    }
    return top;
}

// numpy.percentile (linear) of sorted values
double percentile(const std::vector<float>& sorted, double p) {
    const double pos = p / 100.0 * double(sorted.size() - 1);
    const std::size_t lo = std::size_t(std::floor(pos));
    const std::size_t hi = std::min(lo + 1, sorted.size() - 1);
    return double(sorted[lo]) + (double(sorted[hi]) - double(sorted[lo])) * (pos - double(lo));
}

struct Circle {
    double cx = 0, cy = 0, r = 0;
    bool found = false;
};

// Least-squares (Kasa) circle through the FOV's edge points away from the frame.
Circle fitCircle(const cv::Mat& fov) {
    std::vector<std::vector<cv::Point>> contours;
    cv::findContours(fov.clone(), contours, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_NONE);
    double s[3][3] = {{0}}, t[3] = {0};
    long long n = 0;
    for (const auto& contour : contours) {
        for (const cv::Point& p : contour) {
            if (p.x < limits().edgeMargin || p.x > fov.cols - 1 - limits().edgeMargin || p.y < limits().edgeMargin ||
                p.y > fov.rows - 1 - limits().edgeMargin) {
                continue;
            }
            const double row[3] = {double(p.x), double(p.y), 1.0};
            const double b = -(row[0] * row[0] + row[1] * row[1]);
            for (int i = 0; i < 3; ++i) {
                for (int j = 0; j < 3; ++j) s[i][j] += row[i] * row[j];
                t[i] += row[i] * b;
            }
            ++n;
        }
    }
    Circle circle;
    if (n < 16) return circle;
    cv::Mat a(3, 3, CV_64F, s), rhs(3, 1, CV_64F, t), sol;
    if (!cv::solve(a, rhs, sol, cv::DECOMP_LU)) return circle;
    circle.cx = -sol.at<double>(0) / 2.0;
    circle.cy = -sol.at<double>(1) / 2.0;
    const double r2 = circle.cx * circle.cx + circle.cy * circle.cy - sol.at<double>(2);
    if (!(r2 > 0) || std::sqrt(r2) > 2.0 * std::max(fov.rows, fov.cols)) return circle;
    circle.r = std::sqrt(r2);
    circle.found = true;
    return circle;
}

void add(Quality& q, const char* name, double value) {
    q.measures.emplace_back(name, value);
}

void fovMeasures(Quality& q, const cv::Mat& fov, const Circle& circle) {
    const long long inside = cv::countNonZero(fov);
    add(q, "fov_fraction", double(inside) / double(fov.total()));
    double roundness = 0.0, completeness = 0.0;
    if (circle.found) {
        long long both = 0, either = 0, disc = 0;
        const double r2 = circle.r * circle.r;
        for (int y = 0; y < fov.rows; ++y) {
            const auto* f = fov.ptr<std::uint8_t>(y);
            const double dy = (y - circle.cy) * (y - circle.cy);
            for (int x = 0; x < fov.cols; ++x) {
                const bool in = (x - circle.cx) * (x - circle.cx) + dy <= r2;
                disc += in;
                both += in && f[x];
                either += in || f[x];
            }
        }
        roundness = either ? double(both) / double(either) : 0.0;
        completeness = std::min(1.0, double(disc) / (M_PI * r2));
    }
    add(q, "fov_roundness", roundness);
    add(q, "fov_completeness", completeness);
}

void colourMeasures(Quality& q, const cv::Mat& small, const cv::Mat& fov) {
    long long inFov = 0, unclipped = 0;
    double sumAll[3] = {0, 0, 0}, sumUnclipped[3] = {0, 0, 0};
    for (int y = 0; y < small.rows; ++y) {
        const auto* px = small.ptr<cv::Vec3b>(y);
        const auto* f = fov.ptr<std::uint8_t>(y);
        for (int x = 0; x < small.cols; ++x) {
            if (!f[x]) continue;
            ++inFov;
            const bool clipped = std::max(px[x][0], std::max(px[x][1], px[x][2])) >= limits().clipLevel;
            for (int c = 0; c < 3; ++c) sumAll[c] += px[x][c];
            if (!clipped) {
                ++unclipped;
                for (int c = 0; c < 3; ++c) sumUnclipped[c] += px[x][c];
            }
        }
    }
    const bool useUnclipped = double(unclipped) >= 0.005 * double(std::max(1LL, inFov));
    const double* sums = useUnclipped ? sumUnclipped : sumAll;
    const long long count = useUnclipped ? unclipped : inFov;
    double means[3] = {0, 0, 0};
    if (count) {
        for (int c = 0; c < 3; ++c) means[c] = sums[c] / double(count);
    }
    const double total = means[0] + means[1] + means[2];
    add(q, "red_share", total ? means[0] / total : 0.0);
    add(q, "blue_share", total ? means[2] / total : 0.0);
}

void illuminationMeasures(Quality& q, const cv::Mat& small, const cv::Mat& fov, double diameter) {
    cv::Mat luma;
    cv::cvtColor(small, luma, cv::COLOR_RGB2GRAY);
    std::vector<int> inside;
    long long clipped = 0;
    for (int y = 0; y < small.rows; ++y) {
        const auto* l = luma.ptr<std::uint8_t>(y);
        const auto* px = small.ptr<cv::Vec3b>(y);
        const auto* f = fov.ptr<std::uint8_t>(y);
        for (int x = 0; x < small.cols; ++x) {
            if (!f[x]) continue;
            inside.push_back(l[x]);
            clipped += px[x][1] >= limits().clipLevel;
        }
    }
    add(q, "brightness", lowerMedian(inside) / 255.0);
    add(q, "clipped_fraction", double(clipped) / double(std::max<std::size_t>(1, inside.size())));

    const int cell = std::max(1, int(std::floor(diameter / 32.0)));
    const cv::Size coarse = scaledSize(luma.rows, luma.cols, 1.0 / cell);
    cv::Mat fovF, lumaF, weight, total;
    fov.convertTo(fovF, CV_32F);
    luma.convertTo(lumaF, CV_32F);
    cv::resize(fovF, weight, coarse, 0, 0, cv::INTER_AREA);
    cv::resize(lumaF.mul(fovF), total, coarse, 0, 0, cv::INTER_AREA);
    cv::Mat weightS, totalS;
    cv::GaussianBlur(weight, weightS, cv::Size(0, 0), 2.0);
    cv::GaussianBlur(total, totalS, cv::Size(0, 0), 2.0);
    std::vector<float> field;
    for (int y = 0; y < weight.rows; ++y) {
        for (int x = 0; x < weight.cols; ++x) {
            if (weight.at<float>(y, x) > 0.99f) {
                field.push_back(totalS.at<float>(y, x) / std::max(weightS.at<float>(y, x), 1e-6f));
            }
        }
    }
    double unevenness = 0.0;
    if (field.size() >= 4) {
        std::sort(field.begin(), field.end());
        const double p5 = percentile(field, 5), p50 = percentile(field, 50), p95 = percentile(field, 95);
        unevenness = p50 > 0 ? (p95 - p5) / p50 : 0.0;
    }
    add(q, "unevenness", unevenness);
}

void focusMeasures(Quality& q, const cv::Mat& green, const cv::Mat& fovSmall, double diameterPx) {
    const cv::Size size = scaledSize(green.rows, green.cols, limits().focusDiameter / std::max(diameterPx, 1.0));
    cv::Mat plane;
    resized(green, size).convertTo(plane, CV_32F);
    cv::Mat fov;
    cv::resize(fovSmall, fov, size, 0, 0, cv::INTER_NEAREST);
    const int rim = 2 * int(std::floor(0.04 * limits().focusDiameter)) + 1;
    cv::erode(fov, fov, cv::getStructuringElement(cv::MORPH_ELLIPSE, {rim, rim}));
    cv::Mat fine, coarse;
    cv::GaussianBlur(plane, fine, cv::Size(0, 0), 1.0);
    cv::GaussianBlur(plane, coarse, cv::Size(0, 0), 4.0);
    double fineSum = 0, vesselSum = 0, sum = 0;
    long long n = 0;
    for (int y = 0; y < plane.rows; ++y) {
        const auto* p = plane.ptr<float>(y);
        const auto* a = fine.ptr<float>(y);
        const auto* b = coarse.ptr<float>(y);
        const auto* f = fov.ptr<std::uint8_t>(y);
        for (int x = 0; x < plane.cols; ++x) {
            if (!f[x]) continue;
            fineSum += std::fabs(p[x] - a[x]);
            vesselSum += std::fabs(a[x] - b[x]);
            sum += p[x];
            ++n;
        }
    }
    if (!n) {
        add(q, "contrast", 0.0);
        add(q, "focus", 0.0);
        return;
    }
    const double fineDetail = fineSum / double(n), vesselDetail = vesselSum / double(n), mean = sum / double(n);
    const double floor = std::max(vesselDetail, limits().contrastFloor * mean);
    add(q, "contrast", mean > 0 ? vesselDetail / mean : 0.0);
    add(q, "focus", floor > 0 ? fineDetail / floor : 0.0);
}

int floorDiv8(int v) {
    return (v >= 0 ? v / 8 : -((-v + 7) / 8)) * 8;
}

void patchMeasures(Quality& q, const cv::Mat& green, double cx, double cy, double radius) {
    const int side = std::min(limits().patchSide, int(std::floor(1.2 * radius)));
    const int x0 = std::max(0, floorDiv8(std::min(green.cols - side, int(std::floor(cx - side / 2.0)))));
    const int y0 = std::max(0, floorDiv8(std::min(green.rows - side, int(std::floor(cy - side / 2.0)))));
    const int w = std::max(0, std::min(side, green.cols - x0)), h = std::max(0, std::min(side, green.rows - y0));
    if (std::min(w, h) < 16) {
        add(q, "noise", 0.0);
        add(q, "blockiness", 1.0);
        return;
    }
    cv::Mat patch;
    green(cv::Rect(x0, y0, w, h)).convertTo(patch, CV_32F);
    const float k[9] = {1, -2, 1, -2, 4, -2, 1, -2, 1};
    cv::Mat response;
    cv::filter2D(patch, response, -1, cv::Mat(3, 3, CV_32F, const_cast<float*>(k)));
    std::vector<int> values;
    values.reserve(std::size_t(w - 2) * std::size_t(h - 2));
    for (int y = 1; y < h - 1; ++y) {
        const auto* r = response.ptr<float>(y);
        for (int x = 1; x < w - 1; ++x) values.push_back(int(std::lround(std::fabs(r[x]))));
    }
    const double sigma = lowerMedian(values) / (6.0 * 0.6745);
    const double mean = cv::mean(patch)[0];
    add(q, "noise", mean > 0 ? sigma / mean : 0.0);
    // |difference| of neighbours across a JPEG block edge (index 8k+7 | 8k+8) vs all other neighbours
    double across[2] = {0, 0}, within[2] = {0, 0};
    long long nAcross[2] = {0, 0}, nWithin[2] = {0, 0};
    for (int y = 0; y < h; ++y) {
        const auto* p = patch.ptr<float>(y);
        const auto* below = y + 1 < h ? patch.ptr<float>(y + 1) : nullptr;
        for (int x = 0; x < w; ++x) {
            if (x + 1 < w) {
                const double d = std::fabs(p[x + 1] - p[x]);
                if (x % 8 == 7) {
                    across[0] += d, ++nAcross[0];
                } else {
                    within[0] += d, ++nWithin[0];
                }
            }
            if (below) {
                const double d = std::fabs(below[x] - p[x]);
                if (y % 8 == 7) {
                    across[1] += d, ++nAcross[1];
                } else {
                    within[1] += d, ++nWithin[1];
                }
            }
        }
    }
    double ratio = 0.0;
    for (int axis = 0; axis < 2; ++axis) {
        const double a = nAcross[axis] ? across[axis] / double(nAcross[axis]) : 0.0;
        const double b = nWithin[axis] ? within[axis] / double(nWithin[axis]) : 0.0;
        ratio += (a + 0.1) / (b + 0.1);
    }
    add(q, "blockiness", ratio / 2.0);
}

}  // namespace

double Quality::measure(const std::string& name) const {
    for (const auto& item : measures) {
        if (item.first == name) return item.second;
    }
    return 0.0;
}

Result<Quality> assessImage(const cv::Mat& imageRgb) {
    auto u8 = toUint8(imageRgb);
    if (!u8) return u8.status();
    cv::Mat rgb;  // read only: the photograph itself when it is 8-bit RGB (runtime/pictures.py rgb_view)
    if (u8->channels() == 3) {
        rgb = *u8;
    } else if (u8->channels() == 4) {
        cv::cvtColor(*u8, rgb, cv::COLOR_RGBA2RGB);
    } else {
        cv::Mat first;
        cv::extractChannel(*u8, first, 0);
        cv::Mat planes[3] = {first, first, first};
        cv::merge(planes, 3, rgb);
    }
    const double scale = double(limits().workSide) / double(std::max(rgb.rows, rgb.cols));
    const cv::Mat small = resized(rgb, scaledSize(rgb.rows, rgb.cols, scale));
    auto fovResult = fovFromImage(small);
    if (!fovResult) return fovResult.status();
    const cv::Mat fov = *fovResult;
    const Circle circle = fitCircle(fov);
    Quality q;
    fovMeasures(q, fov, circle);
    double cx, cy, radius;
    if (circle.found) {
        cx = circle.cx / scale, cy = circle.cy / scale, radius = circle.r / scale;
    } else {
        std::vector<cv::Point> points;
        cv::findNonZero(fov, points);
        if (points.empty()) {
            cx = rgb.cols / 2.0, cy = rgb.rows / 2.0, radius = std::max(fov.rows, fov.cols) / 2.0 / scale;
        } else {
            double sx = 0, sy = 0;
            cv::Point low = points[0], high = points[0];  // the bounding box (OpenCV 5 moved boundingRect)
            for (const cv::Point& p : points) {
                sx += p.x, sy += p.y;
                low = {std::min(low.x, p.x), std::min(low.y, p.y)};
                high = {std::max(high.x, p.x), std::max(high.y, p.y)};
            }
            cx = sx / double(points.size()) / scale, cy = sy / double(points.size()) / scale;
            radius = (std::max(high.x - low.x, high.y - low.y) + 1) / 2.0 / scale;
        }
    }
    add(q, "fov_diameter_px", 2.0 * radius);
    colourMeasures(q, small, fov);
    illuminationMeasures(q, small, fov, 2.0 * radius * scale);
    cv::Mat green;
    cv::extractChannel(rgb, green, 1);
    focusMeasures(q, green, fov, 2.0 * radius);
    patchMeasures(q, green, cx, cy, radius);
    grade(q, limits().imageChecks);
    return q;
}

void assessVessels(Quality& quality, const cv::Mat& mask, const cv::Mat& fov) {
    const long long inside = cv::countNonZero(fov);
    cv::Mat vessels = mask != 0;
    const long long total = cv::countNonZero(vessels);
    double connected = 0.0;
    if (total) {
        cv::Mat labels, stats, centroids;
        const int count = cv::connectedComponentsWithStats(vessels, labels, stats, centroids, 8);
        const double span = limits().connectedSpan * quality.measure("fov_diameter_px");
        long long area = 0;
        for (int i = 1; i < count; ++i) {
            const int extent = std::max(stats.at<int>(i, cv::CC_STAT_WIDTH), stats.at<int>(i, cv::CC_STAT_HEIGHT));
            if (extent >= span) area += stats.at<int>(i, cv::CC_STAT_AREA);
        }
        connected = double(area) / double(total);
    }
    add(quality, "vessel_fraction", inside ? double(total) / double(inside) : 0.0);
    add(quality, "vessel_connected", connected);
    grade(quality, limits().vesselChecks);
}

void assessScale(Quality& quality, const ScaleDecision& scale) {
    add(quality, "scale_factor", scale.factor);
    add(quality, "scale_in_domain", scale.inDomain ? 1.0 : 0.0);
    grade(quality, limits().scaleChecks);
}

Json qualityJson(const Quality& quality) {
    Json reasons = Json::array();
    for (const std::string& reason : quality.reasons) reasons.push(reason);
    Json measures = Json::object();
    for (const auto& item : quality.measures) measures.set(item.first, roundTo(item.second, 6));
    Json out = Json::object();
    out.set("verdict", quality.verdict).set("reasons", reasons).set("measures", measures);
    return out;
}

std::string joinReasons(const Quality& quality) {
    std::string out;
    for (const std::string& reason : quality.reasons) out += (out.empty() ? "" : "; ") + reason;
    return out;
}

}  // namespace fundus
