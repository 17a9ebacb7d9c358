// Decoding's matrix products, written to stream the weights: y[r, o] = sum_i W[o, i] * x[r, i] for a few
// rows r (one token of each of a few sequences). Each weight row is read from memory once and used for
// every r while it sits in the L1 cache, so the kernel's speed is how fast memory delivers the weights.
// The output rows are split between torch's intra-op threads; the dot products accumulate in fp32,
// 16 lanes at a time with AVX-512 where the CPU has it, else in a plain loop the compiler vectorises.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cstdint>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace {

// ROWS inputs at once: every 16 weights loaded are used ROWS times before the next 16 are read.
template <int ROWS>
void dot_rows(const float* weight_row, const float* x, float* y, int64_t in_features, int64_t out_stride) {
  int64_t i = 0;
  float sums[ROWS] = {};
#if defined(__AVX512F__)
  __m512 acc[ROWS];
  for (int r = 0; r < ROWS; ++r) acc[r] = _mm512_setzero_ps();
  for (; i + 16 <= in_features; i += 16) {
    const __m512 w = _mm512_loadu_ps(weight_row + i);
    for (int r = 0; r < ROWS; ++r) acc[r] = _mm512_fmadd_ps(w, _mm512_loadu_ps(x + r * in_features + i), acc[r]);
  }
  for (int r = 0; r < ROWS; ++r) sums[r] = _mm512_reduce_add_ps(acc[r]);
#endif
  for (; i < in_features; ++i) {
    for (int r = 0; r < ROWS; ++r) sums[r] += weight_row[i] * x[r * in_features + i];
  }
  for (int r = 0; r < ROWS; ++r) y[r * out_stride] = sums[r];
}

template <int ROWS>
void stream_block(const float* w, const float* x, float* y, int64_t out_features, int64_t in_features) {
  at::parallel_for(0, out_features, 16, [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o) dot_rows<ROWS>(w + o * in_features, x, y + o, in_features, out_features);
  });
}

}  // namespace

// weight: (out, in) contiguous fp32 on the CPU; x: (rows, in) contiguous fp32. Returns (rows, out).
torch::Tensor matvec(const torch::Tensor& weight, const torch::Tensor& x) {
  TORCH_CHECK(weight.dim() == 2 && x.dim() == 2 && weight.size(1) == x.size(1), "matvec: shapes do not match");
  TORCH_CHECK(weight.is_contiguous() && x.is_contiguous(), "matvec: tensors must be contiguous");
  TORCH_CHECK(weight.scalar_type() == torch::kFloat32 && x.scalar_type() == torch::kFloat32,
              "matvec: tensors must be float32");
  const int64_t rows = x.size(0), out_features = weight.size(0), in_features = weight.size(1);
  auto y = torch::empty({rows, out_features}, x.options());
  const float* w = weight.data_ptr<float>();
  for (int64_t r = 0; r < rows;) {  // blocks of 4, 2 and 1 rows: each block reads the weights once
    const float* xr = x.data_ptr<float>() + r * in_features;
    float* yr = y.data_ptr<float>() + r * out_features;
    const int64_t left = rows - r;
    if (left >= 4) {
      stream_block<4>(w, xr, yr, out_features, in_features);
    } else if (left >= 2) {
      stream_block<2>(w, xr, yr, out_features, in_features);
    } else {
      stream_block<1>(w, xr, yr, out_features, in_features);
    }
    r += left >= 4 ? 4 : left >= 2 ? 2 : 1;
  }
  return y;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("matvec", &matvec, "few-row fp32 matrix product streaming the weights"); }
