// Status and Result<T>: errors are values that name the problem (no exceptions across modules).
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace fundus {

enum class ErrorCode {
    kOk = 0,
    kUsage,        // bad command line
    kBundle,       // model bundle missing, malformed, or its files do not match model.json
    kBackend,      // a backend could not be created or failed to run
    kImageRead,    // an input file is missing, empty or not a readable image
    kImageFormat,  // an image was read but its pixel type / channels are not supported
    kIo,           // writing an output failed
};

class Status {
public:
    Status() = default;
    static Status ok() { return {}; }
    static Status error(ErrorCode code, std::string message) { return Status(code, std::move(message)); }

    bool isOk() const { return code_ == ErrorCode::kOk; }
    explicit operator bool() const { return isOk(); }
    ErrorCode code() const { return code_; }
    const std::string& message() const { return message_; }

private:
    Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}
    ErrorCode code_ = ErrorCode::kOk;
    std::string message_;
};

// A value or the Status that explains why there is none.
template <typename T>
class Result {
public:
    Result(T value) : value_(std::move(value)) {}          // NOLINT(google-explicit-constructor)
    Result(Status status) : status_(std::move(status)) {}  // NOLINT(google-explicit-constructor)

    bool isOk() const { return value_.has_value(); }
    explicit operator bool() const { return isOk(); }
    const Status& status() const { return status_; }
    T& value() { return *value_; }
    const T& value() const { return *value_; }
    T& operator*() { return *value_; }
    T* operator->() { return &*value_; }

private:
    std::optional<T> value_;
    Status status_;
};

}  // namespace fundus

// FUNDUS_TRY(auto x, f()): evaluates f() (a Result or a Status-returning call's Result), returns its Status
// from the enclosing function when it failed, else declares x as its value. One per line.
#define FUNDUS_TRY_CONCAT_(a, b) a##b
#define FUNDUS_TRY_NAME_(line) FUNDUS_TRY_CONCAT_(fundus_try_result_, line)
#define FUNDUS_TRY(declaration, expression)                                      \
    auto FUNDUS_TRY_NAME_(__LINE__) = (expression);                              \
    if (!FUNDUS_TRY_NAME_(__LINE__)) return FUNDUS_TRY_NAME_(__LINE__).status(); \
    declaration = std::move(*FUNDUS_TRY_NAME_(__LINE__))

// FUNDUS_RETURN_IF_ERROR(f()): returns f()'s Status from the enclosing function when it failed.
#define FUNDUS_RETURN_IF_ERROR(expression)              \
    do {                                                \
        ::fundus::Status fundus_status_ = (expression); \
        if (!fundus_status_) return fundus_status_;     \
    } while (0)
