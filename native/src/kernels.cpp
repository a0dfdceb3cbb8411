// Matrix multiplication drivers (blocking, packing, threading), the portable scalar kernel set,
// run-time kernel selection and the number conversions.
//
// Y = X·Wᵀ takes one of these routes:
//  - few activation rows (M < kGemmMinRows): GEMV kernels stream one weight row at a time
//    against up to kGemvMaxRows activation rows; threads split the weight rows. Decoding one
//    token is this case and is bound by memory bandwidth.
//  - otherwise a packed GEMM: weights are converted to f32 and transposed into panels of nr
//    columns, activations into panels of mr rows, and a register-blocked tile kernel computes
//    mr x nr blocks of Y. With few rows (gemm_few_rows) the packed activations are shared and each
//    task packs the weight panels it needs just before use; with many rows (gemm_many_rows) the
//    weights are packed once per call and shared, and tasks take chunks of rows.
//  - Q8_0 weights on a kernel set with an int8 tile (VNNI), from kGemmMinRowsInt8 rows: gemm_q8.
//
// Q8_0 weights: the GEMV route quantizes the activations to q8 (blocks of 32) and takes int8 dot
// products (VNNI vpdpbusd or AVX2 vpmaddubsw), which keeps decoding memory bound. For the GEMM
// route with VNNI the int8 tile does about three times the multiply-adds per instruction of the
// f32 tile (measured on Zen 4: q8_0 at M = 1024 runs about 2.8x faster than f32). Without VNNI,
// int8 products cost as many instructions as f32 FMAs (vpmaddubsw + vpmaddwd + sign handling),
// so the weights are dequantized into the f32 panels instead and q8_0 runs at the f32 rate.
#include "kernels.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <new>
#include <string>

#include "common.h"
#include "kernels_internal.h"

