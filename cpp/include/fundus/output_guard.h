// Outputs never overwrite an input, no two images of a run share an output name, and one run at a
// time owns an output folder. Twin of runtime/outputs_guard.py and runtime/lock.py (same rules,
// messages and lock file, so a Python and a C++ run exclude each other).
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "fundus/status.h"

namespace fundus {

// `text` with every byte that is not part of valid UTF-8 written as \xNN (Python's
// bytes.decode("utf-8", "backslashreplace")): file names in messages and summary.json.
std::string printable(const std::string& text);

// The canonical path (realpath) or, when it does not exist, the path of its folder's realpath + name.
std::string realPath(const std::string& path);

// Why `outDir` cannot take this run's outputs: it is one of the input folders. Empty when it can.
std::string inputFolderClash(const std::string& outDir, const std::vector<std::string>& inputs);

class OutputPlan {
public:
    OutputPlan(std::string outDir, const std::vector<std::string>& inputFiles);
    // Empty when `source` may write `names`; else why it is refused (nothing is claimed then).
    std::string claim(const std::string& source, const std::string& stem, const std::vector<std::string>& names);

private:
    std::string outDir_;
    std::map<std::string, std::string> inputs_;  // real path -> as given
    std::map<std::string, std::string> stems_;   // stem -> the image that took it
};

// OUTDIR/.fundus-vessels.lock, held with flock(2) until releaseOutputLock; kUsage when another run holds it.
Result<int> acquireOutputLock(const std::string& outDir, const std::string& program);
void releaseOutputLock(const std::string& outDir, int fd);

}  // namespace fundus
