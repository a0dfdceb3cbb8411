// Tests of the compute kernels (matmul for every weight type and kernel set, conversions,
// dequantization) and of the thread pool. With MGL_BENCH=1 the binary instead prints a matmul
// benchmark (GFLOP/s per shape, type and thread count); MGL_BENCH_ISA=scalar|avx2|avx512 picks
// the kernel set for it.
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <time.h>
#include <vector>

#include "kernels.h"
#include "kernels_internal.h"
#include "test_util.h"
#include "threadpool.h"

using mgl::DType;
using mgl::WeightView;
using mgl::kern::Isa;
using mgl_test::bits_of;
using mgl_test::float_of;

namespace {

constexpr double kEps32 = 1.0 / (1 << 23);

std::vector<Isa> supported_isas() {
    std::vector<Isa> out;
    for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Vnni})
        if (mgl::kern::isa_supported(isa)) out.push_back(isa);
    return out;
}

// Restores the default kernel set when a test leaves (also on failure).
struct ForcedIsa {
    explicit ForcedIsa(Isa isa) { mgl::kern::force_isa(isa); }
    ~ForcedIsa() { mgl::kern::reset_isa(); }
};

std::vector<float> random_vector(size_t n, std::mt19937 &rng, float scale = 1.0f) {
    std::normal_distribution<float> normal(0.0f, scale);
    std::vector<float> v(n);
    for (float &x : v) x = normal(rng);
    return v;
}

// A weight matrix in one storage type plus its exact f32 values (what the kernels must use).
struct TestWeights {
    DType type = DType::F32;
    int64_t rows = 0, cols = 0, ld = 0;
    std::vector<uint8_t> bytes;
    std::vector<float> values;  // [rows][cols], exactly representable in `type`

    WeightView view() const {
        WeightView w;
        w.type = type;
        w.data = bytes.data();
        w.rows = rows;
        w.cols = cols;
        w.ld = type == DType::F32 ? ld : 0;
        return w;
    }
};

// Builds weights from random values, written with the test's own conversions. q8_0 blocks get
// an occasional -128 (legal in the format, never produced by round(x / (amax / 127))).
TestWeights make_weights(DType type, int64_t rows, int64_t cols, int64_t ld_pad, std::mt19937 &rng) {
    TestWeights w;
    w.type = type;
    w.rows = rows;
    w.cols = cols;
    w.ld = cols + ld_pad;
    w.values.resize(static_cast<size_t>(rows * cols));
    const std::vector<float> src = random_vector(static_cast<size_t>(rows * cols), rng);
    switch (type) {
        case DType::F32: {
            std::vector<float> data(static_cast<size_t>(rows * w.ld), std::nanf(""));  // padding must not be read
            for (int64_t r = 0; r < rows; ++r)
                for (int64_t c = 0; c < cols; ++c) data[r * w.ld + c] = w.values[r * cols + c] = src[r * cols + c];
            w.bytes.resize(data.size() * 4);
            std::memcpy(w.bytes.data(), data.data(), w.bytes.size());
            break;
        }
        case DType::F16:
        case DType::BF16: {
            w.bytes.resize(static_cast<size_t>(rows * cols) * 2);
            for (int64_t i = 0; i < rows * cols; ++i) {
                uint16_t h = type == DType::F16 ? mgl_test::f32_to_f16(src[i]) : mgl_test::f32_to_bf16(src[i]);
                std::memcpy(&w.bytes[i * 2], &h, 2);
                uint32_t bits = static_cast<uint32_t>(h) << 16;
                float bf;
                std::memcpy(&bf, &bits, 4);
                w.values[i] = type == DType::F16 ? mgl_test::f16_to_f32(h) : bf;
            }
            break;
        }
        case DType::Q8_0: {
            const int64_t nb = cols / 32;
            w.bytes.resize(static_cast<size_t>(rows * nb * 34));
            std::uniform_int_distribution<int> coin(0, 15);
            for (int64_t r = 0; r < rows; ++r)
                for (int64_t b = 0; b < nb; ++b) {
                    const float *x = &src[r * cols + b * 32];
                    float amax = 0;
                    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
                    const uint16_t dh = mgl_test::f32_to_f16(amax / 127.0f);
                    const float d = mgl_test::f16_to_f32(dh);
                    uint8_t *blk = &w.bytes[(r * nb + b) * 34];
                    std::memcpy(blk, &dh, 2);
                    for (int i = 0; i < 32; ++i) {
                        int q = static_cast<int>(std::lround(x[i] / d));
                        q = std::max(-127, std::min(127, q));
                        if (coin(rng) == 0) q = -128;
                        blk[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(q));
                        w.values[r * cols + b * 32 + i] = d * static_cast<float>(q);
                    }
                }
            break;
        }
    }
    return w;
}

// The test's own q8 quantization of an activation row (the documented formula).
struct QuantizedRow {
    std::vector<int> q;
    std::vector<double> d;
};
QuantizedRow quantize_reference(const float *x, int64_t cols) {
    QuantizedRow out;
    for (int64_t b = 0; b < cols / 32; ++b) {
        float amax = 0;
        for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b * 32 + i]));
        const float scale = amax > 0 ? 127.0f / amax : 0.0f;
        for (int i = 0; i < 32; ++i) out.q.push_back(static_cast<int>(std::nearbyint(x[b * 32 + i] * scale)));
        out.d.push_back(amax / 127.0f);
    }
    return out;
}

struct MatmulCase {
    DType type;
    int64_t M, N, K;
    int64_t ldx_pad, ldy_pad, ld_pad;
    bool bias;
};

// Runs matmul for one case and compares the outputs of every row_step-th row (and the last row)
// with a float64 reference. Returns the number of mismatching outputs (and reports the first).
// 64-byte aligned int8 panels of Q8_0 weights (pack_q8_panels); empty when the kernel set has
// no int8 GEMM.
struct Panels {
    std::unique_ptr<uint8_t, decltype(&std::free)> bytes{nullptr, &std::free};
    // Returns the view with panels attached (unchanged when there are none).
    WeightView attach(WeightView view, mgl::ThreadPool *pool) {
        const int64_t n = mgl::q8_panels_bytes(view);
        if (n == 0) return view;
        bytes.reset(static_cast<uint8_t *>(std::aligned_alloc(64, static_cast<size_t>(n))));
        mgl::pack_q8_panels(pool, view, bytes.get());
        view.q8_panels = bytes.get();
        return view;
    }
};

