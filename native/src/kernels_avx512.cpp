// AVX-512 (F/BW/VL/DQ) kernels, plus int8 dot products with VNNI (vpdpbusd) in a separate table
// because VNNI is checked on its own at run time. Packing and quantization reuse the AVX2 code:
// they are bound by memory traffic, not by vector width.

// GCC 12's AVX-512 headers build "undefined" vectors by self-initialisation, which
// -Wuninitialized reports at every use (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>


#include <array>
#include <cstring>
#include <limits>
#include <utility>

#include "kernels_internal.h"

namespace mgl::kern {
namespace {

// 12 x 32 tile: 24 accumulators + 2 weight vectors, activations broadcast from memory. On cores
// that split 512-bit FMAs into two halves it still keeps both FMA pipes busy with few loads.
constexpr int kMr = 12;
constexpr int kNr = 32;

// R (<= kMr) rows of a 12 x 32 tile; the activation panel keeps its kMr stride.
template <int R>
void tile_rows(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, bool accumulate, const float *bias) {
    __m512 acc[R][2];
    MGL_UNROLL
    for (int i = 0; i < R; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; ++k) {
        const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
        MGL_UNROLL
        for (int i = 0; i < R; ++i) {
            const __m512 ai = _mm512_set1_ps(a[i]);
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
        }
        a += kMr;
        b += kNr;
    }
    MGL_UNROLL
    for (int i = 0; i < R; ++i) {
        float *ci = c + i * ldc;
        MGL_UNROLL
        for (int h = 0; h < 2; ++h) {
            __m512 v = acc[i][h];
            if (accumulate) v = _mm512_add_ps(v, _mm512_loadu_ps(ci + 16 * h));
            if (bias) v = _mm512_add_ps(v, _mm512_loadu_ps(bias + 16 * h));
            _mm512_storeu_ps(ci + 16 * h, v);
        }
    }
}

using TileFn = void (*)(int64_t, const float *, const float *, float *, int64_t, bool, const float *);

template <int... R> constexpr std::array<TileFn, sizeof...(R)> tile_table(std::integer_sequence<int, R...>) {
    return {tile_rows<R + 1>...};
}
constexpr std::array<TileFn, kMr> kTileRows = tile_table(std::make_integer_sequence<int, kMr>());

void tile(int rows, int64_t kc, const float *a, const float *b, float *c, int64_t ldc, bool accumulate,
          const float *bias) {
    kTileRows[static_cast<size_t>(rows - 1)](kc, a, b, c, ldc, accumulate, bias);
}

// ---- GEMV -------------------------------------------------------------------------------------

// 16 weights of one row from column k as f32; lanes outside `mask` are zero and not read.
template <DType T> inline __m512 load16(const void *row, int64_t k, __mmask16 mask);
template <> inline __m512 load16<DType::F32>(const void *row, int64_t k, __mmask16 mask) {
    return _mm512_maskz_loadu_ps(mask, static_cast<const float *>(row) + k);
}
template <> inline __m512 load16<DType::F16>(const void *row, int64_t k, __mmask16 mask) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, static_cast<const uint16_t *>(row) + k));
}
template <> inline __m512 load16<DType::BF16>(const void *row, int64_t k, __mmask16 mask) {
    const __m256i h = _mm256_maskz_loadu_epi16(mask, static_cast<const uint16_t *>(row) + k);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// One weight row at a time against up to 4 activation rows (see kernels_avx2.cpp: a single
// sequential stream is fastest once the weights come from memory).
template <DType T, int M>
void gemv_rows(const WeightView &W, int64_t n0, int64_t n1, const float *X, int64_t ldx, const float *bias,
               float *Y, int64_t ldy) {
    const int64_t K = W.cols;
    const __mmask16 all = 0xffff;
    for (int64_t n = n0; n < n1; ++n) {
        const void *row = weight_row(W, n);
        __m512 acc[M][2];
        MGL_UNROLL
        for (int m = 0; m < M; ++m) acc[m][0] = acc[m][1] = _mm512_setzero_ps();
        int64_t k = 0;
        for (; k + 32 <= K; k += 32) {
            const __m512 w0 = load16<T>(row, k, all), w1 = load16<T>(row, k + 16, all);
            MGL_UNROLL
            for (int m = 0; m < M; ++m) {
                acc[m][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(X + m * ldx + k), acc[m][0]);
                acc[m][1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(X + m * ldx + k + 16), acc[m][1]);
            }
        }
        // Chunk c of 16 columns always goes to accumulator c % 2: a row's sum then does not
        // depend on K beyond zeros in X (attention over a window's padded keys relies on it).
        for (; k < K; k += 16) {
            const __mmask16 mask = K - k >= 16 ? all : __mmask16((1u << (K - k)) - 1);
            const __m512 w = load16<T>(row, k, mask);
            const int half = int(k / 16) & 1;
            MGL_UNROLL
            for (int m = 0; m < M; ++m)
                acc[m][half] = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(mask, X + m * ldx + k), acc[m][half]);
        }
        MGL_UNROLL
        for (int m = 0; m < M; ++m)
            Y[m * ldy + n] = _mm512_reduce_add_ps(_mm512_add_ps(acc[m][0], acc[m][1])) + (bias ? bias[n] : 0.0f);
    }
}