namespace mgl {

// ------------------------------------------------------------------------------------------
// Number conversions (portable; the SIMD kernels use F16C for bulk fp16 -> f32)

float fp16_to_fp32(uint16_t h) {
    uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);  // inf, NaN (payload kept)
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else {  // subnormal half: normalise the mantissa
        uint32_t e = 113;
        while (!(mant & 0x400u)) {
            mant <<= 1;
            --e;
        }
        bits = sign | (e << 23) | ((mant & 0x3ffu) << 13);
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

uint16_t fp32_to_fp16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    const uint32_t sign = (x >> 16) & 0x8000u;
    const uint32_t mag = x & 0x7fffffffu;
    if (mag >= 0x7f800000u) {  // inf stays inf; NaN becomes a quiet NaN keeping the top payload bits
        uint32_t nan = mag > 0x7f800000u ? 0x200u | ((mag >> 13) & 0x3ffu) : 0;
        return static_cast<uint16_t>(sign | 0x7c00u | nan);
    }
    if (mag >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds past 65504
    if (mag < 0x38800000u) {  // result is subnormal or zero: units of 2^-24
        if (mag <= 0x33000000u) return static_cast<uint16_t>(sign);  // <= 2^-25 rounds to zero
        const uint32_t e = mag >> 23;
        const uint32_t m = (mag & 0x7fffffu) | 0x800000u;
        const uint32_t shift = 126 - e;  // value = m * 2^(e - 150) = (m >> shift) * 2^-24
        uint32_t h = m >> shift;
        const uint32_t rest = m & ((1u << shift) - 1);
        const uint32_t half = 1u << (shift - 1);
        if (rest > half || (rest == half && (h & 1u))) ++h;
        return static_cast<uint16_t>(sign | h);
    }
    uint32_t h = (mag >> 13) - (112u << 10);
    const uint32_t rest = mag & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // may carry into the exponent
    return static_cast<uint16_t>(sign | h);
}

float bf16_to_fp32(uint16_t h) {
    uint32_t bits = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

uint16_t fp32_to_bf16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet NaN
    x += 0x7fffu + ((x >> 16) & 1u);
    return static_cast<uint16_t>(x >> 16);
}

namespace kern {
namespace {

// ------------------------------------------------------------------------------------------
// Scalar kernel set: the reference for the SIMD sets and the fallback on other CPUs.

constexpr int kScalarMr = 4;
constexpr int kScalarNr = 16;

// out[i] = W[row][k0 + i] as f32 for i < n.
void load_row_run(const WeightView &W, int64_t row, int64_t k0, int64_t n, float *out) {
    const void *r = weight_row(W, row);
    switch (W.type) {
        case DType::F32:
            std::memcpy(out, static_cast<const float *>(r) + k0, static_cast<size_t>(n) * 4);
            break;
        case DType::F16: {
            const uint16_t *p = static_cast<const uint16_t *>(r) + k0;
            for (int64_t i = 0; i < n; ++i) out[i] = fp16_to_fp32(p[i]);
            break;
        }
        case DType::BF16: {
            const uint16_t *p = static_cast<const uint16_t *>(r) + k0;
            for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_fp32(p[i]);
            break;
        }
        case DType::Q8_0: {
            const uint8_t *blocks = static_cast<const uint8_t *>(r);
            for (int64_t i = 0; i < n; ++i) {
                const int64_t k = k0 + i;
                const uint8_t *b = blocks + (k / kQ8Block) * kQ8BlockBytes;
                out[i] = fp16_to_fp32(load_u16(b)) * static_cast<float>(static_cast<int8_t>(b[2 + k % kQ8Block]));
            }
            break;
        }
    }
}

void scalar_pack_b(const WeightView &W, int64_t n0, int64_t k0, int64_t kc, int nr, float *dst) {
    constexpr int64_t kChunk = 64;
    float run[kChunk];
    for (int j = 0; j < nr; ++j) {
        const int64_t n = n0 + j;
        for (int64_t k = 0; k < kc; k += kChunk) {
            const int64_t len = std::min(kChunk, kc - k);
            if (n < W.rows) load_row_run(W, n, k0 + k, len, run);
            else std::fill(run, run + len, 0.0f);
            for (int64_t i = 0; i < len; ++i) dst[(k + i) * nr + j] = run[i];
        }
    }
}

void scalar_pack_a(const float *X, int64_t ldx, int64_t rows, int64_t kc, int mr, float *dst) {
    for (int64_t k = 0; k < kc; ++k)
        for (int i = 0; i < mr; ++i) dst[k * mr + i] = i < rows ? X[i * ldx + k] : 0.0f;
}

void scalar_tile(int rows, int64_t kc, const float *a, const float *b, float *c, int64_t ldc, bool accumulate,
                 const float *bias) {
    float acc[kScalarMr][kScalarNr] = {};
    for (int64_t k = 0; k < kc; ++k) {
        const float *bk = b + k * kScalarNr;
        for (int i = 0; i < kScalarMr; ++i) {
            const float ai = a[k * kScalarMr + i];
            for (int j = 0; j < kScalarNr; ++j) acc[i][j] += ai * bk[j];
        }
    }
    for (int i = 0; i < rows; ++i) {
        float *ci = c + i * ldc;
        for (int j = 0; j < kScalarNr; ++j) {
            float v = acc[i][j];
            if (accumulate) v += ci[j];
            if (bias) v += bias[j];
            ci[j] = v;
        }
    }
}

void scalar_gemv(const WeightView &W, int64_t n0, int64_t n1, const float *X, int64_t ldx,
                 int64_t m_rows, const float *bias, float *Y, int64_t ldy) {
    constexpr int64_t kChunk = 256;
    float run[kChunk];
    const int64_t K = W.cols;
    for (int64_t n = n0; n < n1; ++n) {
        float acc[kGemvMaxRows] = {};
        for (int64_t k0 = 0; k0 < K; k0 += kChunk) {
            const int64_t len = std::min(kChunk, K - k0);
            load_row_run(W, n, k0, len, run);
            for (int64_t m = 0; m < m_rows; ++m) {
                const float *x = X + m * ldx + k0;
                float s = 0;
                for (int64_t i = 0; i < len; ++i) s += run[i] * x[i];
                acc[m] += s;
            }
        }
        for (int64_t m = 0; m < m_rows; ++m) Y[m * ldy + n] = acc[m] + (bias ? bias[n] : 0.0f);
    }
}

void scalar_gemv_q8(const WeightView &W, int64_t n0, int64_t n1, const Q8Rows &X, int64_t m_rows,
                    const float *bias, float *Y, int64_t ldy) {
    const int64_t n_blocks = W.cols / kQ8Block;
    for (int64_t n = n0; n < n1; ++n) {
        const uint8_t *wrow = static_cast<const uint8_t *>(weight_row(W, n));
        for (int64_t m = 0; m < m_rows; ++m) {
            const int8_t *xq = X.q + m * X.cols;
            const float *xd = X.d + m * n_blocks;
            float acc = 0;
            for (int64_t b = 0; b < n_blocks; ++b) {
                const uint8_t *blk = wrow + b * kQ8BlockBytes;
                const int8_t *wq = reinterpret_cast<const int8_t *>(blk + 2);
                int32_t dot = 0;
                for (int64_t i = 0; i < kQ8Block; ++i) dot += int32_t(wq[i]) * int32_t(xq[b * kQ8Block + i]);
                acc += static_cast<float>(dot) * (fp16_to_fp32(load_u16(blk)) * xd[b]);
            }
            Y[m * ldy + n] = acc + (bias ? bias[n] : 0.0f);
        }
    }
}

void scalar_quantize_q8(const float *x, int64_t cols, int8_t *q, float *d, int32_t *sum) {
    for (int64_t b = 0; b < cols / kQ8Block; ++b) {
        const float *xb = x + b * kQ8Block;
        float amax = 0;
        for (int64_t i = 0; i < kQ8Block; ++i) amax = std::max(amax, std::fabs(xb[i]));
        const float scale = amax > 0 ? 127.0f / amax : 0.0f;
        int32_t s = 0;
        for (int64_t i = 0; i < kQ8Block; ++i) {
            const int32_t v = static_cast<int32_t>(std::lrint(xb[i] * scale));
            q[b * kQ8Block + i] = static_cast<int8_t>(v);
            s += v;
        }
        d[b] = amax / 127.0f;
        sum[b] = s;
    }
}

void scalar_dequantize_row(const WeightView &W, int64_t row, float *out) {
    load_row_run(W, row, 0, W.cols, out);
}

void scalar_gemv_t(const WeightView &W, int64_t n0, int64_t n1, const float *X, int64_t ldx, int64_t m_rows,
                   const float *bias, float *Y, int64_t ldy) {
    const float *w = static_cast<const float *>(W.data);
    const int64_t ld = transposed_ld(W);
    for (int64_t m = 0; m < m_rows; ++m) {
        float *y = Y + m * ldy;
        for (int64_t n = n0; n < n1; ++n) y[n] = 0.0f;
        for (int64_t k = 0; k < W.cols; ++k) {
            const float x = X[m * ldx + k];
            const float *wk = w + k * ld;
            for (int64_t n = n0; n < n1; ++n) y[n] = std::fma(x, wk[n], y[n]);
        }
        if (bias)
            for (int64_t n = n0; n < n1; ++n) y[n] += bias[n];
    }
}

void scalar_silu(float *x, const float *mul, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        const float s = x[i] / (1.0f + std::exp(-x[i]));
        x[i] = mul ? s * mul[i] : s;
    }
}

void scalar_exp_shifted(float *x, float shift, int64_t n) {
    for (int64_t i = 0; i < n; ++i) x[i] = std::exp(x[i] - shift);
}

void scalar_cema_steps(const CemaRow &row, const CemaSteps &s, int64_t n) {
    for (int64_t d = 0; d < n; ++d) {
        const float qr = row.q_re[d], qi = row.q_im[d], p = row.p[d], er = row.eta_re[d], ei = row.eta_im[d];
        float hr = s.h_re[d], hi = s.h_im[d];
        for (int64_t t = 0; t < s.rows; ++t) {
            const float re = std::fma(qr, hr, std::fma(p, s.x[t * s.ldx + d], -qi * hi));
            const float im = std::fma(qr, hi, qi * hr);
            s.out_re[t][s.out_offset + d] = re;
            s.out_im[t][s.out_offset + d] = im;
            float &c = s.c[t * s.ldc + d];
            c = std::fma(er, re, std::fma(-ei, im, c));
            hr = re;
            hi = im;
        }
    }
}

int64_t scalar_first_max(const float *x, int64_t n) {
    float best = -std::numeric_limits<float>::infinity();
    int64_t at = 0;
    for (int64_t i = 0; i < n; ++i)
        if (x[i] > best) {  // false for NaN
            best = x[i];
            at = i;
        }
    return at;
}

const KernelTable kScalarTable = {
    Isa::Scalar, "scalar", kScalarMr, kScalarNr, scalar_pack_b, scalar_pack_a, scalar_tile,
    scalar_gemv, scalar_gemv_t, scalar_gemv_q8, scalar_quantize_q8, scalar_dequantize_row, 0, nullptr, nullptr,
    scalar_silu, scalar_exp_shifted, scalar_cema_steps, scalar_first_max,
};

// ------------------------------------------------------------------------------------------
// Run-time selection

bool cpu_has(Isa isa) {
#if MGL_KERNELS_SIMD_X86
    __builtin_cpu_init();
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                      __builtin_cpu_supports("f16c");
    const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    switch (isa) {
        case Isa::Scalar: return true;
        case Isa::Avx2: return avx2;
        case Isa::Avx512: return avx512;
        case Isa::Avx512Vnni: return avx512 && __builtin_cpu_supports("avx512vnni");
    }
    return false;
#else
    return isa == Isa::Scalar;
#endif
}

const KernelTable &table_for(Isa isa) {
#if MGL_KERNELS_SIMD_X86
    switch (isa) {
        case Isa::Scalar: break;
        case Isa::Avx2: return avx2_kernels();
        case Isa::Avx512: return avx512_kernels();
        case Isa::Avx512Vnni: return avx512_vnni_kernels();
    }
#endif
    return kScalarTable;
}

const KernelTable &best_table() {
    static const KernelTable &best = [] () -> const KernelTable & {
        for (Isa isa : {Isa::Avx512Vnni, Isa::Avx512, Isa::Avx2})
            if (cpu_has(isa)) return table_for(isa);
        return kScalarTable;
    }();
    return best;
}

std::atomic<const KernelTable *> g_forced{nullptr};

const KernelTable &active_table() {
    const KernelTable *forced = g_forced.load(std::memory_order_relaxed);
    return forced ? *forced : best_table();
}

// ------------------------------------------------------------------------------------------
// Drivers

constexpr int64_t kKc = 256;                     // depth of one packed block (multiple of 32)
constexpr int64_t kTaskMaxMPanels = 8;           // activation panels per GEMM task (L2 sized)
constexpr int64_t kPassMaxBytes = 8 << 20;       // packed weights per pass
constexpr int64_t kFewRowsMaxFloats = 96 << 10;  // packed activations that stay in L2: 384 KiB
constexpr int64_t kMinParallelMacs = 1 << 16;    // smaller products are not worth a dispatch
constexpr int64_t kMinParallelQuantize = 1 << 15;  // fewer activations are quantized on one thread
constexpr int kMaxTileFloats = 32 * 32;          // >= mr * nr of every kernel set

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Grow-only 64-byte aligned scratch memory, one per thread and purpose.
class ScratchBuffer {
public:
    ScratchBuffer() = default;
    ScratchBuffer(const ScratchBuffer &) = delete;
    ScratchBuffer &operator=(const ScratchBuffer &) = delete;
    ~ScratchBuffer() { release(); }
    void *get(size_t bytes) {
        if (bytes > capacity_) {
            void *fresh = ::operator new(bytes, kAlignment, std::nothrow);
            if (!fresh)
                fail(MGL_ERR_OUT_OF_MEMORY,
                     "matmul: cannot allocate " + std::to_string(bytes) + " bytes of scratch memory");
            release();
            data_ = fresh;
            capacity_ = bytes;
        }
        return data_;
    }
    template <class T> T *get(int64_t count) { return static_cast<T *>(get(static_cast<size_t>(count) * sizeof(T))); }

private:
    static constexpr std::align_val_t kAlignment{64};
    void release() {
        if (data_) ::operator delete(data_, kAlignment);
    }
    void *data_ = nullptr;
    size_t capacity_ = 0;
};

thread_local ScratchBuffer t_shared_pack;        // packed operand shared by all threads of a call
thread_local ScratchBuffer t_packed_panel;       // per thread: packed operand used by one task
thread_local ScratchBuffer t_quantized;          // q8 activations, owned by the calling thread

template <class Fn> void run_tasks(ThreadPool *pool, int64_t n_tasks, const Fn &fn) {
    if (pool && n_tasks > 1) {
        pool->parallel_for(n_tasks, [&](int64_t task, int) { fn(task); });
    } else {
        for (int64_t t = 0; t < n_tasks; ++t) fn(t);
    }
}

// Runs fn(i) for i in [0, count), in a few contiguous ranges per thread.
template <class Fn> void run_ranges(ThreadPool *pool, int64_t count, const Fn &fn) {
    const int64_t threads = pool ? pool->size() : 1;
    const int64_t n_tasks = std::min(count, 4 * threads);
    run_tasks(pool, n_tasks, [&](int64_t task) {
        for (int64_t i = task * count / n_tasks; i < (task + 1) * count / n_tasks; ++i) fn(i);
    });
}

// Tasks of a GEMM over m_panels x n_panels tiles: row chunks of at most kTaskMaxMPanels panels,
// as many as a multiple of the thread count so that the threads get equal shares; when that
// gives fewer than two chunks per thread, the columns are split as well.
struct TaskGrid {
    int64_t m_panels, n_panels, m_chunks, n_chunks;
    TaskGrid(int64_t m_panels_, int64_t n_panels_, int64_t threads) : m_panels(m_panels_), n_panels(n_panels_) {
        m_chunks = ceil_div(m_panels, kTaskMaxMPanels);
        if (threads > 1) m_chunks = std::min(m_panels, ceil_div(m_chunks, threads) * threads);
        n_chunks = threads > 1 && m_chunks < 2 * threads ? std::min(n_panels, ceil_div(2 * threads, m_chunks)) : 1;
    }
    int64_t tasks() const { return m_chunks * n_chunks; }
    // Panel ranges [mp0, mp1) x [np0, np1) of a task.
    void ranges(int64_t task, int64_t &mp0, int64_t &mp1, int64_t &np0, int64_t &np1) const {
        const int64_t mc = task / n_chunks, nc = task % n_chunks;
        mp0 = mc * m_panels / m_chunks;
        mp1 = (mc + 1) * m_panels / m_chunks;
        np0 = nc * n_panels / n_chunks;
        np1 = (nc + 1) * n_panels / n_chunks;
    }
};

// Packs a weight panel (KernelTable::pack_b) for any weights: transposed F32 ones are copied here,
// nr contiguous floats per depth.
void pack_weights(const KernelTable &kt, const WeightView &W, int64_t n0, int64_t k0, int64_t kc, int nr, float *dst) {
    if (!W.transposed) return kt.pack_b(W, n0, k0, kc, nr, dst);
    const float *w = static_cast<const float *>(W.data);
    const int64_t ld = transposed_ld(W), cols = std::clamp<int64_t>(W.rows - n0, 0, nr);
    for (int64_t k = 0; k < kc; ++k) {
        const float *src = w + (k0 + k) * ld + n0;
        std::copy(src, src + cols, dst + k * nr);
        std::fill(dst + k * nr + cols, dst + (k + 1) * nr, 0.0f);
    }
}

// Multiplies activation panels [mp0, mp1) (packed consecutively at `a`, kc deep) with one packed
// weight panel, into the columns [col0, col0 + nr) of Y. Tiles that would overrun the last column
// of Y go through a scratch block.
void multiply_panel(const KernelTable &kt, int64_t kc, const float *a, int64_t mp0, int64_t mp1, int64_t M,
                    const float *b, int64_t col0, int64_t N, float *Y, int64_t ldy, bool accumulate,
                    const float *bias) {
    const int64_t mr = kt.mr, nr = kt.nr;
    const int64_t cols = std::min(nr, N - col0);
    for (int64_t i = mp0; i < mp1; ++i, a += mr * kc) {
        const int64_t r0 = i * mr;
        const int rows = static_cast<int>(std::min(mr, M - r0));
        float *y = Y + r0 * ldy + col0;
        if (cols == nr) {
            kt.tile(rows, kc, a, b, y, ldy, accumulate, bias);
            continue;
        }
        alignas(64) float tmp[kMaxTileFloats];
        if (accumulate)
            for (int r = 0; r < rows; ++r) std::copy(y + r * ldy, y + r * ldy + cols, tmp + r * nr);
        kt.tile(rows, kc, a, b, tmp, nr, accumulate, nullptr);
        for (int r = 0; r < rows; ++r)
            for (int64_t j = 0; j < cols; ++j) y[r * ldy + j] = tmp[r * nr + j] + (bias ? bias[j] : 0.0f);
    }
}

// Packs rows [r0, r0 + rows) of X, columns [k0, k0 + kc), as consecutive panels of mr rows.
void pack_activations(const KernelTable &kt, const float *X, int64_t ldx, int64_t r0, int64_t rows, int64_t k0,
                      int64_t kc, float *dst) {
    const int64_t mr = kt.mr;
    for (int64_t i = 0; i < rows; i += mr, dst += mr * kc)
        kt.pack_a(X + (r0 + i) * ldx + k0, ldx, std::min(mr, rows - i), kc, static_cast<int>(mr), dst);
}

// Few rows: the packed activations (all of K) stay in L2 and are shared by all tasks; tasks split
// the columns and pack each weight panel right before using it, so it is still in L1.
void gemm_few_rows(ThreadPool *pool, const KernelTable &kt, const float *X, int64_t M, int64_t ldx,
                   const WeightView &W, const float *bias, float *Y, int64_t ldy) {
    const int64_t N = W.rows, K = W.cols, mr = kt.mr, nr = kt.nr;
    const int64_t m_panels = ceil_div(M, mr), n_panels = ceil_div(N, nr);
    float *apack = t_shared_pack.get<float>(m_panels * mr * K);  // block k0 at apack + k0 * m_panels * mr
    for (int64_t k0 = 0; k0 < K; k0 += kKc)
        pack_activations(kt, X, ldx, 0, M, k0, std::min(kKc, K - k0), apack + k0 * m_panels * mr);
    run_ranges(pool, n_panels, [&](int64_t p) {
        float *bpack = t_packed_panel.get<float>(std::min(kKc, K) * nr);
        for (int64_t k0 = 0; k0 < K; k0 += kKc) {
            const int64_t kc = std::min(kKc, K - k0);
            pack_weights(kt, W, p * nr, k0, kc, static_cast<int>(nr), bpack);
            multiply_panel(kt, kc, apack + k0 * m_panels * mr, 0, m_panels, M, bpack, p * nr, N, Y, ldy, k0 > 0,
                           k0 + kc == K && bias ? bias + p * nr : nullptr);
        }
    });
}

// Many rows: the weights are packed once per call (in passes of at most kPassMaxBytes) and
// shared; tasks take chunks of rows and pack their activations block by block.
void gemm_many_rows(ThreadPool *pool, const KernelTable &kt, const float *X, int64_t M, int64_t ldx,
                    const WeightView &W, const float *bias, float *Y, int64_t ldy) {
    const int64_t N = W.rows, K = W.cols, mr = kt.mr, nr = kt.nr;
    const int64_t threads = pool ? pool->size() : 1;
    const int64_t n_panels = ceil_div(N, nr);
    const int64_t m_panels = ceil_div(M, mr);
    const int64_t pass_panels = std::clamp<int64_t>(kPassMaxBytes / (K * nr * 4), 1, n_panels);
    float *packed = t_shared_pack.get<float>(K * pass_panels * nr);
    for (int64_t pass_begin = 0; pass_begin < n_panels; pass_begin += pass_panels) {
        const int64_t pn = std::min(pass_panels, n_panels - pass_begin);
        // Block k0 of panel p lives at packed + (k0 * pn + p * kc) * nr.
        run_ranges(pool, pn, [&](int64_t p) {
            for (int64_t k0 = 0; k0 < K; k0 += kKc) {
                const int64_t kc = std::min(kKc, K - k0);
                pack_weights(kt, W, (pass_begin + p) * nr, k0, kc, static_cast<int>(nr),
                             packed + (k0 * pn + p * kc) * nr);
            }
        });
        const TaskGrid grid(m_panels, pn, threads);
        run_tasks(pool, grid.tasks(), [&](int64_t task) {
            int64_t mp0, mp1, np0, np1;
            grid.ranges(task, mp0, mp1, np0, np1);
            float *apack = t_packed_panel.get<float>((mp1 - mp0) * mr * std::min(kKc, K));
            for (int64_t k0 = 0; k0 < K; k0 += kKc) {
                const int64_t kc = std::min(kKc, K - k0);
                pack_activations(kt, X, ldx, mp0 * mr, std::min(M, mp1 * mr) - mp0 * mr, k0, kc, apack);
                for (int64_t p = np0; p < np1; ++p) {
                    const int64_t col0 = (pass_begin + p) * nr;
                    multiply_panel(kt, kc, apack, mp0, mp1, M, packed + (k0 * pn + p * kc) * nr, col0, N, Y, ldy,
                                   k0 > 0, k0 + kc == K && bias ? bias + col0 : nullptr);
                }
            }
        });
    }
}

// Where `rows` quantized rows of depth K lie in `mem`: the int8 part, then scales and sums.
struct Q8Buffer {
    int8_t *q;
    float *d;
    int32_t *sum;
    int64_t K;
    Q8Buffer(uint8_t *mem, int64_t rows, int64_t K_) : K(K_) {
        q = reinterpret_cast<int8_t *>(mem);
        d = reinterpret_cast<float *>(mem + (rows * K + 3) / 4 * 4);  // aligned after the int8 part
        sum = reinterpret_cast<int32_t *>(d + rows * (K / kQ8Block));
    }
    void quantize(const KernelTable &kt, const float *x, int64_t row) const {
        const int64_t n_blocks = K / kQ8Block;
        kt.quantize_q8(x, K, q + row * K, d + row * n_blocks, sum + row * n_blocks);
    }
    Q8Rows rows_from(int64_t row) const {
        const int64_t n_blocks = K / kQ8Block;
        return Q8Rows{q + row * K, d + row * n_blocks, sum + row * n_blocks, K};
    }
};

// Quantizes rows [r0, r0 + rows) of X into `mem` (laid out as Q8Rows expects) and describes them.
Q8Rows quantize_rows(const KernelTable &kt, const float *X, int64_t ldx, int64_t r0, int64_t rows, int64_t K,
                     uint8_t *mem) {
    const Q8Buffer buffer(mem, rows, K);
    for (int64_t m = 0; m < rows; ++m) buffer.quantize(kt, X + (r0 + m) * ldx, m);
    return buffer.rows_from(0);
}

int64_t quantized_rows_bytes(int64_t rows, int64_t K) {
    return (rows * K + 3) / 4 * 4 + rows * (K / kQ8Block) * 8;
}

// Rows [0, rows) of xq times panels [p0, p1) of W (panel p of the product at packed + (p - base)
// panels), into the columns of Y, N columns in all.
void q8_tiles(const KernelTable &kt, const Q8Rows &xq, int64_t rows, const uint8_t *packed, int64_t p0, int64_t p1,
              int64_t base, int64_t N, const float *bias, float *Y, int64_t ldy) {
    const int64_t mr = kt.q8_mr, nr = kQ8PanelCols, K = xq.cols, n_blocks = K / kQ8Block;
    const int64_t panel_bytes = n_blocks * kQ8PanelBlockBytes;
    for (int64_t p = p0; p < p1; ++p) {
        const int64_t col0 = p * nr;
        const int64_t cols = std::min(nr, N - col0);
        const uint8_t *panel = packed + (p - base) * panel_bytes;
        const float *tile_bias = bias ? bias + col0 : nullptr;
        for (int64_t r0 = 0; r0 < rows; r0 += mr) {
            const int tile_rows = static_cast<int>(std::min(mr, rows - r0));
            const Q8Rows part{xq.q + r0 * K, xq.d + r0 * n_blocks, xq.sum + r0 * n_blocks, K};
            float *y = Y + r0 * ldy + col0;
            if (cols == nr) {
                kt.tile_q8(tile_rows, part, panel, y, ldy, tile_bias);
                continue;
            }
            alignas(64) float tmp[kMaxTileFloats];
            kt.tile_q8(tile_rows, part, panel, tmp, nr, nullptr);
            for (int r = 0; r < tile_rows; ++r)
                for (int64_t j = 0; j < cols; ++j) y[r * ldy + j] = tmp[r * nr + j] + (tile_bias ? tile_bias[j] : 0.0f);
        }
    }
}

// Q8_0 weights on a kernel set with an int8 tile: weights in int8 panels (W.q8_panels, or packed
// once per call in passes), activations quantized by each task for its rows (or once for all of
// them), products over all of K at once.
void gemm_q8(ThreadPool *pool, const KernelTable &kt, const float *X, int64_t M, int64_t ldx, const WeightView &W,
             const float *bias, float *Y, int64_t ldy) {
    const int64_t N = W.rows, K = W.cols, mr = kt.q8_mr, nr = kQ8PanelCols;
    const int64_t threads = pool ? pool->size() : 1;
    const int64_t panel_bytes = K / kQ8Block * kQ8PanelBlockBytes;
    const int64_t n_panels = ceil_div(N, nr), m_panels = ceil_div(M, mr);
    const int64_t pass_panels =
        W.q8_panels ? n_panels : std::clamp<int64_t>(kPassMaxBytes / panel_bytes, 1, n_panels);
    uint8_t *pass_buffer = W.q8_panels ? nullptr : t_shared_pack.get<uint8_t>(pass_panels * panel_bytes);
    // When tasks split the columns, or there are several passes, a row chunk would be quantized
    // more than once: quantize all rows once first instead (a decode row or a window is a few).
    const bool quantize_once = pass_panels < n_panels || TaskGrid(m_panels, pass_panels, threads).n_chunks > 1;
    const Q8Buffer all_rows(quantize_once ? t_quantized.get<uint8_t>(quantized_rows_bytes(M, K)) : nullptr,
                            quantize_once ? M : 0, K);
    if (quantize_once) {
        // Rows in parallel only when there are many: a dispatch costs more than a few rows.
        run_ranges(M * K >= kMinParallelQuantize ? pool : nullptr, M,
                   [&](int64_t m) { all_rows.quantize(kt, X + m * ldx, m); });
    }
    for (int64_t pass_begin = 0; pass_begin < n_panels; pass_begin += pass_panels) {
        const int64_t pn = std::min(pass_panels, n_panels - pass_begin);
        const uint8_t *packed = W.q8_panels ? W.q8_panels + pass_begin * panel_bytes : pass_buffer;
        if (!W.q8_panels)
            run_ranges(pool, pn, [&](int64_t p) { kt.pack_b_q8(W, (pass_begin + p) * nr, pass_buffer + p * panel_bytes); });
        const TaskGrid grid(m_panels, pn, threads);
        run_tasks(pool, grid.tasks(), [&](int64_t task) {
            int64_t mp0, mp1, np0, np1;
            grid.ranges(task, mp0, mp1, np0, np1);
            const int64_t r_begin = mp0 * mr, r_end = std::min(M, mp1 * mr);
            const Q8Rows xq = quantize_once ? all_rows.rows_from(r_begin)
                                            : quantize_rows(kt, X, ldx, r_begin, r_end - r_begin, K,
                                                            t_packed_panel.get<uint8_t>(quantized_rows_bytes(r_end - r_begin, K)));
            q8_tiles(kt, xq, r_end - r_begin, packed, pass_begin + np0, pass_begin + np1, pass_begin, N, bias,
                     Y + r_begin * ldy, ldy);
        });
    }
}

// Products whose weights all have int8 panels and which have few rows, as one dispatch of the
// pool: each product's rows quantized once (once for products of the same X), its panels split
// into chunks of about equal work across all products.
constexpr int64_t kFusedMaxRows = 16;
constexpr int64_t kFusedChunksPerThread = 4;

bool fusable(const KernelTable &kt, const MatmulJob &j) {
    return kt.tile_q8 && j.W->type == DType::Q8_0 && j.W->q8_panels && j.M > 0 && j.M <= kFusedMaxRows &&
           j.W->rows > 0 && j.W->cols > 0;
}

void fused_q8(ThreadPool *pool, const KernelTable &kt, const MatmulJob *jobs, int n_jobs) {
    const int64_t threads = pool->size(), nr = kQ8PanelCols;
    int64_t bytes = 0, work = 0;
    for (int i = 0; i < n_jobs; ++i) {
        bytes += quantized_rows_bytes(jobs[i].M, jobs[i].W->cols) + 64;
        work += jobs[i].M * jobs[i].W->rows * jobs[i].W->cols;
    }
    uint8_t *mem = t_quantized.get<uint8_t>(bytes);
    Q8Rows rows[kMaxProducts];
    for (int i = 0; i < n_jobs; ++i) {
        const MatmulJob &j = jobs[i];
        const int64_t K = j.W->cols;
        int same = -1;
        for (int e = 0; e < i && same < 0; ++e)
            if (jobs[e].X == j.X && jobs[e].M == j.M && jobs[e].ldx == j.ldx && jobs[e].W->cols == K) same = e;
        if (same >= 0) {
            rows[i] = rows[same];
            continue;
        }
        rows[i] = quantize_rows(kt, j.X, j.ldx, 0, j.M, K, mem);
        mem += (quantized_rows_bytes(j.M, K) + 63) / 64 * 64;
    }
    struct Chunk {
        int job;
        int64_t np0, np1;
    };
    Chunk chunks[kMaxProducts * kFusedChunksPerThread * 4];
    int64_t n_chunks = 0;
    const int64_t unit = std::max<int64_t>(1, work / (kFusedChunksPerThread * threads));
    for (int i = 0; i < n_jobs; ++i) {
        const int64_t n_panels = ceil_div(jobs[i].W->rows, nr);
        const int64_t job_work = jobs[i].M * jobs[i].W->rows * jobs[i].W->cols;
        const int64_t parts = std::clamp<int64_t>((job_work + unit / 2) / unit, 1,
                                                  std::min<int64_t>(n_panels, kFusedChunksPerThread * 4));
        for (int64_t c = 0; c < parts; ++c) chunks[n_chunks++] = {i, c * n_panels / parts, (c + 1) * n_panels / parts};
    }
    run_tasks(work < kMinParallelMacs ? nullptr : pool, n_chunks, [&](int64_t task) {
        const Chunk &c = chunks[task];
        const MatmulJob &j = jobs[c.job];
        q8_tiles(kt, rows[c.job], j.M, j.W->q8_panels, c.np0, c.np1, 0, j.W->rows, j.bias, j.Y, j.ldy);
    });
}

void gemv(ThreadPool *pool, const KernelTable &kt, const float *X, int64_t M, int64_t ldx, const WeightView &W,
          const float *bias, float *Y, int64_t ldy) {
    const int64_t N = W.rows, K = W.cols;
    Q8Rows xq;
    if (W.type == DType::Q8_0)
        xq = quantize_rows(kt, X, ldx, 0, M, K, t_quantized.get<uint8_t>(quantized_rows_bytes(M, K)));
    const int64_t threads = pool ? pool->size() : 1;
    // A few row ranges per thread (for balance), of at least 16 rows.
    const int64_t n_tasks = threads > 1 ? std::min(ceil_div(N, 16), 4 * threads) : 1;
    const int64_t rows_per_task = ceil_div(N, n_tasks);
    run_tasks(pool, ceil_div(N, rows_per_task), [&](int64_t task) {
        const int64_t n0 = task * rows_per_task, n1 = std::min(N, n0 + rows_per_task);
        for (int64_t m0 = 0; m0 < M; m0 += kGemvMaxRows) {
            const int64_t m_rows = std::min(kGemvMaxRows, M - m0);
            if (W.type == DType::Q8_0) {
                const int64_t n_blocks = K / kQ8Block;
                Q8Rows part{xq.q + m0 * K, xq.d + m0 * n_blocks, xq.sum + m0 * n_blocks, K};
                kt.gemv_q8(W, n0, n1, part, m_rows, bias, Y + m0 * ldy, ldy);
            } else {
                (W.transposed ? kt.gemv_t : kt.gemv)(W, n0, n1, X + m0 * ldx, ldx, m_rows, bias, Y + m0 * ldy, ldy);
            }
        }
    });
}

[[noreturn]] void invalid(const std::string &what) { fail(MGL_ERR_INVALID_ARG, "matmul: " + what); }

void validate_weights(const WeightView &W, const char *fn) {
    // Built only for an error: this check runs for every product of a decode step.
    const auto where = [fn] { return std::string(fn) + ": weight "; };
    if (W.type != DType::F32 && W.type != DType::F16 && W.type != DType::BF16 && W.type != DType::Q8_0)
        fail(MGL_ERR_UNSUPPORTED,
             where() + "type id " + std::to_string(static_cast<uint32_t>(W.type)) + " is not supported");
    if (W.rows < 0 || W.cols < 0)
        fail(MGL_ERR_INVALID_ARG,
             where() + "shape " + std::to_string(W.rows) + " x " + std::to_string(W.cols) + " is negative");
    if (W.type == DType::Q8_0 && W.cols % kQ8Block != 0)
        fail(MGL_ERR_INVALID_ARG, where() + "cols = " + std::to_string(W.cols) + " is not a multiple of 32 (q8_0)");
    if (W.transposed && W.type != DType::F32) fail(MGL_ERR_INVALID_ARG, where() + "only f32 weights may be transposed");
    if (W.transposed && W.q8_panels) fail(MGL_ERR_INVALID_ARG, where() + "transposed weights have no int8 panels");
    if (!W.transposed && W.ld != 0 && W.ld != W.cols && W.type != DType::F32)
        fail(MGL_ERR_INVALID_ARG, where() + "ld = " + std::to_string(W.ld) + " != cols: only f32 rows may be strided");
    // ld steps over rows, or over depths when transposed.
    const int64_t min_ld = W.transposed ? W.rows : W.cols;
    if (W.ld < 0 || (W.ld != 0 && W.ld < min_ld))
        fail(MGL_ERR_INVALID_ARG, where() + "ld = " + std::to_string(W.ld) + " is smaller than " +
                                      (W.transposed ? "rows = " : "cols = ") + std::to_string(min_ld) +
                                      (W.transposed ? " (transposed)" : ""));
    if (!W.data && W.rows > 0 && W.cols > 0) fail(MGL_ERR_INVALID_ARG, where() + "data is null");
}

}  // namespace

const KernelTable &scalar_kernels() { return kScalarTable; }

bool isa_supported(Isa isa) { return cpu_has(isa); }

void force_isa(Isa isa) {
    if (!cpu_has(isa))
        fail(MGL_ERR_UNSUPPORTED, std::string("kernels: this CPU cannot run the ") + isa_name(isa) + " kernels");
    g_forced.store(&table_for(isa));
}

void reset_isa() { g_forced.store(nullptr); }

Isa active_isa() { return active_table().isa; }

const KernelTable &active_kernels() { return active_table(); }

const char *isa_name(Isa isa) {
    switch (isa) {
        case Isa::Scalar: return "scalar";
        case Isa::Avx2: return "avx2+fma";
        case Isa::Avx512: return "avx512";
        case Isa::Avx512Vnni: return "avx512+vnni";
    }
    return "unknown";
}

}  // namespace kern

namespace kern {
namespace {
// Throws for invalid arguments of a product; false when there is nothing to multiply (M, N or
// K is 0: then Y, if it has rows, has been set to the bias).
bool check_product(const float *X, int64_t M, int64_t ldx, const WeightView &W, const float *bias, float *Y,
                   int64_t ldy) {
    validate_weights(W, "matmul");
    const int64_t N = W.rows, K = W.cols;
    if (M < 0) invalid("M = " + std::to_string(M) + " is negative");
    if (M == 0 || N == 0) return false;
    if (!Y) invalid("Y is null");
    if (ldy < N) invalid("ldy = " + std::to_string(ldy) + " is smaller than N = " + std::to_string(N));
    if (K == 0) {
        for (int64_t m = 0; m < M; ++m)
            for (int64_t n = 0; n < N; ++n) Y[m * ldy + n] = bias ? bias[n] : 0.0f;
        return false;
    }
    if (!X) invalid("X is null");
    if (ldx < K) invalid("ldx = " + std::to_string(ldx) + " is smaller than K = " + std::to_string(K));
    return true;
}

// A checked product (check_product returned true) on the route for its type and shape.
void multiply(ThreadPool *pool, const float *X, int64_t M, int64_t ldx, const WeightView &W, const float *bias,
              float *Y, int64_t ldy) {
    const int64_t N = W.rows, K = W.cols;
    if (pool && (pool->size() == 1 || M * N * K < kMinParallelMacs)) pool = nullptr;
    const KernelTable &kt = active_table();
    const bool int8_gemm = W.type == DType::Q8_0 && kt.tile_q8;
    // With panels the int8 GEMM takes every row count; without, only enough rows to pay for packing.
    if (int8_gemm && (W.q8_panels || M >= kGemmMinRowsInt8)) gemm_q8(pool, kt, X, M, ldx, W, bias, Y, ldy);
    else if (M < kGemmMinRows) gemv(pool, kt, X, M, ldx, W, bias, Y, ldy);
    else if (ceil_div(M, kt.mr) * kt.mr * K <= kFewRowsMaxFloats) gemm_few_rows(pool, kt, X, M, ldx, W, bias, Y, ldy);
    else gemm_many_rows(pool, kt, X, M, ldx, W, bias, Y, ldy);
}
}  // namespace
}  // namespace kern

void matmul(ThreadPool *pool, const float *X, int64_t M, int64_t ldx, const WeightView &W, const float *bias,
            float *Y, int64_t ldy) {
    if (kern::check_product(X, M, ldx, W, bias, Y, ldy)) kern::multiply(pool, X, M, ldx, W, bias, Y, ldy);
}

void matmuls(ThreadPool *pool, const MatmulJob *jobs, int n_jobs) {
    using namespace kern;
    if (n_jobs < 0 || n_jobs > kMaxProducts)
        invalid(std::to_string(n_jobs) + " products in one matmuls call (at most " + std::to_string(kMaxProducts) + ")");
    const KernelTable &kt = active_table();
    bool fuse = pool && pool->size() > 1 && n_jobs > 1;
    bool work[kMaxProducts] = {};  // products with something to multiply
    for (int i = 0; i < n_jobs; ++i) {
        const MatmulJob &j = jobs[i];
        if (!j.W) invalid("product " + std::to_string(i) + " of a matmuls call has no weights");
        work[i] = check_product(j.X, j.M, j.ldx, *j.W, j.bias, j.Y, j.ldy);
        if (!work[i] || !fusable(kt, j)) fuse = false;
    }
    if (fuse) return fused_q8(pool, kt, jobs, n_jobs);
    for (int i = 0; i < n_jobs; ++i)
        if (work[i]) multiply(pool, jobs[i].X, jobs[i].M, jobs[i].ldx, *jobs[i].W, jobs[i].bias, jobs[i].Y, jobs[i].ldy);
}

int64_t matmul_row_exact_rows(const WeightView &W) {
    const bool int8_gemm = W.type == DType::Q8_0 && kern::active_table().tile_q8;
    if (int8_gemm && W.q8_panels) return std::numeric_limits<int64_t>::max();
    return (int8_gemm ? kern::kGemmMinRowsInt8 : kern::kGemmMinRows) - 1;
}

int64_t q8_panels_bytes(const WeightView &W) {
    if (W.type != DType::Q8_0 || !kern::active_table().tile_q8) return 0;
    return kern::ceil_div(W.rows, kern::kQ8PanelCols) * (W.cols / kern::kQ8Block) * kern::kQ8PanelBlockBytes;
}

void pack_q8_panels(ThreadPool *pool, const WeightView &W, uint8_t *dst) {
    using namespace kern;
    validate_weights(W, "pack_q8_panels");
    const KernelTable &kt = active_table();
    if (W.type != DType::Q8_0 || !kt.pack_b_q8)
        fail(MGL_ERR_INVALID_ARG, "pack_q8_panels: the weights are not Q8_0 or this CPU's kernels have no int8 GEMM");
    if (reinterpret_cast<uintptr_t>(dst) % 64 != 0) fail(MGL_ERR_INVALID_ARG, "pack_q8_panels: dst is not 64-byte aligned");
    const int64_t panel_bytes = W.cols / kQ8Block * kQ8PanelBlockBytes;
    run_ranges(pool, ceil_div(W.rows, kQ8PanelCols),
               [&](int64_t p) { kt.pack_b_q8(W, p * kQ8PanelCols, dst + p * panel_bytes); });
}

void silu(float *x, const float *mul, int64_t n) { kern::active_table().silu(x, mul, n); }

void exp_shifted(float *x, float shift, int64_t n) { kern::active_table().exp_shifted(x, shift, n); }

void cema_steps(const CemaRow &row, const CemaSteps &s, int64_t n) {
    kern::active_table().cema_steps(row, s, n);
}

int64_t first_max(const float *x, int64_t n) { return kern::active_table().first_max(x, n); }

void dequantize_row(const WeightView &W, int64_t row, float *out) {
    kern::validate_weights(W, "dequantize_row");
    if (row < 0 || row >= W.rows)
        fail(MGL_ERR_INVALID_ARG, "dequantize_row: row " + std::to_string(row) + " is outside [0, " +
                                      std::to_string(W.rows) + ")");
    if (W.cols == 0) return;
    if (!out) fail(MGL_ERR_INVALID_ARG, "dequantize_row: out is null");
    if (W.transposed) {
        const float *w = static_cast<const float *>(W.data);
        for (int64_t k = 0; k < W.cols; ++k) out[k] = w[k * kern::transposed_ld(W) + row];
        return;
    }
    kern::active_table().dequantize_row(W, row, out);
}

const char *cpu_features() {
    switch (kern::active_isa()) {
        case kern::Isa::Scalar: return "scalar";
        case kern::Isa::Avx2: return "avx2+fma";
        case kern::Isa::Avx512:
        case kern::Isa::Avx512Vnni: return "avx512";
    }
    return "scalar";
}

}  // namespace mgl
