// Chunk-local causal attention with an online softmax: no score matrix is stored. A block holds
// kAttnRowsPerBlock query rows of one head (one warp each) and one slice of the value columns;
// it stages key tiles and value tile slices in shared memory. Within a tile, lane j scores key j
// against the warp's query, then the warp rescales its running sums and accumulates the tile's
// values (each lane owns kAttnValuePerLane columns).
#include <cfloat>

#include "cuda/device_common.cuh"
#include "cuda/kernels.cuh"

namespace mgl {
namespace cuda {
namespace {

template <class T>
__global__ void chunk_attention_kernel(const T *q, const __nv_bfloat16 *k_cache, const __nv_bfloat16 *v_cache, T *out,
                                       int64_t q_rows, int64_t kv0, int64_t heads, int64_t dqk, int64_t dv,
                                       unsigned k_offset, unsigned v_offset) {
    extern __shared__ __align__(16) unsigned char smem[];
    float *qs = reinterpret_cast<float *>(smem);
    __nv_bfloat16 *ks = reinterpret_cast<__nv_bfloat16 *>(smem + k_offset);
    __nv_bfloat16 *vs = reinterpret_cast<__nv_bfloat16 *>(smem + v_offset);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t head = blockIdx.y, v0 = static_cast<int64_t>(blockIdx.z) * kAttnValueSlice;
    const int64_t first_row = static_cast<int64_t>(blockIdx.x) * kAttnRowsPerBlock;
    const int64_t row = first_row + warp;
    const bool row_ok = row < q_rows;
    const int64_t kstride = dqk + kAttnKeyPad;

    float *my_q = qs + warp * dqk;
    if (row_ok)
        for (int64_t c = lane; c < dqk; c += 32) my_q[c] = load_f32(q + (row * heads + head) * dqk + c);

    const int64_t last_row = min(q_rows - 1, first_row + kAttnRowsPerBlock - 1);
    const int64_t block_keys = kv0 + last_row + 1;            // keys any row of the block sees
    const int64_t my_keys = row_ok ? kv0 + row + 1 : 0;       // keys this row sees

    float m = -FLT_MAX, l = 0.f;
    float acc[kAttnValuePerLane];
#pragma unroll
    for (int v = 0; v < kAttnValuePerLane; ++v) acc[v] = 0.f;

    for (int64_t kt = 0; kt < block_keys; kt += kAttnKeyTile) {
        const int64_t tile = min(static_cast<int64_t>(kAttnKeyTile), block_keys - kt);
        __syncthreads();  // the previous tile is no longer read (and the queries are in place)
        for (int64_t e = threadIdx.x; e < tile * dqk; e += blockDim.x) {
            const int64_t j = e / dqk, c = e % dqk;
            ks[j * kstride + c] = k_cache[((kt + j) * heads + head) * dqk + c];
        }
        for (int64_t e = threadIdx.x; e < tile * kAttnValueSlice; e += blockDim.x) {
            const int64_t j = e / kAttnValueSlice, c = e % kAttnValueSlice;
            vs[j * kAttnValueSlice + c] =
                v0 + c < dv ? v_cache[((kt + j) * heads + head) * dv + v0 + c] : __float2bfloat16_rn(0.f);
        }
        __syncthreads();
        if (!row_ok || kt >= my_keys) continue;  // warp-uniform

        const int64_t visible = min(tile, my_keys - kt);  // >= 1
        float s = -FLT_MAX;
        if (lane < visible) {
            const __nv_bfloat16 *kr = ks + lane * kstride;
            float dot = 0.f;
            for (int64_t c = 0; c < dqk; ++c) dot += my_q[c] * __bfloat162float(kr[c]);
            s = dot;
        }
        const float m_new = fmaxf(m, warp_max(s));
        const float p = lane < visible ? expf(s - m_new) : 0.f;
        const float correction = expf(m - m_new);
        l = l * correction + warp_sum(p);
#pragma unroll
        for (int v = 0; v < kAttnValuePerLane; ++v) acc[v] *= correction;
        for (int64_t j = 0; j < visible; ++j) {
            const float pj = __shfl_sync(0xffffffffu, p, static_cast<int>(j));
            const __nv_bfloat16 *vr = vs + j * kAttnValueSlice + lane;
#pragma unroll
            for (int v = 0; v < kAttnValuePerLane; ++v) acc[v] += pj * __bfloat162float(vr[32 * v]);
        }
        m = m_new;
    }
    if (!row_ok) return;
    const float inv_l = 1.f / l;
#pragma unroll
    for (int v = 0; v < kAttnValuePerLane; ++v) {
        const int64_t col = v0 + lane + 32 * v;
        if (col < dv) store_f32(out + (row * heads + head) * dv + col, acc[v] * inv_l);
    }
}

}  // namespace

template <class T>
cudaError_t chunk_attention(const T *q, const __nv_bfloat16 *k_cache, const __nv_bfloat16 *v_cache, T *out,
                            int64_t q_rows, int64_t kv0, int64_t heads, int64_t dqk, int64_t dv,
                            const AttentionPlan &plan, cudaStream_t stream) {
    if (q_rows <= 0) return cudaSuccess;
    auto kernel = chunk_attention_kernel<T>;
    if (plan.shape.shared_bytes > 48 * 1024) {
        cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             static_cast<int>(plan.shape.shared_bytes));
        if (e != cudaSuccess) return e;
    }
    const dim3 grid(plan.shape.grid_x, plan.shape.grid_y, plan.shape.grid_z);
    kernel<<<grid, plan.shape.block, plan.shape.shared_bytes, stream>>>(
        q, k_cache, v_cache, out, q_rows, kv0, heads, dqk, dv, static_cast<unsigned>(plan.layout.k_offset),
        static_cast<unsigned>(plan.layout.v_offset));
    return cudaGetLastError();
}

template cudaError_t chunk_attention<float>(const float *, const __nv_bfloat16 *, const __nv_bfloat16 *, float *,
                                            int64_t, int64_t, int64_t, int64_t, int64_t, const AttentionPlan &,
                                            cudaStream_t);
template cudaError_t chunk_attention<__nv_bfloat16>(const __nv_bfloat16 *, const __nv_bfloat16 *,
                                                    const __nv_bfloat16 *, __nv_bfloat16 *, int64_t, int64_t, int64_t,
                                                    int64_t, int64_t, const AttentionPlan &, cudaStream_t);

}  // namespace cuda
}  // namespace mgl
