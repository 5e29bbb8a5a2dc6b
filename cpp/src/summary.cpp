#include "fundus/summary.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "fundus/imageio.h"
#include "fundus/output_guard.h"

namespace fundus {

Json& Json::set(const std::string& key, Json value) {
    items_.emplace_back(key, std::move(value));
    return *this;
}

Json& Json::push(Json value) {
    items_.emplace_back(std::string(), std::move(value));
    return *this;
}

const Json* Json::find(const std::string& key) const {
    if (kind_ != Kind::kObject) return nullptr;
    for (const auto& item : items_) {
        if (item.first == key) return &item.second;
    }
    return nullptr;
}

std::string Json::dump(int indent) const {
    switch (kind_) {
        case Kind::kString:
            return "\"" + jsonEscape(text_) + "\"";
        case Kind::kNumber:
            return jsonNumber(number_);
        case Kind::kInteger:
            return std::to_string(integer_);
        case Kind::kBool:
            return integer_ ? "true" : "false";
        case Kind::kObject:
        case Kind::kArray:
            break;
    }
    const bool isObject = kind_ == Kind::kObject;
    if (items_.empty()) return isObject ? "{}" : "[]";
    const std::string pad(std::size_t(indent + 2), ' ');
    std::string out = isObject ? "{\n" : "[\n";
    for (std::size_t i = 0; i < items_.size(); ++i) {
        out += pad;
        if (isObject) out += "\"" + jsonEscape(items_[i].first) + "\": ";
        out += items_[i].second.dump(indent + 2);
        out += i + 1 < items_.size() ? ",\n" : "\n";
    }
    out += std::string(std::size_t(indent), ' ') + (isObject ? "}" : "]");
    return out;
}

std::string jsonEscape(const std::string& text) {
    std::string out;
    for (unsigned char c : printable(text)) {  // bytes that are not UTF-8 as \xNN, like Python
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (c < 0x20) {
                    char buffer[8];
                    std::snprintf(buffer, sizeof(buffer), "\\u%04x", c);
                    out += buffer;
                } else {
                    out.push_back(char(c));  // UTF-8 passes through (Python escapes it; both are valid JSON)
                }
        }
    }
    return out;
}

std::string jsonNumber(double value) {
    if (!std::isfinite(value)) return "null";  // JSON has no NaN/Infinity: never a made-up number
    char text[40] = "0";
    for (int digits = 1; digits <= 17; ++digits) {  // shortest text that reads back exactly
        std::snprintf(text, sizeof(text), "%.*g", digits, value);
        if (std::strtod(text, nullptr) == value) break;
    }
    std::string out = text;
    const double magnitude = std::fabs(value);
    if (out.find('e') != std::string::npos && magnitude >= 1e-4 && magnitude < 1e16) {
        std::snprintf(text, sizeof(text), "%.1f", value);  // Python writes 100000.0, not 1e+05
        out = text;
    }
    if (out.find_first_of(".en") == std::string::npos) out += ".0";
    return out;
}

double roundTo(double value, int digits) {
    const double scale = std::pow(10.0, digits);
    return std::nearbyint(value * scale) / scale;
}

Status writeJsonAtomic(const std::string& path, const Json& value) {
    return writeFileAtomic(path, value.dump() + "\n");
}

}  // namespace fundus
