// Kernels of the CUDA backend for what cuBLAS does not provide. Activations are fp32 or bf16
// (T = float or __nv_bfloat16, both instantiated); statistics, CEMA state and coefficients,
// softmax and RoPE angles are fp32. Every launcher enqueues on `stream` and returns the launch
// status. Row-major layouts throughout; `ld` arguments are row strides in elements.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "cuda/launch_plan.h"

namespace mgl {
namespace cuda {

// y = x / sqrt(mean(x²) + eps) · (w + 1), per row of `width`; w may be null (weight 1).
template <class T>
cudaError_t rms_norm(const T *x, int64_t ldx, T *y, int64_t ldy, int64_t rows, int64_t width,
                     const float *w, float eps, cudaStream_t stream);

// y = (x − mean) / sqrt(var + eps) · (w + 1) + b (biased variance); w, b may be null.
template <class T>
cudaError_t layer_norm(const T *x, int64_t ldx, T *y, int64_t ldy, int64_t rows, int64_t width,
                       const float *w, const float *b, float eps, cudaStream_t stream);

// Per head of z [rows, heads·dz]: z' = z / sqrt(mean(z²) + eps); q = z'·(κq + 1)/√dz + μq and
// k = z'·(κk + 1)/√dz + μk, with gamma = [κq; κk] and beta = [μq; μk], each [2, heads·dz].
template <class T>
cudaError_t qk_from_z(const T *z, T *q, T *k, int64_t rows, int64_t heads, int64_t dz,
                      const float *gamma, const float *beta, float eps, cudaStream_t stream);

// Rotates adjacent pairs (2m, 2m+1) of every head of x [rows, heads·d] in place by the angle
// (pos0 + row)·freqs[m], pos0 the position of the first row within its attention chunk.
template <class T>
cudaError_t rope(T *x, int64_t rows, int64_t heads, int64_t d, int64_t pos0, const float *freqs,
                 cudaStream_t stream);

template <class T> cudaError_t silu_inplace(T *x, int64_t n, cudaStream_t stream);
// out = silu(a) ⊙ b (SwiGLU); out may alias a or b.
template <class T> cudaError_t swiglu(const T *a, const T *b, T *out, int64_t n, cudaStream_t stream);
// out = a ⊙ b.
template <class T> cudaError_t multiply(const T *a, const T *b, T *out, int64_t n, cudaStream_t stream);
// out = a + b (residual); out may alias either.
template <class T> cudaError_t add(const T *a, const T *b, T *out, int64_t n, cudaStream_t stream);
// y[r][c] += bias[c] for rows of `cols` with stride ldy.
template <class T>
cudaError_t add_bias_rows(T *y, int64_t ldy, int64_t rows, int64_t cols, const float *bias, cudaStream_t stream);

cudaError_t f32_to_bf16(const float *src, __nv_bfloat16 *dst, int64_t n, cudaStream_t stream);
cudaError_t bf16_to_f32(const __nv_bfloat16 *src, float *dst, int64_t n, cudaStream_t stream);

// TimestepNorm over x [rows, D] with G groups of D/G channels, continuing from the carried
// state: `count0` timesteps seen so far, per-group mean and variance in `stats` ([G] means then
// [G] variances, fp32), which are replaced by the state after the last row. `scratch` holds
// 4·rows·G floats. w, b are the per-channel affine parameters ((w + 1), b).
template <class T>
cudaError_t timestep_norm(const T *x, T *y, int64_t rows, int64_t D, int64_t G, int64_t count0, float *stats,
                          const float *w, const float *b, float eps, float *scratch, cudaStream_t stream);

// CEMA over x̂ [rows, D] continuing from the complex state h [D, N] (interleaved re, im), which
// is replaced by the state after the last row: h ← q·h + p·x̂, c = Σ_n Re(η·h) + ω·x̂.
// p [D, N], q and eta [D, N] complex, omega [D]. `plan` comes from plan_cema for the same rows;
// `scratch` holds plan.scratch_bytes.
struct CemaParams {
    const float *p = nullptr;
    const float2 *q = nullptr;
    const float2 *eta = nullptr;
    const float *omega = nullptr;
    int64_t D = 0, N = 0;
};
template <class T>
cudaError_t cema(const T *x, T *c, int64_t rows, const CemaParams &params, float2 *h, const CemaPlan &plan,
                 void *scratch, cudaStream_t stream);

// Causal attention within one chunk. Queries q [q_rows, heads, dqk] are the chunk positions
// kv0 .. kv0 + q_rows − 1; k_cache [≥ kv0 + q_rows, heads, dqk] and v_cache [.., heads, dv] hold
// the chunk's keys (after RoPE) and values. Query i sees keys 0 .. kv0 + i; logits are q·k
// (scale 1), softmax online in fp32. out [q_rows, heads, dv].
template <class T>
cudaError_t chunk_attention(const T *q, const __nv_bfloat16 *k_cache, const __nv_bfloat16 *v_cache, T *out,
                            int64_t q_rows, int64_t kv0, int64_t heads, int64_t dqk, int64_t dv,
                            const AttentionPlan &plan, cudaStream_t stream);

}  // namespace cuda
}  // namespace mgl
