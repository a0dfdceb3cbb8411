// AVX2 + FMA + F16C kernels. Compiled with -mavx2 -mfma -mf16c; only called after a run-time check.
#include <immintrin.h>


#include <algorithm>
#include <limits>

#include "kernels_internal.h"

namespace mgl::kern {
namespace {

constexpr int kMr = 6;   // 6 x 16 tile: 12 accumulators + 2 weight vectors + 1 broadcast
constexpr int kNr = 16;

// ---- element access -------------------------------------------------------------------------

inline float q8_scale(const uint8_t *block) { return _cvtsh_ss(load_u16(block)); }

// 8 consecutive weights of one row, starting at column k, as f32. For q8_0, k % 8 == 0.
template <DType T> inline __m256 load8(const void *row, int64_t k);
template <> inline __m256 load8<DType::F32>(const void *row, int64_t k) {
    return _mm256_loadu_ps(static_cast<const float *>(row) + k);
}
template <> inline __m256 load8<DType::F16>(const void *row, int64_t k) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(static_cast<const uint16_t *>(row) + k)));
}
template <> inline __m256 load8<DType::BF16>(const void *row, int64_t k) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i *>(static_cast<const uint16_t *>(row) + k));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
template <> inline __m256 load8<DType::Q8_0>(const void *row, int64_t k) {
    const uint8_t *block = static_cast<const uint8_t *>(row) + (k / kQ8Block) * kQ8BlockBytes;
    const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i *>(block + 2 + k % kQ8Block));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), _mm256_set1_ps(q8_scale(block)));
}

// One weight as f32 (for the few columns that do not fill a vector).
template <DType T> inline float load1(const void *row, int64_t k);
template <> inline float load1<DType::F32>(const void *row, int64_t k) { return static_cast<const float *>(row)[k]; }
template <> inline float load1<DType::F16>(const void *row, int64_t k) {
    return _cvtsh_ss(static_cast<const uint16_t *>(row)[k]);
}
template <> inline float load1<DType::BF16>(const void *row, int64_t k) {
    return bf16_to_fp32(static_cast<const uint16_t *>(row)[k]);
}
template <> inline float load1<DType::Q8_0>(const void *row, int64_t k) {
    const uint8_t *block = static_cast<const uint8_t *>(row) + (k / kQ8Block) * kQ8BlockBytes;
    return q8_scale(block) * static_cast<float>(static_cast<int8_t>(block[2 + k % kQ8Block]));
}

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// In-place transpose of 8 vectors of 8 floats.
inline void transpose8(__m256 r[8]) {
    __m256 t[8], s[8];
    for (int i = 0; i < 4; ++i) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; ++i) {
        s[4 * i + 0] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        s[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
        s[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        s[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
    }
    for (int i = 0; i < 4; ++i) {
        r[i] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x20);
        r[i + 4] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x31);
    }
}

// ---- packing ----------------------------------------------------------------------------------

// Groups of 8 weight rows are read 8 columns at a time and transposed into the panel.
template <DType T>
void pack_b_typed(const WeightView &W, int64_t n0, int64_t k0, int64_t kc, int nr, float *dst) {
    for (int j0 = 0; j0 < nr; j0 += 8) {
        const int64_t valid = std::clamp<int64_t>(W.rows - (n0 + j0), 0, 8);
        const void *rows[8];
        for (int64_t j = 0; j < valid; ++j) rows[j] = weight_row(W, n0 + j0 + j);
        int64_t k = 0;
        for (; k + 8 <= kc; k += 8) {
            __m256 r[8];
            for (int64_t j = 0; j < 8; ++j) r[j] = j < valid ? load8<T>(rows[j], k0 + k) : _mm256_setzero_ps();
            transpose8(r);
            for (int i = 0; i < 8; ++i) _mm256_storeu_ps(dst + (k + i) * nr + j0, r[i]);
        }
        for (; k < kc; ++k)
            for (int64_t j = 0; j < 8; ++j) dst[k * nr + j0 + j] = j < valid ? load1<T>(rows[j], k0 + k) : 0.0f;
    }
}

// ---- GEMM tile --------------------------------------------------------------------------------

