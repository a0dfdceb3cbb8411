// Row norms, Q/K normalisation, RoPE and the pointwise kernels.
#include "cuda/device_common.cuh"
#include "cuda/kernels.cuh"

namespace mgl {
namespace cuda {
namespace {

template <class T>
__global__ void rms_norm_kernel(const T *x, int64_t ldx, T *y, int64_t ldy, int64_t width, const float *w,
                                float eps) {
    extern __shared__ float scratch[];
    const T *xr = x + blockIdx.x * ldx;
    T *yr = y + blockIdx.x * ldy;
    float ss = 0.f;
    for (int64_t c = threadIdx.x; c < width; c += blockDim.x) {
        float v = load_f32(xr + c);
        ss += v * v;
    }
    float scale = rsqrtf(block_sum(ss, scratch) / static_cast<float>(width) + eps);
    for (int64_t c = threadIdx.x; c < width; c += blockDim.x)
        store_f32(yr + c, load_f32(xr + c) * scale * (w ? w[c] + 1.f : 1.f));
}

template <class T>
__global__ void layer_norm_kernel(const T *x, int64_t ldx, T *y, int64_t ldy, int64_t width, const float *w,
                                  const float *b, float eps) {
    extern __shared__ float scratch[];
    const T *xr = x + blockIdx.x * ldx;
    T *yr = y + blockIdx.x * ldy;
    float s = 0.f;
    for (int64_t c = threadIdx.x; c < width; c += blockDim.x) s += load_f32(xr + c);
    const float mean = block_sum(s, scratch) / static_cast<float>(width);
    // Second pass over the deviations: no cancellation for rows with a large mean.
    float ss = 0.f;
    for (int64_t c = threadIdx.x; c < width; c += blockDim.x) {
        float d = load_f32(xr + c) - mean;
        ss += d * d;
    }
    const float rstd = rsqrtf(block_sum(ss, scratch) / static_cast<float>(width) + eps);
    for (int64_t c = threadIdx.x; c < width; c += blockDim.x)
        store_f32(yr + c, (load_f32(xr + c) - mean) * rstd * (w ? w[c] + 1.f : 1.f) + (b ? b[c] : 0.f));
}

// One block per (row, head).
template <class T>
__global__ void qk_from_z_kernel(const T *z, T *q, T *k, int64_t heads, int64_t dz, const float *gamma,
                                 const float *beta, float eps) {
    extern __shared__ float scratch[];
    const int64_t row = blockIdx.x / heads, head = blockIdx.x % heads, width = heads * dz;
    const int64_t base = row * width + head * dz;
    float ss = 0.f;
    for (int64_t c = threadIdx.x; c < dz; c += blockDim.x) {
        float v = load_f32(z + base + c);
        ss += v * v;
    }
    const float scale = rsqrtf(block_sum(ss, scratch) / static_cast<float>(dz) + eps) * rsqrtf(static_cast<float>(dz));
    for (int64_t c = threadIdx.x; c < dz; c += blockDim.x) {
        const int64_t col = head * dz + c;
        const float zn = load_f32(z + base + c) * scale;
        store_f32(q + base + c, zn * (gamma[col] + 1.f) + beta[col]);
        store_f32(k + base + c, zn * (gamma[width + col] + 1.f) + beta[width + col]);
    }
}

template <class T>
__global__ void rope_kernel(T *x, int64_t rows, int64_t heads, int64_t d, int64_t pos0, const float *freqs) {
    const int64_t half = d / 2;
    const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i >= rows * heads * half) return;
    const int64_t m = i % half, row = i / (heads * half);
    T *pair = x + (i / half) * d + 2 * m;
    float s, c;
    // Positions stay within a chunk, so the fp32 angle is exact enough for sincosf.
    sincosf(static_cast<float>(pos0 + row) * freqs[m], &s, &c);
    const float a = load_f32(pair), b = load_f32(pair + 1);
    store_f32(pair, a * c - b * s);
    store_f32(pair + 1, a * s + b * c);
}

template <class T> __global__ void silu_kernel(T *x, int64_t n) {
    int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i < n) store_f32(x + i, silu_f(load_f32(x + i)));
}

template <class T> __global__ void swiglu_kernel(const T *a, const T *b, T *out, int64_t n) {
    int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i < n) store_f32(out + i, silu_f(load_f32(a + i)) * load_f32(b + i));
}

template <class T> __global__ void multiply_kernel(const T *a, const T *b, T *out, int64_t n) {
    int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i < n) store_f32(out + i, load_f32(a + i) * load_f32(b + i));
}

template <class T> __global__ void add_kernel(const T *a, const T *b, T *out, int64_t n) {
    int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i < n) store_f32(out + i, load_f32(a + i) + load_f32(b + i));
}

template <class T> __global__ void add_bias_kernel(T *y, int64_t ldy, int64_t rows, int64_t cols, const float *bias) {
    int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i >= rows * cols) return;
    T *p = y + (i / cols) * ldy + i % cols;
    store_f32(p, load_f32(p) + bias[i % cols]);
}

__global__ void f32_to_bf16_kernel(const float *src, __nv_bfloat16 *dst, int64_t n) {
    int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i < n) dst[i] = __float2bfloat16_rn(src[i]);
}

__global__ void bf16_to_f32_kernel(const __nv_bfloat16 *src, float *dst, int64_t n) {
    int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i < n) dst[i] = __bfloat162float(src[i]);
}

dim3 grid_of(const LaunchShape &s) { return dim3(s.grid_x, s.grid_y, s.grid_z); }

}  // namespace

