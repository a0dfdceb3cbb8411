// Runs every CUDA kernel and the cuBLAS GEMM on random inputs and compares them with host
// references in double precision (the formulas of megalodon.md 2-4), printing one table row per
// check. Needs a GPU; exits 0 when all pass, 1 on a mismatch, 2 when no device is usable.
#include <cmath>
#include <complex>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "cuda/backend.h"
#include "cuda/kernels.cuh"
#include "cuda/launch_plan.h"

using namespace mgl::cuda;

namespace {

std::mt19937 rng(11);
int failures = 0;

std::vector<float> random_vec(size_t n, float lo = -1.f, float hi = 1.f) {
    std::uniform_real_distribution<float> u(lo, hi);
    std::vector<float> v(n);
    for (auto &x : v) x = u(rng);
    return v;
}

std::vector<float> bf16_round(std::vector<float> v) {
    for (auto &x : v) x = bf16_bits_to_float(round_to_bf16_bits(x));
    return v;
}

void check_cuda(cudaError_t e, const char *what) {
    if (e != cudaSuccess) {
        std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
        std::exit(1);
    }
}

template <class T> T *to_device(const std::vector<T> &h) {
    T *d = nullptr;
    check_cuda(cudaMalloc(&d, std::max<size_t>(1, h.size()) * sizeof(T)), "cudaMalloc");
    check_cuda(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice), "upload");
    return d;
}

template <class T> std::vector<T> to_host(const T *d, size_t n) {
    std::vector<T> h(n);
    check_cuda(cudaDeviceSynchronize(), "kernel");
    check_cuda(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost), "download");
    return h;
}

__nv_bfloat16 *to_device_bf16(const std::vector<float> &h) {
    std::vector<uint16_t> bits(h.size());
    convert_to_bf16(h.data(), bits.data(), h.size());
    return reinterpret_cast<__nv_bfloat16 *>(to_device(bits));
}

// max |got − want| / (|want| + 1) must stay within tol.
void report(const char *op, const std::string &shape, const std::vector<float> &got, const std::vector<double> &want,
            double tol) {
    double worst = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        double e = std::fabs(got[i] - want[i]) / (std::fabs(want[i]) + 1.0);
        if (!(e <= worst)) worst = e;  // NaN propagates
    }
    bool ok = worst <= tol;
    if (!ok) ++failures;
    std::printf("| %-28s | %-26s | %10.3e | %8.1e | %s |\n", op, shape.c_str(), worst, tol, ok ? "ok  " : "FAIL");
}

void check_gemm(CudaBackend &backend) {
    const int64_t M = 64, N = 96, K = 256;
    std::vector<float> X = bf16_round(random_vec(M * K)), W = bf16_round(random_vec(N * K));
    std::string err;
    DeviceBuffer dx, dw, dy;
    if (!backend.upload_bf16(X.data(), X.size(), dx, err) || !backend.upload_bf16(W.data(), W.size(), dw, err) ||
        !backend.allocate(M * N * 4, dy, err) || !backend.gemm_bf16(dx.data(), K, dw.data(), K, dy.data(), N, true, M, N, K, err)) {
        std::printf("gemm: %s\n", err.c_str());
        ++failures;
        return;
    }
    std::vector<float> Y(M * N);
    backend.download(dy, Y.data(), Y.size() * 4, err);
    std::vector<double> ref(M * N);
    for (int64_t r = 0; r < M; ++r)
        for (int64_t c = 0; c < N; ++c) {
            double s = 0;
            for (int64_t k = 0; k < K; ++k) s += double(X[r * K + k]) * W[c * K + k];
            ref[r * N + c] = s;
        }
    report("gemm bf16 -> f32", "64x96x256", Y, ref, 1e-4);
}

