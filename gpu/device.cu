#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "gpu/device.h"

namespace troupe::gpu {

namespace {
__global__ void vector_add(const float* a, const float* b, float* c, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) c[i] = a[i] + b[i];
}
}  // namespace

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
  return n;
}

std::string describe_device(int index) {
  cudaDeviceProp p{};
  if (auto e = cudaGetDeviceProperties(&p, index); e != cudaSuccess) return cudaGetErrorString(e);
  // p.name is a char[256]: build the string rather than snprintf into a fixed buffer that
  // the name alone could fill (GCC's -Wformat-truncation says so, rightly).
  char gib[32];
  std::snprintf(gib, sizeof gib, "%.1f", static_cast<double>(p.totalGlobalMem) / (1 << 30));
  return std::string(p.name, strnlen(p.name, sizeof p.name)) + ", sm_" + std::to_string(p.major) +
         std::to_string(p.minor) + ", " + gib + " GiB";
}

std::string self_test() {
  const int n = 1 << 20;
  std::vector<float> a(n), b(n), c(n);
  for (int i = 0; i < n; ++i) { a[i] = float(i); b[i] = float(2 * i); }
  float *da = nullptr, *db = nullptr, *dc = nullptr;
  auto check = [](cudaError_t e) { return e == cudaSuccess ? std::string() : std::string(cudaGetErrorString(e)); };
  std::string err;
  if (err = check(cudaMalloc(&da, n * sizeof(float))); !err.empty()) return err;
  cudaMalloc(&db, n * sizeof(float));
  cudaMalloc(&dc, n * sizeof(float));
  cudaMemcpy(da, a.data(), n * sizeof(float), cudaMemcpyHostToDevice);
  cudaMemcpy(db, b.data(), n * sizeof(float), cudaMemcpyHostToDevice);
  vector_add<<<(n + 255) / 256, 256>>>(da, db, dc, n);
  err = check(cudaGetLastError());
  if (err.empty()) err = check(cudaMemcpy(c.data(), dc, n * sizeof(float), cudaMemcpyDeviceToHost));
  cudaFree(da); cudaFree(db); cudaFree(dc);
  if (!err.empty()) return err;
  for (int i = 0; i < n; ++i)
    if (c[i] != float(3 * i)) return "wrong result at " + std::to_string(i);
  return "";
}

}  // namespace troupe::gpu
