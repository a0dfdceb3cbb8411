# Optional CUDA backend: the static library mgl_cuda (kernels + cuBLAS), linked into the runtime
# only when enabled. MGL_CUDA=AUTO enables it when nvcc and cuBLAS are both found; without
# them the build stays CPU-only. Sets MGL_CUDA_ENABLED.
set(MGL_CUDA AUTO CACHE STRING "Build the CUDA backend: AUTO (when nvcc and cuBLAS are found), ON or OFF")
set_property(CACHE MGL_CUDA PROPERTY STRINGS AUTO ON OFF)
set(MGL_CUBLAS_ROOT "" CACHE PATH
    "Directory holding include/cublas_v2.h and lib/libcublas.so* (searched before the pip wheel in .venv-cuda)")

set(MGL_CUDA_ENABLED OFF)
string(TOUPPER "${MGL_CUDA}" _mgl_cuda_mode)
if(NOT _mgl_cuda_mode STREQUAL "OFF")
  # cuBLAS: MGL_CUBLAS_ROOT, then the nvidia-cublas wheel in <repo>/.venv-cuda, then the toolkit.
  set(_mgl_cublas_hints)
  if(MGL_CUBLAS_ROOT)
    list(APPEND _mgl_cublas_hints "${MGL_CUBLAS_ROOT}")
  endif()
  file(GLOB _mgl_venv_cublas "${CMAKE_CURRENT_SOURCE_DIR}/../.venv-cuda/lib/python3*/site-packages/nvidia/cu1*")
  list(APPEND _mgl_cublas_hints ${_mgl_venv_cublas} /usr/local/cuda)
  find_path(MGL_CUBLAS_INCLUDE_DIR cublas_v2.h HINTS ${_mgl_cublas_hints} PATH_SUFFIXES include)
  find_library(MGL_CUBLAS_LIBRARY NAMES cublas libcublas.so.13 libcublas.so.12
               HINTS ${_mgl_cublas_hints} PATH_SUFFIXES lib lib64)
  find_library(MGL_CUBLASLT_LIBRARY NAMES cublasLt libcublasLt.so.13 libcublasLt.so.12
               HINTS ${_mgl_cublas_hints} PATH_SUFFIXES lib lib64)
  set(_mgl_cublas_found OFF)
  if(MGL_CUBLAS_INCLUDE_DIR AND MGL_CUBLAS_LIBRARY AND MGL_CUBLASLT_LIBRARY)
    set(_mgl_cublas_found ON)
  endif()

  # Probing for nvcc costs a sub-configure; skip it when cuBLAS is missing anyway.
  if(_mgl_cublas_found OR _mgl_cuda_mode STREQUAL "ON")
    include(CheckLanguage)
    check_language(CUDA)
  endif()

  if(CMAKE_CUDA_COMPILER AND _mgl_cublas_found)
    set(MGL_CUDA_ENABLED ON)
  else()
    set(_mgl_cuda_why "")
    if((_mgl_cublas_found OR _mgl_cuda_mode STREQUAL "ON") AND NOT CMAKE_CUDA_COMPILER)
      string(APPEND _mgl_cuda_why " no CUDA compiler;")
    endif()
    if(NOT _mgl_cublas_found)
      string(APPEND _mgl_cuda_why " no cuBLAS (set MGL_CUBLAS_ROOT or run native/tools/check_cuda_build.sh);")
    endif()
    if(_mgl_cuda_mode STREQUAL "ON")
      message(FATAL_ERROR "MGL_CUDA=ON but the CUDA backend cannot be built:${_mgl_cuda_why}")
    endif()
    message(STATUS "CUDA backend: off (${_mgl_cuda_why} )")
  endif()
endif()

if(MGL_CUDA_ENABLED)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES "80;90")
  endif()
  set(CMAKE_CUDA_STANDARD 17)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)
  message(STATUS "CUDA backend: on (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES}, "
                 "cuBLAS ${MGL_CUBLAS_LIBRARY})")

  file(GLOB MGL_CUDA_SRC CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/src/cuda/*.cu)
  add_library(mgl_cuda STATIC ${MGL_CUDA_SRC})
  target_include_directories(mgl_cuda PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/src ${MGL_CUBLAS_INCLUDE_DIR})
  target_compile_options(mgl_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-O3>)
  set_target_properties(mgl_cuda PROPERTIES CUDA_RUNTIME_LIBRARY Static)
  # The CUDA runtime is linked statically: the binaries need no CUDA install, only the driver
  # (when a GPU is used) and cuBLAS. cuBLAS is linked as-needed, so binaries that only query the
  # device (the runtime until the CUDA forward pass is wired in) do not depend on it.
  target_link_libraries(mgl_cuda PUBLIC mgl_cuda_plan CUDA::cudart_static)
  if(CMAKE_SYSTEM_NAME STREQUAL "Linux")
    target_link_libraries(mgl_cuda PUBLIC "-Wl,--push-state,--as-needed" ${MGL_CUBLAS_LIBRARY}
                          ${MGL_CUBLASLT_LIBRARY} "-Wl,--pop-state")
  else()
    target_link_libraries(mgl_cuda PUBLIC ${MGL_CUBLAS_LIBRARY} ${MGL_CUBLASLT_LIBRARY})
  endif()
  target_link_libraries(mgl_core PUBLIC mgl_cuda)
  target_compile_definitions(mgl_core PUBLIC MGL_HAVE_CUDA=1)
endif()