void check_norms() {
    const int64_t rows = 5, width = 1000;
    std::vector<float> x = random_vec(rows * width, -2.f, 3.f), w = random_vec(width, -0.5f, 0.5f),
                       b = random_vec(width);
    float *dx = to_device(x), *dy = to_device(x), *dw = to_device(w), *db = to_device(b);
    std::vector<double> ref(rows * width);
    rms_norm<float>(dx, width, dy, width, rows, width, dw, 1e-5f, nullptr);
    for (int64_t r = 0; r < rows; ++r) {
        double ss = 0;
        for (int64_t c = 0; c < width; ++c) ss += double(x[r * width + c]) * x[r * width + c];
        double s = 1 / std::sqrt(ss / width + 1e-5);
        for (int64_t c = 0; c < width; ++c) ref[r * width + c] = x[r * width + c] * s * (w[c] + 1.0);
    }
    report("rms_norm f32", "5x1000", to_host(dy, rows * width), ref, 1e-5);
    layer_norm<float>(dx, width, dy, width, rows, width, dw, db, 1e-5f, nullptr);
    for (int64_t r = 0; r < rows; ++r) {
        double mu = 0, var = 0;
        for (int64_t c = 0; c < width; ++c) mu += x[r * width + c];
        mu /= width;
        for (int64_t c = 0; c < width; ++c) var += (x[r * width + c] - mu) * (x[r * width + c] - mu);
        double s = 1 / std::sqrt(var / width + 1e-5);
        for (int64_t c = 0; c < width; ++c) ref[r * width + c] = (x[r * width + c] - mu) * s * (w[c] + 1.0) + b[c];
    }
    report("layer_norm f32", "5x1000", to_host(dy, rows * width), ref, 1e-5);
    // bf16 activations: input rounded, output rounded once.
    __nv_bfloat16 *bx = to_device_bf16(x), *by = to_device_bf16(x);
    layer_norm<__nv_bfloat16>(bx, width, by, width, rows, width, dw, db, 1e-5f, nullptr);
    std::vector<float> yf(rows * width);
    float *tmp = to_device(yf);
    bf16_to_f32(by, tmp, rows * width, nullptr);
    report("layer_norm bf16", "5x1000", to_host(tmp, rows * width), ref, 2e-2);
    cudaFree(dx); cudaFree(dy); cudaFree(dw); cudaFree(db); cudaFree(bx); cudaFree(by); cudaFree(tmp);
}

void check_qk_rope() {
    const int64_t rows = 3, heads = 4, dz = 64, Z = heads * dz;
    std::vector<float> z = random_vec(rows * Z), gamma = random_vec(2 * Z, -0.3f, 0.3f), beta = random_vec(2 * Z, -0.1f, 0.1f);
    float *dz_ = to_device(z), *dq = to_device(z), *dk = to_device(z), *dg = to_device(gamma), *db = to_device(beta);
    qk_from_z<float>(dz_, dq, dk, rows, heads, dz, dg, db, 1e-5f, nullptr);
    std::vector<double> rq(rows * Z), rk(rows * Z);
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t h = 0; h < heads; ++h) {
            double ss = 0;
            for (int64_t c = 0; c < dz; ++c) ss += double(z[r * Z + h * dz + c]) * z[r * Z + h * dz + c];
            double s = 1 / std::sqrt(ss / dz + 1e-5) / std::sqrt(double(dz));
            for (int64_t c = 0; c < dz; ++c) {
                int64_t i = r * Z + h * dz + c, col = h * dz + c;
                rq[i] = z[i] * s * (gamma[col] + 1.0) + beta[col];
                rk[i] = z[i] * s * (gamma[Z + col] + 1.0) + beta[Z + col];
            }
        }
    report("qk_from_z q f32", "3x4x64", to_host(dq, rows * Z), rq, 1e-5);
    report("qk_from_z k f32", "3x4x64", to_host(dk, rows * Z), rk, 1e-5);

    const int64_t d = 16, pos0 = 5;
    std::vector<float> freqs(d / 2);
    for (int64_t m = 0; m < d / 2; ++m) freqs[m] = bf16_bits_to_float(round_to_bf16_bits(std::pow(10000.f, -2.f * m / d)));
    std::vector<float> x = random_vec(9 * 3 * d);
    float *dx = to_device(x), *df = to_device(freqs);
    rope<float>(dx, 9, 3, d, pos0, df, nullptr);
    std::vector<double> ref(x.size());
    for (int64_t r = 0; r < 9; ++r)
        for (int64_t h = 0; h < 3; ++h)
            for (int64_t m = 0; m < d / 2; ++m) {
                int64_t i = (r * 3 + h) * d + 2 * m;
                double a = double(float(pos0 + r) * freqs[m]);
                ref[i] = x[i] * std::cos(a) - x[i + 1] * std::sin(a);
                ref[i + 1] = x[i] * std::sin(a) + x[i + 1] * std::cos(a);
            }
    report("rope f32", "9x3x16 pos0=5", to_host(dx, x.size()), ref, 1e-5);
    cudaFree(dz_); cudaFree(dq); cudaFree(dk); cudaFree(dg); cudaFree(db); cudaFree(dx); cudaFree(df);
}

