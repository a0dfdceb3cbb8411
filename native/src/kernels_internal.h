// Internals of the compute kernels shared by kernels.cpp (dispatch, drivers, scalar code) and the
// instruction-set specific files kernels_avx2.cpp / kernels_avx512.cpp, plus hooks for tests.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels.h"

// The x86 SIMD kernel files are built (with their own -m flags) for x86 targets with GCC/Clang.
#if MGL_X86 && (defined(__GNUC__) || defined(__clang__))
#define MGL_KERNELS_SIMD_X86 1
#else
#define MGL_KERNELS_SIMD_X86 0
#endif

// Placed before loops over register-blocked accumulators: unrolling them early lets GCC keep the
// accumulators in registers (GCC 12 otherwise may store the whole array to the stack on every
// iteration of the enclosing loop).
#define MGL_UNROLL _Pragma("GCC unroll 16")

namespace mgl::kern {

enum class Isa { Scalar, Avx2, Avx512, Avx512Vnni };

// q8_0 block as stored in GGUF: fp16 scale d, then 32 int8 values; value = d * q.
constexpr int64_t kQ8Block = 32;
constexpr int64_t kQ8BlockBytes = 34;

// Activation rows quantized for the int8 dot products: per block of 32, a scale d (f32), the
// values q = round_to_nearest_even(x * 127 / max|x|) in [-127, 127], and their sum.
struct Q8Rows {
    const int8_t *q = nullptr;     // [rows][cols]
    const float *d = nullptr;      // [rows][cols / 32]
    const int32_t *sum = nullptr;  // [rows][cols / 32]
    int64_t cols = 0;              // multiple of 32
};

// The GEMV kernels handle up to this many activation rows in one pass over the weights.
constexpr int64_t kGemvMaxRows = 4;
// matmul uses the GEMV kernels (several passes if needed) below this many rows, GEMM from here;
// the int8 GEMM (Q8_0 weights on a kernel set with tile_q8) takes over earlier.
constexpr int64_t kGemmMinRows = 12;
constexpr int64_t kGemmMinRowsInt8 = 6;

// One instruction set's kernels. The drivers in kernels.cpp do the blocking and threading.
// GEMM tiles work on packed panels: A (activations) as [k][mr], B (weights, transposed) as
// [k][nr], both padded with zeros.
struct KernelTable {
    Isa isa;
    const char *name;
    int mr, nr;
    // dst[k * nr + j] = W[n0 + j][k0 + k] as f32 for k < kc, j < nr; rows >= W.rows give 0.
    // k0 is a multiple of 32 (so q8_0 chunks never straddle a block); dst is 64-byte aligned.
    void (*pack_b)(const WeightView &W, int64_t n0, int64_t k0, int64_t kc, int nr, float *dst);
    // dst[k * mr + i] = X[i * ldx + k] for i < rows, 0 for rows <= i < mr (k < kc).
    void (*pack_a)(const float *X, int64_t ldx, int64_t rows, int64_t kc, int mr, float *dst);
    // C[rows][nr] (row stride ldc) = first `rows` (1..mr) rows of A·B, plus C when accumulate,
    // plus bias[0..nr) when non-null.
    void (*tile)(int rows, int64_t kc, const float *a, const float *b, float *c, int64_t ldc, bool accumulate,
                 const float *bias);
    // Y[m][n] = X[m]·W[n] (+ bias[n]) for m < m_rows <= kGemvMaxRows, n in [n0, n1).
    // F32/F16/BF16 weights.
    void (*gemv)(const WeightView &W, int64_t n0, int64_t n1, const float *X, int64_t ldx,
                 int64_t m_rows, const float *bias, float *Y, int64_t ldy);
    // The same for transposed F32 weights (W.transposed): each output is summed over k in order,
    // so its value does not depend on m_rows, [n0, n1) or K beyond zeros in X.
    void (*gemv_t)(const WeightView &W, int64_t n0, int64_t n1, const float *X, int64_t ldx,
                   int64_t m_rows, const float *bias, float *Y, int64_t ldy);
    // The same for Q8_0 weights and activations quantized by quantize_q8.
    void (*gemv_q8)(const WeightView &W, int64_t n0, int64_t n1, const Q8Rows &X, int64_t m_rows,
                    const float *bias, float *Y, int64_t ldy);
    // Quantizes one row (cols % 32 == 0); every variant gives bit-identical results.
    void (*quantize_q8)(const float *x, int64_t cols, int8_t *q, float *d, int32_t *sum);
    void (*dequantize_row)(const WeightView &W, int64_t row, float *out);
    // Optional int8 GEMM for Q8_0 weights (null where int8 products are not faster than f32):
    // weight panels of kQ8PanelCols columns in the layout described at kQ8PanelBlockBytes, tiles
    // of up to q8_mr activation rows.
    int q8_mr;
    // Packs columns [n0, n0 + kQ8PanelCols) of W for all of K; rows >= W.rows give zero weights.
    void (*pack_b_q8)(const WeightView &W, int64_t n0, uint8_t *dst);
    // C[rows][kQ8PanelCols] = first `rows` rows of X times the panel (+ bias when non-null).
    void (*tile_q8)(int rows, const Q8Rows &X, const uint8_t *panel, float *c, int64_t ldc, const float *bias);
    // Element-wise functions (see kernels.h): every element's result depends on its inputs only,
    // not on n or its place in the array, so any split of a row gives the same values.
    void (*silu)(float *x, const float *mul, int64_t n);
    void (*exp_shifted)(float *x, float shift, int64_t n);
    void (*cema_steps)(const CemaRow &row, const CemaSteps &s, int64_t n);
    int64_t (*first_max)(const float *x, int64_t n);
};

// Int8 weight panel, per block of 32 depths: for quad t = 0..7, 2 x 64 bytes holding, for
// columns j = 0..31, the 4 weights W[j][4t .. 4t+3] + 128 as unsigned bytes (the form vpdpbusd
// multiplies); then the 32 column scales d as f32.
constexpr int kQ8PanelCols = 32;
constexpr int64_t kQ8PanelBlockBytes = 8 * 128 + kQ8PanelCols * 4;

const KernelTable &scalar_kernels();
#if MGL_KERNELS_SIMD_X86
const KernelTable &avx2_kernels();
const KernelTable &avx512_kernels();
const KernelTable &avx512_vnni_kernels();
namespace avx2 {
// Shared with the AVX-512 tables (every AVX-512 CPU has AVX2, FMA and F16C).
void pack_b(const WeightView &W, int64_t n0, int64_t k0, int64_t kc, int nr, float *dst);
void pack_a(const float *X, int64_t ldx, int64_t rows, int64_t kc, int mr, float *dst);
void gemv_q8(const WeightView &W, int64_t n0, int64_t n1, const Q8Rows &X, int64_t m_rows,
             const float *bias, float *Y, int64_t ldy);
void quantize_q8(const float *x, int64_t cols, int8_t *q, float *d, int32_t *sum);
void dequantize_row(const WeightView &W, int64_t row, float *out);
void pack_b_q8(const WeightView &W, int64_t n0, uint8_t *dst);
}  // namespace avx2
namespace avx512 {
void silu(float *x, const float *mul, int64_t n);
void exp_shifted(float *x, float shift, int64_t n);
void cema_steps(const CemaRow &row, const CemaSteps &s, int64_t n);
int64_t first_max(const float *x, int64_t n);
}  // namespace avx512
#endif

// e^x in the vector kernels: the exponent n = round(x·log2 e) goes into the float's exponent bits
// and e^r, r = x - n·ln 2 (ln 2 in two parts), comes from a degree-6 polynomial (the Cephes expf
// coefficients; about 1 ulp). x is clamped to [kExpMin, kExpMax] so that 2^n stays a normal float.
constexpr float kExpMin = -87.3f, kExpMax = 88.3f;
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
// Highest power first; e^r = 1 + r + r^2 · poly(r).
constexpr float kExpPoly[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                               4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};

// Test hooks: whether this CPU can run `isa`, and forcing the kernel set used by matmul and
// dequantize_row (throws MGL_ERR_UNSUPPORTED when the CPU cannot run it).
bool isa_supported(Isa isa);
void force_isa(Isa isa);
void reset_isa();  // back to the best set for this CPU
Isa active_isa();
const KernelTable &active_kernels();
const char *isa_name(Isa isa);

// Row access shared by all kernel sets (not for transposed weights: see transposed_ld).
inline int64_t weight_ld(const WeightView &W) { return W.ld > 0 ? W.ld : W.cols; }
inline int64_t transposed_ld(const WeightView &W) { return W.ld > 0 ? W.ld : W.rows; }

inline const void *weight_row(const WeightView &W, int64_t row) {
    const uint8_t *base = static_cast<const uint8_t *>(W.data);
    switch (W.type) {
        case DType::F32: return base + row * weight_ld(W) * 4;
        case DType::F16:
        case DType::BF16: return base + row * W.cols * 2;
        case DType::Q8_0: return base + row * (W.cols / kQ8Block) * kQ8BlockBytes;
    }
    return base;
}

inline uint16_t load_u16(const void *p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}

}  // namespace mgl::kern
