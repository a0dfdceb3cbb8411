// Owning handles and small wrappers over the C API shared by the C++ tests.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>

#include "megalodon.h"

namespace mgl_test {

struct ModelDeleter {
    void operator()(mgl_model *m) const { mgl_model_free(m); }
};
struct StateDeleter {
    void operator()(mgl_state *s) const { mgl_state_free(s); }
};
using ModelPtr = std::unique_ptr<mgl_model, ModelDeleter>;
using StatePtr = std::unique_ptr<mgl_state, StateDeleter>;

inline ModelPtr load(const std::string &path, int n_threads = 2) {
    mgl_model_params p = mgl_model_default_params();
    p.n_threads = n_threads;
    mgl_model *m = nullptr;
    if (mgl_model_load(path.c_str(), &p, &m) != MGL_OK) throw std::runtime_error("load " + path + ": " + mgl_last_error());
    return ModelPtr(m);
}

inline StatePtr new_state(mgl_model *m, int flags = 0) {
    mgl_state *s = nullptr;
    if (mgl_state_create(m, flags, &s) != MGL_OK) throw std::runtime_error(mgl_last_error());
    return StatePtr(s);
}

inline mgl_model_info info_of(const mgl_model *m) {
    mgl_model_info info;
    mgl_model_get_info(m, &info);
    return info;
}

}  // namespace mgl_test