void check_pointwise() {
    const int64_t n = 10007;
    std::vector<float> a = random_vec(n, -4.f, 4.f), b = random_vec(n);
    float *da = to_device(a), *db = to_device(b), *dout = to_device(a);
    std::vector<double> ref(n);
    swiglu<float>(da, db, dout, n, nullptr);
    for (int64_t i = 0; i < n; ++i) ref[i] = a[i] / (1 + std::exp(-double(a[i]))) * b[i];
    report("swiglu f32", std::to_string(n), to_host(dout, n), ref, 1e-6);
    add<float>(da, db, dout, n, nullptr);
    for (int64_t i = 0; i < n; ++i) ref[i] = double(a[i]) + b[i];
    report("residual add f32", std::to_string(n), to_host(dout, n), ref, 1e-7);
    multiply<float>(da, db, dout, n, nullptr);
    for (int64_t i = 0; i < n; ++i) ref[i] = double(a[i]) * b[i];
    report("multiply f32", std::to_string(n), to_host(dout, n), ref, 1e-7);
    cudaFree(da); cudaFree(db); cudaFree(dout);
}

void check_timestep_norm() {
    const int64_t rows = 777, D = 64, G = 4, dg = D / G, count0 = 100;
    std::vector<float> x = random_vec(rows * D, -1.f, 2.f), w = random_vec(D, -0.2f, 0.2f), b = random_vec(D, -0.1f, 0.1f);
    std::vector<float> stats(2 * G);
    for (int64_t g = 0; g < G; ++g) { stats[g] = 0.4f; stats[G + g] = 0.9f; }
    float *dx = to_device(x), *dy = to_device(x), *dw = to_device(w), *db = to_device(b), *ds = to_device(stats);
    std::vector<float> scratch(4 * rows * G);
    float *dscr = to_device(scratch);
    check_cuda(timestep_norm<float>(dx, dy, rows, D, G, count0, ds, dw, db, 1e-5f, dscr, nullptr), "timestep_norm");
    std::vector<double> ref(rows * D), mu(G, 0.4), var(G, 0.9);
    double n = count0;
    for (int64_t t = 0; t < rows; ++t) {
        for (int64_t g = 0; g < G; ++g) {
            double m = 0, s2 = 0;
            for (int64_t j = 0; j < dg; ++j) m += x[t * D + g * dg + j];
            m /= dg;
            for (int64_t j = 0; j < dg; ++j) s2 += (x[t * D + g * dg + j] - m) * (x[t * D + g * dg + j] - m);
            s2 /= dg;
            double c1 = n / (n + 1), c2 = 1 / (n + 1), delta = m - mu[g];
            mu[g] = c1 * mu[g] + c2 * m;
            var[g] = c1 * var[g] + c2 * s2 + c1 * c2 * delta * delta;
            for (int64_t j = 0; j < dg; ++j) {
                int64_t c = g * dg + j;
                ref[t * D + c] = (x[t * D + c] - mu[g]) / std::sqrt(var[g] + 1e-5) * (w[c] + 1.0) + b[c];
            }
        }
        n += 1;
    }
    report("timestep_norm f32", "777x64 G=4 count0=100", to_host(dy, rows * D), ref, 1e-4);
    std::vector<double> ref_stats(2 * G);
    for (int64_t g = 0; g < G; ++g) { ref_stats[g] = mu[g]; ref_stats[G + g] = var[g]; }
    report("timestep_norm state", "2x4", to_host(ds, 2 * G), ref_stats, 1e-4);
    cudaFree(dx); cudaFree(dy); cudaFree(dw); cudaFree(db); cudaFree(ds); cudaFree(dscr);
}

