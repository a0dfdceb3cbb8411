// Combine steps of the CEMA and TimestepNorm scans, shared by the kernels and the host tests
// (compiled as __host__ __device__ under nvcc, plain inline C++ otherwise).
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define MGL_HD __host__ __device__ __forceinline__
#else
#define MGL_HD inline
#endif

namespace mgl {
namespace cuda {

// Statistics of `count` timesteps: mean and m2 = count · variance, where a timestep contributes
// its group mean and population variance with weight 1 (megalodon.md 3.2).
struct Moments {
    long long count;
    float mean;
    float m2;
};

// Chan's parallel combine; associative up to rounding, with the empty set as identity.
MGL_HD Moments combine_moments(const Moments &a, const Moments &b) {
    if (b.count == 0) return a;
    if (a.count == 0) return b;
    const long long n = a.count + b.count;
    const float wb = static_cast<float>(b.count) / static_cast<float>(n);
    const float delta = b.mean - a.mean;
    Moments r;
    r.count = n;
    r.mean = a.mean + delta * wb;
    r.m2 = a.m2 + b.m2 + delta * delta * static_cast<float>(a.count) * wb;
    return r;
}

struct Complex {
    float re, im;
};

MGL_HD Complex cmul(Complex a, Complex b) { return Complex{a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re}; }

// q^e by repeated squaring: log2(e) products, no transcendental functions.
MGL_HD Complex cpow_int(Complex q, int64_t e) {
    Complex r{1.f, 0.f};
    while (e > 0) {
        if (e & 1) r = cmul(r, q);
        q = cmul(q, q);
        e >>= 1;
    }
    return r;
}

// One CEMA step h ← q·h + p·x̂ with px = p·x̂.
MGL_HD Complex cema_step(Complex h, Complex q, float px) {
    return Complex{q.re * h.re - q.im * h.im + px, q.re * h.im + q.im * h.re};
}

}  // namespace cuda
}  // namespace mgl
