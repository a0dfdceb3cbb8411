// Host-side logic of the CUDA backend: launch shapes, scan segmenting (checked by running the
// kernels' combine steps on the host), the cuBLAS argument mapping, bf16 rounding and the
// backend choice. Needs no GPU and no CUDA toolkit.
#include <complex>

#include "backend_select.h"
#include "cuda/launch_plan.h"
#include "cuda/scan_ops.h"
#include "kernels.h"
#include "test_util.h"

using namespace mgl::cuda;
using mgl_test::bits_of;
using mgl_test::float_of;

TEST_CASE(bf16_rounding_matches_round_to_nearest_even) {
    // Ties go to the even neighbour; values past the largest bf16 overflow to infinity;
    // NaN stays a quiet NaN (as models/gguf.py float32_to_bf16_bits).
    CHECK_EQ(round_to_bf16_bits(float_of(0x3F808000u)), 0x3F80);
    CHECK_EQ(round_to_bf16_bits(float_of(0x3F818000u)), 0x3F82);
    CHECK_EQ(round_to_bf16_bits(float_of(0x3F808001u)), 0x3F81);
    CHECK_EQ(round_to_bf16_bits(float_of(0x7F7FFFFFu)), 0x7F80);
    CHECK_EQ(round_to_bf16_bits(float_of(0xFF7FFFFFu)), 0xFF80);
    CHECK_EQ(round_to_bf16_bits(float_of(0x7F800000u)), 0x7F80);
    CHECK_EQ(round_to_bf16_bits(float_of(0x7F800001u)), 0x7FC0);
    CHECK_EQ(round_to_bf16_bits(float_of(0xFFC00001u)), 0xFFC0);
    CHECK_EQ(round_to_bf16_bits(float_of(0x00000001u)), 0x0000);  // smallest subnormal rounds to 0
    CHECK_EQ(round_to_bf16_bits(-0.0f), 0x8000);
    CHECK_EQ(bf16_bits_to_float(0x3F80), 1.0f);

    std::mt19937 rng(7);
    std::vector<float> src(20000);
    for (size_t i = 0; i < src.size(); ++i) src[i] = float_of(static_cast<uint32_t>(rng()));
    std::vector<uint16_t> dst(src.size());
    convert_to_bf16(src.data(), dst.data(), src.size());
    int mismatches = 0;
    for (size_t i = 0; i < src.size(); ++i) {
        if (dst[i] != mgl::fp32_to_bf16(src[i])) ++mismatches;
        // Rounded value is one of the two bf16 neighbours and the nearer one.
        if (!std::isfinite(src[i]) || !std::isfinite(bf16_bits_to_float(dst[i]))) continue;
        const double x = src[i], r = bf16_bits_to_float(dst[i]);
        const double down = float_of(bits_of(src[i]) & 0xFFFF0000u);
        const double ulp = std::fabs(float_of((bits_of(src[i]) & 0xFFFF0000u) + 0x10000u) - down);
        if (std::fabs(r - x) > 0.5 * ulp) ++mismatches;
    }
    CHECK_EQ(mismatches, 0);
}

TEST_CASE(launch_shapes) {
    CHECK_EQ(next_pow2(1), 1);
    CHECK_EQ(next_pow2(17), 32);
    CHECK_EQ(next_pow2(32), 32);
    CHECK_EQ(ceil_div(10, 4), 3);
    LaunchShape r = row_reduce_shape(7, 4096);
    CHECK_EQ(r.grid_x, 7u);
    CHECK_EQ(r.block, 1024u);
    CHECK_EQ(row_reduce_shape(1, 64).block, 32u);
    CHECK_EQ(row_reduce_shape(1, 1000).block, 256u);
    CHECK(row_reduce_shape(1, 4096).shared_bytes >= (1024 / 32) * sizeof(float));
    LaunchShape e = elementwise_shape(1000);
    CHECK_EQ(e.block, 256u);
    CHECK(e.grid_x * e.block >= 1000u);
    CHECK((e.grid_x - 1) * e.block < 1000u);
}

