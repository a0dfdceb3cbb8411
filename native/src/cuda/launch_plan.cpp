#include "cuda/launch_plan.h"

#include <algorithm>
#include <cstring>

namespace mgl {
namespace cuda {

int64_t next_pow2(int64_t n) {
    int64_t p = 1;
    while (p < n) p <<= 1;
    return p;
}

LaunchShape row_reduce_shape(int64_t rows, int64_t width) {
    LaunchShape s;
    s.grid_x = static_cast<unsigned>(std::max<int64_t>(rows, 1));
    s.block = static_cast<unsigned>(std::clamp<int64_t>(next_pow2(ceil_div(std::max<int64_t>(width, 1), 4)), 32, 1024));
    s.shared_bytes = (s.block / 32) * 2 * sizeof(float);  // per-warp partial sums
    return s;
}

LaunchShape elementwise_shape(int64_t n, int64_t per_thread) {
    LaunchShape s;
    s.block = 256;
    int64_t threads = ceil_div(std::max<int64_t>(n, 1), std::max<int64_t>(per_thread, 1));
    s.grid_x = static_cast<unsigned>(ceil_div(threads, s.block));
    return s;
}

bool plan_cema(int64_t rows, int64_t D, int64_t N, int64_t target_threads, CemaPlan &plan,
               std::string *error) {
    if (N < 1 || N > 32) {
        if (error) *error = "CEMA on the GPU needs 1..32 states per channel, got " + std::to_string(N);
        return false;
    }
    if (rows < 1 || D < 1) {
        if (error) *error = "CEMA needs at least one row and one channel";
        return false;
    }
    plan = CemaPlan{};
    plan.lanes = next_pow2(N);
    plan.channels_per_block = kCemaBlock / plan.lanes;
    int64_t channel_blocks = ceil_div(D, plan.channels_per_block);
    int64_t base_threads = channel_blocks * kCemaBlock;
    int64_t wanted_segments = std::max<int64_t>(1, ceil_div(target_threads, base_threads));
    // Segments shorter than kCemaMinSegment cost more in the carry pass than they save.
    plan.segment_len = std::min(rows, std::max({kCemaMinSegment, ceil_div(rows, wanted_segments),
                                                 ceil_div(rows, kMaxGridY)}));
    plan.segments = ceil_div(rows, plan.segment_len);
    plan.shape.grid_x = static_cast<unsigned>(channel_blocks);
    plan.shape.grid_y = static_cast<unsigned>(plan.segments);
    plan.shape.block = kCemaBlock;
    plan.scratch_bytes = static_cast<size_t>(2 * plan.segments * D * N) * 2 * sizeof(float);
    return true;
}

TsnScanPlan plan_tsn_scan(int64_t rows, int64_t groups) {
    TsnScanPlan p;
    p.threads = std::clamp<int64_t>(next_pow2(std::max<int64_t>(rows, 1)), 32, kTsnScanMaxThreads);
    p.run_len = ceil_div(std::max<int64_t>(rows, 1), p.threads);
    p.shape.grid_x = static_cast<unsigned>(std::max<int64_t>(groups, 1));
    p.shape.block = static_cast<unsigned>(p.threads);
    // Per-thread run aggregates (count as int64, mean, M2).
    p.shape.shared_bytes = static_cast<size_t>(p.threads) * (sizeof(long long) + 2 * sizeof(float));
    return p;
}

static size_t align16(size_t n) { return (n + 15) & ~size_t(15); }

AttentionSharedLayout attention_shared_layout(int64_t head_dim_qk) {
    AttentionSharedLayout l;
    size_t q_bytes = align16(static_cast<size_t>(kAttnRowsPerBlock * head_dim_qk) * sizeof(float));
    size_t k_bytes = align16(static_cast<size_t>(kAttnKeyTile * (head_dim_qk + kAttnKeyPad)) * 2);
    size_t v_bytes = align16(static_cast<size_t>(kAttnKeyTile * kAttnValueSlice) * 2);
    l.k_offset = q_bytes;
    l.v_offset = q_bytes + k_bytes;
    l.total = q_bytes + k_bytes + v_bytes;
    return l;
}

bool plan_attention(int64_t q_rows, int64_t heads, int64_t head_dim_qk, int64_t head_dim_v,
                    size_t shared_limit, AttentionPlan &plan, std::string *error) {
    if (q_rows < 1 || heads < 1 || head_dim_qk < 1 || head_dim_v < 1) {
        if (error) *error = "attention needs positive rows, heads and head sizes";
        return false;
    }
    plan = AttentionPlan{};
    plan.layout = attention_shared_layout(head_dim_qk);
    if (plan.layout.total > shared_limit) {
        if (error)
            *error = "attention with head size " + std::to_string(head_dim_qk) + " needs " +
                     std::to_string(plan.layout.total) + " bytes of shared memory, the device allows " +
                     std::to_string(shared_limit);
        return false;
    }
    plan.value_slices = ceil_div(head_dim_v, kAttnValueSlice);
    plan.shape.grid_x = static_cast<unsigned>(ceil_div(q_rows, kAttnRowsPerBlock));
    plan.shape.grid_y = static_cast<unsigned>(heads);
    plan.shape.grid_z = static_cast<unsigned>(plan.value_slices);
    plan.shape.block = 32 * kAttnRowsPerBlock;
    plan.shape.shared_bytes = plan.layout.total;
    return true;
}

GemmArgs gemm_args_row_major(int64_t M, int64_t N, int64_t K, int64_t ldx, int64_t ldw, int64_t ldy) {
    GemmArgs g;
    g.transa = true;
    g.transb = false;
    g.m = N;
    g.n = M;
    g.k = K;
    g.lda = ldw;
    g.ldb = ldx;
    g.ldc = ldy;
    return g;
}

uint16_t round_to_bf16_bits(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
    x += 0x7fffu + ((x >> 16) & 1u);
    return static_cast<uint16_t>(x >> 16);
}

float bf16_bits_to_float(uint16_t b) {
    uint32_t x = static_cast<uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &x, 4);
    return f;
}

void convert_to_bf16(const float *src, uint16_t *dst, size_t n) {
    for (size_t i = 0; i < n; ++i) dst[i] = round_to_bf16_bits(src[i]);
}

BackendChoice choose_backend(const char *requested, bool cuda_built, const std::string &device_error) {
    BackendChoice c;
    std::string req = requested ? requested : "";
    if (req.empty() || req == "cpu") return c;
    if (req != "cuda" && req != "auto") {
        c.message = "MGL_BACKEND=" + req + " is not a backend (cpu, cuda, auto); using the CPU backend";
        return c;
    }
    if (!cuda_built) {
        c.message = "MGL_BACKEND=" + req +
                    ": this build has no CUDA backend (configure with -DMGL_CUDA=ON); using the CPU backend";
        return c;
    }
    if (!device_error.empty()) {
        c.message = "MGL_BACKEND=" + req + ": no usable CUDA device (" + device_error + "); using the CPU backend";
        return c;
    }
    c.kind = BackendKind::Cuda;
    return c;
}

}  // namespace cuda
}  // namespace mgl