// With_panels: q8_0 weights get int8 panels first (where the kernel set has an int8 GEMM).
int check_matmul(const MatmulCase &c, mgl::ThreadPool *pool, std::mt19937 &rng, const std::string &label,
                 int64_t row_step = 1, bool with_panels = false) {
    const TestWeights w = make_weights(c.type, c.N, c.K, c.ld_pad, rng);
    Panels panels;
    const WeightView view = with_panels ? panels.attach(w.view(), pool) : w.view();
    const int64_t ldx = c.K + c.ldx_pad, ldy = c.N + c.ldy_pad;
    std::vector<float> X = random_vector(static_cast<size_t>(std::max<int64_t>(1, c.M * ldx)), rng);
    std::vector<float> bias = random_vector(static_cast<size_t>(c.N), rng);
    const float sentinel = -12345.0f;
    std::vector<float> Y(static_cast<size_t>(std::max<int64_t>(1, c.M * ldy)), sentinel);
    mgl::matmul(pool, X.data(), c.M, ldx, view, c.bias ? bias.data() : nullptr, Y.data(), ldy);

    // The int8 routes (q8_0 weights with few rows, with panels, or with an int8 tile kernel)
    // compute exactly with the quantized activations.
    const bool int8_route = c.type == DType::Q8_0 && (c.M < mgl::kern::kGemmMinRows || view.q8_panels ||
                                                      mgl::kern::active_kernels().tile_q8 != nullptr);
    int bad = 0;
    for (int64_t m = 0; m < c.M; ++m) {
        if (m % row_step != 0 && m != c.M - 1) continue;
        QuantizedRow xq;
        if (c.type == DType::Q8_0) xq = quantize_reference(&X[m * ldx], c.K);
        for (int64_t n = 0; n < c.N; ++n) {
            const double b = c.bias ? bias[n] : 0.0;
            double ref = 0, scale = 0, ref_dequant = 0, q8_bound = 0;
            for (int64_t k = 0; k < c.K; ++k) {
                const double p = double(X[m * ldx + k]) * w.values[n * c.K + k];
                ref_dequant += p;
                if (!int8_route) {
                    ref += p;
                    scale += std::fabs(p);
                }
            }
            if (c.type == DType::Q8_0) {
                for (int64_t blk = 0; blk < c.K / 32; ++blk) {
                    double wabs = 0, dot = 0, dotabs = 0;
                    for (int i = 0; i < 32; ++i) {
                        const double wv = w.values[n * c.K + blk * 32 + i];
                        wabs += std::fabs(wv);
                        dot += wv * xq.q[blk * 32 + i];
                        dotabs += std::fabs(wv * xq.q[blk * 32 + i]);
                    }
                    // |x - d q| <= d/2 (plus rounding of x * 127/amax) for every element.
                    q8_bound += 0.5001 * xq.d[blk] * wabs;
                    if (int8_route) {
                        ref += xq.d[blk] * dot;
                        scale += xq.d[blk] * dotabs;
                    }
                }
            }
            ref += b;
            const double steps = int8_route ? static_cast<double>(c.K / 32) + 2 : static_cast<double>(c.K);
            const double tol = (4 * std::sqrt(steps) + 3) * kEps32 * (scale + std::fabs(b)) + 1e-30;
            const double got = Y[m * ldy + n];
            bool ok = std::fabs(got - ref) <= tol;
            // Whatever the route, the documented contract: the dequantized product to q8 precision.
            if (c.type == DType::Q8_0) ok = ok && std::fabs(got - (ref_dequant + b)) <= q8_bound + tol;
            if (!ok && bad++ == 0)
                mgl_test::report_failure(__FILE__, __LINE__,
                    label + " Y[" + std::to_string(m) + "][" + std::to_string(n) + "] = " + std::to_string(got) +
                    ", expected " + std::to_string(ref) + " (tolerance " + std::to_string(tol) + ")");
        }
        for (int64_t n = c.N; n < ldy; ++n)
            if (Y[m * ldy + n] != sentinel && bad++ == 0)
                mgl_test::report_failure(__FILE__, __LINE__, label + " wrote outside the rows of Y");
    }
    return bad;
}

std::string case_label(Isa isa, const MatmulCase &c, int pool_size) {
    char buf[200];
    std::snprintf(buf, sizeof buf, "[%s %s M=%lld N=%lld K=%lld ldx+%lld ldy+%lld ld+%lld bias=%d pool=%d]",
                  mgl::kern::isa_name(isa), mgl::dtype_name(c.type), (long long)c.M, (long long)c.N, (long long)c.K,
                  (long long)c.ldx_pad, (long long)c.ldy_pad, (long long)c.ld_pad, int(c.bias), pool_size);
    return buf;
}

// Pools of 1..3 threads plus "no pool", created once.
struct Pools {
    mgl::ThreadPool p1{1}, p2{2}, p3{3};
    mgl::ThreadPool *get(int i) { return i == 0 ? nullptr : i == 1 ? &p1 : i == 2 ? &p2 : &p3; }
};
Pools &pools() {
    static Pools p;
    return p;
}

void run_matmul_cases(DType type) {
    const std::vector<int64_t> Ms = {1, 2, 3, 4, 5, 7, 8, 13, 64, 130};
    std::vector<std::pair<int64_t, int64_t>> NKs;
    if (type == DType::Q8_0) NKs = {{1, 32}, {5, 64}, {33, 96}, {67, 320}, {130, 544}};
    else NKs = {{1, 1}, {5, 13}, {33, 64}, {67, 300}, {130, 517}, {17, 7}};
    std::mt19937 rng(1234 + static_cast<int>(type));
    for (Isa isa : supported_isas()) {
        ForcedIsa forced(isa);
        int variant = 0;
        for (int64_t M : Ms)
            for (auto [N, K] : NKs) {
                // Strides, bias and pool size vary over the cases so all combinations appear.
                ++variant;
                MatmulCase c{type, M, N, K, variant % 3 == 0 ? 5 : 0, variant % 2 ? 3 : 0, variant % 4 == 1 ? 9 : 0,
                             variant % 5 != 0};
                const int pool_index = variant % 4;
                check_matmul(c, pools().get(pool_index), rng, case_label(isa, c, pool_index));
            }
    }
}

}  // namespace

// ------------------------------------------------------------------------------------------
// matmul

TEST_CASE(matmul_f32_all_kernel_sets) { run_matmul_cases(DType::F32); }
TEST_CASE(matmul_f16_all_kernel_sets) { run_matmul_cases(DType::F16); }
TEST_CASE(matmul_bf16_all_kernel_sets) { run_matmul_cases(DType::BF16); }
TEST_CASE(matmul_q8_0_all_kernel_sets) { run_matmul_cases(DType::Q8_0); }

// Shapes that take several depth blocks, several passes of packed weights and many tasks per
// thread.
TEST_CASE(matmul_large_shapes) {
    std::mt19937 rng(77);
    for (Isa isa : supported_isas()) {
        if (isa == Isa::Scalar) continue;  // the slow kernels are covered by the small shapes
        ForcedIsa forced(isa);
        for (DType type : {DType::F32, DType::F16, DType::Q8_0}) {
            const MatmulCase passes{type, 200, 3900, 1920, 0, 1, 0, true};  // 2 to 4 weight passes
            check_matmul(passes, pools().get(2), rng, case_label(isa, passes, 2), 37);
            const MatmulCase wide{type, 9, 4200, 544, 0, 1, 0, true};
            check_matmul(wide, pools().get(2), rng, case_label(isa, wide, 2));
            const MatmulCase tall{type, 300, 100, 800, 2, 0, 3, true};  // 4 depth blocks
            check_matmul(tall, pools().get(3), rng, case_label(isa, tall, 3));
            const MatmulCase decode{type, 1, 1000, 1024, 0, 0, 0, false};
            check_matmul(decode, pools().get(2), rng, case_label(isa, decode, 2));
        }
    }
}

