#include "fundus/output_guard.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include <sys/file.h>
#include <sys/stat.h>

namespace fundus {
namespace {

constexpr const char* kLockName = ".fundus-vessels.lock";
constexpr int kLockAttempts = 5;

// Length of the valid UTF-8 sequence starting at text[i] (Unicode Table 3-7), 0 when there is none.
std::size_t utf8Length(const std::string& text, std::size_t i) {
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
    const unsigned char c = byte(i);
    if (c < 0x80) return 1;
    std::size_t length = 0;
    unsigned char low = 0x80, high = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        length = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        length = 3;
        if (c == 0xE0) low = 0xA0;
        if (c == 0xED) high = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        length = 4;
        if (c == 0xF0) low = 0x90;
        if (c == 0xF4) high = 0x8F;
    } else {
        return 0;
    }
    if (i + length > text.size()) return 0;
    if (byte(i + 1) < low || byte(i + 1) > high) return 0;
    for (std::size_t k = 2; k < length; ++k) {
        if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
    }
    return length;
}

std::string parentOf(const std::string& path) {
    const auto slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

std::string nameOf(const std::string& path) {
    const auto slash = path.find_last_of('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool sameFile(int fd, const std::string& path) {
    struct stat own {
    }, named{};
    if (::fstat(fd, &own) != 0 || ::stat(path.c_str(), &named) != 0) return false;
    return own.st_dev == named.st_dev && own.st_ino == named.st_ino;
}

std::string holderOf(int fd) {
    char buffer[512] = {};
    const ssize_t n = ::pread(fd, buffer, sizeof(buffer) - 1, 0);
    std::string text = n > 0 ? std::string(buffer, std::size_t(n)) : std::string();
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    return text.empty() ? "another run" : printable(text);
}

}  // namespace

std::string printable(const std::string& text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size();) {
        const std::size_t length = utf8Length(text, i);
        if (length > 0) {
            out.append(text, i, length);
            i += length;
            continue;
        }
        char escaped[8];
        std::snprintf(escaped, sizeof(escaped), "\\x%02x", static_cast<unsigned char>(text[i]));
        out += escaped;
        ++i;
    }
    return out;
}

std::string realPath(const std::string& path) {
    char resolved[PATH_MAX];
    if (::realpath(path.c_str(), resolved)) return resolved;
    if (::realpath(parentOf(path).c_str(), resolved)) {
        const std::string folder = resolved;
        return (folder == "/" ? "" : folder) + "/" + nameOf(path);
    }
    return path;
}

std::string inputFolderClash(const std::string& outDir, const std::vector<std::string>& inputs) {
    const std::string target = realPath(outDir);
    for (const std::string& input : inputs) {
        struct stat info {};
        if (::stat(input.c_str(), &info) == 0 && S_ISDIR(info.st_mode) && realPath(input) == target) {
            return printable(outDir) + ": the output folder is also an input folder " + printable(input) +
                   "; choose another -o";
        }
        if (!(::stat(input.c_str(), &info) == 0 && S_ISDIR(info.st_mode)) && realPath(parentOf(input)) == target &&
            nameOf(input) == "summary.json") {
            return printable(input) + ": an input named like an output of the run; choose another -o";
        }
    }
    return "";
}

OutputPlan::OutputPlan(std::string outDir, const std::vector<std::string>& inputFiles) : outDir_(std::move(outDir)) {
    for (const std::string& file : inputFiles) inputs_.emplace(realPath(file), file);
}

std::string OutputPlan::claim(const std::string& source, const std::string& stem,
                              const std::vector<std::string>& names) {
    const auto used = stems_.find(stem);
    if (used != stems_.end()) return "output name '" + printable(stem) + "' already used by " + used->second;
    for (const std::string& name : names) {
        const auto clash = inputs_.find(realPath(outDir_ + "/" + name));
        if (clash != inputs_.end()) {
            return "its output " + printable(name) + " would overwrite the input " + printable(clash->second) +
                   "; choose another -o";
        }
    }
    stems_.emplace(stem, source);
    return "";
}

Result<int> acquireOutputLock(const std::string& outDir, const std::string& program) {
    const std::string path = outDir + "/" + kLockName;
    for (int attempt = 0; attempt < kLockAttempts; ++attempt) {
        const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            return Status::error(ErrorCode::kIo,
                                 printable(outDir) + ": cannot lock the output folder (" + std::strerror(errno) + ")");
        }
        if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
            if (errno != EWOULDBLOCK) {  // e.g. ENOLCK on a share without lock support
                const std::string why = std::strerror(errno);
                ::close(fd);
                return Status::error(ErrorCode::kIo,
                                     printable(outDir) + ": cannot lock the output folder (" + why + ")");
            }
            const std::string holder = holderOf(fd);
            ::close(fd);
            return Status::error(ErrorCode::kUsage, printable(outDir) + ": output folder in use by " + holder +
                                                        "; wait for it to finish or choose another -o");
        }
        if (!sameFile(fd, path)) {  // the previous holder deleted it after we opened it: lock the new one
            ::close(fd);
            continue;
        }
        char host[256] = "unknown";
        ::gethostname(host, sizeof(host) - 1);
        char started[32] = "";
        const std::time_t now = std::time(nullptr);
        std::tm utc{};
        ::gmtime_r(&now, &utc);
        std::strftime(started, sizeof(started), "%Y-%m-%dT%H:%M:%SZ", &utc);
        const std::string text =
            program + " (pid " + std::to_string(::getpid()) + " on " + host + ", since " + started + ")\n";
        if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, text.data(), text.size(), 0) < 0) {
            // the lock is held all the same; only the holder's description is missing
        }
        return fd;
    }
    return Status::error(ErrorCode::kUsage, printable(outDir) + ": could not take the output folder's lock " + path);
}

void releaseOutputLock(const std::string& outDir, int fd) {
    const std::string path = outDir + "/" + kLockName;
    if (sameFile(fd, path)) ::unlink(path.c_str());
    ::close(fd);
}

}  // namespace fundus
