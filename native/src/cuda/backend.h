// The CUDA backend's device, memory and GEMM interface. No CUDA headers here: the rest of the
// runtime includes this only in builds configured with MGL_CUDA (MGL_HAVE_CUDA defined).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mgl {
namespace cuda {

struct DeviceInfo {
    int index = 0;
    std::string name;
    int major = 0, minor = 0;
    int multiprocessors = 0;
    size_t global_bytes = 0;
    size_t shared_per_block_optin = 0;  // the most dynamic shared memory a block can ask for
    size_t l2_bytes = 0;
};

// Devices the CUDA runtime can use. Returns false with a readable `error` (what the runtime
// said, with its error code) when there are none, e.g. no driver or no GPU.
bool query_devices(std::vector<DeviceInfo> &devices, std::string &error);

// Device memory owned by one object; freed on destruction.
class DeviceBuffer {
public:
    DeviceBuffer() = default;
    ~DeviceBuffer();
    DeviceBuffer(DeviceBuffer &&other) noexcept;
    DeviceBuffer &operator=(DeviceBuffer &&other) noexcept;
    DeviceBuffer(const DeviceBuffer &) = delete;
    DeviceBuffer &operator=(const DeviceBuffer &) = delete;

    void *data() const { return data_; }
    size_t bytes() const { return bytes_; }
    template <class T> T *as() const { return static_cast<T *>(data_); }

private:
    friend class CudaBackend;
    void *data_ = nullptr;
    size_t bytes_ = 0;
};

// Per-sequence streaming state on the device (megalodon.md 6.1), fp32 where 9.4 asks for it.
struct StateShape {
    int64_t layers = 0, D = 0, N = 0, G = 0;  // model width, CEMA states per channel, TSN groups
    int64_t chunk = 0, heads = 0, dqk = 0, dv = 0;
};
struct LayerStateBuffers {
    DeviceBuffer cema_h;     // [D, N] complex fp32
    DeviceBuffer tsn_stats;  // [G] means, [G] variances, fp32
    DeviceBuffer k_cache;    // [chunk, heads, dqk] bf16
    DeviceBuffer v_cache;    // [chunk, heads, dv] bf16
};
struct DeviceState {
    std::vector<LayerStateBuffers> layers;
    DeviceBuffer final_tsn_stats;  // [G] means, [G] variances
    int64_t tokens = 0;            // absolute position; also the TSN count
};

class CudaBackend {
public:
    // Null with `error` set when the device cannot be used.
    static std::unique_ptr<CudaBackend> create(int device, std::string &error);
    ~CudaBackend();

    const DeviceInfo &device() const;
    void *stream() const;  // the cudaStream_t every call enqueues on

    bool allocate(size_t bytes, DeviceBuffer &out, std::string &error);  // zero-filled
    // Weights: fp32 host values rounded to bf16 (nearest even) and copied.
    bool upload_bf16(const float *host, size_t count, DeviceBuffer &out, std::string &error);
    bool upload_f32(const float *host, size_t count, DeviceBuffer &out, std::string &error);
    bool download(const DeviceBuffer &src, void *host, size_t bytes, std::string &error);

    // State of a fresh sequence: zero CEMA state, TSN means 0 and variances 1, empty KV.
    bool allocate_state(const StateShape &shape, DeviceState &state, std::string &error);

    // Row-major Y[M][N] = X[M][K] · Wᵀ with X, W in bf16 (W [N][K]), fp32 accumulation;
    // Y is fp32 when y_fp32, else bf16. Leading dimensions in elements.
    bool gemm_bf16(const void *X, int64_t ldx, const void *W, int64_t ldw, void *Y, int64_t ldy, bool y_fp32,
                   int64_t M, int64_t N, int64_t K, std::string &error);

    bool synchronize(std::string &error);

private:
    CudaBackend();
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace cuda
}  // namespace mgl