// Q8_0 weights with int8 panels: every row count takes the int8 GEMM, checked against the float64
// reference, and each row of a product is bit-identical to that row multiplied alone (what a
// speculative verification window relies on), whatever the pool.
TEST_CASE(matmul_q8_0_with_panels) {
    std::mt19937 rng(4321);
    int packed_isas = 0;
    for (Isa isa : supported_isas()) {
        ForcedIsa forced(isa);
        const bool int8_gemm = mgl::kern::active_kernels().tile_q8 != nullptr;
        int variant = 0;
        for (int64_t M : {1, 2, 3, 4, 5, 6, 7, 13, 70})
            for (auto [N, K] : std::vector<std::pair<int64_t, int64_t>>{{1, 32}, {33, 96}, {130, 544}, {1000, 192}}) {
                ++variant;
                const MatmulCase c{DType::Q8_0, M, N, K, variant % 3 == 0 ? 5 : 0, variant % 2 ? 3 : 0, 0,
                                   variant % 5 != 0};
                check_matmul(c, pools().get(variant % 4), rng, case_label(isa, c, variant % 4) + " panels", 1, true);
            }
        const TestWeights w = make_weights(DType::Q8_0, 300, 192, 0, rng);
        Panels panels;
        const WeightView view = panels.attach(w.view(), pools().get(2));
        CHECK_EQ(view.q8_panels != nullptr, int8_gemm);
        if (!view.q8_panels) continue;
        ++packed_isas;
        CHECK(mgl::matmul_row_exact_rows(view) >= (int64_t(1) << 30));
        const int64_t M = 9;
        std::vector<float> X = random_vector(static_cast<size_t>(M * 192), rng);
        for (int p = 0; p <= 3; ++p) {
            std::vector<float> Y(static_cast<size_t>(M * 300)), alone(300);
            mgl::matmul(pools().get(p), X.data(), M, 192, view, nullptr, Y.data(), 300);
            for (int64_t m = 0; m < M; ++m) {
                mgl::matmul(pools().get(3 - p), X.data() + m * 192, 1, 192, view, nullptr, alone.data(), 300);
                CHECK(std::equal(alone.begin(), alone.end(), Y.begin() + m * 300));
            }
        }
    }
    // This machine's CPU decides whether any kernel set has an int8 GEMM; say so when none did.
    if (packed_isas == 0) std::printf("note: no kernel set with an int8 GEMM on this CPU; panels untested\n");
}

// Transposed f32 weights (W[k][n] storage, as attention keeps its keys and values): every route
// against float64; on the GEMV route a row's outputs are bit-identical whether it is multiplied
// alone or with others, over any column range, and with extra depths whose activations are zero.
static WeightView transposed_weights(const std::vector<float> &data, int64_t rows, int64_t cols, int64_t ld) {
    WeightView w;
    w.type = DType::F32;
    w.data = data.data();
    w.rows = rows;
    w.cols = cols;
    w.ld = ld;
    w.transposed = true;
    return w;
}

TEST_CASE(matmul_f32_transposed) {
    std::mt19937 rng(808);
    for (Isa isa : supported_isas()) {
        ForcedIsa forced(isa);
        const std::string name = mgl::kern::isa_name(isa);
        for (int64_t M : {1, 2, 3, 4, 5, 11, 12, 70})
            for (auto [N, K] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {7, 5}, {48, 130}, {192, 67}, {300, 48}}) {
                const int64_t ld = N + (M % 2 ? 0 : 9), ldx = K + 2;
                std::vector<float> wt = random_vector(static_cast<size_t>(K * ld), rng);
                std::vector<float> X = random_vector(static_cast<size_t>(M * ldx), rng), bias = random_vector(size_t(N), rng);
                const WeightView w = transposed_weights(wt, N, K, ld);
                std::vector<float> Y(static_cast<size_t>(M * N));
                mgl::matmul(pools().get(int(M % 4)), X.data(), M, ldx, w, M % 3 ? bias.data() : nullptr, Y.data(), N);
                int bad = 0;
                for (int64_t m = 0; m < M; ++m)
                    for (int64_t n = 0; n < N; ++n) {
                        double ref = M % 3 ? bias[size_t(n)] : 0.0, scale = std::fabs(ref);
                        for (int64_t k = 0; k < K; ++k) {
                            const double p = double(X[m * ldx + k]) * wt[k * ld + n];
                            ref += p;
                            scale += std::fabs(p);
                        }
                        const double tol = (4 * std::sqrt(double(K)) + 3) * kEps32 * scale + 1e-30;
                        if (std::fabs(Y[m * N + n] - ref) > tol && bad++ == 0)
                            mgl_test::report_failure(__FILE__, __LINE__,
                                name + " transposed M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" +
                                    std::to_string(K) + ": " + std::to_string(Y[m * N + n]) + " vs " + std::to_string(ref));
                    }
                CHECK_EQ(bad, 0);
            }
        // GEMV route: rows alone, column sub-ranges and zero-padded depths give the same bits.
        const int64_t N = 200, K = 70, K_pad = 83, M = 4;
        std::vector<float> wt = random_vector(static_cast<size_t>(K_pad * N), rng);
        std::vector<float> X(static_cast<size_t>(M * K_pad), 0.0f);
        for (int64_t m = 0; m < M; ++m)
            for (int64_t k = 0; k < K; ++k) X[m * K_pad + k] = random_vector(1, rng)[0];
        const WeightView w = transposed_weights(wt, N, K_pad, 0);
        CHECK(mgl::matmul_row_exact_rows(w) >= M);
        std::vector<float> column(static_cast<size_t>(K_pad));
        mgl::dequantize_row(w, 123, column.data());  // row 123 of W is column 123 of the storage
        for (int64_t k = 0; k < K_pad; ++k) CHECK_EQ(column[size_t(k)], wt[size_t(k * N + 123)]);
        std::vector<float> Y(static_cast<size_t>(M * N)), alone(static_cast<size_t>(N)), part(static_cast<size_t>(N));
        mgl::matmul(pools().get(2), X.data(), M, K_pad, w, nullptr, Y.data(), N);
        WeightView shorter = w;
        shorter.cols = K;
        WeightView columns = w;
        columns.data = wt.data() + 37;
        columns.rows = N - 37;
        columns.ld = N;
        for (int64_t m = 0; m < M; ++m) {
            mgl::matmul(nullptr, X.data() + m * K_pad, 1, K_pad, shorter, nullptr, alone.data(), N);
            CHECK(std::equal(alone.begin(), alone.end(), Y.begin() + m * N));
            mgl::matmul(pools().get(3), X.data() + m * K_pad, 1, K_pad, columns, nullptr, part.data(), N);
            CHECK(std::equal(part.begin(), part.begin() + (N - 37), Y.begin() + m * N + 37));
        }
        WeightView q8 = w;
        q8.type = DType::Q8_0;
        CHECK_THROWS_STATUS(mgl::matmul(nullptr, X.data(), 1, K_pad, q8, nullptr, Y.data(), N), MGL_ERR_INVALID_ARG);
        WeightView narrow = w;
        narrow.ld = N - 1;
        CHECK_THROWS_STATUS(mgl::matmul(nullptr, X.data(), 1, K_pad, narrow, nullptr, Y.data(), N), MGL_ERR_INVALID_ARG);
    }
}

