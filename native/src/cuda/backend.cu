#include "cuda/backend.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <utility>

#include "cuda/cuda_error.h"
#include "cuda/launch_plan.h"

namespace mgl {
namespace cuda {

namespace {

std::string describe(cudaError_t e, const char *call) { return describe_cuda_error(e, call); }

std::string describe(cublasStatus_t s, const char *call) {
    return std::string(call) + " failed: " + cublasGetStatusString(s) + " (status " +
           std::to_string(static_cast<int>(s)) + ")";
}

}  // namespace

DeviceBuffer::~DeviceBuffer() {
    if (data_) cudaFree(data_);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer &&other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer &DeviceBuffer::operator=(DeviceBuffer &&other) noexcept {
    if (this != &other) {
        if (data_) cudaFree(data_);
        data_ = std::exchange(other.data_, nullptr);
        bytes_ = std::exchange(other.bytes_, 0);
    }
    return *this;
}

struct CudaBackend::Impl {
    DeviceInfo info;
    cudaStream_t stream = nullptr;
    cublasHandle_t cublas = nullptr;
};

CudaBackend::CudaBackend() : impl_(new Impl) {}

CudaBackend::~CudaBackend() {
    if (impl_->cublas) cublasDestroy(impl_->cublas);
    if (impl_->stream) cudaStreamDestroy(impl_->stream);
}

std::unique_ptr<CudaBackend> CudaBackend::create(int device, std::string &error) {
    std::vector<DeviceInfo> devices;
    if (!query_devices(devices, error)) return nullptr;
    if (device < 0 || device >= static_cast<int>(devices.size())) {
        error = "CUDA device " + std::to_string(device) + " does not exist (" + std::to_string(devices.size()) +
                " found)";
        return nullptr;
    }
    if (devices[device].major < 8) {
        error = "CUDA device " + devices[device].name + " has compute capability " +
                std::to_string(devices[device].major) + "." + std::to_string(devices[device].minor) +
                "; bf16 kernels need 8.0 or newer";
        return nullptr;
    }
    std::unique_ptr<CudaBackend> b(new CudaBackend);
    b->impl_->info = devices[device];
    cudaError_t e = cudaSetDevice(device);
    if (e != cudaSuccess) { error = describe(e, "cudaSetDevice"); return nullptr; }
    e = cudaStreamCreateWithFlags(&b->impl_->stream, cudaStreamNonBlocking);
    if (e != cudaSuccess) { error = describe(e, "cudaStreamCreate"); return nullptr; }
    cublasStatus_t s = cublasCreate(&b->impl_->cublas);
    if (s != CUBLAS_STATUS_SUCCESS) { error = describe(s, "cublasCreate"); return nullptr; }
    s = cublasSetStream(b->impl_->cublas, b->impl_->stream);
    if (s != CUBLAS_STATUS_SUCCESS) { error = describe(s, "cublasSetStream"); return nullptr; }
    return b;
}

const DeviceInfo &CudaBackend::device() const { return impl_->info; }
void *CudaBackend::stream() const { return impl_->stream; }

bool CudaBackend::allocate(size_t bytes, DeviceBuffer &out, std::string &error) {
    out = DeviceBuffer();
    if (bytes == 0) return true;
    cudaError_t e = cudaMalloc(&out.data_, bytes);
    if (e != cudaSuccess) {
        out.data_ = nullptr;
        error = describe(e, "cudaMalloc") + " for " + std::to_string(bytes) + " bytes";
        return false;
    }
    out.bytes_ = bytes;
    e = cudaMemsetAsync(out.data_, 0, bytes, impl_->stream);
    if (e != cudaSuccess) { error = describe(e, "cudaMemset"); return false; }
    return true;
}

bool CudaBackend::upload_bf16(const float *host, size_t count, DeviceBuffer &out, std::string &error) {
    std::vector<uint16_t> bits(count);
    convert_to_bf16(host, bits.data(), count);
    if (!allocate(count * sizeof(uint16_t), out, error)) return false;
    cudaError_t e = cudaMemcpyAsync(out.data_, bits.data(), count * sizeof(uint16_t), cudaMemcpyHostToDevice,
                                    impl_->stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(impl_->stream);  // `bits` dies here
    if (e != cudaSuccess) { error = describe(e, "cudaMemcpy (upload)"); return false; }
    return true;
}

bool CudaBackend::upload_f32(const float *host, size_t count, DeviceBuffer &out, std::string &error) {
    if (!allocate(count * sizeof(float), out, error)) return false;
    cudaError_t e = cudaMemcpyAsync(out.data_, host, count * sizeof(float), cudaMemcpyHostToDevice, impl_->stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(impl_->stream);
    if (e != cudaSuccess) { error = describe(e, "cudaMemcpy (upload)"); return false; }
    return true;
}

bool CudaBackend::download(const DeviceBuffer &src, void *host, size_t bytes, std::string &error) {
    if (bytes > src.bytes_) { error = "download larger than the buffer"; return false; }
    cudaError_t e = cudaMemcpyAsync(host, src.data_, bytes, cudaMemcpyDeviceToHost, impl_->stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(impl_->stream);
    if (e != cudaSuccess) { error = describe(e, "cudaMemcpy (download)"); return false; }
    return true;
}

bool CudaBackend::allocate_state(const StateShape &sh, DeviceState &state, std::string &error) {
    state = DeviceState();
    std::vector<float> fresh_stats(2 * sh.G, 0.f);
    for (int64_t g = 0; g < sh.G; ++g) fresh_stats[sh.G + g] = 1.f;
    state.layers.resize(sh.layers);
    for (LayerStateBuffers &l : state.layers) {
        if (!allocate(static_cast<size_t>(sh.D * sh.N) * 2 * sizeof(float), l.cema_h, error) ||
            !upload_f32(fresh_stats.data(), fresh_stats.size(), l.tsn_stats, error) ||
            !allocate(static_cast<size_t>(sh.chunk * sh.heads * sh.dqk) * 2, l.k_cache, error) ||
            !allocate(static_cast<size_t>(sh.chunk * sh.heads * sh.dv) * 2, l.v_cache, error))
            return false;
    }
    return upload_f32(fresh_stats.data(), fresh_stats.size(), state.final_tsn_stats, error);
}

bool CudaBackend::gemm_bf16(const void *X, int64_t ldx, const void *W, int64_t ldw, void *Y, int64_t ldy,
                            bool y_fp32, int64_t M, int64_t N, int64_t K, std::string &error) {
    if (M <= 0 || N <= 0) return true;
    const GemmArgs g = gemm_args_row_major(M, N, K, ldx, ldw, ldy);
    const float alpha = 1.f, beta = 0.f;
    cublasStatus_t s = cublasGemmEx(
        impl_->cublas, g.transa ? CUBLAS_OP_T : CUBLAS_OP_N, g.transb ? CUBLAS_OP_T : CUBLAS_OP_N,
        static_cast<int>(g.m), static_cast<int>(g.n), static_cast<int>(g.k), &alpha, W, CUDA_R_16BF,
        static_cast<int>(g.lda), X, CUDA_R_16BF, static_cast<int>(g.ldb), &beta, Y,
        y_fp32 ? CUDA_R_32F : CUDA_R_16BF, static_cast<int>(g.ldc), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (s != CUBLAS_STATUS_SUCCESS) { error = describe(s, "cublasGemmEx"); return false; }
    return true;
}

bool CudaBackend::synchronize(std::string &error) {
    cudaError_t e = cudaStreamSynchronize(impl_->stream);
    if (e != cudaSuccess) { error = describe(e, "cudaStreamSynchronize"); return false; }
    return true;
}

}  // namespace cuda
}  // namespace mgl
