// The CUDA backend's device query and the backend choice on the machine running the test. Without
// a usable GPU the query must fail with a readable reason and the CPU must be chosen; with one,
// the backend must come up and a small bf16 GEMM must match the host product.
#include "backend_select.h"
#include "cuda/backend.h"
#include "cuda/launch_plan.h"
#include "test_util.h"

using namespace mgl::cuda;

TEST_CASE(device_query_and_backend_choice) {
    std::vector<DeviceInfo> devices;
    std::string error;
    const bool have_device = query_devices(devices, error);
    BackendChoice choice = choose_backend("cuda", true, have_device ? "" : error);
    if (!have_device) {
        std::printf("  no GPU: %s\n", choice.message.c_str());
        CHECK(devices.empty());
        CHECK(!error.empty());
        CHECK(error.find("cudaGetDeviceCount") != std::string::npos || error.find("no devices") != std::string::npos);
        CHECK(error.find("error ") != std::string::npos || error.find("no devices") != std::string::npos);
        CHECK(choice.kind == BackendKind::Cpu);
        CHECK(choice.message.find("using the CPU backend") != std::string::npos);
        std::string create_error;
        CHECK(CudaBackend::create(0, create_error) == nullptr);
        CHECK(!create_error.empty());
        // What model load reports for MGL_BACKEND=cuda on this machine.
        BackendChoice runtime = mgl::select_backend("cuda");
        CHECK(runtime.kind == BackendKind::Cpu);
        CHECK(runtime.message.find("no usable CUDA device") != std::string::npos);
        std::printf("  model load says: %s\n", runtime.message.c_str());
        return;
    }
    CHECK(choice.kind == BackendKind::Cuda);
    for (const DeviceInfo &d : devices)
        std::printf("  device %d: %s, sm_%d%d, %d SMs, %zu MiB\n", d.index, d.name.c_str(), d.major, d.minor,
                    d.multiprocessors, d.global_bytes >> 20);
}

TEST_CASE(gemm_matches_host_when_a_device_exists) {
    std::string error;
    std::unique_ptr<CudaBackend> backend = CudaBackend::create(0, error);
    if (!backend) {
        std::printf("  skipped: %s\n", error.c_str());
        return;
    }
    const int64_t M = 3, N = 5, K = 70;
    std::vector<float> X(M * K), W(N * K);
    std::mt19937 rng(2);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    for (auto &v : X) v = bf16_bits_to_float(round_to_bf16_bits(u(rng)));
    for (auto &v : W) v = bf16_bits_to_float(round_to_bf16_bits(u(rng)));
    DeviceBuffer dx, dw, dy;
    CHECK(backend->upload_bf16(X.data(), X.size(), dx, error));
    CHECK(backend->upload_bf16(W.data(), W.size(), dw, error));
    CHECK(backend->allocate(M * N * sizeof(float), dy, error));
    CHECK(backend->gemm_bf16(dx.data(), K, dw.data(), K, dy.data(), N, true, M, N, K, error));
    std::vector<float> Y(M * N);
    CHECK(backend->download(dy, Y.data(), Y.size() * sizeof(float), error));
    for (int64_t r = 0; r < M; ++r)
        for (int64_t c = 0; c < N; ++c) {
            double s = 0;
            for (int64_t k = 0; k < K; ++k) s += double(X[r * K + k]) * W[c * K + k];
            CHECK_NEAR(Y[r * N + c], s, 1e-3);
        }
}

int main() { return mgl_test::run_all("test_cuda_backend"); }
