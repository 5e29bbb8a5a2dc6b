// Exit statuses of fundus-infer, as runtime/cli.py's: one name per number.
#pragma once

namespace fundus {

enum class ExitStatus : int {
    kOk = 0,           // every image segmented (or refused by the quality gate, see kRefused)
    kImageFailed = 1,  // some image failed; the batch went on
    kUsage = 2,        // usage, bundle, backend or output-folder error: nothing run
    kRefused = 4,      // added when --quality refuse refused an image
};

// The process exit code: failures and refusals combine as in Python (5: refused and failed).
inline int exitCode(bool anyFailed, bool anyRefused) {
    return (anyFailed ? int(ExitStatus::kImageFailed) : int(ExitStatus::kOk)) +
           (anyRefused ? int(ExitStatus::kRefused) : 0);
}

inline int exitCode(ExitStatus status) {
    return int(status);
}

}  // namespace fundus
