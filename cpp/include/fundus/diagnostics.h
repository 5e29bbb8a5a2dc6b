// Decoder diagnostics: what image libraries print on standard error while they decode, captured so
// that a warning refuses the file (one line of ours instead of the library's). Same rule and message
// classes as runtime/decode.py.
#pragma once

#include <string>
#include <vector>

namespace fundus {

// Redirects file descriptor 2 into a temporary file from construction until lines() is called.
// Not thread-safe: the process has one standard error (fundus-infer decodes on one thread).
class CapturedStderr {
public:
    CapturedStderr();
    ~CapturedStderr();
    CapturedStderr(const CapturedStderr&) = delete;
    CapturedStderr& operator=(const CapturedStderr&) = delete;
    // Restores standard error and returns the non-blank lines written meanwhile, stripped, with
    // OpenCV's log prefix ("[ WARN:0@1.5] global file.cpp (746) func ") removed.
    std::vector<std::string> lines();

private:
    void restore();
    int saved_ = -1;
    int sink_ = -1;
};

// "image file is truncated (<first line>)" when a diagnostic says the data ended early, else
// "corrupt image data (<first line>)"; the first line is cut at 200 characters.
std::string decoderRefusal(const std::vector<std::string>& diagnostics);

// True when `text` holds one of the words that mean "the data ended early" (case-insensitive).
bool mentionsTruncation(const std::string& text);

}  // namespace fundus