TEST_CASE(cema_plan_covers_rows_and_keeps_channel_lanes_in_one_warp) {
    std::string err;
    CemaPlan p;
    CHECK(!plan_cema(10, 8, 0, 1 << 16, p, &err));
    CHECK(!plan_cema(10, 8, 33, 1 << 16, p, &err));
    CHECK(err.find("33") != std::string::npos);
    for (int64_t N : {1, 3, 16, 32}) {
        for (int64_t rows : {1, 5, 31, 32, 33, 1000, 4096, 8192}) {
            for (int64_t D : {1, 7, 64, 4096}) {
                CHECK(plan_cema(rows, D, N, 132 * 2048, p, &err));
                CHECK_EQ(p.lanes, next_pow2(N));
                CHECK(32 % p.lanes == 0);                          // a channel never straddles warps
                CHECK_EQ(p.channels_per_block * p.lanes, kCemaBlock);
                CHECK(p.shape.grid_x * p.channels_per_block >= D);
                CHECK(p.segments * p.segment_len >= rows);
                CHECK((p.segments - 1) * p.segment_len < rows);   // no empty segment
                CHECK(p.segment_len >= std::min<int64_t>(rows, kCemaMinSegment));
                CHECK_EQ(p.scratch_bytes, static_cast<size_t>(2 * p.segments * D * N * 8));
            }
        }
    }
    // Segments are the grid's y dimension, whose size is limited.
    CHECK(plan_cema(int64_t(1) << 24, 64, 16, int64_t(1) << 40, p, &err));
    CHECK(p.segments <= kMaxGridY);
    CHECK(p.segments * p.segment_len >= (int64_t(1) << 24));
    // Decode is a single step: one segment.
    CHECK(plan_cema(1, 4096, 16, 132 * 2048, p, &err));
    CHECK_EQ(p.segments, 1);
}

// The three passes of the CEMA kernel (segment-local folds, carry with q^len, re-run) on the
// host, against the plain recurrence in double precision.
TEST_CASE(cema_chunked_scan_matches_recurrence) {
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(-1.f, 1.f), mag(0.5f, 0.999f), ang(0.f, 6.28f);
    const int64_t D = 3, N = 5;
    std::vector<Complex> q(D * N), eta(D * N), h0(D * N);
    std::vector<float> p(D * N), omega(D);
    for (int64_t i = 0; i < D * N; ++i) {
        float r = mag(rng), a = ang(rng);
        q[i] = Complex{r * std::cos(a), r * std::sin(a)};
        eta[i] = Complex{u(rng), u(rng)};
        h0[i] = Complex{u(rng), u(rng)};
        p[i] = 0.5f + 0.5f * u(rng);
    }
    for (auto &w : omega) w = u(rng);
    for (int64_t rows : {1, 7, 40, 333}) {
        std::vector<float> x(rows * D);
        for (auto &v : x) v = u(rng);
        CemaPlan plan;
        std::string err;
        CHECK(plan_cema(rows, D, N, 64 * 1024, plan, &err));  // several segments for rows > 32
        const int64_t S = plan.segments, L = plan.segment_len;
        std::vector<Complex> local(S * D * N), start(S * D * N), h = h0;
        for (int64_t s = 0; s < S; ++s)
            for (int64_t i = 0; i < D * N; ++i) {
                Complex a{0.f, 0.f};
                for (int64_t t = s * L; t < std::min(rows, (s + 1) * L); ++t) a = cema_step(a, q[i], p[i] * x[t * D + i / N]);
                local[s * D * N + i] = a;
            }
        for (int64_t i = 0; i < D * N; ++i) {
            Complex cur = h[i];
            for (int64_t s = 0; s < S; ++s) {
                start[s * D * N + i] = cur;
                Complex m = cmul(cpow_int(q[i], std::min(L, rows - s * L)), cur);
                cur = Complex{m.re + local[s * D * N + i].re, m.im + local[s * D * N + i].im};
            }
            h[i] = cur;
        }
        std::vector<float> c(rows * D, 0.f);
        for (int64_t s = 0; s < S; ++s)
            for (int64_t i = 0; i < D * N; ++i) {
                Complex a = start[s * D * N + i];
                for (int64_t t = s * L; t < std::min(rows, (s + 1) * L); ++t) {
                    a = cema_step(a, q[i], p[i] * x[t * D + i / N]);
                    c[t * D + i / N] += eta[i].re * a.re - eta[i].im * a.im;
                }
            }
        // Reference.
        double max_err = 0, max_state_err = 0;
        std::vector<std::complex<double>> hr(D * N);
        for (int64_t i = 0; i < D * N; ++i) hr[i] = {h0[i].re, h0[i].im};
        for (int64_t t = 0; t < rows; ++t)
            for (int64_t d = 0; d < D; ++d) {
                double out = omega[d] * x[t * D + d];
                for (int64_t n = 0; n < N; ++n) {
                    const int64_t i = d * N + n;
                    hr[i] = std::complex<double>(q[i].re, q[i].im) * hr[i] + double(p[i]) * double(x[t * D + d]);
                    out += eta[i].re * hr[i].real() - eta[i].im * hr[i].imag();
                }
                max_err = std::max(max_err, std::fabs(out - (c[t * D + d] + omega[d] * x[t * D + d])));
            }
        for (int64_t i = 0; i < D * N; ++i)
            max_state_err = std::max(max_state_err, std::abs(hr[i] - std::complex<double>(h[i].re, h[i].im)));
        CHECK(max_err < 1e-4);
        CHECK(max_state_err < 1e-4);
    }
}

