# Finds every third-party dependency once and exposes it as an imported target.
# Everything comes from Debian 12 packages (scripts/install-deps.sh).
# The libraries' own dependencies (also installed with the package config: see
# TroupeLibraryDependencies.cmake); the build adds Catch2 and CUDA.
include(TroupeLibraryDependencies)

# Catch2 v2 (Debian's catch2 2.13 ships a CMake package).
find_package(Catch2 2 REQUIRED)

# CUDA: optional and auto-detected. CI (no GPU) still compiles the CUDA code when nvcc exists.
set(TROUPE_HAVE_CUDA OFF)
if(NOT TROUPE_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 90)   # Hopper (H100/H200); PTX fallback added per target
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(TROUPE_HAVE_CUDA ON)
  elseif(TROUPE_CUDA STREQUAL "ON")
    message(FATAL_ERROR "TROUPE_CUDA=ON but no nvcc found")
  endif()
endif()
message(STATUS "troupe: CUDA backend ${TROUPE_HAVE_CUDA}")