// Several products in one call give, on any pool, the bits of one matmul each: int8 products
// with panels (fused into one dispatch on a pool), products sharing one X, products of other
// types or of many rows (one call each); bad arguments are rejected.
TEST_CASE(matmuls_equal_one_matmul_each) {
    std::mt19937 rng(77);
    for (Isa isa : supported_isas()) {
        ForcedIsa forced(isa);
        struct Product {
            TestWeights w;
            Panels panels;
            WeightView view;
            int64_t M, K, N;
            std::vector<float> X, bias, Y, expect;
        };
        const std::vector<std::tuple<DType, int64_t, int64_t, int64_t>> shapes = {
            {DType::Q8_0, 4, 192, 96}, {DType::Q8_0, 4, 192, 384}, {DType::Q8_0, 4, 192, 40},
            {DType::Q8_0, 1, 512, 192}, {DType::F32, 3, 64, 50}, {DType::Q8_0, 40, 96, 64}};
        for (size_t mix = 0; mix < 3; ++mix) {
            // mix 0: int8 products only; 1: all; 2: the first two sharing X
            const size_t count = mix == 0 ? 4 : mix == 1 ? shapes.size() : 2;
            std::vector<std::unique_ptr<Product>> ps;
            for (size_t i = 0; i < count; ++i) {
                auto [type, M, K, N] = shapes[i];
                auto p = std::make_unique<Product>();
                p->w = make_weights(type, N, K, 0, rng);
                p->view = p->panels.attach(p->w.view(), nullptr);
                p->M = M, p->K = K, p->N = N;
                p->X = random_vector(size_t(M * K), rng);
                if (mix == 2 && i == 1) p->X = ps[0]->X;
                p->bias = random_vector(size_t(N), rng);
                p->expect.resize(size_t(M * N));
                mgl::matmul(nullptr, p->X.data(), M, K, p->view, i % 2 ? p->bias.data() : nullptr, p->expect.data(), N);
                ps.push_back(std::move(p));
            }
            for (int pool = 0; pool <= 3; ++pool) {
                std::vector<mgl::MatmulJob> jobs;
                for (size_t i = 0; i < ps.size(); ++i) {
                    Product &p = *ps[i];
                    p.Y.assign(size_t(p.M * p.N), -1.0f);
                    jobs.push_back({p.X.data(), p.M, p.K, &p.view, i % 2 ? p.bias.data() : nullptr, p.Y.data(), p.N});
                }
                mgl::matmuls(pools().get(pool), jobs.data(), int(jobs.size()));
                for (const auto &p : ps) CHECK(p->Y == p->expect);
            }
        }
        std::vector<float> X(64), Y(64);
        mgl::MatmulJob none{X.data(), 1, 64, nullptr, nullptr, Y.data(), 1};
        CHECK_THROWS_STATUS(mgl::matmuls(nullptr, &none, 1), MGL_ERR_INVALID_ARG);
        std::vector<mgl::MatmulJob> many(size_t(mgl::kMaxProducts + 1), none);
        CHECK_THROWS_STATUS(mgl::matmuls(nullptr, many.data(), int(many.size())), MGL_ERR_INVALID_ARG);
    }
}

// Results do not depend on the number of threads (each output is computed by one thread in a
// fixed order).
TEST_CASE(matmul_is_deterministic_across_pool_sizes) {
    std::mt19937 rng(5);
    for (DType type : {DType::F32, DType::Q8_0}) {
        for (int64_t M : {1, 3, 100}) {
            const TestWeights w = make_weights(type, 200, 256, 0, rng);
            std::vector<float> X = random_vector(static_cast<size_t>(M * 256), rng);
            std::vector<float> first;
            for (int p = 0; p <= 3; ++p) {
                std::vector<float> Y(static_cast<size_t>(M * 200));
                mgl::matmul(pools().get(p), X.data(), M, 256, w.view(), nullptr, Y.data(), 200);
                if (first.empty()) first = Y;
                else CHECK(Y == first);
            }
        }
    }
}

TEST_CASE(matmul_degenerate_shapes) {
    std::mt19937 rng(9);
    const TestWeights w = make_weights(DType::F32, 3, 4, 0, rng);
    std::vector<float> X(8, 1.0f), Y(6, 7.0f);
    mgl::matmul(nullptr, X.data(), 0, 4, w.view(), nullptr, Y.data(), 3);  // M = 0: nothing written
    CHECK(Y == std::vector<float>(6, 7.0f));
    WeightView empty_k = w.view();
    empty_k.cols = 0;
    const float bias[3] = {1, 2, 3};
    mgl::matmul(nullptr, X.data(), 2, 4, empty_k, bias, Y.data(), 3);  // K = 0: Y = bias
    CHECK(Y == std::vector<float>({1, 2, 3, 1, 2, 3}));
    mgl::matmul(nullptr, X.data(), 2, 4, empty_k, nullptr, Y.data(), 3);
    CHECK(Y == std::vector<float>(6, 0.0f));
}

TEST_CASE(matmul_rejects_bad_arguments) {
    std::mt19937 rng(3);
    const TestWeights w = make_weights(DType::F32, 4, 64, 0, rng);
    std::vector<float> X(2 * 64), Y(2 * 4);
    auto run = [&](const WeightView &v, int64_t M, int64_t ldx, int64_t ldy) {
        mgl::matmul(nullptr, X.data(), M, ldx, v, nullptr, Y.data(), ldy);
    };
    CHECK_THROWS_STATUS(run(w.view(), 2, 63, 4), MGL_ERR_INVALID_ARG);
    CHECK_THROWS_STATUS(run(w.view(), 2, 64, 3), MGL_ERR_INVALID_ARG);
    CHECK_THROWS_STATUS(run(w.view(), -1, 64, 4), MGL_ERR_INVALID_ARG);
    WeightView bad_ld = w.view();
    bad_ld.ld = 10;
    CHECK_THROWS_STATUS(run(bad_ld, 2, 64, 4), MGL_ERR_INVALID_ARG);
    WeightView null_data = w.view();
    null_data.data = nullptr;
    CHECK_THROWS_STATUS(run(null_data, 2, 64, 4), MGL_ERR_INVALID_ARG);
    const TestWeights q = make_weights(DType::Q8_0, 4, 64, 0, rng);
    WeightView q_odd = q.view();
    q_odd.cols = 48;
    CHECK_THROWS_STATUS(run(q_odd, 2, 64, 4), MGL_ERR_INVALID_ARG);
    CHECK(mgl_test::contains(mgl_test::error_message([&] { run(q_odd, 2, 64, 4); }), "multiple of 32"));
    WeightView q_ld = q.view();
    q_ld.ld = 80;
    CHECK_THROWS_STATUS(run(q_ld, 2, 64, 4), MGL_ERR_INVALID_ARG);
    q_ld.ld = 64;  // the packed stride is accepted
    run(q_ld, 2, 64, 4);
    WeightView bad_type = w.view();
    bad_type.type = static_cast<DType>(2);
    CHECK_THROWS_STATUS(run(bad_type, 2, 64, 4), MGL_ERR_UNSUPPORTED);
    CHECK(mgl_test::contains(mgl_test::error_message([&] { run(w.view(), 2, 64, 3); }), "ldy"));
    CHECK_THROWS_STATUS(mgl::matmul(nullptr, nullptr, 2, 64, w.view(), nullptr, Y.data(), 4), MGL_ERR_INVALID_ARG);
    CHECK_THROWS_STATUS(mgl::matmul(nullptr, X.data(), 2, 64, w.view(), nullptr, nullptr, 4), MGL_ERR_INVALID_ARG);
}

// ------------------------------------------------------------------------------------------
// element-wise functions