template <class T>
cudaError_t rms_norm(const T *x, int64_t ldx, T *y, int64_t ldy, int64_t rows, int64_t width, const float *w,
                     float eps, cudaStream_t stream) {
    if (rows <= 0) return cudaSuccess;
    LaunchShape s = row_reduce_shape(rows, width);
    rms_norm_kernel<T><<<grid_of(s), s.block, s.shared_bytes, stream>>>(x, ldx, y, ldy, width, w, eps);
    return cudaGetLastError();
}

template <class T>
cudaError_t layer_norm(const T *x, int64_t ldx, T *y, int64_t ldy, int64_t rows, int64_t width, const float *w,
                       const float *b, float eps, cudaStream_t stream) {
    if (rows <= 0) return cudaSuccess;
    LaunchShape s = row_reduce_shape(rows, width);
    layer_norm_kernel<T><<<grid_of(s), s.block, s.shared_bytes, stream>>>(x, ldx, y, ldy, width, w, b, eps);
    return cudaGetLastError();
}

template <class T>
cudaError_t qk_from_z(const T *z, T *q, T *k, int64_t rows, int64_t heads, int64_t dz, const float *gamma,
                      const float *beta, float eps, cudaStream_t stream) {
    if (rows <= 0) return cudaSuccess;
    LaunchShape s = row_reduce_shape(rows * heads, dz);
    qk_from_z_kernel<T><<<grid_of(s), s.block, s.shared_bytes, stream>>>(z, q, k, heads, dz, gamma, beta, eps);
    return cudaGetLastError();
}

template <class T>
cudaError_t rope(T *x, int64_t rows, int64_t heads, int64_t d, int64_t pos0, const float *freqs,
                 cudaStream_t stream) {
    const int64_t n = rows * heads * (d / 2);
    if (n <= 0) return cudaSuccess;
    LaunchShape s = elementwise_shape(n);
    rope_kernel<T><<<grid_of(s), s.block, 0, stream>>>(x, rows, heads, d, pos0, freqs);
    return cudaGetLastError();
}

#define MGL_POINTWISE_LAUNCH(kernel, ...)                                  \
    if (n <= 0) return cudaSuccess;                                       \
    LaunchShape s = elementwise_shape(n);                                 \
    kernel<T><<<grid_of(s), s.block, 0, stream>>>(__VA_ARGS__);           \
    return cudaGetLastError();

template <class T> cudaError_t silu_inplace(T *x, int64_t n, cudaStream_t stream) {
    MGL_POINTWISE_LAUNCH(silu_kernel, x, n)
}
template <class T> cudaError_t swiglu(const T *a, const T *b, T *out, int64_t n, cudaStream_t stream) {
    MGL_POINTWISE_LAUNCH(swiglu_kernel, a, b, out, n)
}
template <class T> cudaError_t multiply(const T *a, const T *b, T *out, int64_t n, cudaStream_t stream) {
    MGL_POINTWISE_LAUNCH(multiply_kernel, a, b, out, n)
}
template <class T> cudaError_t add(const T *a, const T *b, T *out, int64_t n, cudaStream_t stream) {
    MGL_POINTWISE_LAUNCH(add_kernel, a, b, out, n)
}
#undef MGL_POINTWISE_LAUNCH

template <class T>
cudaError_t add_bias_rows(T *y, int64_t ldy, int64_t rows, int64_t cols, const float *bias, cudaStream_t stream) {
    const int64_t n = rows * cols;
    if (n <= 0 || !bias) return cudaSuccess;
    LaunchShape s = elementwise_shape(n);
    add_bias_kernel<T><<<grid_of(s), s.block, 0, stream>>>(y, ldy, rows, cols, bias);
    return cudaGetLastError();
}

cudaError_t f32_to_bf16(const float *src, __nv_bfloat16 *dst, int64_t n, cudaStream_t stream) {
    if (n <= 0) return cudaSuccess;
    LaunchShape s = elementwise_shape(n);
    f32_to_bf16_kernel<<<grid_of(s), s.block, 0, stream>>>(src, dst, n);
    return cudaGetLastError();
}

cudaError_t bf16_to_f32(const __nv_bfloat16 *src, float *dst, int64_t n, cudaStream_t stream) {
    if (n <= 0) return cudaSuccess;
    LaunchShape s = elementwise_shape(n);
    bf16_to_f32_kernel<<<grid_of(s), s.block, 0, stream>>>(src, dst, n);
    return cudaGetLastError();
}

#define MGL_INSTANTIATE(T)                                                                                    \
    template cudaError_t rms_norm<T>(const T *, int64_t, T *, int64_t, int64_t, int64_t, const float *, float, \
                                     cudaStream_t);                                                           \
    template cudaError_t layer_norm<T>(const T *, int64_t, T *, int64_t, int64_t, int64_t, const float *,      \
                                       const float *, float, cudaStream_t);                                   \
    template cudaError_t qk_from_z<T>(const T *, T *, T *, int64_t, int64_t, int64_t, const float *,           \
                                      const float *, float, cudaStream_t);                                    \
    template cudaError_t rope<T>(T *, int64_t, int64_t, int64_t, int64_t, const float *, cudaStream_t);        \
    template cudaError_t silu_inplace<T>(T *, int64_t, cudaStream_t);                                         \
    template cudaError_t swiglu<T>(const T *, const T *, T *, int64_t, cudaStream_t);                          \
    template cudaError_t multiply<T>(const T *, const T *, T *, int64_t, cudaStream_t);                        \
    template cudaError_t add<T>(const T *, const T *, T *, int64_t, cudaStream_t);                             \
    template cudaError_t add_bias_rows<T>(T *, int64_t, int64_t, int64_t, const float *, cudaStream_t);
MGL_INSTANTIATE(float)
MGL_INSTANTIATE(__nv_bfloat16)
#undef MGL_INSTANTIATE

}  // namespace cuda
}  // namespace mgl
