#include "fundus/diagnostics.h"

#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <regex>

namespace fundus {
namespace {

// runtime/decode.py TRUNCATION_WORDS
const char* const kTruncationWords[] = {"premature end of jpeg file",
                                        "truncated",
                                        "incomplete",
                                        "unexpected end",
                                        "read error",
                                        "not enough data",
                                        "seek error",
                                        "io error during reading",   // libtiff: tag data past the end
                                        "cannot read tiff header"};  // libtiff: ends inside the header

std::string strip(const std::string& text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) return "";
    const auto last = text.find_last_not_of(" \t\r\n");
    return text.substr(first, last - first + 1);
}

}  // namespace

CapturedStderr::CapturedStderr() {
    std::fflush(stderr);
    char name[] = "/tmp/fundus-stderr-XXXXXX";
    sink_ = ::mkstemp(name);
    if (sink_ < 0) return;  // nothing captured: diagnostics then reach the terminal as before
    ::unlink(name);
    saved_ = ::dup(2);
    if (saved_ < 0 || ::dup2(sink_, 2) < 0) {
        if (saved_ >= 0) ::close(saved_);
        saved_ = -1;
    }
}

CapturedStderr::~CapturedStderr() {
    restore();
    if (sink_ >= 0) ::close(sink_);
}

void CapturedStderr::restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    ::dup2(saved_, 2);
    ::close(saved_);
    saved_ = -1;
}

std::vector<std::string> CapturedStderr::lines() {
    const bool captured = saved_ >= 0;
    restore();
    std::vector<std::string> out;
    if (!captured) return out;
    std::string text;
    char buffer[4096];
    ::lseek(sink_, 0, SEEK_SET);
    for (ssize_t n; (n = ::read(sink_, buffer, sizeof(buffer))) > 0;) text.append(buffer, std::size_t(n));
    static const std::regex openCvPrefix(R"(^\[\s*\w+:[^\]]*\]\s+global\s+\S+\s+\(\d+\)\s+\S+\s+)");
    std::size_t start = 0;
    while (start < text.size()) {
        auto end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        const std::string line = strip(std::regex_replace(text.substr(start, end - start), openCvPrefix, ""));
        if (!line.empty()) out.push_back(line);
        start = end + 1;
    }
    return out;
}

bool mentionsTruncation(const std::string& text) {
    std::string lower = text;
    for (char& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
    for (const char* word : kTruncationWords) {
        if (lower.find(word) != std::string::npos) return true;
    }
    return false;
}

std::string decoderRefusal(const std::vector<std::string>& diagnostics) {
    if (diagnostics.empty()) return "corrupt image data";
    std::string all;
    for (const std::string& line : diagnostics) all += line + "; ";
    const std::string kind = mentionsTruncation(all) ? "image file is truncated" : "corrupt image data";
    return kind + " (" + diagnostics.front().substr(0, 200) + ")";
}

}  // namespace fundus