// silu and e^x of every kernel set against float64 on random and edge inputs; the result of an
// element does not depend on the length of the array or its place in it.
TEST_CASE(silu_and_exp_every_kernel_set) {
    std::mt19937 rng(99);
    std::vector<float> x = random_vector(4099, rng, 12.0f);
    const float edges[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 80.0f, -80.0f, 87.0f, -87.0f, 88.0f, -88.0f, 100.0f,
                           -100.0f, 1e6f, -1e6f};
    std::copy(std::begin(edges), std::end(edges), x.begin());
    const std::vector<float> mul = random_vector(x.size(), rng);
    for (Isa isa : supported_isas()) {
        ForcedIsa forced(isa);
        const std::string name = mgl::kern::isa_name(isa);
        std::vector<float> s = x, sm = x, e = x;
        mgl::silu(s.data(), nullptr, int64_t(s.size()));
        mgl::silu(sm.data(), mul.data(), int64_t(sm.size()));
        const float shift = 3.5f;
        mgl::exp_shifted(e.data(), shift, int64_t(e.size()));
        int bad = 0;
        for (size_t i = 0; i < x.size(); ++i) {
            const double xi = x[i], silu_ref = xi / (1.0 + std::exp(-xi));
            const double exp_in = double(x[i] - shift);  // the kernels subtract in float
            const double exp_ref = std::exp(exp_in);
            // Results below the smallest normal float may be flushed to it or to a subnormal; the
            // exponentials of a softmax (x <= shift) never reach the top of the range.
            const bool exp_ok = exp_in > 88.0 || std::fabs(e[i] - exp_ref) <= 4e-7 * exp_ref + 2e-38;
            const bool ok = std::fabs(s[i] - silu_ref) <= 4e-7 * std::fabs(silu_ref) + 1e-30 &&
                            std::fabs(sm[i] - silu_ref * mul[i]) <= 5e-7 * std::fabs(silu_ref * mul[i]) + 1e-30 &&
                            exp_ok;
            if (!ok && bad++ == 0)
                mgl_test::report_failure(__FILE__, __LINE__, name + ": x = " + std::to_string(x[i]) + ": silu " +
                                                                 std::to_string(s[i]) + ", exp " + std::to_string(e[i]));
        }
        CHECK_EQ(bad, 0);
        CHECK_EQ(s[0], 0.0f);
        CHECK_EQ(s[10], 100.0f);
        // Pieces of every length at every offset give the same bits as the whole array.
        for (int64_t offset : {0, 1, 3, 7, 13}) {
            for (int64_t n : {1, 2, 5, 8, 15, 16, 17, 31, 33}) {
                std::vector<float> piece(x.begin() + offset, x.begin() + offset + n);
                mgl::silu(piece.data(), mul.data() + offset, n);
                CHECK(std::equal(piece.begin(), piece.end(), sm.begin() + offset));
                std::vector<float> ep(x.begin() + offset, x.begin() + offset + n);
                mgl::exp_shifted(ep.data(), shift, n);
                CHECK(std::equal(ep.begin(), ep.end(), e.begin() + offset));
            }
        }
    }
}

// CEMA steps of every kernel set against a float64 recurrence on random inputs, over channel
// counts with and without partial vectors; running the rows one call at a time, or a channel
// range on its own, gives the same bits as all rows at once; updating the state in place (every
// out[t] the state itself) leaves it where the last row's separate output is.
TEST_CASE(cema_steps_every_kernel_set) {
    std::mt19937 rng(41);
    std::uniform_real_distribution<float> radius(0.5f, 0.99f), angle(-3.0f, 3.0f);
    for (int64_t n : {1, 7, 8, 16, 24, 33, 64, 70}) {
        const int64_t rows = 5, ldx = n + 3, ldc = n + 5;
        std::vector<float> q_re(static_cast<size_t>(n)), q_im(static_cast<size_t>(n));
        for (int64_t d = 0; d < n; ++d) {  // |q| < 1, as the model's damped rotations
            const float r = radius(rng), a = angle(rng);
            q_re[size_t(d)] = r * std::cos(a);
            q_im[size_t(d)] = r * std::sin(a);
        }
        const std::vector<float> p = random_vector(size_t(n), rng), eta_re = random_vector(size_t(n), rng),
                                 eta_im = random_vector(size_t(n), rng), h_re = random_vector(size_t(n), rng),
                                 h_im = random_vector(size_t(n), rng), x = random_vector(size_t(rows * ldx), rng),
                                 c0 = random_vector(size_t(rows * ldc), rng);
        const mgl::CemaRow row{q_re.data(), q_im.data(), p.data(), eta_re.data(), eta_im.data()};
        // float64 reference
        std::vector<double> ref_c(c0.begin(), c0.end()), ref_re(size_t(rows * n)), ref_im(size_t(rows * n));
        for (int64_t d = 0; d < n; ++d) {
            double hr = h_re[size_t(d)], hi = h_im[size_t(d)];
            for (int64_t t = 0; t < rows; ++t) {
                const double re = double(q_re[size_t(d)]) * hr - double(q_im[size_t(d)]) * hi +
                                  double(p[size_t(d)]) * x[size_t(t * ldx + d)];
                const double im = double(q_re[size_t(d)]) * hi + double(q_im[size_t(d)]) * hr;
                ref_re[size_t(t * n + d)] = re;
                ref_im[size_t(t * n + d)] = im;
                ref_c[size_t(t * ldc + d)] += double(eta_re[size_t(d)]) * re - double(eta_im[size_t(d)]) * im;
                hr = re;
                hi = im;
            }
        }
        for (Isa isa : supported_isas()) {
            ForcedIsa forced(isa);
            const std::string name = std::string(mgl::kern::isa_name(isa)) + " n " + std::to_string(n);
            std::vector<float> c = c0, out_re(size_t(rows * n)), out_im(size_t(rows * n));
            std::vector<float *> re_rows, im_rows;
            for (int64_t t = 0; t < rows; ++t) {
                re_rows.push_back(out_re.data() + t * n);
                im_rows.push_back(out_im.data() + t * n);
            }
            mgl::cema_steps(row, {x.data(), ldx, c.data(), ldc, h_re.data(), h_im.data(), re_rows.data(), im_rows.data(), 0, rows}, n);
            int bad = 0;
            for (int64_t t = 0; t < rows; ++t)
                for (int64_t d = 0; d < n; ++d) {
                    const size_t i = size_t(t * n + d), ic = size_t(t * ldc + d);
                    bad += std::fabs(out_re[i] - ref_re[i]) > 1e-5 * (1 + std::fabs(ref_re[i])) ||
                           std::fabs(out_im[i] - ref_im[i]) > 1e-5 * (1 + std::fabs(ref_im[i])) ||
                           std::fabs(c[ic] - ref_c[ic]) > 1e-5 * (1 + std::fabs(ref_c[ic]));
                }
            if (bad) mgl_test::report_failure(__FILE__, __LINE__, name + ": " + std::to_string(bad) + " values off");
            CHECK_EQ(bad, 0);
            for (int64_t t = 0; t < rows; ++t)  // c outside the n channels untouched
                CHECK(std::equal(c0.begin() + t * ldc + n, c0.begin() + (t + 1) * ldc, c.begin() + t * ldc + n));

            // One row per call, each starting from the previous row's output.
            std::vector<float> c1 = c0, re1(size_t(rows * n)), im1(size_t(rows * n));
            for (int64_t t = 0; t < rows; ++t) {
                float *re_out = re1.data() + t * n, *im_out = im1.data() + t * n;
                const float *hr = t ? re1.data() + (t - 1) * n : h_re.data(), *hi = t ? im1.data() + (t - 1) * n : h_im.data();
                mgl::cema_steps(row, {x.data() + t * ldx, ldx, c1.data() + t * ldc, ldc, hr, hi, &re_out, &im_out, 0, 1}, n);
            }
            CHECK(re1 == out_re && im1 == out_im && c1 == c);

            // Channels [3, n) on their own, and the state updated in place.
            if (n > 3) {
                std::vector<float> c2 = c0, re2(size_t(rows * n)), im2(size_t(rows * n));
                std::vector<float *> re2_rows, im2_rows;
                for (int64_t t = 0; t < rows; ++t) {
                    re2_rows.push_back(re2.data() + t * n);
                    im2_rows.push_back(im2.data() + t * n);
                }
                const mgl::CemaRow part{q_re.data() + 3, q_im.data() + 3, p.data() + 3, eta_re.data() + 3, eta_im.data() + 3};
                mgl::cema_steps(part, {x.data() + 3, ldx, c2.data() + 3, ldc, h_re.data() + 3, h_im.data() + 3,
                                       re2_rows.data(), im2_rows.data(), 3, rows}, n - 3);
                for (int64_t t = 0; t < rows; ++t) {
                    CHECK(std::equal(re2.begin() + t * n + 3, re2.begin() + (t + 1) * n, out_re.begin() + t * n + 3));
                    CHECK(std::equal(c2.begin() + t * ldc + 3, c2.begin() + t * ldc + n, c.begin() + t * ldc + 3));
                }
            }
            std::vector<float> c3 = c0, s_re = h_re, s_im = h_im;
            std::vector<float *> same_re(size_t(rows), s_re.data()), same_im(size_t(rows), s_im.data());
            mgl::cema_steps(row, {x.data(), ldx, c3.data(), ldc, s_re.data(), s_im.data(), same_re.data(), same_im.data(), 0, rows}, n);
            CHECK(std::equal(s_re.begin(), s_re.end(), out_re.begin() + (rows - 1) * n));
            CHECK(std::equal(s_im.begin(), s_im.end(), out_im.begin() + (rows - 1) * n));
            CHECK(c3 == c);
        }
    }
}

