// results.csv beside summary.json: one row per input, the columns of runtime/results_table.py
// (BASE_COLUMNS, same order, same cell text), built from summary.json's content as Python does.
#pragma once

#include <string>
#include <vector>

#include "fundus/status.h"
#include "fundus/summary.h"

namespace fundus {

// runtime/results_table.py BASE_COLUMNS (the C++ runtime has no --measure: no measurement columns).
extern const std::vector<std::string> kResultsColumns;

// One CSV cell as Python's csv writer (QUOTE_MINIMAL, "\n" line ends) writes it: quoted when it holds , " or LF.
std::string csvCell(const std::string& text);
// The rows of summary.json's "images" then its "failures", each a cell per kResultsColumns.
std::vector<std::vector<std::string>> resultsRows(const Json& summary);
// Header and rows, "\n" line ends.
std::string resultsCsv(const Json& summary);
Status writeResultsCsv(const std::string& path, const Json& summary);

}  // namespace fundus
