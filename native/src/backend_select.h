// The compute backend requested with MGL_BACKEND (cpu, cuda, auto). The forward pass runs on the
// CPU in every case for now; a CUDA request probes the device so that the runtime can say why the
// CPU is used.
#pragma once

#include "cuda/launch_plan.h"

namespace mgl {

// The backend `requested` resolves to on this machine (device query included in CUDA builds).
cuda::BackendChoice select_backend(const char *requested);

// Reads MGL_BACKEND and, when it names anything but the CPU, prints once per process to stderr
// which backend is used and why.
void announce_backend_choice();

}  // namespace mgl