template <DType T>
void gemv_typed(const WeightView &W, int64_t n0, int64_t n1, const float *X, int64_t ldx, int64_t m_rows,
                const float *bias, float *Y, int64_t ldy) {
    switch (m_rows) {
        case 1: gemv_rows<T, 1>(W, n0, n1, X, ldx, bias, Y, ldy); break;
        case 2: gemv_rows<T, 2>(W, n0, n1, X, ldx, bias, Y, ldy); break;
        case 3: gemv_rows<T, 3>(W, n0, n1, X, ldx, bias, Y, ldy); break;
        default: gemv_rows<T, 4>(W, n0, n1, X, ldx, bias, Y, ldy); break;
    }
}

void gemv(const WeightView &W, int64_t n0, int64_t n1, const float *X, int64_t ldx, int64_t m_rows,
          const float *bias, float *Y, int64_t ldy) {
    switch (W.type) {
        case DType::F32: gemv_typed<DType::F32>(W, n0, n1, X, ldx, m_rows, bias, Y, ldy); break;
        case DType::F16: gemv_typed<DType::F16>(W, n0, n1, X, ldx, m_rows, bias, Y, ldy); break;
        case DType::BF16: gemv_typed<DType::BF16>(W, n0, n1, X, ldx, m_rows, bias, Y, ldy); break;
        case DType::Q8_0: break;  // handled by gemv_q8
    }
}

// Transposed f32 weights: blocks of 64 columns, each output summed over k in order (one FMA per
// row and k), so a row's results do not depend on the other rows, the column range or K.
template <int M>
void gemv_t_rows(const WeightView &W, int64_t n0, int64_t n1, const float *X, int64_t ldx, const float *bias,
                 float *Y, int64_t ldy) {
    constexpr int U = 4;
    const float *w = static_cast<const float *>(W.data);
    const int64_t ld = transposed_ld(W), K = W.cols;
    for (int64_t n = n0; n < n1; n += 16 * U) {
        __mmask16 mask[U];
        MGL_UNROLL
        for (int u = 0; u < U; ++u) {
            const int64_t left = n1 - (n + 16 * u);
            mask[u] = left >= 16 ? __mmask16(0xffff) : left > 0 ? __mmask16((1u << left) - 1) : __mmask16(0);
        }
        __m512 acc[M][U];
        MGL_UNROLL
        for (int m = 0; m < M; ++m)
            MGL_UNROLL
            for (int u = 0; u < U; ++u) acc[m][u] = _mm512_setzero_ps();
        for (int64_t k = 0; k < K; ++k) {
            const float *wk = w + k * ld + n;
            __m512 wv[U];
            MGL_UNROLL
            for (int u = 0; u < U; ++u) wv[u] = _mm512_maskz_loadu_ps(mask[u], wk + 16 * u);
            MGL_UNROLL
            for (int m = 0; m < M; ++m) {
                const __m512 x = _mm512_set1_ps(X[m * ldx + k]);
                MGL_UNROLL
                for (int u = 0; u < U; ++u) acc[m][u] = _mm512_fmadd_ps(x, wv[u], acc[m][u]);
            }
        }
        MGL_UNROLL
        for (int m = 0; m < M; ++m)
            MGL_UNROLL
            for (int u = 0; u < U; ++u) {
                __m512 v = acc[m][u];
                if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask[u], bias + n + 16 * u));
                _mm512_mask_storeu_ps(Y + m * ldy + n + 16 * u, mask[u], v);
            }
    }
}