// first_max of every kernel set against a plain scan: ties (the first wins), NaN (never the
// maximum), infinities, all -inf or NaN (0), every length around the vector widths.
TEST_CASE(first_max_every_kernel_set) {
    std::mt19937 rng(5150);
    const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
    auto reference = [&](const std::vector<float> &x) {
        int64_t at = 0;
        float best = -inf;
        for (size_t i = 0; i < x.size(); ++i)
            if (x[i] > best) best = x[i], at = int64_t(i);
        return at;
    };
    std::vector<std::vector<float>> cases;
    for (int64_t n : {0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 100, 4096, 4099}) {
        std::vector<float> x = random_vector(size_t(n), rng);
        cases.push_back(x);
        std::uniform_int_distribution<int64_t> place(0, std::max<int64_t>(n - 1, 0));
        if (n > 0) {
            std::vector<float> ties(size_t(n), 0.5f);  // all equal: the first
            cases.push_back(ties);
            for (float &v : x) v = std::round(v * 2.0f);  // many ties of the maximum
            cases.push_back(x);
            x[size_t(place(rng))] = nan;
            x[size_t(place(rng))] = nan;
            cases.push_back(x);
            x[size_t(place(rng))] = inf;
            cases.push_back(x);
            cases.push_back(std::vector<float>(size_t(n), -inf));
            cases.push_back(std::vector<float>(size_t(n), nan));
            std::vector<float> last(size_t(n), -3.0f);
            last.back() = -2.0f;
            cases.push_back(last);
        }
    }
    for (Isa isa : supported_isas()) {
        ForcedIsa forced(isa);
        int bad = 0;
        for (const std::vector<float> &x : cases) {
            const int64_t got = mgl::first_max(x.data(), int64_t(x.size())), want = reference(x);
            if (got != want && bad++ == 0)
                mgl_test::report_failure(__FILE__, __LINE__, std::string(mgl::kern::isa_name(isa)) + ": n " +
                                                                 std::to_string(x.size()) + ": " + std::to_string(got) +
                                                                 " instead of " + std::to_string(want));
        }
        CHECK_EQ(bad, 0);
    }
}

// ------------------------------------------------------------------------------------------
// q8 activation quantization and dequantization

TEST_CASE(quantize_q8_is_identical_in_every_kernel_set) {
    std::mt19937 rng(11);
    const int64_t cols = 32 * 4000;
    std::vector<float> x = random_vector(static_cast<size_t>(cols), rng, 3.0f);
    for (int i = 0; i < 32; ++i) x[i] = 0.0f;                          // all-zero block
    for (int i = 0; i < 32; ++i) x[32 + i] = (i - 16) * 0.5f;          // exact ties at x * scale
    for (int i = 0; i < 32; ++i) x[64 + i] = i == 5 ? -1e-30f : 0.0f;  // tiny amax
    x[100] = 3e38f;                                                    // huge amax
    const QuantizedRow ref = quantize_reference(x.data(), cols);
    for (Isa isa : supported_isas()) {
        ForcedIsa forced(isa);
        const mgl::kern::KernelTable &kt = mgl::kern::active_kernels();
        std::vector<int8_t> q(static_cast<size_t>(cols));
        std::vector<float> d(static_cast<size_t>(cols / 32));
        std::vector<int32_t> sum(static_cast<size_t>(cols / 32));
        kt.quantize_q8(x.data(), cols, q.data(), d.data(), sum.data());
        int q_mismatch = 0, d_mismatch = 0, sum_mismatch = 0;
        for (int64_t b = 0; b < cols / 32; ++b) {
            int32_t s = 0;
            for (int i = 0; i < 32; ++i) {
                q_mismatch += q[b * 32 + i] != ref.q[b * 32 + i];
                s += ref.q[b * 32 + i];
            }
            d_mismatch += d[b] != static_cast<float>(ref.d[b]);
            sum_mismatch += sum[b] != s;
        }
        CHECK_EQ(q_mismatch, 0);
        CHECK_EQ(d_mismatch, 0);
        CHECK_EQ(sum_mismatch, 0);
        CHECK_EQ(int(q[32]), -127);  // -8 * 127/8
        CHECK_EQ(int(q[33]), -119);  // -7.5 * 127/8 = -119.0625
    }
}

TEST_CASE(dequantize_row_every_type_and_kernel_set) {
    std::mt19937 rng(21);
    for (Isa isa : supported_isas()) {
        ForcedIsa forced(isa);
        for (DType type : {DType::F32, DType::F16, DType::BF16, DType::Q8_0}) {
            const int64_t cols = type == DType::Q8_0 ? 96 : 37;
            const TestWeights w = make_weights(type, 3, cols, 2, rng);
            std::vector<float> out(static_cast<size_t>(cols));
            for (int64_t r = 0; r < 3; ++r) {
                mgl::dequantize_row(w.view(), r, out.data());
                CHECK(std::equal(out.begin(), out.end(), w.values.begin() + r * cols));
            }
            CHECK_THROWS_STATUS(mgl::dequantize_row(w.view(), 3, out.data()), MGL_ERR_INVALID_ARG);
            CHECK_THROWS_STATUS(mgl::dequantize_row(w.view(), -1, out.data()), MGL_ERR_INVALID_ARG);
        }
    }
}

TEST_CASE(cpu_features_names_the_selected_kernels) {
    const std::string best = mgl::cpu_features();
    CHECK(best == "avx512" || best == "avx2+fma" || best == "scalar");
    {
        ForcedIsa forced(Isa::Scalar);
        CHECK_EQ(std::string(mgl::cpu_features()), std::string("scalar"));
    }
    if (mgl::kern::isa_supported(Isa::Avx2)) {
        ForcedIsa forced(Isa::Avx2);
        CHECK_EQ(std::string(mgl::cpu_features()), std::string("avx2+fma"));
    }
    CHECK_EQ(std::string(mgl::cpu_features()), best);
    for (Isa isa : {Isa::Avx2, Isa::Avx512, Isa::Avx512Vnni})
        if (!mgl::kern::isa_supported(isa)) CHECK_THROWS_STATUS(mgl::kern::force_isa(isa), MGL_ERR_UNSUPPORTED);
}

// ------------------------------------------------------------------------------------------
// Conversions