// R (<= kMr) rows of a 6 x 16 tile; the activation panel keeps its kMr stride.
template <int R>
void tile_rows(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, bool accumulate, const float *bias) {
    __m256 acc[R][2];
    MGL_UNROLL
    for (int i = 0; i < R; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int64_t k = 0; k < kc; ++k) {
        const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
        MGL_UNROLL
        for (int i = 0; i < R; ++i) {
            const __m256 ai = _mm256_broadcast_ss(a + i);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
        a += kMr;
        b += kNr;
    }
    if (accumulate) {
        MGL_UNROLL
        for (int i = 0; i < R; ++i) {
            acc[i][0] = _mm256_add_ps(acc[i][0], _mm256_loadu_ps(c + i * ldc));
            acc[i][1] = _mm256_add_ps(acc[i][1], _mm256_loadu_ps(c + i * ldc + 8));
        }
    }
    if (bias) {
        const __m256 bias0 = _mm256_loadu_ps(bias), bias1 = _mm256_loadu_ps(bias + 8);
        MGL_UNROLL
        for (int i = 0; i < R; ++i) {
            acc[i][0] = _mm256_add_ps(acc[i][0], bias0);
            acc[i][1] = _mm256_add_ps(acc[i][1], bias1);
        }
    }
    MGL_UNROLL
    for (int i = 0; i < R; ++i) {
        _mm256_storeu_ps(c + i * ldc, acc[i][0]);
        _mm256_storeu_ps(c + i * ldc + 8, acc[i][1]);
    }
}

void tile(int rows, int64_t kc, const float *a, const float *b, float *c, int64_t ldc, bool accumulate,
          const float *bias) {
    switch (rows) {
        case 1: tile_rows<1>(kc, a, b, c, ldc, accumulate, bias); break;
        case 2: tile_rows<2>(kc, a, b, c, ldc, accumulate, bias); break;
        case 3: tile_rows<3>(kc, a, b, c, ldc, accumulate, bias); break;
        case 4: tile_rows<4>(kc, a, b, c, ldc, accumulate, bias); break;
        case 5: tile_rows<5>(kc, a, b, c, ldc, accumulate, bias); break;
        default: tile_rows<kMr>(kc, a, b, c, ldc, accumulate, bias); break;
    }
}

// ---- GEMV -------------------------------------------------------------------------------------
// One weight row at a time, against up to 4 activation rows: a single sequential stream is what
// the hardware prefetchers follow best, and decoding is bound by memory bandwidth (several rows
// read side by side measured up to 40% slower once the weights no longer fit in the caches).

template <DType T, int M>
void gemv_rows(const WeightView &W, int64_t n0, int64_t n1, const float *X, int64_t ldx, const float *bias,
               float *Y, int64_t ldy) {
    const int64_t K = W.cols;
    for (int64_t n = n0; n < n1; ++n) {
        const void *row = weight_row(W, n);
        __m256 acc[M][2];
        MGL_UNROLL
        for (int m = 0; m < M; ++m) acc[m][0] = acc[m][1] = _mm256_setzero_ps();
        int64_t k = 0;
        for (; k + 16 <= K; k += 16) {
            const __m256 w0 = load8<T>(row, k), w1 = load8<T>(row, k + 8);
            MGL_UNROLL
            for (int m = 0; m < M; ++m) {
                acc[m][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(X + m * ldx + k), acc[m][0]);
                acc[m][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(X + m * ldx + k + 8), acc[m][1]);
            }
        }
        // Chunk c of 8 columns always goes to accumulator c % 2 (the last one zero-padded): a
        // row's sum then does not depend on K beyond zeros in X (attention over a window's
        // padded keys relies on it).
        if (k + 8 <= K) {
            const __m256 w0 = load8<T>(row, k);
            MGL_UNROLL
            for (int m = 0; m < M; ++m) acc[m][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(X + m * ldx + k), acc[m][0]);
            k += 8;
        }
        if (k < K) {
            const int half = int(k / 8) & 1;
            alignas(32) float wt[8] = {0}, xt[8];
            for (int64_t t = k; t < K; ++t) wt[t - k] = load1<T>(row, t);
            const __m256 w = _mm256_load_ps(wt);
            MGL_UNROLL
            for (int m = 0; m < M; ++m) {
                std::fill(xt, xt + 8, 0.0f);
                std::copy(X + m * ldx + k, X + m * ldx + K, xt);
                acc[m][half] = _mm256_fmadd_ps(w, _mm256_load_ps(xt), acc[m][half]);
            }
        }
        MGL_UNROLL
        for (int m = 0; m < M; ++m) Y[m * ldy + n] = hsum(_mm256_add_ps(acc[m][0], acc[m][1])) + (bias ? bias[n] : 0.0f);
    }
}

// Transposed f32 weights: blocks of 32 columns, each output summed over k in order (one FMA per
// row and k), so a row's results do not depend on the other rows, the column range or K.
template <int M>
void gemv_t_rows(const WeightView &W, int64_t n0, int64_t n1, const float *X, int64_t ldx, const float *bias,
                 float *Y, int64_t ldy) {
    constexpr int U = 4;
    const float *w = static_cast<const float *>(W.data);
    const int64_t ld = transposed_ld(W), K = W.cols;
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int64_t n = n0; n < n1; n += 8 * U) {
        __m256i mask[U];
        MGL_UNROLL
        for (int u = 0; u < U; ++u) {
            const int64_t left = std::clamp<int64_t>(n1 - (n + 8 * u), 0, 8);
            mask[u] = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(left)), lanes);
        }
        __m256 acc[M][U];
        MGL_UNROLL
        for (int m = 0; m < M; ++m)
            MGL_UNROLL
            for (int u = 0; u < U; ++u) acc[m][u] = _mm256_setzero_ps();
        for (int64_t k = 0; k < K; ++k) {
            const float *wk = w + k * ld + n;
            __m256 wv[U];
            MGL_UNROLL
            for (int u = 0; u < U; ++u) wv[u] = _mm256_maskload_ps(wk + 8 * u, mask[u]);
            MGL_UNROLL
            for (int m = 0; m < M; ++m) {
                const __m256 x = _mm256_set1_ps(X[m * ldx + k]);
                MGL_UNROLL
                for (int u = 0; u < U; ++u) acc[m][u] = _mm256_fmadd_ps(x, wv[u], acc[m][u]);
            }
        }
        MGL_UNROLL
        for (int m = 0; m < M; ++m)
            MGL_UNROLL
            for (int u = 0; u < U; ++u) {
                __m256 v = acc[m][u];
                if (bias) v = _mm256_add_ps(v, _mm256_maskload_ps(bias + n + 8 * u, mask[u]));
                _mm256_maskstore_ps(Y + m * ldy + n + 8 * u, mask[u], v);
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

// ---- q8_0 GEMV --------------------------------------------------------------------------------
// vpmaddubsw multiplies unsigned by signed bytes. The weights enter as |w| (unsigned, up to 128)
// and the activations take the weight's sign (|x| <= 127), so a pair sum is at most
// 2 * 128 * 127 < 32767 and never saturates. Rows are streamed one at a time as above.

template <int M>
inline void q8_block_dot(const uint8_t *block, const Q8Rows &X, int64_t n_blocks, int64_t b, __m256 acc[M]) {
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(block + 2));
    const __m256i wabs = _mm256_sign_epi8(w, w);
    const float wd = q8_scale(block);
    MGL_UNROLL
    for (int m = 0; m < M; ++m) {
        const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(X.q + m * X.cols + b * kQ8Block));
        const __m256i pairs = _mm256_maddubs_epi16(wabs, _mm256_sign_epi8(xq, w));
        const __m256 dot = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones));
        acc[m] = _mm256_fmadd_ps(dot, _mm256_set1_ps(wd * X.d[m * n_blocks + b]), acc[m]);
    }
}

