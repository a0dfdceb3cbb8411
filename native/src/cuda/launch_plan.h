// Host-side decisions of the CUDA backend that need no CUDA headers: launch shapes, tiling,
// segmenting of the scans, the cuBLAS argument mapping, bf16 rounding and the backend choice.
// Kept free of CUDA so that the CPU build can test them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mgl {
namespace cuda {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Smallest power of two >= n (n >= 1).
int64_t next_pow2(int64_t n);

struct LaunchShape {
    unsigned grid_x = 1, grid_y = 1, grid_z = 1;
    unsigned block = 1;
    size_t shared_bytes = 0;
};

// Row-wise reductions (RMSNorm, LayerNorm): one block per row, a power of two of threads
// between one warp and 1024, about one thread per 4 elements.
LaunchShape row_reduce_shape(int64_t rows, int64_t width);

// Flat elementwise kernels: `per_thread` elements per thread, 256 threads per block.
LaunchShape elementwise_shape(int64_t n, int64_t per_thread = 1);

// CEMA chunked scan. Each thread owns one (channel d, state n) pair over one time segment;
// the lanes of a channel (next_pow2(N) of them, at most 32) sit in one warp so that the sum over
// n is a warp shuffle. Segments are cut so that the three passes keep the GPU busy.
struct CemaPlan {
    int64_t lanes = 0;             // threads per channel = next_pow2(N)
    int64_t channels_per_block = 0;
    int64_t segment_len = 0;       // timesteps per segment (the last may be shorter)
    int64_t segments = 0;          // ceil(rows / segment_len)
    LaunchShape shape;             // grid (channel blocks, segments)
    size_t scratch_bytes = 0;      // two [segments, D, N] complex fp32 buffers
};
constexpr int kCemaBlock = 256;
constexpr int64_t kCemaMinSegment = 32;
constexpr int64_t kMaxGridY = 65535;  // CUDA's limit on gridDim.y
// Returns false (with `error`) for N outside 1..32 or empty shapes.
bool plan_cema(int64_t rows, int64_t D, int64_t N, int64_t target_threads, CemaPlan &plan,
               std::string *error);

// TimestepNorm prefix scan: one block per group; each thread scans a contiguous run of
// timesteps serially, the block combines the runs.
struct TsnScanPlan {
    int64_t threads = 0;
    int64_t run_len = 0;  // timesteps per thread
    LaunchShape shape;
};
constexpr int kTsnScanMaxThreads = 256;
TsnScanPlan plan_tsn_scan(int64_t rows, int64_t groups);

// Chunk-local causal attention (online softmax). A block holds kAttnRowsPerBlock query rows
// (one warp each) and walks key tiles of kAttnKeyTile keys staged in shared memory; the value
// width is split over grid z in slices of kAttnValueSlice columns.
constexpr int kAttnRowsPerBlock = 4;
constexpr int kAttnKeyTile = 32;
constexpr int kAttnValuePerLane = 8;
constexpr int kAttnValueSlice = 32 * kAttnValuePerLane;
constexpr int kAttnKeyPad = 2;  // bf16 elements of padding per staged key row (bank spread)
struct AttentionSharedLayout {
    size_t k_offset = 0, v_offset = 0, total = 0;  // bytes; the queries start at 0
};
AttentionSharedLayout attention_shared_layout(int64_t head_dim_qk);
struct AttentionPlan {
    LaunchShape shape;
    AttentionSharedLayout layout;
    int64_t value_slices = 0;
};
// Shared memory: the rows' queries (fp32), one key tile (bf16, padded rows) and one value tile
// slice (bf16). Fails when it exceeds `shared_limit`.
bool plan_attention(int64_t q_rows, int64_t heads, int64_t head_dim_qk, int64_t head_dim_v,
                    size_t shared_limit, AttentionPlan &plan, std::string *error);

// Row-major Y[M][N] = X[M][K] · Wᵀ with W[N][K] expressed as one column-major cuBLAS call:
// C(m x n) = op(A) · op(B) with C = Yᵀ, A = W (transposed), B = Xᵀ.
struct GemmArgs {
    bool transa = false, transb = false;
    int64_t m = 0, n = 0, k = 0;
    int64_t lda = 0, ldb = 0, ldc = 0;
};
GemmArgs gemm_args_row_major(int64_t M, int64_t N, int64_t K, int64_t ldx, int64_t ldw, int64_t ldy);

// fp32 -> bf16 bits, round to nearest even, NaN kept quiet (same as models/gguf.py).
uint16_t round_to_bf16_bits(float f);
float bf16_bits_to_float(uint16_t b);
void convert_to_bf16(const float *src, uint16_t *dst, size_t n);

// Which backend to use. `requested` is the value of MGL_BACKEND (null or "" = cpu; "cuda";
// "auto" = cuda when a device is usable). `device_error` is empty when a device is usable.
enum class BackendKind { Cpu, Cuda };
struct BackendChoice {
    BackendKind kind = BackendKind::Cpu;
    std::string message;  // empty when nothing needs saying
};
BackendChoice choose_backend(const char *requested, bool cuda_built, const std::string &device_error);

}  // namespace cuda
}  // namespace mgl
