// TimestepNorm: per-timestep group moments, an inclusive prefix scan of the Welford combine
// along time (continuing from the carried state), then the elementwise normalisation.
#include "cuda/device_common.cuh"
#include "cuda/kernels.cuh"
#include "cuda/scan_ops.h"

namespace mgl {
namespace cuda {
namespace {

// One warp per (row, group): mean and population variance of the group's channels.
template <class T>
__global__ void group_moments_kernel(const T *x, int64_t rows, int64_t D, int64_t G, float2 *moments) {
    const int64_t item = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (item >= rows * G) return;  // whole warps leave together
    const int64_t dg = D / G, row = item / G, g = item % G;
    const T *xs = x + row * D + g * dg;
    float s = 0.f;
    for (int64_t c = lane; c < dg; c += 32) s += load_f32(xs + c);
    const float mean = warp_sum(s) / static_cast<float>(dg);
    float ss = 0.f;
    for (int64_t c = lane; c < dg; c += 32) {
        float d = load_f32(xs + c) - mean;
        ss += d * d;
    }
    const float var = warp_sum(ss) / static_cast<float>(dg);
    if (lane == 0) moments[item] = make_float2(mean, var);
}

// One block per group. Thread i owns timesteps [i·run, (i+1)·run): it folds them, one thread
// forms the exclusive prefix over the runs (starting from the carried state), then each thread
// re-walks its run and writes the cumulative (mean, rstd) of every timestep.
__global__ void tsn_scan_kernel(const float2 *moments, int64_t rows, int64_t G, int64_t run, long long count0,
                                float *stats, float2 *cumulative, float eps) {
    extern __shared__ unsigned char smem[];
    long long *counts = reinterpret_cast<long long *>(smem);
    float *means = reinterpret_cast<float *>(counts + blockDim.x);
    float *m2s = means + blockDim.x;
    const int64_t g = blockIdx.x;
    const int64_t t0 = threadIdx.x * run, t1 = min(rows, t0 + run);

    Moments acc{0, 0.f, 0.f};
    for (int64_t t = t0; t < t1; ++t) {
        float2 m = moments[t * G + g];
        acc = combine_moments(acc, Moments{1, m.x, m.y});
    }
    counts[threadIdx.x] = acc.count;
    means[threadIdx.x] = acc.mean;
    m2s[threadIdx.x] = acc.m2;
    __syncthreads();
    if (threadIdx.x == 0) {
        // At most kTsnScanMaxThreads runs: a serial pass is cheaper than a tree here.
        Moments prefix{count0, stats[g], stats[G + g] * static_cast<float>(count0)};
        for (unsigned i = 0; i < blockDim.x; ++i) {
            Moments r{counts[i], means[i], m2s[i]};
            counts[i] = prefix.count;
            means[i] = prefix.mean;
            m2s[i] = prefix.m2;
            prefix = combine_moments(prefix, r);
        }
        if (prefix.count > 0) {
            stats[g] = prefix.mean;
            stats[G + g] = prefix.m2 / static_cast<float>(prefix.count);
        }
    }
    __syncthreads();
    Moments cur{counts[threadIdx.x], means[threadIdx.x], m2s[threadIdx.x]};
    for (int64_t t = t0; t < t1; ++t) {
        float2 m = moments[t * G + g];
        cur = combine_moments(cur, Moments{1, m.x, m.y});
        const float var = cur.m2 / static_cast<float>(cur.count);
        cumulative[t * G + g] = make_float2(cur.mean, rsqrtf(var + eps));
    }
}

template <class T>
__global__ void tsn_apply_kernel(const T *x, T *y, int64_t rows, int64_t D, int64_t G, const float2 *cumulative,
                                 const float *w, const float *b) {
    const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i >= rows * D) return;
    const int64_t row = i / D, c = i % D, g = c / (D / G);
    const float2 st = cumulative[row * G + g];
    store_f32(y + i, (load_f32(x + i) - st.x) * st.y * (w ? w[c] + 1.f : 1.f) + (b ? b[c] : 0.f));
}

}  // namespace

template <class T>
cudaError_t timestep_norm(const T *x, T *y, int64_t rows, int64_t D, int64_t G, int64_t count0, float *stats,
                          const float *w, const float *b, float eps, float *scratch, cudaStream_t stream) {
    if (rows <= 0) return cudaSuccess;
    if (G <= 0 || D % G != 0) return cudaErrorInvalidValue;
    float2 *moments = reinterpret_cast<float2 *>(scratch);
    float2 *cumulative = moments + rows * G;
    const int64_t warps = rows * G;
    group_moments_kernel<T><<<static_cast<unsigned>(ceil_div(warps * 32, 256)), 256, 0, stream>>>(x, rows, D, G,
                                                                                                 moments);
    TsnScanPlan plan = plan_tsn_scan(rows, G);
    tsn_scan_kernel<<<plan.shape.grid_x, plan.shape.block, plan.shape.shared_bytes, stream>>>(
        moments, rows, G, plan.run_len, static_cast<long long>(count0), stats, cumulative, eps);
    LaunchShape s = elementwise_shape(rows * D);
    tsn_apply_kernel<T><<<s.grid_x, s.block, 0, stream>>>(x, y, rows, D, G, cumulative, w, b);
    return cudaGetLastError();
}

template cudaError_t timestep_norm<float>(const float *, float *, int64_t, int64_t, int64_t, int64_t, float *,
                                          const float *, const float *, float, float *, cudaStream_t);
template cudaError_t timestep_norm<__nv_bfloat16>(const __nv_bfloat16 *, __nv_bfloat16 *, int64_t, int64_t,
                                                  int64_t, int64_t, float *, const float *, const float *, float,
                                                  float *, cudaStream_t);

}  // namespace cuda
}  // namespace mgl