template <int M>
void gemv_q8_rows(const WeightView &W, int64_t n0, int64_t n1, const Q8Rows &X, const float *bias, float *Y,
                  int64_t ldy) {
    const int64_t n_blocks = W.cols / kQ8Block;
    for (int64_t n = n0; n < n1; ++n) {
        const uint8_t *row = static_cast<const uint8_t *>(weight_row(W, n));
        __m256 acc0[M], acc1[M];  // even and odd blocks, for two independent FMA chains
        MGL_UNROLL
        for (int m = 0; m < M; ++m) acc0[m] = acc1[m] = _mm256_setzero_ps();
        int64_t b = 0;
        for (; b + 2 <= n_blocks; b += 2) {
            q8_block_dot<M>(row + b * kQ8BlockBytes, X, n_blocks, b, acc0);
            q8_block_dot<M>(row + (b + 1) * kQ8BlockBytes, X, n_blocks, b + 1, acc1);
        }
        if (b < n_blocks) q8_block_dot<M>(row + b * kQ8BlockBytes, X, n_blocks, b, acc0);
        MGL_UNROLL
        for (int m = 0; m < M; ++m) Y[m * ldy + n] = hsum(_mm256_add_ps(acc0[m], acc1[m])) + (bias ? bias[n] : 0.0f);
    }
}

}  // namespace

