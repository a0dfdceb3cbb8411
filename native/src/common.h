// Shared error type and small utilities of the runtime core.
#pragma once

#include <stdexcept>
#include <string>

#include "megalodon.h"

namespace mgl {

// Thrown inside the core; the C API converts it into an mgl_status plus mgl_last_error().
struct Error : std::runtime_error {
    mgl_status status;
    Error(mgl_status s, const std::string &msg) : std::runtime_error(msg), status(s) {}
};

[[noreturn]] inline void fail(mgl_status s, const std::string &msg) { throw Error(s, msg); }

// FNV-1a 64-bit, used for model fingerprints and state checksums (FORMAT.md).
struct Fnv1a64 {
    uint64_t h = 14695981039346656037ull;  // FNV-1a 64 offset basis
    void update(const void *data, size_t n) {
        const unsigned char *p = static_cast<const unsigned char *>(data);
        for (size_t i = 0; i < n; ++i) { h ^= p[i]; h *= 1099511628211ull; }
    }
    template <class T> void update_pod(const T &v) { update(&v, sizeof v); }
};

}  // namespace mgl