TEST_CASE(fp16_to_fp32_every_value) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; ++h) {
        const float got = mgl::fp16_to_fp32(static_cast<uint16_t>(h));
        const float want = mgl_test::f16_to_f32(static_cast<uint16_t>(h));
        if (std::isnan(want)) {
            // NaN keeps sign and payload.
            const uint32_t expect = ((h & 0x8000u) << 16) | 0x7f800000u | ((h & 0x3ffu) << 13);
            bad += bits_of(got) != expect;
        } else {
            bad += bits_of(got) != bits_of(want);
        }
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(mgl::fp16_to_fp32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
    CHECK_EQ(mgl::fp16_to_fp32(0x7bff), 65504.0f);
    CHECK(std::isinf(mgl::fp16_to_fp32(0xfc00)) && mgl::fp16_to_fp32(0xfc00) < 0);
}

TEST_CASE(fp32_to_fp16_rounds_to_nearest_even) {
    int round_trip_bad = 0, sweep_bad = 0, tie_bad = 0;
    for (uint32_t h = 0; h < 65536; ++h) {
        const bool nan = (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu);
        if (nan) {
            const uint16_t back = mgl::fp32_to_fp16(mgl::fp16_to_fp32(static_cast<uint16_t>(h)));
            round_trip_bad += (back & 0x7c00u) != 0x7c00u || !(back & 0x3ffu);
        } else {
            round_trip_bad += mgl::fp32_to_fp16(mgl::fp16_to_fp32(static_cast<uint16_t>(h))) != h;
        }
        // Values halfway between two neighbouring finite halves round to the even one; just above
        // or below the midpoint they go to the nearer one.
        if ((h & 0x7fffu) < 0x7bffu) {
            const double lo = mgl_test::f16_to_f32(static_cast<uint16_t>(h));
            const double hi = mgl_test::f16_to_f32(static_cast<uint16_t>(h + 1));
            const float mid = static_cast<float>((lo + hi) / 2);  // exact in f32
            const uint16_t even = (h & 1u) ? static_cast<uint16_t>(h + 1) : static_cast<uint16_t>(h);
            tie_bad += mgl::fp32_to_fp16(mid) != even;
            tie_bad += mgl::fp32_to_fp16(std::nextafter(mid, 0.0f)) != h && (h & 0x7fffu) != 0;
            tie_bad += mgl::fp32_to_fp16(std::nextafter(mid, mid * 2)) != static_cast<uint16_t>(h + 1);
        }
    }
    for (uint64_t b = 0; b < (1ull << 32); b += 4099) {
        const float f = float_of(static_cast<uint32_t>(b));
        if (std::isnan(f)) continue;
        sweep_bad += mgl::fp32_to_fp16(f) != mgl_test::f32_to_f16(f);
    }
    CHECK_EQ(round_trip_bad, 0);
    CHECK_EQ(tie_bad, 0);
    CHECK_EQ(sweep_bad, 0);
    CHECK_EQ(mgl::fp32_to_fp16(65519.99f), 0x7bff);
    CHECK_EQ(mgl::fp32_to_fp16(65520.0f), 0x7c00);  // halfway to 65536 rounds to even = inf
    CHECK_EQ(mgl::fp32_to_fp16(-1e10f), 0xfc00);
    CHECK_EQ(mgl::fp32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);  // tie between 0 and 2^-24
    CHECK_EQ(mgl::fp32_to_fp16(std::ldexp(1.5f, -25)), 0x0001);
    CHECK_EQ(mgl::fp32_to_fp16(std::ldexp(-3.0f, -25)), 0x8002);  // tie 1.5 units -> 2
    const uint16_t nan = mgl::fp32_to_fp16(std::nanf(""));
    CHECK((nan & 0x7c00u) == 0x7c00u && (nan & 0x3ffu) != 0);
}

TEST_CASE(bf16_conversions) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; ++h) {
        const float f = mgl::bf16_to_fp32(static_cast<uint16_t>(h));
        bad += bits_of(f) != h << 16;
        if (!std::isnan(f)) bad += mgl::fp32_to_bf16(f) != h;
    }
    for (uint64_t b = 0; b < (1ull << 32); b += 4099) {
        const float f = float_of(static_cast<uint32_t>(b));
        const uint16_t got = mgl::fp32_to_bf16(f);
        if (std::isnan(f)) bad += !std::isnan(mgl::bf16_to_fp32(got));
        else bad += got != mgl_test::f32_to_bf16(f);
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(mgl::fp32_to_bf16(float_of(0x3f808000u)), 0x3f80);  // tie, even stays
    CHECK_EQ(mgl::fp32_to_bf16(float_of(0x3f818000u)), 0x3f82);  // tie, odd rounds up
    CHECK_EQ(mgl::fp32_to_bf16(float_of(0x3f808001u)), 0x3f81);
    CHECK_EQ(mgl::fp32_to_bf16(float_of(0x7f7fffffu)), 0x7f80);  // max float rounds to inf
    CHECK(std::isnan(mgl::bf16_to_fp32(mgl::fp32_to_bf16(float_of(0x7f800001u)))));  // NaN not to inf
}

// ------------------------------------------------------------------------------------------
// Thread pool

TEST_CASE(thread_pool_runs_every_task_once) {
    for (int size = 1; size <= 4; ++size) {
        mgl::ThreadPool pool(size);
        CHECK_EQ(pool.size(), size);
        for (int64_t n : {0, 1, 2, 3, 7, 64, 1000}) {
            std::vector<std::atomic<int>> hits(static_cast<size_t>(std::max<int64_t>(n, 1)));
            std::atomic<int> bad_thread{0};
            pool.parallel_for(n, [&](int64_t task, int thread) {
                hits[static_cast<size_t>(task)].fetch_add(1);
                if (thread < 0 || thread >= size) bad_thread.fetch_add(1);
            });
            int wrong = 0;
            for (int64_t t = 0; t < n; ++t) wrong += hits[static_cast<size_t>(t)].load() != 1;
            CHECK_EQ(wrong, 0);
            CHECK_EQ(bad_thread.load(), 0);
        }
    }
}

// Each thread starts on its own share of the tasks; a slow thread's share is taken over by the
// others, so nobody waits for it longer than its current task.
TEST_CASE(thread_pool_shares_and_takes_over_a_slow_share) {
    mgl::ThreadPool pool(2);
    std::vector<int> ran_by(10, -1);
    pool.parallel_for(10, [&](int64_t task, int thread) {
        ran_by[static_cast<size_t>(task)] = thread;
        if (thread == 1) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    });
    CHECK_EQ(ran_by[0], 0);  // the caller begins with its own share
    int worker_tasks = 0, caller_in_worker_share = 0;
    for (int64_t t = 0; t < 10; ++t) {
        worker_tasks += ran_by[static_cast<size_t>(t)] == 1;
        caller_in_worker_share += t >= 5 && ran_by[static_cast<size_t>(t)] == 0;
    }
    // The worker sleeps in its first task, by which time the caller has run the rest.
    CHECK(worker_tasks <= 1);
    CHECK_EQ(caller_in_worker_share, 5 - worker_tasks);
}

TEST_CASE(thread_pool_many_small_jobs_and_idle_gaps) {
    mgl::ThreadPool pool(3);
    std::atomic<int64_t> total{0};
    for (int round = 0; round < 20000; ++round)
        pool.parallel_for(5, [&](int64_t task, int) { total.fetch_add(task + 1); });
    CHECK_EQ(total.load(), int64_t(20000) * 15);
    // After pauses longer than the spin time the workers sleep and must wake up again.
    for (int round = 0; round < 5; ++round) {
        std::this_thread::sleep_for(std::chrono::milliseconds(3));
        std::atomic<int> n{0};
        std::vector<int> seen(3, 0);
        pool.parallel_for(300, [&](int64_t, int thread) {
            n.fetch_add(1);
            seen[static_cast<size_t>(thread)] = 1;
            std::this_thread::sleep_for(std::chrono::microseconds(50));
        });
        CHECK_EQ(n.load(), 300);
        CHECK_EQ(seen[1] + seen[2] > 0, true);  // workers took part
    }
}