void check_cema(int target_threads) {
    const int64_t D = 48, N = 16, rows = 1000, split = 400;
    std::vector<float> p(D * N), omega = random_vec(D);
    std::vector<float2> q(D * N), eta(D * N);
    std::uniform_real_distribution<float> mag(0.5f, 0.999f), ang(0.f, 6.28f), u(-1.f, 1.f);
    for (int64_t i = 0; i < D * N; ++i) {
        float r = mag(rng), a = ang(rng);
        q[i] = make_float2(r * std::cos(a), r * std::sin(a));
        eta[i] = make_float2(u(rng) * 0.25f, u(rng) * 0.25f);
        p[i] = 0.5f + 0.5f * u(rng);
    }
    std::vector<float> x = random_vec(rows * D);
    CemaParams prm;
    prm.p = to_device(p); prm.q = to_device(q); prm.eta = to_device(eta); prm.omega = to_device(omega);
    prm.D = D; prm.N = N;
    std::vector<float2> h0(D * N, make_float2(0.f, 0.f));
    float2 *h_one = to_device(h0), *h_two = to_device(h0);
    float *dx = to_device(x), *c_one = to_device(x), *c_two = to_device(x);
    std::string err;
    auto run = [&](const float *in, float *out, int64_t n, float2 *h) {
        CemaPlan plan;
        if (!plan_cema(n, D, N, target_threads, plan, &err)) { std::printf("cema plan: %s\n", err.c_str()); std::exit(1); }
        void *scratch = nullptr;
        check_cuda(cudaMalloc(&scratch, plan.scratch_bytes), "cudaMalloc");
        check_cuda(cema<float>(in, out, n, prm, h, plan, scratch, nullptr), "cema");
        check_cuda(cudaDeviceSynchronize(), "cema");
        cudaFree(scratch);
    };
    run(dx, c_one, rows, h_one);
    run(dx, c_two, split, h_two);  // the same stream in two calls
    run(dx + split * D, c_two + split * D, rows - split, h_two);
    std::vector<double> ref(rows * D), ref_h(2 * D * N);
    std::vector<std::complex<double>> h(D * N);
    for (int64_t t = 0; t < rows; ++t)
        for (int64_t d = 0; d < D; ++d) {
            double out = omega[d] * x[t * D + d];
            for (int64_t k = 0; k < N; ++k) {
                int64_t i = d * N + k;
                h[i] = std::complex<double>(q[i].x, q[i].y) * h[i] + double(p[i]) * x[t * D + d];
                out += eta[i].x * h[i].real() - eta[i].y * h[i].imag();
            }
            ref[t * D + d] = out;
        }
    for (int64_t i = 0; i < D * N; ++i) { ref_h[2 * i] = h[i].real(); ref_h[2 * i + 1] = h[i].imag(); }
    std::string tag = "1000x48 N=16 t=" + std::to_string(target_threads);
    report("cema one call", tag, to_host(c_one, rows * D), ref, 1e-4);
    report("cema two calls (400+600)", tag, to_host(c_two, rows * D), ref, 1e-4);
    std::vector<float2> hs = to_host(h_two, D * N);
    std::vector<float> hflat(2 * D * N);
    for (int64_t i = 0; i < D * N; ++i) { hflat[2 * i] = hs[i].x; hflat[2 * i + 1] = hs[i].y; }
    report("cema final state", tag, hflat, ref_h, 1e-4);
    cudaFree((void *)prm.p); cudaFree((void *)prm.q); cudaFree((void *)prm.eta); cudaFree((void *)prm.omega);
    cudaFree(h_one); cudaFree(h_two); cudaFree(dx); cudaFree(c_one); cudaFree(c_two);
}