namespace avx2 {

void pack_b(const WeightView &W, int64_t n0, int64_t k0, int64_t kc, int nr, float *dst) {
    switch (W.type) {
        case DType::F32: pack_b_typed<DType::F32>(W, n0, k0, kc, nr, dst); break;
        case DType::F16: pack_b_typed<DType::F16>(W, n0, k0, kc, nr, dst); break;
        case DType::BF16: pack_b_typed<DType::BF16>(W, n0, k0, kc, nr, dst); break;
        case DType::Q8_0: pack_b_typed<DType::Q8_0>(W, n0, k0, kc, nr, dst); break;
    }
}

// Rows are taken 4 at a time (fewer at the end; mr is even) and transposed 4 columns at a time.
void pack_a(const float *X, int64_t ldx, int64_t rows, int64_t kc, int mr, float *dst) {
    for (int g = 0; g < mr; g += 4) {
        const int width = std::min(4, mr - g);
        const int64_t valid = std::clamp<int64_t>(rows - g, 0, width);
        const float *src[4];
        for (int64_t i = 0; i < valid; ++i) src[i] = X + (g + i) * ldx;
        int64_t k = 0;
        for (; k + 4 <= kc; k += 4) {
            __m128 r[4];
            for (int64_t i = 0; i < 4; ++i) r[i] = i < valid ? _mm_loadu_ps(src[i] + k) : _mm_setzero_ps();
            _MM_TRANSPOSE4_PS(r[0], r[1], r[2], r[3]);
            for (int i = 0; i < 4; ++i) {
                float *out = dst + (k + i) * mr + g;
                if (width == 4) _mm_storeu_ps(out, r[i]);
                else _mm_storel_pi(reinterpret_cast<__m64 *>(out), r[i]);
            }
        }
        for (; k < kc; ++k)
            for (int i = 0; i < width; ++i) dst[k * mr + g + i] = i < valid ? src[i][k] : 0.0f;
    }
}

void gemv_q8(const WeightView &W, int64_t n0, int64_t n1, const Q8Rows &X, int64_t m_rows, const float *bias,
             float *Y, int64_t ldy) {
    switch (m_rows) {
        case 1: gemv_q8_rows<1>(W, n0, n1, X, bias, Y, ldy); break;
        case 2: gemv_q8_rows<2>(W, n0, n1, X, bias, Y, ldy); break;
        case 3: gemv_q8_rows<3>(W, n0, n1, X, bias, Y, ldy); break;
        default: gemv_q8_rows<4>(W, n0, n1, X, bias, Y, ldy); break;
    }
}

// Same arithmetic as the scalar version: scale = 127 / amax, q = round-to-nearest-even(x * scale).
void quantize_q8(const float *x, int64_t cols, int8_t *q, float *d, int32_t *sum) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256i lane_order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t b = 0; b < cols / kQ8Block; ++b) {
        const float *xb = x + b * kQ8Block;
        __m256 v[4];
        for (int i = 0; i < 4; ++i) v[i] = _mm256_loadu_ps(xb + 8 * i);
        __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(v[0], abs_mask), _mm256_and_ps(v[1], abs_mask)),
                                 _mm256_max_ps(_mm256_and_ps(v[2], abs_mask), _mm256_and_ps(v[3], abs_mask)));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        const __m256 scale = _mm256_set1_ps(amax > 0 ? 127.0f / amax : 0.0f);
        __m256i iv[4];
        for (int i = 0; i < 4; ++i) iv[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], scale));
        const __m256i s = _mm256_add_epi32(_mm256_add_epi32(iv[0], iv[1]), _mm256_add_epi32(iv[2], iv[3]));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
        // packs works within 128-bit lanes; the permutation restores the element order.
        const __m256i packed = _mm256_packs_epi16(_mm256_packs_epi32(iv[0], iv[1]), _mm256_packs_epi32(iv[2], iv[3]));
        _mm256_storeu_si256(reinterpret_cast<__m256i *>(q + b * kQ8Block),
                            _mm256_permutevar8x32_epi32(packed, lane_order));
        d[b] = amax / 127.0f;
        sum[b] = _mm_cvtsi128_si32(s4);
    }
}

