// The model bundle: a folder with model.json (read with cv::FileStorage) and ONNX/engine files.
// Mirrors runtime/bundle.py: preprocessing, tiling, output class and threshold come from
// model.json, never from defaults in this binary.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "fundus/paths.h"
#include "fundus/scale.h"
#include "fundus/status.h"

namespace fundus {

struct PreprocessConfig {
    std::string channel = "gray";  // "gray" (weighted RGB->gray) or "green"
    double claheClip = 2.0;
    int claheGrid = 8;
    double mean = 0.5;
    double std = 0.5;
};

struct ModelFile {
    std::string path;    // relative to the bundle folder
    std::string sha256;  // lower-case hex
};

struct Bundle {
    std::string root;  // bundle folder
    std::string name;  // model.json "name", else the folder's name
    PreprocessConfig preprocess;
    int tile = 256;
    int overlap = 32;
    // tiling.whole_image (optional, 0: always tiles): a model-scale plane whose sides, padded to a
    // multiple of bundleLimit("whole_multiple"), are both <= this runs in one pass on a backend taking any size
    int wholeImage = 0;
    int vesselIndex = 1;
    double threshold = 0.5;
    int inChannels = 1;
    ScaleConfig scale;                       // model.json "scale" (optional; absent: no scale normalisation)
    std::map<std::string, ModelFile> files;  // "fp32", "fp32_static", "fp16", "int8", ...

    bool has(const std::string& precision) const { return files.count(precision) != 0; }
    // Absolute-ish path of the file for `precision`; checks it exists and (verify) its sha256.
    Result<std::string> modelPath(const std::string& precision, bool verify = true) const;
};

// Loads BUNDLE/model.json and checks every contract value by runtime/bundle_schema.py's rules, in its
// order and wording ("<file>: tiling.tile must be ... (got 'x')"); errors have code kBundle.
Result<Bundle> loadBundle(const std::string& root);
// A named limit of runtime/bundle_rules.json ("max_tile", "whole_multiple", ...), as the build embedded it.
int bundleLimit(const std::string& name);

// The folders searched for shipped bundles, in order: ../share/fundus-vessels/models beside the
// running binary (an installed tree, `cmake --install`), then the source tree's models/ (a build tree).
std::vector<std::string> shippedBundleDirs();
// `--model` as runtime/bundle.py's bundle_path() reads it: an existing folder or a path with a '/'
// as given; otherwise the name of a shipped bundle (unet-drive, ...) found in shippedBundleDirs().
// An unknown name comes back unchanged, for loadBundle() to refuse by name.
std::string resolveBundle(const std::string& model);
// Names of the shipped bundles found (folders holding a model.json), sorted, without duplicates.
std::vector<std::string> shippedBundleNames();

}  // namespace fundus
