// summary.json in the layout of runtime/cli.py (same keys and order), written atomically; plus a
// small ordered JSON value type to build it and the .npy writer of the hidden --debug-dump.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <opencv2/core.hpp>

#include "fundus/status.h"

namespace fundus {

// An ordered JSON value without null (model.json readers in C++ choke on it), except that a
// non-finite number is written as null, never as a made-up number (no flag lets one through).
class Json {
public:
    enum class Kind { kString, kNumber, kInteger, kBool, kObject, kArray };

    Json(const char* text) : kind_(Kind::kString), text_(text) {}             // NOLINT
    Json(std::string text) : kind_(Kind::kString), text_(std::move(text)) {}  // NOLINT
    Json(double number) : kind_(Kind::kNumber), number_(number) {}            // NOLINT
    Json(int integer) : kind_(Kind::kInteger), integer_(integer) {}           // NOLINT
    Json(long long integer) : kind_(Kind::kInteger), integer_(integer) {}     // NOLINT
    static Json boolean(bool flag) {  // explicit: a bool constructor would catch pointers
        Json out(Kind::kBool);
        out.integer_ = flag;
        return out;
    }
    static Json object() { return Json(Kind::kObject); }
    static Json array() { return Json(Kind::kArray); }

    Json& set(const std::string& key, Json value);  // object: append (keys kept in order)
    Json& push(Json value);                         // array: append
    // Python json.dumps(indent=2) layout: nested containers one item per line.
    std::string dump(int indent = 0) const;

    // Reading back (results.csv is built from summary.json's content, as in Python).
    Kind kind() const { return kind_; }
    const Json* find(const std::string& key) const;  // object member, or nullptr
    const std::vector<std::pair<std::string, Json>>& items() const { return items_; }
    const std::string& text() const { return text_; }
    double number() const { return kind_ == Kind::kInteger ? double(integer_) : number_; }
    bool truthy() const { return kind_ == Kind::kBool && integer_ != 0; }

private:
    explicit Json(Kind kind) : kind_(kind) {}
    Kind kind_;
    std::string text_;
    double number_ = 0.0;
    long long integer_ = 0;
    std::vector<std::pair<std::string, Json>> items_;  // object members / array items (key unused)
};

std::string jsonEscape(const std::string& text);
// Python repr of a float after round(value, digits): "0.2339", "0.0", "1e-05"; NaN/inf: "null".
std::string jsonNumber(double value);
double roundTo(double value, int digits);

Status writeJsonAtomic(const std::string& path, const Json& value);

}  // namespace fundus