void gemv_t(const WeightView &W, int64_t n0, int64_t n1, const float *X, int64_t ldx, int64_t m_rows,
            const float *bias, float *Y, int64_t ldy) {
    switch (m_rows) {
        case 1: gemv_t_rows<1>(W, n0, n1, X, ldx, bias, Y, ldy); break;
        case 2: gemv_t_rows<2>(W, n0, n1, X, ldx, bias, Y, ldy); break;
        case 3: gemv_t_rows<3>(W, n0, n1, X, ldx, bias, Y, ldy); break;
        default: gemv_t_rows<4>(W, n0, n1, X, ldx, bias, Y, ldy); break;
    }
}

// ---- q8_0 GEMV with VNNI ------------------------------------------------------------------------
// vpdpbusd multiplies unsigned by signed bytes: the weights enter as w + 128 (flip of the top bit)
// and the activations as they are; the excess 128 * sum(x) of each block is subtracted by starting
// the block's accumulator at -128 * sum(x) (in one lane: only the lane total matters).
// Rows are streamed one at a time as in the f32 GEMV.

template <int M>
inline void q8_block_dot_vnni(const uint8_t *block, const Q8Rows &X, int64_t n_blocks, int64_t b, __m256 acc[M]) {
    const __m256i wu = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(block + 2)),
                                        _mm256_set1_epi8(static_cast<char>(0x80)));
    const float wd = _cvtsh_ss(load_u16(block));
    MGL_UNROLL
    for (int m = 0; m < M; ++m) {
        const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(X.q + m * X.cols + b * kQ8Block));
        const __m256i start = _mm256_setr_epi32(-128 * X.sum[m * n_blocks + b], 0, 0, 0, 0, 0, 0, 0);
        const __m256 dot = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(start, wu, xq));
        acc[m] = _mm256_fmadd_ps(dot, _mm256_set1_ps(wd * X.d[m * n_blocks + b]), acc[m]);
    }
}