// The TimestepNorm scan kernel's steps on the host (runs folded per thread, exclusive prefix
// from the carried state, re-walk), against the sequential update of megalodon.md 3.2.
TEST_CASE(tsn_scan_matches_sequential_welford) {
    std::mt19937 rng(5);
    std::normal_distribution<float> nd(0.f, 1.f);
    for (int64_t rows : {1, 2, 31, 300, 5000}) {
        const long long count0 = rows % 2 ? 0 : 1234;
        const float mean0 = 0.3f, var0 = count0 ? 2.5f : 1.f;
        std::vector<float> m(rows), s2(rows);
        for (int64_t t = 0; t < rows; ++t) {
            m[t] = 3.f + nd(rng) + 0.001f * t;
            s2[t] = std::fabs(nd(rng)) + 0.1f;
        }
        TsnScanPlan plan = plan_tsn_scan(rows, 1);
        CHECK(plan.threads >= 32 && plan.threads <= kTsnScanMaxThreads);
        CHECK(plan.threads * plan.run_len >= rows);
        std::vector<Moments> runs(plan.threads, Moments{0, 0.f, 0.f});
        for (int64_t i = 0; i < plan.threads; ++i)
            for (int64_t t = i * plan.run_len; t < std::min(rows, (i + 1) * plan.run_len); ++t)
                runs[i] = combine_moments(runs[i], Moments{1, m[t], s2[t]});
        Moments prefix{count0, mean0, var0 * static_cast<float>(count0)};
        std::vector<Moments> before(plan.threads);
        for (int64_t i = 0; i < plan.threads; ++i) {
            before[i] = prefix;
            prefix = combine_moments(prefix, runs[i]);
        }
        std::vector<float> mean(rows), var(rows);
        for (int64_t i = 0; i < plan.threads; ++i) {
            Moments cur = before[i];
            for (int64_t t = i * plan.run_len; t < std::min(rows, (i + 1) * plan.run_len); ++t) {
                cur = combine_moments(cur, Moments{1, m[t], s2[t]});
                mean[t] = cur.mean;
                var[t] = cur.m2 / static_cast<float>(cur.count);
            }
        }
        double n = static_cast<double>(count0), mu = mean0, v = var0, worst = 0;
        for (int64_t t = 0; t < rows; ++t) {
            double n1 = n + 1, c1 = n / n1, c2 = 1 / n1, delta = m[t] - mu;
            mu = c1 * mu + c2 * m[t];
            v = c1 * v + c2 * s2[t] + c1 * c2 * delta * delta;
            n = n1;
            worst = std::max({worst, std::fabs(mean[t] - mu) / (1 + std::fabs(mu)), std::fabs(var[t] - v) / v});
        }
        CHECK(worst < 1e-4);
        CHECK_EQ(prefix.count, count0 + rows);
        CHECK_NEAR(prefix.mean, mu, 1e-4 * (1 + std::fabs(mu)));
        CHECK_NEAR(prefix.m2 / prefix.count, v, 1e-4 * v);
    }
}

