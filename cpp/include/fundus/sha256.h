// Minimal SHA-256 (FIPS 180-4) for checking model files against model.json; no dependencies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "fundus/status.h"

namespace fundus {

class Sha256 {
public:
    Sha256();
    void update(const void* data, std::size_t size);
    std::string hexDigest();  // finalises; call once

private:
    void compress(const std::uint8_t* block);
    std::uint32_t state_[8];
    std::uint8_t buffer_[64];
    std::size_t bufferSize_ = 0;
    std::uint64_t totalBytes_ = 0;
};

std::string sha256Hex(const std::string& bytes);
// Hex sha256 of a file's contents, read in 1 MiB chunks.
Result<std::string> sha256File(const std::string& path);

}  // namespace fundus