void check_attention(int64_t q_rows, int64_t kv0, int64_t heads, int64_t dqk, int64_t dv, size_t shared_limit) {
    const int64_t keys = kv0 + q_rows;
    // Logits of standard deviation about 2, as with normalised queries and keys.
    const float q_range = 3.f / std::sqrt(static_cast<float>(dqk));
    std::vector<float> q = random_vec(q_rows * heads * dqk, -q_range, q_range);
    std::vector<float> k = bf16_round(random_vec(keys * heads * dqk, -2.f, 2.f)), v = bf16_round(random_vec(keys * heads * dv));
    float *dq = to_device(q);
    __nv_bfloat16 *dk = to_device_bf16(k), *dvv = to_device_bf16(v);
    std::vector<float> out(q_rows * heads * dv, 0.f);
    float *dout = to_device(out);
    AttentionPlan plan;
    std::string err;
    if (!plan_attention(q_rows, heads, dqk, dv, shared_limit, plan, &err)) { std::printf("attention: %s\n", err.c_str()); ++failures; return; }
    check_cuda(chunk_attention<float>(dq, dk, dvv, dout, q_rows, kv0, heads, dqk, dv, plan, nullptr), "attention");
    auto reference = [&](const std::vector<float> &qv) {
        std::vector<double> ref(out.size());
        for (int64_t i = 0; i < q_rows; ++i)
            for (int64_t h = 0; h < heads; ++h) {
                const int64_t visible = kv0 + i + 1;
                std::vector<double> s(visible);
                double mx = -1e300, sum = 0;
                for (int64_t j = 0; j < visible; ++j) {
                    double dot = 0;
                    for (int64_t c = 0; c < dqk; ++c) dot += double(qv[(i * heads + h) * dqk + c]) * k[(j * heads + h) * dqk + c];
                    s[j] = dot;
                    mx = std::max(mx, dot);
                }
                for (auto &e : s) { e = std::exp(e - mx); sum += e; }
                for (int64_t c = 0; c < dv; ++c) {
                    double o = 0;
                    for (int64_t j = 0; j < visible; ++j) o += s[j] * v[(j * heads + h) * dv + c];
                    ref[(i * heads + h) * dv + c] = o / sum;
                }
            }
        return ref;
    };
    std::vector<double> ref = reference(q);
    std::string shape = std::to_string(q_rows) + "q+" + std::to_string(kv0) + "kv h" + std::to_string(heads) + " " +
                        std::to_string(dqk) + "/" + std::to_string(dv);
    report("chunk_attention f32/bf16kv", shape, to_host(dout, out.size()), ref, 1e-4);
    // bf16 queries and outputs (the inference path), against the reference on the rounded queries.
    __nv_bfloat16 *bq = to_device_bf16(q), *bout = to_device_bf16(out);
    check_cuda(chunk_attention<__nv_bfloat16>(bq, dk, dvv, bout, q_rows, kv0, heads, dqk, dv, plan, nullptr),
               "attention");
    bf16_to_f32(bout, dout, static_cast<int64_t>(out.size()), nullptr);
    report("chunk_attention bf16", shape, to_host(dout, out.size()), reference(bf16_round(q)), 1e-2);
    cudaFree(dq); cudaFree(dk); cudaFree(dvv); cudaFree(dout); cudaFree(bq); cudaFree(bout);
}

}  // namespace

int main() {
    std::string err;
    std::unique_ptr<CudaBackend> backend = CudaBackend::create(0, err);
    if (!backend) {
        std::printf("no usable CUDA device: %s\n", err.c_str());
        return 2;
    }
    const DeviceInfo &dev = backend->device();
    std::printf("device: %s (sm_%d%d, %d SMs)\n\n", dev.name.c_str(), dev.major, dev.minor, dev.multiprocessors);
    std::printf("| %-28s | %-26s | %10s | %8s | %s |\n", "op", "shape", "max err", "tol", "ok?");
    std::printf("|%s|%s|%s|%s|------|\n", std::string(30, '-').c_str(), std::string(28, '-').c_str(),
                std::string(12, '-').c_str(), std::string(10, '-').c_str());
    check_gemm(*backend);
    check_norms();
    check_qk_rope();
    check_pointwise();
    check_timestep_norm();
    check_cema(1 << 10);   // many segments
    check_cema(1 << 22);   // still more segments, shorter (minimum length)
    check_cema(1);         // one segment per call
    check_attention(70, 30, 2, 64, 300, dev.shared_per_block_optin);
    check_attention(1, 100, 3, 32, 40, dev.shared_per_block_optin);    // decode step
    check_attention(130, 0, 4, 256, 600, dev.shared_per_block_optin);  // 7B head size, chunk start
    std::printf("\n%s (%d failing)\n", failures ? "FAIL" : "all ok", failures);
    return failures ? 1 : 0;
}