inline float hsum(__m256 v) {
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 s2 = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

template <int M>
void gemv_q8_vnni_rows(const WeightView &W, int64_t n0, int64_t n1, const Q8Rows &X, const float *bias, float *Y,
                       int64_t ldy) {
    const int64_t n_blocks = W.cols / kQ8Block;
    for (int64_t n = n0; n < n1; ++n) {
        const uint8_t *row = static_cast<const uint8_t *>(weight_row(W, n));
        __m256 acc0[M], acc1[M];  // even and odd blocks, for two independent FMA chains
        MGL_UNROLL
        for (int m = 0; m < M; ++m) acc0[m] = acc1[m] = _mm256_setzero_ps();
        int64_t b = 0;
        for (; b + 2 <= n_blocks; b += 2) {
            q8_block_dot_vnni<M>(row + b * kQ8BlockBytes, X, n_blocks, b, acc0);
            q8_block_dot_vnni<M>(row + (b + 1) * kQ8BlockBytes, X, n_blocks, b + 1, acc1);
        }
        if (b < n_blocks) q8_block_dot_vnni<M>(row + b * kQ8BlockBytes, X, n_blocks, b, acc0);
        MGL_UNROLL
        for (int m = 0; m < M; ++m) Y[m * ldy + n] = hsum(_mm256_add_ps(acc0[m], acc1[m])) + (bias ? bias[n] : 0.0f);
    }
}

void gemv_q8_vnni(const WeightView &W, int64_t n0, int64_t n1, const Q8Rows &X, int64_t m_rows, const float *bias,
                  float *Y, int64_t ldy) {
    switch (m_rows) {
        case 1: gemv_q8_vnni_rows<1>(W, n0, n1, X, bias, Y, ldy); break;
        case 2: gemv_q8_vnni_rows<2>(W, n0, n1, X, bias, Y, ldy); break;
        case 3: gemv_q8_vnni_rows<3>(W, n0, n1, X, bias, Y, ldy); break;
        default: gemv_q8_vnni_rows<4>(W, n0, n1, X, bias, Y, ldy); break;
    }
}

// ---- int8 GEMM tile with VNNI -----------------------------------------------------------------
// Up to 6 activation rows x 32 weight columns over all of K. Per block of 32 depths each row
// accumulates 8 vpdpbusd per 16 columns in int32 (the activation quad broadcast from memory, the
// weights as w + 128 from the panel, the accumulator started at -128 * sum(x) to cancel the
// offset), then adds dot * d_w * d_x into f32. This does about three times the multiply-adds per
// instruction of the f32 tile.

constexpr int kQ8Mr = 6;

template <int R>
void tile_q8_rows(const Q8Rows &X, const uint8_t *panel, float *c, int64_t ldc, const float *bias) {
    const int64_t n_blocks = X.cols / kQ8Block;
    __m512 acc[R][2];
    MGL_UNROLL
    for (int i = 0; i < R; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int64_t b = 0; b < n_blocks; ++b, panel += kQ8PanelBlockBytes) {
        __m512i dot[R][2];
        MGL_UNROLL
        for (int i = 0; i < R; ++i) dot[i][0] = dot[i][1] = _mm512_set1_epi32(-128 * X.sum[i * n_blocks + b]);
        const int8_t *xb = X.q + b * kQ8Block;
        MGL_UNROLL
        for (int t = 0; t < 8; ++t) {
            const __m512i w0 = _mm512_load_si512(panel + t * 128), w1 = _mm512_load_si512(panel + t * 128 + 64);
            MGL_UNROLL
            for (int i = 0; i < R; ++i) {
                int32_t quad;
                std::memcpy(&quad, xb + i * X.cols + 4 * t, 4);
                const __m512i x = _mm512_set1_epi32(quad);
                dot[i][0] = _mm512_dpbusd_epi32(dot[i][0], w0, x);
                dot[i][1] = _mm512_dpbusd_epi32(dot[i][1], w1, x);
            }
        }
        const __m512 wd0 = _mm512_load_ps(panel + 8 * 128), wd1 = _mm512_load_ps(panel + 8 * 128 + 64);
        MGL_UNROLL
        for (int i = 0; i < R; ++i) {
            const __m512 xd = _mm512_set1_ps(X.d[i * n_blocks + b]);
            acc[i][0] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(dot[i][0]), wd0), xd, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(dot[i][1]), wd1), xd, acc[i][1]);
        }
    }
    MGL_UNROLL
    for (int i = 0; i < R; ++i)
        MGL_UNROLL
        for (int h = 0; h < 2; ++h) {
            __m512 v = acc[i][h];
            if (bias) v = _mm512_add_ps(v, _mm512_loadu_ps(bias + 16 * h));
            _mm512_storeu_ps(c + i * ldc + 16 * h, v);
        }
}

