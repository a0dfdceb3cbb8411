// Readable text for CUDA runtime errors: the call, the runtime's message, the error's name and code.
#pragma once

#include <cuda_runtime.h>

#include <string>

namespace mgl {
namespace cuda {

inline std::string describe_cuda_error(cudaError_t e, const char *call) {
    return std::string(call) + " failed: " + cudaGetErrorString(e) + " (" + cudaGetErrorName(e) + ", error " +
           std::to_string(static_cast<int>(e)) + ")";
}

}  // namespace cuda
}  // namespace mgl
