#include "fundus/results_csv.h"

#include "fundus/imageio.h"

namespace fundus {

const std::vector<std::string> kResultsColumns = {
    "file",         "status",       "reason",          "quality_verdict", "quality_reasons",
    "scale_factor", "scale_method", "vessel_fraction", "seconds",
};

namespace {

std::string textOf(const Json* value) {
    if (value == nullptr) return "";
    switch (value->kind()) {
        case Json::Kind::kString:
            return value->text();
        case Json::Kind::kNumber:
        case Json::Kind::kInteger: {
            const std::string text = jsonNumber(value->number());
            return text == "null" ? "" : text;  // not finite: an empty cell, as in Python
        }
        default:
            return "";
    }
}

std::string joinedReasons(const Json* quality) {
    const Json* reasons = quality ? quality->find("reasons") : nullptr;
    std::string out;
    if (reasons == nullptr) return out;
    for (const auto& item : reasons->items()) out += (out.empty() ? "" : "; ") + item.second.text();
    return out;
}

// runtime/results_table.py entry_row; an entry without "scale" reads factor 1.0, method "none".
std::vector<std::string> entryRow(const Json& entry) {
    const Json* quality = entry.find("quality");
    const Json* scale = entry.find("scale");
    const Json* refused = entry.find("refused");
    const bool isRefused = refused != nullptr && refused->truthy();
    const std::string reasons = joinedReasons(quality);
    const Json* factor = scale ? scale->find("factor") : nullptr;
    const Json* method = scale ? scale->find("method") : nullptr;
    return {
        textOf(entry.find("file")),
        isRefused ? "refused" : "ok",
        isRefused ? "quality gate: " + reasons : "",
        textOf(quality ? quality->find("verdict") : nullptr),
        reasons,
        factor ? textOf(factor) : jsonNumber(1.0),
        method ? textOf(method) : "none",
        textOf(entry.find("vessel_fraction")),
        textOf(entry.find("seconds")),
    };
}

}  // namespace

std::string csvCell(const std::string& text) {
    if (text.find_first_of(",\"\n") == std::string::npos) return text;  // not CR: Python does not either
    std::string out = "\"";
    for (char c : text) {
        if (c == '"') out += '"';
        out += c;
    }
    return out + "\"";
}

std::vector<std::vector<std::string>> resultsRows(const Json& summary) {
    std::vector<std::vector<std::string>> rows;
    if (const Json* images = summary.find("images")) {
        for (const auto& item : images->items()) rows.push_back(entryRow(item.second));
    }
    if (const Json* failures = summary.find("failures")) {
        for (const auto& item : failures->items()) {
            std::vector<std::string> row(kResultsColumns.size());
            row[0] = textOf(item.second.find("file"));
            row[1] = "failed";
            row[2] = textOf(item.second.find("error"));
            rows.push_back(row);
        }
    }
    return rows;
}

std::string resultsCsv(const Json& summary) {
    std::string out;
    auto line = [&out](const std::vector<std::string>& cells) {
        for (std::size_t i = 0; i < cells.size(); ++i) out += (i ? "," : "") + csvCell(cells[i]);
        out += "\n";
    };
    line(kResultsColumns);
    for (const auto& row : resultsRows(summary)) line(row);
    return out;
}

Status writeResultsCsv(const std::string& path, const Json& summary) {
    return writeFileAtomic(path, resultsCsv(summary));
}

}  // namespace fundus
