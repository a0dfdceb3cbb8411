// CEMA as a chunked scan over time. Pass 1: every (channel, state, segment) folds its segment
// from a zero state. Pass 2: per (channel, state), the segments' start states are chained from
// the carried state (h_start[s+1] = q^len·h_start[s] + local[s]), leaving the final state.
// Pass 3: every segment re-runs from its start state and emits c_t, summing Re(η·h) over the
// states of a channel with warp shuffles.
#include "cuda/device_common.cuh"
#include "cuda/kernels.cuh"
#include "cuda/scan_ops.h"

namespace mgl {
namespace cuda {
namespace {

__device__ __forceinline__ Complex as_complex(float2 v) { return Complex{v.x, v.y}; }
__device__ __forceinline__ float2 as_float2(Complex v) { return make_float2(v.re, v.im); }

struct Lane {
    int64_t d, n;
    bool valid;
};

__device__ __forceinline__ Lane lane_of(int64_t lanes, int64_t channels_per_block, int64_t D, int64_t N) {
    Lane l;
    l.d = blockIdx.x * channels_per_block + threadIdx.x / lanes;
    l.n = threadIdx.x % lanes;
    l.valid = l.d < D && l.n < N;
    return l;
}

template <class T>
__global__ void cema_local_kernel(const T *x, int64_t rows, CemaParams prm, int64_t lanes, int64_t channels_per_block,
                                  int64_t segment_len, float2 *local) {
    const Lane l = lane_of(lanes, channels_per_block, prm.D, prm.N);
    if (!l.valid) return;
    const int64_t s = blockIdx.y, t0 = s * segment_len, t1 = min(rows, t0 + segment_len);
    const int64_t idx = l.d * prm.N + l.n;
    const float p = prm.p[idx];
    const Complex q = as_complex(prm.q[idx]);
    Complex h{0.f, 0.f};
    for (int64_t t = t0; t < t1; ++t) h = cema_step(h, q, p * load_f32(x + t * prm.D + l.d));
    local[s * prm.D * prm.N + idx] = as_float2(h);
}

__global__ void cema_carry_kernel(int64_t rows, CemaParams prm, int64_t segment_len, int64_t segments,
                                  const float2 *local, float2 *start, float2 *h) {
    const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    const int64_t DN = prm.D * prm.N;
    if (idx >= DN) return;
    const Complex q = as_complex(prm.q[idx]);
    const Complex q_full = cpow_int(q, segment_len);
    Complex cur = as_complex(h[idx]);
    for (int64_t s = 0; s < segments; ++s) {
        start[s * DN + idx] = as_float2(cur);
        const int64_t len = min(segment_len, rows - s * segment_len);
        const Complex m = cmul(len == segment_len ? q_full : cpow_int(q, len), cur);
        const Complex loc = as_complex(local[s * DN + idx]);
        cur = Complex{m.re + loc.re, m.im + loc.im};
    }
    h[idx] = as_float2(cur);
}

template <class T>
__global__ void cema_output_kernel(const T *x, T *c, int64_t rows, CemaParams prm, int64_t lanes,
                                   int64_t channels_per_block, int64_t segment_len, const float2 *start) {
    const Lane l = lane_of(lanes, channels_per_block, prm.D, prm.N);
    const int64_t s = blockIdx.y, t0 = s * segment_len, t1 = min(rows, t0 + segment_len);
    const int64_t idx = l.d * prm.N + l.n;
    float p = 0.f, omega = 0.f;
    Complex q{0.f, 0.f}, eta{0.f, 0.f}, h{0.f, 0.f};
    if (l.valid) {
        p = prm.p[idx];
        q = as_complex(prm.q[idx]);
        eta = as_complex(prm.eta[idx]);
        h = as_complex(start[s * prm.D * prm.N + idx]);
        omega = prm.omega[l.d];
    }
    const bool channel_ok = l.d < prm.D;
    // Every lane runs the same number of steps so that the shuffles below stay converged.
    for (int64_t t = t0; t < t1; ++t) {
        const float xv = channel_ok ? load_f32(x + t * prm.D + l.d) : 0.f;
        h = cema_step(h, q, p * xv);
        float part = eta.re * h.re - eta.im * h.im;
        for (int64_t o = lanes >> 1; o > 0; o >>= 1) part += __shfl_xor_sync(0xffffffffu, part, static_cast<int>(o));
        if (channel_ok && l.n == 0) store_f32(c + t * prm.D + l.d, part + omega * xv);
    }
}

}  // namespace

template <class T>
cudaError_t cema(const T *x, T *c, int64_t rows, const CemaParams &params, float2 *h, const CemaPlan &plan,
                 void *scratch, cudaStream_t stream) {
    if (rows <= 0) return cudaSuccess;
    // The plan must be the one made for this many rows: its segments cover them exactly.
    if (plan.segments * plan.segment_len < rows || (plan.segments - 1) * plan.segment_len >= rows)
        return cudaErrorInvalidValue;
    const int64_t DN = params.D * params.N;
    float2 *local = static_cast<float2 *>(scratch);
    float2 *start = local + plan.segments * DN;
    const dim3 grid(plan.shape.grid_x, plan.shape.grid_y);
    cema_local_kernel<T><<<grid, plan.shape.block, 0, stream>>>(x, rows, params, plan.lanes, plan.channels_per_block,
                                                                plan.segment_len, local);
    cema_carry_kernel<<<static_cast<unsigned>(ceil_div(DN, 256)), 256, 0, stream>>>(rows, params, plan.segment_len,
                                                                                   plan.segments, local, start, h);
    cema_output_kernel<T><<<grid, plan.shape.block, 0, stream>>>(x, c, rows, params, plan.lanes,
                                                                 plan.channels_per_block, plan.segment_len, start);
    return cudaGetLastError();
}

template cudaError_t cema<float>(const float *, float *, int64_t, const CemaParams &, float2 *, const CemaPlan &,
                                 void *, cudaStream_t);
template cudaError_t cema<__nv_bfloat16>(const __nv_bfloat16 *, __nv_bfloat16 *, int64_t, const CemaParams &,
                                         float2 *, const CemaPlan &, void *, cudaStream_t);

}  // namespace cuda
}  // namespace mgl
