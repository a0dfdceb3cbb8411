#include "backend_select.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#ifdef MGL_HAVE_CUDA
#include "cuda/backend.h"
#endif

namespace mgl {

cuda::BackendChoice select_backend(const char *requested) {
    bool built = false;
    std::string device_error;
    [[maybe_unused]] const bool wants_cuda = requested && (std::strcmp(requested, "cuda") == 0 || std::strcmp(requested, "auto") == 0);
#ifdef MGL_HAVE_CUDA
    built = true;
    if (wants_cuda) {
        std::vector<cuda::DeviceInfo> devices;
        cuda::query_devices(devices, device_error);
    }
#endif
    cuda::BackendChoice choice = cuda::choose_backend(requested, built, device_error);
    if (choice.kind == cuda::BackendKind::Cuda) {
        // Kernels and state buffers exist; the model's forward pass on the device does not yet.
        choice.kind = cuda::BackendKind::Cpu;
        choice.message = std::string("MGL_BACKEND=") + requested +
                         ": a CUDA device is present but the CUDA forward pass is not available yet; using the CPU backend";
    }
    return choice;
}

void announce_backend_choice() {
    static std::once_flag once;
    std::call_once(once, [] {
        const char *requested = std::getenv("MGL_BACKEND");
        if (!requested || !*requested) return;
        cuda::BackendChoice choice = select_backend(requested);
        if (!choice.message.empty()) std::fprintf(stderr, "megalodon: %s\n", choice.message.c_str());
    });
}

}  // namespace mgl
