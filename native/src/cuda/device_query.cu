// Device discovery, kept apart from the cuBLAS code so that a binary that only asks whether a
// GPU is usable links the CUDA runtime alone.
#include <cuda_runtime.h>

#include "cuda/backend.h"
#include "cuda/cuda_error.h"

namespace mgl {
namespace cuda {

bool query_devices(std::vector<DeviceInfo> &devices, std::string &error) {
    devices.clear();
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        error = describe_cuda_error(e, "cudaGetDeviceCount");
        if (e == cudaErrorInsufficientDriver || e == cudaErrorNoDevice)
            error += "; this machine has no usable NVIDIA GPU or driver";
        cudaGetLastError();  // the failure is also the "last error"; clear it for later calls
        return false;
    }
    if (count == 0) {
        error = "the CUDA runtime found no devices";
        return false;
    }
    for (int i = 0; i < count; ++i) {
        cudaDeviceProp prop{};
        e = cudaGetDeviceProperties(&prop, i);
        if (e != cudaSuccess) {
            error = describe_cuda_error(e, "cudaGetDeviceProperties");
            return false;
        }
        DeviceInfo d;
        d.index = i;
        d.name = prop.name;
        d.major = prop.major;
        d.minor = prop.minor;
        d.multiprocessors = prop.multiProcessorCount;
        d.global_bytes = prop.totalGlobalMem;
        d.shared_per_block_optin = prop.sharedMemPerBlockOptin;
        d.l2_bytes = static_cast<size_t>(prop.l2CacheSize);
        devices.push_back(d);
    }
    return true;
}

}  // namespace cuda
}  // namespace mgl