void tile_q8(int rows, const Q8Rows &X, const uint8_t *panel, float *c, int64_t ldc, const float *bias) {
    switch (rows) {
        case 1: tile_q8_rows<1>(X, panel, c, ldc, bias); break;
        case 2: tile_q8_rows<2>(X, panel, c, ldc, bias); break;
        case 3: tile_q8_rows<3>(X, panel, c, ldc, bias); break;
        case 4: tile_q8_rows<4>(X, panel, c, ldc, bias); break;
        case 5: tile_q8_rows<5>(X, panel, c, ldc, bias); break;
        default: tile_q8_rows<kQ8Mr>(X, panel, c, ldc, bias); break;
    }
}

}  // namespace

// ---- element-wise -----------------------------------------------------------------------------
// e^x at 16 lanes (see kExpPoly); tails go through masked loads and stores, so every element
// takes the same instructions.
namespace avx512 {
namespace {

inline __m512 exp16(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(kExpMin)), _mm512_set1_ps(kExpMax));
    const __m512 n =
        _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
    __m512 p = _mm512_set1_ps(kExpPoly[0]);
    for (int i = 1; i < 6; ++i) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpPoly[i]));
    const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(y, n);
}

template <class F> inline void map16(float *x, const float *mul, int64_t n, const F &f) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 mask = n - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - i)) - 1);
        __m512 v = f(_mm512_maskz_loadu_ps(mask, x + i));
        if (mul) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(mask, mul + i));
        _mm512_mask_storeu_ps(x + i, mask, v);
    }
}

}  // namespace

void silu(float *x, const float *mul, int64_t n) {
    map16(x, mul, n, [](__m512 v) {
        const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), v));
        return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
    });
}

void exp_shifted(float *x, float shift, int64_t n) {
    const __m512 s = _mm512_set1_ps(shift);
    map16(x, nullptr, n, [&](__m512 v) { return exp16(_mm512_sub_ps(v, s)); });
}

// The scalar kernel's operations sixteen channels at a time, the tail under a mask: the
// coefficients and the state of a vector stay in registers over the rows. One row (a decode
// step) has a loop of its own, without the loop over rows.
template <bool kOneRow> void cema16(const CemaRow &row, const CemaSteps &s, int64_t n) {
    const float *x = s.x, *h_re = s.h_re, *h_im = s.h_im;
    const float *q_re = row.q_re, *q_im = row.q_im, *p_ = row.p, *eta_re = row.eta_re, *eta_im = row.eta_im;
    float *c = s.c;
    const int64_t rows = kOneRow ? 1 : s.rows, ldx = s.ldx, ldc = s.ldc, off = s.out_offset;
    float *const *out_re = s.out_re, *const *out_im = s.out_im;
    float *const re0 = out_re[0] + off, *const im0 = out_im[0] + off;
    for (int64_t d = 0; d < n; d += 16) {
        const __mmask16 m = n - d >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - d)) - 1);
        __m512 hr = _mm512_maskz_loadu_ps(m, h_re + d), hi = _mm512_maskz_loadu_ps(m, h_im + d);
        const __m512 qr = _mm512_maskz_loadu_ps(m, q_re + d), qi = _mm512_maskz_loadu_ps(m, q_im + d);
        const __m512 p = _mm512_maskz_loadu_ps(m, p_ + d), er = _mm512_maskz_loadu_ps(m, eta_re + d);
        const __m512 nei = _mm512_sub_ps(_mm512_setzero_ps(), _mm512_maskz_loadu_ps(m, eta_im + d));
        for (int64_t t = 0; t < rows; ++t) {
            const __m512 xt = _mm512_maskz_loadu_ps(m, x + t * ldx + d);
            const __m512 re =
                _mm512_fmadd_ps(qr, hr, _mm512_fmadd_ps(p, xt, _mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(qi, hi))));
            const __m512 im = _mm512_fmadd_ps(qr, hi, _mm512_mul_ps(qi, hr));
            _mm512_mask_storeu_ps((kOneRow ? re0 : out_re[t] + off) + d, m, re);
            _mm512_mask_storeu_ps((kOneRow ? im0 : out_im[t] + off) + d, m, im);
            float *ct = c + t * ldc + d;
            _mm512_mask_storeu_ps(ct, m, _mm512_fmadd_ps(er, re, _mm512_fmadd_ps(nei, im, _mm512_maskz_loadu_ps(m, ct))));
            hr = re;
            hi = im;
        }
    }
}