TEST_CASE(attention_plan_fits_shared_memory) {
    AttentionPlan plan;
    std::string err;
    CHECK(plan_attention(4096, 4, 256, 2048, 48 * 1024, plan, &err));  // 7B heads
    CHECK_EQ(plan.shape.grid_x, 1024u);
    CHECK_EQ(plan.shape.grid_y, 4u);
    CHECK_EQ(plan.shape.grid_z, 8u);
    CHECK_EQ(plan.shape.block, 128u);
    CHECK(plan.layout.k_offset % 16 == 0 && plan.layout.v_offset % 16 == 0);
    CHECK(plan.layout.k_offset >= static_cast<size_t>(kAttnRowsPerBlock * 256 * 4));
    CHECK(plan.layout.v_offset - plan.layout.k_offset >= static_cast<size_t>(kAttnKeyTile * (256 + kAttnKeyPad) * 2));
    CHECK(plan.layout.total - plan.layout.v_offset >= static_cast<size_t>(kAttnKeyTile * kAttnValueSlice * 2));
    CHECK(plan.shape.shared_bytes <= 48 * 1024u);
    CHECK(plan_attention(1, 2, 16, 20, 48 * 1024, plan, &err));  // decode, value width under a slice
    CHECK_EQ(plan.shape.grid_x, 1u);
    CHECK_EQ(plan.shape.grid_z, 1u);
    CHECK(!plan_attention(10, 2, 4096, 64, 48 * 1024, plan, &err));
    CHECK(err.find("shared memory") != std::string::npos);
    CHECK(!plan_attention(0, 2, 16, 16, 48 * 1024, plan, &err));
}

// Column-major GEMM with cuBLAS's argument conventions (C = op(A)·op(B)).
static void cublas_like_gemm(const GemmArgs &g, const float *A, const float *B, float *C) {
    for (int64_t i = 0; i < g.m; ++i)
        for (int64_t j = 0; j < g.n; ++j) {
            double s = 0;
            for (int64_t l = 0; l < g.k; ++l) {
                double a = g.transa ? A[i * g.lda + l] : A[l * g.lda + i];
                double b = g.transb ? B[l * g.ldb + j] : B[j * g.ldb + l];
                s += a * b;
            }
            C[j * g.ldc + i] = static_cast<float>(s);
        }
}

TEST_CASE(gemm_mapping_computes_x_times_w_transposed) {
    const int64_t M = 5, N = 7, K = 3, ldx = 4, ldw = 6, ldy = 9;
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    std::vector<float> X(M * ldx), W(N * ldw), Y(M * ldy, 0.f);
    for (auto &v : X) v = u(rng);
    for (auto &v : W) v = u(rng);
    GemmArgs g = gemm_args_row_major(M, N, K, ldx, ldw, ldy);
    cublas_like_gemm(g, W.data(), X.data(), Y.data());
    double worst = 0;
    for (int64_t r = 0; r < M; ++r)
        for (int64_t c = 0; c < N; ++c) {
            double s = 0;
            for (int64_t k = 0; k < K; ++k) s += double(X[r * ldx + k]) * W[c * ldw + k];
            worst = std::max(worst, std::fabs(s - Y[r * ldy + c]));
        }
    CHECK(worst < 1e-6);
    CHECK(g.lda >= (g.transa ? g.k : g.m));
    CHECK(g.ldb >= (g.transb ? g.n : g.k));
    CHECK(g.ldc >= g.m);
}

TEST_CASE(backend_choice_falls_back_to_cpu_with_a_message) {
    BackendChoice c = choose_backend(nullptr, true, "");
    CHECK(c.kind == BackendKind::Cpu);
    CHECK(c.message.empty());
    CHECK(choose_backend("cpu", true, "").message.empty());
    c = choose_backend("cuda", true, "");
    CHECK(c.kind == BackendKind::Cuda);
    c = choose_backend("cuda", true, "cudaGetDeviceCount failed: no CUDA-capable device is detected");
    CHECK(c.kind == BackendKind::Cpu);
    CHECK(c.message.find("no usable CUDA device") != std::string::npos);
    CHECK(c.message.find("no CUDA-capable device") != std::string::npos);
    CHECK(c.message.find("using the CPU backend") != std::string::npos);
    c = choose_backend("auto", false, "");
    CHECK(c.kind == BackendKind::Cpu);
    CHECK(c.message.find("no CUDA backend") != std::string::npos);
    c = choose_backend("metal", true, "");
    CHECK(c.kind == BackendKind::Cpu);
    CHECK(c.message.find("not a backend") != std::string::npos);
}

// The runtime's choice at model load: the CPU in every build until the CUDA forward pass exists,
// with a message whenever something else was asked for.
TEST_CASE(runtime_backend_selection_uses_the_cpu) {
    CHECK(mgl::select_backend(nullptr).message.empty());
    CHECK(mgl::select_backend("cpu").message.empty());
    for (const char *req : {"cuda", "auto", "tpu"}) {
        BackendChoice c = mgl::select_backend(req);
        CHECK(c.kind == BackendKind::Cpu);
        CHECK(c.message.find("using the CPU backend") != std::string::npos);
    }
}

int main() { return mgl_test::run_all("test_cuda_plan"); }