TEST_CASE(thread_pool_propagates_exceptions_and_rejects_nesting) {
    mgl::ThreadPool pool(2);
    bool caught = false;
    try {
        pool.parallel_for(100, [&](int64_t task, int) {
            if (task == 37) throw std::runtime_error("task 37 failed");
        });
    } catch (const std::runtime_error &e) {
        caught = std::string(e.what()) == "task 37 failed";
    }
    CHECK(caught);
    std::atomic<int> n{0};
    pool.parallel_for(10, [&](int64_t, int) { n.fetch_add(1); });  // still usable
    CHECK_EQ(n.load(), 10);
    CHECK_THROWS_STATUS(pool.parallel_for(4, [&](int64_t, int) { pool.parallel_for(2, [](int64_t, int) {}); }),
                        MGL_ERR_INTERNAL);
    CHECK_THROWS_STATUS(mgl::ThreadPool(0), MGL_ERR_INVALID_ARG);
}

// ------------------------------------------------------------------------------------------
// Benchmark (MGL_BENCH=1). MGL_BENCH_SECTIONS picks sections (default
// "gemm,layer,small,decode,pool"); "layer" runs the weight products of one layer of the
// reference configuration (D 512, Z 256, E 1024, SwiGLU F 1024) on a chunk of 1024 rows.
// Single-thread times are the calling thread's CPU time, which other processes on the machine do
// not inflate; multi-thread times are wall-clock. Each figure is the best of many repetitions.

namespace {

double thread_cpu_seconds() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

double wall_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double seconds_per_call(const std::function<void()> &fn, bool cpu_time) {
    fn();  // warm-up
    double (*clock)() = cpu_time ? thread_cpu_seconds : wall_seconds;
    double best = 1e30;
    for (int rep = 0; rep < 15; ++rep) {
        int iters = 0;
        const double start = clock();
        double elapsed = 0;
        do {
            fn();
            ++iters;
            elapsed = clock() - start;
        } while (elapsed < 0.01);
        best = std::min(best, elapsed / iters);
    }
    return best;
}

// Work rate of matmul with no pool (CPU time) and with `pool` (wall time).
void bench_matmul(const TestWeights &w, int64_t M, mgl::ThreadPool &pool, double units_per_call, double out[2]) {
    std::mt19937 rng(3);
    const int64_t K = w.cols, N = w.rows;
    std::vector<float> X = random_vector(static_cast<size_t>(M * K), rng), Y(static_cast<size_t>(M * N));
    for (int t = 0; t < 2; ++t) {
        mgl::ThreadPool *p = t == 0 ? nullptr : &pool;
        const double s =
            seconds_per_call([&] { mgl::matmul(p, X.data(), M, K, w.view(), nullptr, Y.data(), N); }, t == 0);
        out[t] = units_per_call / s;
    }
}

int run_benchmark() {
    if (const char *isa = std::getenv("MGL_BENCH_ISA")) {
        const std::string s = isa;
        mgl::kern::force_isa(s == "scalar" ? Isa::Scalar
                             : s == "avx2"   ? Isa::Avx2
                             : s == "avx512" ? Isa::Avx512
                                             : Isa::Avx512Vnni);
    }
    const char *sections_env = std::getenv("MGL_BENCH_SECTIONS");
    const std::string sections = sections_env ? sections_env : "gemm,layer,small,decode,pool";
    auto wanted = [&](const char *name) { return sections.find(name) != std::string::npos; };
    std::printf("kernels: %s\n", mgl::kern::isa_name(mgl::kern::active_isa()));
    std::mt19937 rng(1);
    mgl::ThreadPool pool2(2);
    const DType types[] = {DType::F32, DType::F16, DType::BF16, DType::Q8_0};
    const char *header = "%-6s %5s %5s %5s %9s %9s\n";
    if (wanted("gemm")) {
        std::printf(header, "type", "M", "K", "N", "1 thread", "2 threads");
        for (int64_t K : {512, 1024})
            for (int64_t N : {256, 512, 1024})
                for (DType type : types) {
                    const int64_t M = 1024;
                    double gflops[2];
                    bench_matmul(make_weights(type, N, K, 0, rng), M, pool2, 2e-9 * M * N * K, gflops);
                    std::printf("%-6s %5lld %5lld %5lld %9.1f %9.1f  GFLOP/s\n", mgl::dtype_name(type), (long long)M,
                                (long long)K, (long long)N, gflops[0], gflops[1]);
                }
    }
    if (wanted("layer")) {
        // (N, K) of W_z, W_v, W_r, W_h1, W_h2, ffn gate, up, down.
        const int64_t shapes[8][2] = {{256, 512}, {1024, 512}, {1024, 512}, {512, 512},
                                      {512, 1024}, {1024, 512}, {1024, 512}, {512, 1024}};
        const int64_t M = 1024;
        std::printf("layer (8 weight products, M = 1024) %9s %9s\n", "1 thread", "2 threads");
        for (DType type : types) {
            std::vector<TestWeights> ws;
            double flops = 0;
            for (const auto &nk : shapes) {
                ws.push_back(make_weights(type, nk[0], nk[1], 0, rng));
                flops += 2.0 * M * nk[0] * nk[1];
            }
            std::vector<float> X = random_vector(static_cast<size_t>(M * 1024), rng), Y(static_cast<size_t>(M * 1024));
            double gflops[2];
            for (int t = 0; t < 2; ++t) {
                mgl::ThreadPool *p = t == 0 ? nullptr : &pool2;
                const double s = seconds_per_call([&] {
                    for (const TestWeights &w : ws)
                        mgl::matmul(p, X.data(), M, w.cols, w.view(), nullptr, Y.data(), w.rows);
                }, t == 0);
                gflops[t] = flops / s * 1e-9;
            }
            std::printf("%-6s %29s %9.1f %9.1f  GFLOP/s\n", mgl::dtype_name(type), "", gflops[0], gflops[1]);
        }
    }
    if (wanted("small")) {  // decode of a few tokens, multi-token heads, short prompts
        std::printf(header, "type", "M", "K", "N", "1 thread", "2 threads");
        for (DType type : {DType::F32, DType::F16, DType::Q8_0})
            for (int64_t M : {1, 2, 4, 6, 8, 9, 10, 11, 12, 16, 32, 64}) {
                const int64_t K = 512, N = 1024;
                double gflops[2];
                bench_matmul(make_weights(type, N, K, 0, rng), M, pool2, 2e-9 * M * N * K, gflops);
                std::printf("%-6s %5lld %5lld %5lld %9.1f %9.1f  GFLOP/s\n", mgl::dtype_name(type), (long long)M,
                            (long long)K, (long long)N, gflops[0], gflops[1]);
            }
    }
    if (wanted("decode")) {  // one row against weights that do not fit in the caches
        std::printf(header, "type", "M", "K", "N", "1 thread", "2 threads");
        for (DType type : types) {
            const int64_t K = 4096, N = 16384;  // 64 to 256 MiB of weights
            const TestWeights w = make_weights(type, N, K, 0, rng);
            double gbs[2];
            bench_matmul(w, 1, pool2, 1e-9 * static_cast<double>(w.bytes.size()), gbs);
            std::printf("%-6s %5d %5lld %5lld %9.1f %9.1f  GB/s of weights\n", mgl::dtype_name(type), 1, (long long)K,
                        (long long)N, gbs[0], gbs[1]);
        }
    }
    if (wanted("pool")) {
        std::atomic<int64_t> sink{0};
        const double s = seconds_per_call([&] { pool2.parallel_for(8, [&](int64_t t, int) { sink += t; }); }, false);
        std::printf("thread pool: %.2f us per parallel_for of 8 tiny tasks on 2 threads\n", s * 1e6);
    }
    return 0;
}

}  // namespace

int main() {
    const char *bench = std::getenv("MGL_BENCH");
    if (bench && std::string(bench) == "1") return run_benchmark();
    return mgl_test::run_all("test_kernels");
}
