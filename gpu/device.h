#pragma once
// Plain C++ view of the CUDA side (no CUDA headers here, so any translation unit - and
// Beast, which breaks under nvcc - can include it).
#include <string>

namespace troupe::gpu {

// Number of visible CUDA devices (0 when there is no driver or no GPU).
int device_count();
// "NVIDIA H100 80GB HBM3, sm_90, 79.1 GiB" or the CUDA error string.
std::string describe_device(int index);
// Runs a vector-add kernel on the device and checks the result; returns "" on success or
// the reason it failed. Used as a smoke test of the toolchain + driver.
std::string self_test();

}  // namespace troupe::gpu