void dequantize_row(const WeightView &W, int64_t row, float *out) {
    const void *r = weight_row(W, row);
    const int64_t K = W.cols;
    int64_t k = 0;
    switch (W.type) {
        case DType::F32:
            std::copy(static_cast<const float *>(r), static_cast<const float *>(r) + K, out);
            return;
        case DType::F16:
            for (; k + 8 <= K; k += 8) _mm256_storeu_ps(out + k, load8<DType::F16>(r, k));
            for (; k < K; ++k) out[k] = load1<DType::F16>(r, k);
            return;
        case DType::BF16:
            for (; k + 8 <= K; k += 8) _mm256_storeu_ps(out + k, load8<DType::BF16>(r, k));
            for (; k < K; ++k) out[k] = load1<DType::BF16>(r, k);
            return;
        case DType::Q8_0:
            for (; k < K; k += 8) _mm256_storeu_ps(out + k, load8<DType::Q8_0>(r, k));
            return;
    }
}

// Eight weight rows at a time: their 32 bytes of a block are 8 quads, and a transpose of 8 x 8
// 32-bit elements turns them into the per-quad layout of the panel.
void pack_b_q8(const WeightView &W, int64_t n0, uint8_t *dst) {
    const int64_t n_blocks = W.cols / kQ8Block;
    const __m256i top_bit = _mm256_set1_epi8(static_cast<char>(0x80));
    for (int j0 = 0; j0 < kQ8PanelCols; j0 += 8) {
        const int64_t valid = std::clamp<int64_t>(W.rows - (n0 + j0), 0, 8);
        const uint8_t *rows[8];
        for (int64_t j = 0; j < valid; ++j) rows[j] = static_cast<const uint8_t *>(weight_row(W, n0 + j0 + j));
        for (int64_t b = 0; b < n_blocks; ++b) {
            uint8_t *out = dst + b * kQ8PanelBlockBytes;
            __m256 r[8];
            for (int64_t j = 0; j < 8; ++j)
                r[j] = j < valid ? _mm256_castsi256_ps(_mm256_loadu_si256(
                                       reinterpret_cast<const __m256i *>(rows[j] + b * kQ8BlockBytes + 2)))
                                 : _mm256_setzero_ps();
            transpose8(r);
            // Quad t of columns j0..j0+7 goes to bytes [t * 128 + j0 * 4, + 32).
            for (int t = 0; t < 8; ++t)
                _mm256_storeu_si256(reinterpret_cast<__m256i *>(out + t * 128 + j0 * 4),
                                    _mm256_xor_si256(_mm256_castps_si256(r[t]), top_bit));
            float *scales = reinterpret_cast<float *>(out + 8 * 128);
            for (int64_t j = 0; j < 8; ++j) scales[j0 + j] = j < valid ? q8_scale(rows[j] + b * kQ8BlockBytes) : 0.0f;
        }
    }
}

}  // namespace avx2

namespace {

// e^x at 8 lanes (see kExpPoly).
inline __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(kExpMin)), _mm256_set1_ps(kExpMax));
    const __m256 n =
        _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
    __m256 p = _mm256_set1_ps(kExpPoly[0]);
    for (int i = 1; i < 6; ++i) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpPoly[i]));
    const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(bits));
}

// Applies f to x[0..n) eight at a time; the last partial vector goes through a padded copy, so
// every element takes the same instructions.
template <class F> inline void map8(float *x, const float *mul, int64_t n, const F &f) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = f(_mm256_loadu_ps(x + i));
        if (mul) v = _mm256_mul_ps(v, _mm256_loadu_ps(mul + i));
        _mm256_storeu_ps(x + i, v);
    }
    if (i == n) return;
    alignas(32) float tx[8] = {0}, tm[8] = {0};
    std::copy(x + i, x + n, tx);
    if (mul) std::copy(mul + i, mul + n, tm);
    __m256 v = f(_mm256_load_ps(tx));
    if (mul) v = _mm256_mul_ps(v, _mm256_load_ps(tm));
    _mm256_store_ps(tx, v);
    std::copy(tx, tx + (n - i), x + i);
}

void silu(float *x, const float *mul, int64_t n) {
    map8(x, mul, n, [](__m256 v) {
        const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), v));
        return _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
    });
}

void exp_shifted(float *x, float shift, int64_t n) {
    const __m256 s = _mm256_set1_ps(shift);
    map8(x, nullptr, n, [&](__m256 v) { return exp8(_mm256_sub_ps(v, s)); });
}