// Per lane the largest value and the index where it first occurs (a later equal value does not
// replace it), NaN as -inf, in four independent sets of lanes; the sets merged lane by lane
// (larger value, or equal value at the smaller index); then the largest of the lanes and, among
// lanes holding it, the smallest index: the first place of the maximum, in one pass.
int64_t first_max(const float *x, int64_t n) {
    struct Lanes {
        __m512 best;
        __m512i at;
        void take(__m512 v, __m512i idx) {
            const __mmask16 up = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ);  // false for NaN
            best = _mm512_mask_mov_ps(best, up, v);
            at = _mm512_mask_mov_epi32(at, up, idx);
        }
        void merge(const Lanes &o) {
            const __mmask16 up = _mm512_cmp_ps_mask(o.best, best, _CMP_GT_OQ) |
                                 (_mm512_cmp_ps_mask(o.best, best, _CMP_EQ_OQ) & _mm512_cmp_epi32_mask(o.at, at, _MM_CMPINT_LT));
            best = _mm512_mask_mov_ps(best, up, o.best);
            at = _mm512_mask_mov_epi32(at, up, o.at);
        }
    };
    const __m512 lowest = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    Lanes l[4];
    for (Lanes &v : l) v = {lowest, _mm512_setzero_si512()};
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    int64_t i = 0;
    for (; i + 64 <= n; i += 64)
        for (int k = 0; k < 4; ++k)
            l[k].take(_mm512_loadu_ps(x + i + 16 * k), _mm512_add_epi32(lane, _mm512_set1_epi32(int(i + 16 * k))));
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - i)) - 1);
        l[0].take(_mm512_mask_loadu_ps(lowest, m, x + i), _mm512_add_epi32(lane, _mm512_set1_epi32(int(i))));
    }
    l[0].merge(l[1]);
    l[2].merge(l[3]);
    l[0].merge(l[2]);
    const float top = _mm512_reduce_max_ps(l[0].best);
    if (!(top > -std::numeric_limits<float>::infinity())) return 0;
    const __mmask16 holders = _mm512_cmp_ps_mask(l[0].best, _mm512_set1_ps(top), _CMP_EQ_OQ);
    return _mm512_mask_reduce_min_epi32(holders, l[0].at);
}

void cema_steps(const CemaRow &row, const CemaSteps &s, int64_t n) {
    if (s.rows == 1) cema16<true>(row, s, n);
    else if (s.rows > 1) cema16<false>(row, s, n);
}

}  // namespace avx512

const KernelTable &avx512_kernels() {
    static const KernelTable table = {
        Isa::Avx512, "avx512", kMr, kNr, avx2::pack_b, avx2::pack_a, tile,
        gemv, gemv_t, avx2::gemv_q8, avx2::quantize_q8, avx2::dequantize_row,
        0, nullptr, nullptr,  // int8 GEMM: without VNNI it does no fewer operations than f32
        avx512::silu, avx512::exp_shifted, avx512::cema_steps, avx512::first_max,
    };
    return table;
}

const KernelTable &avx512_vnni_kernels() {
    static const KernelTable table = {
        Isa::Avx512Vnni, "avx512+vnni", kMr, kNr, avx2::pack_b, avx2::pack_a, tile,
        gemv, gemv_t, gemv_q8_vnni, avx2::quantize_q8, avx2::dequantize_row,
        kQ8Mr, avx2::pack_b_q8, tile_q8,
        avx512::silu, avx512::exp_shifted, avx512::cema_steps, avx512::first_max,
    };
    return table;
}

}  // namespace mgl::kern
