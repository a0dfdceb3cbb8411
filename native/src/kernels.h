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
    int64_t ld = 0;  // F32 only; 0 means cols
};

// Y[M][N] = X[M][K] · Wᵀ (+ bias[N] when bias != nullptr). X rows have stride ldx, Y rows ldy.
// pool == nullptr runs on the calling thread (for use inside another parallel region).
// Q8_0 weights: X is quantized to 8 bits per block of 32 and the dot products run in int8 where
// that is faster (few rows of X on every CPU, all row counts with AVX-512 VNNI; otherwise the
// weights are dequantized to f32). Results match the dequantized f32 product to q8 precision.
void matmul(ThreadPool *pool, const float *X, int64_t M, int64_t ldx, const WeightView &W,
            const float *bias, float *Y, int64_t ldy);

// Largest M for which matmul computes every row of Y exactly as it computes that row alone
// (M = 1): the GEMV route, whose per-row sums do not depend on the other rows. Splitting a
// product into groups of at most this many rows makes it bit-identical to row-by-row products.
int64_t matmul_row_exact_rows(const WeightView &W);

// out[cols] = row `row` of W as f32.
void dequantize_row(const WeightView &W, int64_t row, float *out);

float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);
float bf16_to_fp32(uint16_t h);
uint16_t fp32_to_bf16(float f);  // round to nearest even

// "avx512", "avx2+fma" or "scalar" (or "neon"): the kernel set chosen at run time.
const char *cpu_features();

}  // namespace mgl