// The scalar kernel's operations eight channels at a time, a partial last vector loaded and
// stored under a mask (so every channel takes the same instructions): the coefficients and the
// state of a vector stay in registers over the rows.
template <bool kFull> inline __m256 load8(const float *p, __m256i mask) {
    return kFull ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, mask);
}
template <bool kFull> inline void store8(float *p, __m256i mask, __m256 v) {
    if (kFull) _mm256_storeu_ps(p, v);
    else _mm256_maskstore_ps(p, mask, v);
}

template <bool kFull> void cema8(const CemaRow &row, const CemaSteps &s, int64_t d, __m256i m) {
    const float *x = s.x;
    float *c = s.c;
    const int64_t rows = s.rows, ldx = s.ldx, ldc = s.ldc, off = s.out_offset;
    float *const *out_re = s.out_re, *const *out_im = s.out_im;
    __m256 hr = load8<kFull>(s.h_re + d, m), hi = load8<kFull>(s.h_im + d, m);
    const __m256 qr = load8<kFull>(row.q_re + d, m), qi = load8<kFull>(row.q_im + d, m);
    const __m256 p = load8<kFull>(row.p + d, m), er = load8<kFull>(row.eta_re + d, m);
    const __m256 nei = _mm256_sub_ps(_mm256_setzero_ps(), load8<kFull>(row.eta_im + d, m));
    for (int64_t t = 0; t < rows; ++t) {
        const __m256 xt = load8<kFull>(x + t * ldx + d, m);
        const __m256 re =
            _mm256_fmadd_ps(qr, hr, _mm256_fmadd_ps(p, xt, _mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(qi, hi))));
        const __m256 im = _mm256_fmadd_ps(qr, hi, _mm256_mul_ps(qi, hr));
        store8<kFull>(out_re[t] + off + d, m, re);
        store8<kFull>(out_im[t] + off + d, m, im);
        float *ct = c + t * ldc + d;
        store8<kFull>(ct, m, _mm256_fmadd_ps(er, re, _mm256_fmadd_ps(nei, im, load8<kFull>(ct, m))));
        hr = re;
        hi = im;
    }
}

// As the AVX-512 kernel, eight lanes at a time, the last partial vector padded with -inf.
int64_t first_max(const float *x, int64_t n) {
    const float inf = std::numeric_limits<float>::infinity();
    const __m256 lowest = _mm256_set1_ps(-inf);
    __m256 best = lowest;
    __m256i at = _mm256_setzero_si256(), idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i step = _mm256_set1_epi32(8);
    int64_t i = 0;
    auto take = [&](__m256 v) {
        const __m256 up = _mm256_cmp_ps(v, best, _CMP_GT_OQ);  // false for NaN
        best = _mm256_blendv_ps(best, v, up);
        at = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(at), _mm256_castsi256_ps(idx), up));
        idx = _mm256_add_epi32(idx, step);
    };
    for (; i + 8 <= n; i += 8) take(_mm256_loadu_ps(x + i));
    if (i < n) {
        alignas(32) float tail[8];
        for (int j = 0; j < 8; ++j) tail[j] = i + j < n ? x[i + j] : -inf;
        take(_mm256_load_ps(tail));
    }
    alignas(32) float lane_best[8];
    alignas(32) int32_t lane_at[8];
    _mm256_store_ps(lane_best, best);
    _mm256_store_si256(reinterpret_cast<__m256i *>(lane_at), at);
    float top = -inf;
    for (float v : lane_best) top = v > top ? v : top;
    if (!(top > -inf)) return 0;
    int64_t first = n;
    for (int j = 0; j < 8; ++j)
        if (lane_best[j] == top && lane_at[j] < first) first = lane_at[j];
    return first;
}

void cema_steps(const CemaRow &row, const CemaSteps &s, int64_t n) {
    int64_t d = 0;
    for (; d + 8 <= n; d += 8) cema8<true>(row, s, d, _mm256_set1_epi32(-1));
    if (d < n)
        cema8<false>(row, s, d, _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n - d)),
                                                   _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
}

}  // namespace

const KernelTable &avx2_kernels() {
    static const KernelTable table = {
        Isa::Avx2, "avx2+fma", kMr, kNr, avx2::pack_b, avx2::pack_a, tile,
        gemv, gemv_t, avx2::gemv_q8, avx2::quantize_q8, avx2::dequantize_row,
        0, nullptr, nullptr,  // int8 GEMM: without VNNI it does no fewer operations than f32
        silu, exp_shifted, cema_steps, first_max,
    };
    return table;
}

}  // namespace mgl::kern
