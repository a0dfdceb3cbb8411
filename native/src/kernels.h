// Compute kernels of the CPU backend: weight-type aware matrix multiplication and conversions.
// The implementation picks AVX-512 / AVX2+FMA / scalar code at run time (cpu_features()).
#pragma once

#include <cstddef>
#include <cstdint>

#include "gguf.h"
#include "threadpool.h"

namespace mgl {

// A weight matrix W of shape [rows = N out][cols = K in], rows contiguous. For F32 `ld` is the
// row stride in elements (>= cols); quantized types always have packed rows.
struct WeightView {
    DType type = DType::F32;
    const void *data = nullptr;
    int64_t rows = 0;
    int64_t cols = 0;
    int64_t ld = 0;  // F32 only; 0 means cols (rows when transposed)
    // F32 only: W is stored transposed, element (n, k) at data[k * ld + n] (ld >= rows). Attention
    // reads the chunk's keys and values this way: decoding one row is then a sweep of
    // multiply-adds over contiguous rows, with no horizontal sums.
    bool transposed = false;
    // Q8_0 only: all of W repacked by pack_q8_panels, or null. With panels every product takes
    // the int8 GEMM, for any number of rows, without packing the weights per call.
    const uint8_t *q8_panels = nullptr;
};

// Y[M][N] = X[M][K] · Wᵀ (+ bias[N] when bias != nullptr). X rows have stride ldx, Y rows ldy.
// pool == nullptr runs on the calling thread (for use inside another parallel region).
// Q8_0 weights: X is quantized to 8 bits per block of 32 and the dot products run in int8 where
// that is faster (few rows of X on every CPU, all row counts with AVX-512 VNNI; otherwise the
// weights are dequantized to f32). Results match the dequantized f32 product to q8 precision.
void matmul(ThreadPool *pool, const float *X, int64_t M, int64_t ldx, const WeightView &W,
            const float *bias, float *Y, int64_t ldy);

// One product of matmuls: Y = X·Wᵀ (+ bias), as matmul's arguments.
struct MatmulJob {
    const float *X;
    int64_t M, ldx;
    const WeightView *W;
    const float *bias;
    float *Y;
    int64_t ldy;
};
// Up to kMaxProducts independent products (no Y overlaps another's X or Y), with the results of
// one matmul each, in one dispatch of the pool where they allow it (int8 panels, few rows): a
// decode step's products are too small to pay for one dispatch each.
constexpr int kMaxProducts = 8;
void matmuls(ThreadPool *pool, const MatmulJob *jobs, int n_jobs);

// Largest M for which matmul computes every row of Y exactly as it computes that row alone
// (M = 1): the GEMV route, whose per-row sums do not depend on the other rows, or any M for
// weights with int8 panels (one tile routine for every row count). Splitting a product into
// groups of at most this many rows makes it bit-identical to row-by-row products.
int64_t matmul_row_exact_rows(const WeightView &W);

// Bytes of the int8 panels of Q8_0 weights W for this CPU's kernels (a multiple of 64); 0 when
// W is not Q8_0 or the kernels have no int8 GEMM (then W needs no panels).
int64_t q8_panels_bytes(const WeightView &W);
// Packs W into `dst` (q8_panels_bytes(W) bytes, 64-byte aligned) for W.q8_panels.
void pack_q8_panels(ThreadPool *pool, const WeightView &W, uint8_t *dst);

// x[i] = silu(x[i]) · mul[i] (mul == nullptr: silu(x[i])) for i < n, with silu(x) = x / (1 + e^-x).
void silu(float *x, const float *mul, int64_t n);
// x[i] = e^(x[i] - shift) for i < n.
void exp_shifted(float *x, float shift, int64_t n);

// Coefficients of one of the N state rows of a CEMA layer, for the channels that x, c and the
// states of cema_steps start at: q = q_re + i·q_im, p, η = eta_re + i·eta_im.
struct CemaRow {
    const float *q_re, *q_im, *p, *eta_re, *eta_im;
};
// The rows of cema_steps: row t reads x + t·ldx and adds into c + t·ldc; the state before row 0
// is h, the state after row t goes to out[t] + out_offset.
struct CemaSteps {
    const float *x;
    int64_t ldx;
    float *c;
    int64_t ldc;
    const float *h_re, *h_im;
    float *const *out_re, *const *out_im;
    int64_t out_offset;
    int64_t rows;
};
// CEMA steps (megalodon.md 2.2) of channels [0, n) of one state row over s.rows rows: for row t,
// h' = q·h + p·x_t, c_t += Re(η·h'), h' into out[t]. The coefficients and h are read once and
// h' stays in registers from row to row, so an out[t] may be h itself (a segment updating its
// state in place). Element-wise like silu: a channel's results do not depend on n, rows or its
// place in the arrays.
void cema_steps(const CemaRow &row, const CemaSteps &s, int64_t n);

// Index of the first largest of x[0..n), NaN counting as -inf; 0 when nothing is above -inf.
// Greedy decoding takes one per generated or verified token.
int64_t first_max(const float *x, int64_t n);

// out[cols] = row `row` of W as f32.
void dequantize_row(const WeightView &W, int64_t row, float *out);

float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);
float bf16_to_fp32(uint16_t h);
uint16_t fp32_to_bf16(float f);  // round to nearest even

// "avx512", "avx2+fma" or "scalar" (or "neon"): the kernel set chosen at run time.
const char *cpu_features();

}  // namespace mgl
