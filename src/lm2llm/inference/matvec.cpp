// Decoding's matrix products, written to stream the weights: y[r, o] = sum_i W[o, i] * x[r, i] (+ b[o]) for a
// few rows r (one token of each of a few sequences). Each weight row is read from memory once and used for
// up to 8 rows r while it sits in the L1 cache, so the kernel's speed is how fast memory delivers the
// weights: a decoding step of a batch of 8 reads them once, as a step of one sequence does. The output rows
// are split between torch's intra-op threads; the dot products accumulate in fp32.
//
// One loop (`stream`) serves every weight format; a format only says how one weight row meets the inputs:
//   float32   W as stored, fp32 inputs, 16 fused multiply-adds at a time (AVX-512).
//   bfloat16  W as stored, bf16 inputs: `vdpbf16ps` multiplies 32 bf16 pairs and adds them in fp32 (AVX512-BF16);
//             on a CPU with AMX, 16 weight rows at a time meet the inputs in tile products instead (`Tiles`).
//   int8      q (out, in) int8 and one bf16 scale per output row, W = q * s: q widened to fp32, fp32 inputs,
//             the row's sum times s at the end; or, asked for with group_size -32 (W8A8), in its own layout
//             (superblocks of 16 blocks of 32), met by the inputs quantized to int8 per block of 32 in integer
//             multiply-adds (`Int8Dynamic`, AVX512-VNNI).
//   int4 W4A8 (group_size -32) q 4-bit in groups of 32 as below, met by inputs quantized to int8 per block of 32
//             in integer multiply-adds (`Int4Dynamic`), in its own layout (superblocks of 16 blocks), each row's
//             scales and zeros after its nibbles.
//   int4      q 4-bit, a bf16 scale s and zero z per (output row, group of `group` inputs), W = (q - 8) * s + z.
//             Each nibble is looked up as the bf16 number q - 8 and met with bf16 inputs by `vdpbf16ps`; z adds
//             z * (the sum of the group's inputs), the same for every output row, computed once per call. A row
//             is laid out in superblocks of 16 groups (16 * group inputs) and a rest. In a superblock each step
//             of 32 inputs holds a pair from every group (lanes 2k, 2k + 1: group k's inputs 2t, 2t + 1 at step
//             t), so the 16 fp32 lanes of the steps' sum are the 16 groups' sums and one multiply by the 16
//             scales ends the superblock; two steps share 32 bytes, step 2u in the low nibbles and 2u + 1 in
//             the high ones. The inputs are put in the same order once per call (`interleave`). The rest (fewer
//             than 16 groups): blocks of 64 inputs in 32 bytes, byte j holding input j in its low nibble and
//             j + 32 in its high one, a last block of 32 in 16 bytes (j and j + 16), each 32 inputs' sum times
//             its group's scale. `pack_int4` in matvec.py writes this layout.
// Without AVX-512 (or its BF16 part) each format falls back to a plain loop with the same arithmetic.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#if defined(__AMX_TILE__) && defined(__AMX_BF16__)
#include <sys/syscall.h>
#include <unistd.h>
#define LM2LLM_TILES 1  // AMX's tile products for bf16 weights (`Tiles`)
#endif
#if defined(_OPENMP)
#include <omp.h>
#endif

namespace {

using bf16 = c10::BFloat16;

// Asking memory for the weight rows ahead of the one being computed (software prefetch), as measured per machine:
// - on the AMD EPYC of the earlier runs the hardware's own prefetcher kept the float formats and W8A8 streaming, and
//   asking cost them 5-18 % with the weights in 2 MB pages. W4A8, whose arithmetic per byte is high enough that
//   memory idled between its loads, gained from asking 4 KB ahead into L1 (5-12 % more tokens/s in 7 interleaved
//   runs, 2 to 8 KB ahead alike; +4.5 % once the weights sat in 2 MB pages): it asks so on every machine.
// - on an Intel Xeon (family 6, model 207; 2 MB of L2 a core) asking 16 KB ahead into L2 makes SmolLM2's fp32
//   decoding 1.14x as fast at batch 1 and 1.57x at batch 8 (interleaved, medians of 6 rounds): there one core
//   streaming 8 input rows' fp32 products from memory took 269 ns a row of 576 inputs left to the hardware, 175
//   asked (a standalone loop), where in the cache it takes about 100. 8 and 32 KB ahead measured the same, into L1
//   0.89x at batch 8. int8 measured 1.01x, W4A8 1.02x. So on Intel CPUs the dense rows (`Dense`: fp32, int8, and bf16
//   where there are no AMX tiles) ask too. (Its first form, with `_mm_prefetch`, was dropped by the compiler (see
//   `ask_ahead`): the first A/B runs that day, 1.3-1.5x for bf16, had met trial builds that did ask, and the later
//   ones, 0.97-1.07x, two kernels of which neither asked.)
constexpr int64_t kNearAhead = 4096, kFarAhead = 16384;

// LOCALITY is __builtin_prefetch's: 3 into L1 (prefetcht0), 2 into L2 (prefetcht1). The compiler's own builtin, not
// the `_mm_prefetch` intrinsic: GCC 12 dropped every `_mm_prefetch` of `ask_far` (none was in the built kernel from
// 6 December, when the asking was written so, until this was found; checked in the assembly).
template <int LOCALITY>
inline void ask_ahead(const void* from, int64_t ahead, int64_t bytes) {
  const char* p = static_cast<const char*>(from) + ahead;
  for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(p + b, 0, LOCALITY);
  __builtin_prefetch(p + bytes - 1, 0, LOCALITY);
}

// Whether this CPU is an Intel one, where two choices measured otherwise than on the AMD EPYC of the earlier runs:
// asking ahead (above) and meeting 7 or 8 input rows one fp32 weight row at a time (`Dense`). `intel_choices` switches
// them, so that the tests meet both on any machine (neither changes a result).
bool intel_choices = [] {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return __builtin_cpu_is("intel") != 0;
#else
  return false;
#endif
}();

// A W4A8 row asks for the `bytes` 4 KB past it into L1.
inline void ask_near(const void* row, int64_t bytes) { ask_ahead<3>(row, kNearAhead, bytes); }

// A dense row (fp32, int8, or bf16 without AMX tiles) asks for the `bytes` 16 KB past it into L2, on Intel CPUs only
// (above).
inline void ask_far(const void* row, int64_t bytes) {
  if (intel_choices) ask_ahead<2>(row, kFarAhead, bytes);
}

// A format's `dot` (and `stream_outputs`, which calls it) is inlined into the loop over weight rows: called once
// per row instead, it cost W4A8 a third of its speed once its body grew past the compiler's own limit, and a tenth
// when `stream_outputs` did.
#define kInline __attribute__((always_inline)) inline

// Where a product's sums go: y[r, o] = sum + bias[o], rounded to Out once, as torch's `linear` rounds it; with a
// `residual` (rows, out_features) y[r, o] = residual[r, o] + that, rounded again, as a block's `x + product`
// rounds it, made while the product is stored (y may be the residual itself).
template <class Out>
struct Target {
  Out* y;
  const Out* bias;      // (out_features,), or nullptr
  const Out* residual;  // (rows, out_features), or nullptr
  int64_t out_features;

  void store(int64_t r, int64_t o, float sum) const {
    const Out product = static_cast<Out>(bias == nullptr ? sum : sum + static_cast<float>(bias[o]));
    const int64_t at = r * out_features + o;
    y[at] = residual == nullptr ? product
                                : static_cast<Out>(static_cast<float>(residual[at]) + static_cast<float>(product));
  }
};

// ---- weight formats: `dot<ROWS, OUTS>(o, r0, sums)` = rows o .. o + OUTS - 1 of W against input rows
// r0 .. r0 + ROWS - 1, sums[k][r] for weight row o + k and input row r0 + r. `outputs<ROWS>` is the OUTS a
// format wants for ROWS input rows (1: one weight row at a time).

// How one step of a weight row meets the inputs on this CPU: `width` weights loaded once (`load`), `width`
// inputs loaded once (`input`), multiplied into one accumulator per (weight row, input row) (`madd`).
// width 0: no vector step, the plain loop does it all.
template <class Weight>
struct Lanes {
  static constexpr int width = 0;
};

#if defined(__AVX512F__)
template <>
struct Lanes<float> {  // 16 fp32 weights, fused multiply-add with fp32 inputs
  static constexpr int width = 16;
  static __m512 load(const float* w) { return _mm512_loadu_ps(w); }
  static __m512 input(const float* x) { return _mm512_loadu_ps(x); }
  static __m512 madd(__m512 acc, __m512 w, __m512 x) { return _mm512_fmadd_ps(w, x, acc); }
};

template <>
struct Lanes<int8_t> {  // 16 int8 weights widened to fp32, then as float
  static constexpr int width = 16;
  static __m512 load(const int8_t* w) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w))));
  }
  static __m512 input(const float* x) { return _mm512_loadu_ps(x); }
  static __m512 madd(__m512 acc, __m512 w, __m512 x) { return _mm512_fmadd_ps(w, x, acc); }
};
#endif

#if defined(__AVX512BF16__)
inline __m512bh load32(const bf16* x) { return (__m512bh)_mm512_loadu_si512(x); }

template <>
struct Lanes<bf16> {  // 32 bf16 weights against 32 bf16 inputs: vdpbf16ps adds each pair's products in fp32
  static constexpr int width = 32;
  static __m512bh load(const bf16* w) { return load32(w); }
  static __m512bh input(const bf16* x) { return load32(x); }
  static __m512 madd(__m512 acc, __m512bh w, __m512bh x) { return _mm512_dpbf16_ps(acc, w, x); }
};
#endif

// float32, bfloat16 and int8 weights: (out, in) as stored, times an optional scale per output row (int8's).
// fp32 weights meet 7 or 8 input rows three weight rows at a time (`outputs`) on the AMD EPYC, so that each step of
// inputs is loaded once for all three: one row at a time costs 8 input loads per 8 multiply-adds, and there the
// loads, not memory, set the pace (SmolLM2's linear layers at batch 8: 33 against 38 ms a step). bf16 and
// int8 weights, and fewer input rows, measured slower so (bf16 at 2 rows: 14 against 9 ms), so they keep one. On the
// Intel Xeon one row at a time measured faster at 8 rows (SmolLM2's batch-8 fp32 step 1.08-1.11x as fast before its
// rows asked ahead, 1.29x with the asking: three at a time measured 0.78x, 6 interleaved rounds each), so there
// `stream_block` meets them one at a time too (`intel_choices`). Either way each output is the same sum. Each
// (weight row, input row) pair adds its products in one chain, in the same order for every count of rows, so a row's
// product does not depend on the rows beside it (tested). Two or four chains for a single row measured 1.04-1.05x on
// the Xeon's decoding, but would give a sequence other bits alone than in a batch, so they were not kept.
template <class Weight, class InputType>
struct Dense {
  using Input = InputType;
  const Weight* w;
  const bf16* row_scales;  // int8: one per output row; float32 and bfloat16: none
  const Input* x;
  int64_t in;

  template <int ROWS>
  static constexpr int outputs = std::is_same_v<Weight, float> && ROWS >= 7 ? 3 : 1;

  template <int ROWS, int OUTS>
  kInline void dot(int64_t o, int64_t r0, float (*sums)[ROWS]) const {
    const Weight* rows = w + o * in;
    const Input* xs = x + r0 * in;
    ask_far(rows, OUTS * in * static_cast<int64_t>(sizeof(Weight)));
    int64_t i = 0;
    for (int k = 0; k < OUTS; ++k) {
      for (int r = 0; r < ROWS; ++r) sums[k][r] = 0.f;
    }
#if defined(__AVX512F__)
    if constexpr (Lanes<Weight>::width > 0) {
      constexpr int width = Lanes<Weight>::width;
      __m512 acc[OUTS][ROWS];
      for (int k = 0; k < OUTS; ++k) {
        for (int r = 0; r < ROWS; ++r) acc[k][r] = _mm512_setzero_ps();
      }
      for (; i + width <= in; i += width) {
        decltype(Lanes<Weight>::load(rows)) weights[OUTS];
        for (int k = 0; k < OUTS; ++k) weights[k] = Lanes<Weight>::load(rows + k * in + i);
        for (int r = 0; r < ROWS; ++r) {
          const auto inputs = Lanes<Weight>::input(xs + r * in + i);
          for (int k = 0; k < OUTS; ++k) acc[k][r] = Lanes<Weight>::madd(acc[k][r], weights[k], inputs);
        }
      }
      for (int k = 0; k < OUTS; ++k) {
        for (int r = 0; r < ROWS; ++r) sums[k][r] = _mm512_reduce_add_ps(acc[k][r]);
      }
    }
#endif
    for (; i < in; ++i) {
      for (int k = 0; k < OUTS; ++k) {
        for (int r = 0; r < ROWS; ++r) {
          sums[k][r] += static_cast<float>(rows[k * in + i]) * static_cast<float>(xs[r * in + i]);
        }
      }
    }
    if (row_scales != nullptr) {
      for (int k = 0; k < OUTS; ++k) {
        const float scale = static_cast<float>(row_scales[o + k]);
        for (int r = 0; r < ROWS; ++r) sums[k][r] *= scale;
      }
    }
  }
};

#if defined(LM2LLM_TILES)
// Whether bf16 weights meet their inputs in AMX's tile products (`Tiles`): on CPUs with AMX (a kernel built here
// with -march=native has them) once Linux grants this process the tiles' state, which it asks for once. Switched
// off, bf16 takes `Dense`'s `vdpbf16ps` instead (the tests meet both).
bool amx_tiles = [] {
  constexpr int kRequestPermission = 0x1023, kTileData = 18;  // ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA
  return syscall(SYS_arch_prctl, kRequestPermission, kTileData) == 0;
}();

// What one thread's tile registers hold (AMX's palette 1): tile 0 the sums of 16 weight rows against `rows` input
// rows (fp32), tile 1 those weight rows' next 32 inputs (bf16), tile 2 the same 32 inputs of every input row, as
// 16 pairs.
struct alignas(64) TileShapes {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t bytes_per_row[16] = {};
  uint8_t rows[16] = {};

  explicit TileShapes(int input_rows) {
    const auto sums_bytes = static_cast<uint16_t>(4 * input_rows);
    bytes_per_row[0] = sums_bytes, rows[0] = 16;
    bytes_per_row[1] = 64, rows[1] = 16;
    bytes_per_row[2] = sums_bytes, rows[2] = 16;
  }
};

// bfloat16 weights on a CPU with AMX: 16 weight rows as stored (a tile loads 32 inputs of each, a row's stride
// apart) meet up to 8 input rows in one `tdpbf16ps` per 32 inputs, which adds each output's products in fp32 in one
// chain along the row. On the Intel Xeon (family 6, model 207) one core streamed bf16 rows from memory at 63 ns a row
// of 576 inputs this way, one input row or eight alike, where `vdpbf16ps` took 101 for one and about 210 for eight
// (its arithmetic's time added to memory's); in the cache 18 against 29 ns for one row, 20 against 105 for eight.
// Each output is computed apart from every other (which weight rows and input rows share a tile changes no bits), so
// a share's last tile simply ends at its last row, reading rows before it again, and every row of a weight with at
// least 16 takes the same path whatever the batch or the threads.
struct Tiles {
  const bf16* w;
  const bf16* pairs;  // the inputs as `pair_inputs` lays them out
  int64_t in, out_features;

  // Weight rows begin .. end - 1 against input rows r0 .. r0 + ROWS - 1, into `target`.
  template <int ROWS, class Out>
  void stream(int64_t r0, int64_t begin, int64_t end, const Target<Out>& target) const {
    const TileShapes shapes(ROWS);
    _tile_loadconfig(&shapes);
    const bf16* inputs = pairs + r0 * in;
    float sums[16][ROWS];
    for (int64_t o = begin; o < end; o += 16) {
      const int64_t first = std::min(o, out_features - 16);
      const bf16* rows = w + first * in;
      _tile_zero(0);
      for (int64_t i = 0; i < in; i += 32) {
        _tile_loadd(1, rows + i, in * static_cast<int64_t>(sizeof(bf16)));
        _tile_loadd(2, inputs + i * ROWS, ROWS * 4);
        _tile_dpbf16ps(0, 1, 2);
      }
      _tile_stored(0, sums, ROWS * 4);
      for (int64_t k = o - first; k < 16 && first + k < end; ++k) {
        for (int r = 0; r < ROWS; ++r) target.store(r0 + r, first + k, sums[k][r]);
      }
    }
  }
};
#endif

// The nibble of input i (0 <= i < in) in a row laid out as described at the top (groups of `group` inputs).
inline int nibble(const uint8_t* row, int64_t in, int64_t group, int64_t i) {
  const int64_t span = 16 * group, whole = in / span * span;
  if (i < whole) {  // superblock: step t = pos / 2 holds group k's pair t in lanes 2k, 2k + 1
    const int64_t block = i / span * span, k = (i - block) / group, pos = (i - block) % group, t = pos / 2;
    const uint8_t byte = row[block / 2 + t / 2 * 32 + 2 * k + pos % 2];
    return t % 2 == 0 ? byte & 0x0F : byte >> 4;
  }
  const int64_t block = whole + (i - whole) / 64 * 64, half = (in - block >= 64) ? 32 : 16, j = i - block;
  const uint8_t byte = row[block / 2 + j % half];
  return j < half ? byte & 0x0F : byte >> 4;
}

// Lane k < 16: the bf16 bits of k - 8, the value an int4 nibble k stands for before its scale.
alignas(64) const uint16_t kNibbleValues[32] = {0xC100, 0xC0E0, 0xC0C0, 0xC0A0, 0xC080, 0xC040, 0xC000, 0xBF80,
                                                0x0000, 0x3F80, 0x4000, 0x4040, 0x4080, 0x40A0, 0x40C0, 0x40E0};

#if defined(__AVX512F__)
// 16 bf16 numbers (the first `count` of them, zeros after) widened to fp32: a bf16 is an fp32's upper half.
inline __m512 widen16(const bf16* from, int64_t count) {
  const __m256i bits = _mm256_maskz_loadu_epi16(static_cast<__mmask16>((1u << std::min<int64_t>(count, 16)) - 1), from);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
}
#endif

// sum_g a[g] * b[g]: a row's zeros against the inputs' group sums.
inline float dot_widened(const bf16* a, const float* b, int64_t n) {
  int64_t g = 0;
  float sum = 0.f;
#if defined(__AVX512F__)
  __m512 acc = _mm512_setzero_ps();
  for (; g < n; g += 16) {
    const __mmask16 mask = static_cast<__mmask16>((1u << std::min<int64_t>(n - g, 16)) - 1);
    acc = _mm512_fmadd_ps(widen16(a + g, n - g), _mm512_maskz_loadu_ps(mask, b + g), acc);
  }
  sum = _mm512_reduce_add_ps(acc);
#endif
  for (; g < n; ++g) sum += static_cast<float>(a[g]) * b[g];
  return sum;
}

struct Int4 {
  using Input = bf16;
  const uint8_t* q;
  const bf16* scales;       // (out, groups)
  const bf16* zeros;        // (out, groups)
  const bf16* x;
  const bf16* interleaved;  // (rows, whole): each row's superblock inputs in the weights' order (`interleave`)
  const float* group_sums;  // (rows, groups): the sum of each group's inputs
  int64_t in, groups, whole;
  int group_shift;          // the group size is 1 << group_shift

  template <int ROWS>
  static constexpr int outputs = 1;

  template <int ROWS, int OUTS>
  kInline void dot(int64_t o, int64_t r0, float (*block)[ROWS]) const {
    static_assert(OUTS == 1, "int4 meets one weight row at a time");
    float* sums = block[0];
    const uint8_t* row = q + o * (in / 2);
    const bf16* s = scales + o * groups;
    const bf16* xs = x + r0 * in;
    for (int r = 0; r < ROWS; ++r) sums[r] = dot_widened(zeros + o * groups, group_sums + (r0 + r) * groups, groups);
#if defined(__AVX512BF16__)
    const __m512i table = _mm512_loadu_si512(kNibbleValues);
    const __m512i low = _mm512_set1_epi16(0x0F);
    const int64_t span = 16 << group_shift;
    __m512 acc[2 * ROWS];  // two per input row, so that two chains of additions run side by side
    for (int a = 0; a < 2 * ROWS; ++a) acc[a] = _mm512_setzero_ps();
    // Superblocks: lane k of a step's sum belongs to group k, so one multiply by the 16 groups' scales ends it.
    for (int64_t i = 0; i < whole; i += span) {
      __m512 part[2 * ROWS];
      for (int a = 0; a < 2 * ROWS; ++a) part[a] = _mm512_setzero_ps();
      for (int64_t j = i; j < i + span; j += 64) {  // two steps of 32 inputs from 32 bytes
        const __m512i bytes = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + j / 2)));
        const __m512bh first = (__m512bh)_mm512_permutexvar_epi16(_mm512_and_si512(bytes, low), table);
        const __m512bh second = (__m512bh)_mm512_permutexvar_epi16(_mm512_srli_epi16(bytes, 4), table);
        for (int r = 0; r < ROWS; ++r) {
          const bf16* xr = interleaved + (r0 + r) * whole + j;
          part[2 * r] = _mm512_dpbf16_ps(part[2 * r], first, load32(xr));
          part[2 * r + 1] = _mm512_dpbf16_ps(part[2 * r + 1], second, load32(xr + 32));
        }
      }
      const __m512 group_scales = widen16(s + (i >> group_shift), 16);
      for (int r = 0; r < ROWS; ++r) {
        acc[2 * r] = _mm512_fmadd_ps(_mm512_add_ps(part[2 * r], part[2 * r + 1]), group_scales, acc[2 * r]);
      }
    }
    // The rest, fewer than 16 groups: every 32 inputs' sum times its group's scale.
    auto add = [&](__m512i nibbles, int64_t i, int chain) {  // 32 inputs from i on, all in one group
      const __m512bh weights = (__m512bh)_mm512_permutexvar_epi16(nibbles, table);
      const __m512 scale = _mm512_set1_ps(static_cast<float>(s[i >> group_shift]));
      for (int r = 0; r < ROWS; ++r) {
        const __m512 part = _mm512_dpbf16_ps(_mm512_setzero_ps(), weights, load32(xs + r * in + i));
        acc[2 * r + chain] = _mm512_fmadd_ps(part, scale, acc[2 * r + chain]);
      }
    };
    int64_t i = whole;
    for (; i + 64 <= in; i += 64) {
      const __m512i bytes = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + i / 2)));
      add(_mm512_and_si512(bytes, low), i, 0);
      add(_mm512_srli_epi16(bytes, 4), i + 32, 1);
    }
    if (i < in) {  // the last 32 inputs: low nibbles then high nibbles of 16 bytes
      const __m256i bytes = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + i / 2)));
      add(_mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(bytes, _mm256_set1_epi16(0x0F))),
                             _mm256_srli_epi16(bytes, 4), 1), i, 0);
    }
    for (int r = 0; r < ROWS; ++r) sums[r] += _mm512_reduce_add_ps(_mm512_add_ps(acc[2 * r], acc[2 * r + 1]));
#else
    const int64_t group = int64_t{1} << group_shift;
    for (int64_t g = 0; g < groups; ++g) {
      const float scale = static_cast<float>(s[g]);
      for (int r = 0; r < ROWS; ++r) {
        float part = 0.f;
        for (int64_t i = g * group; i < (g + 1) * group; ++i) {
          part += static_cast<float>(nibble(row, in, group, i) - 8) * static_cast<float>(xs[r * in + i]);
        }
        sums[r] += part * scale;
      }
    }
#endif
  }
};

// Each row's superblock inputs (the first `whole` of them) in the order the packed weights hold them: step t of a
// superblock at i is 32 inputs, lanes 2k and 2k + 1 holding inputs i + k * group + 2t and + 1.
std::vector<bf16> interleave(const bf16* x, int64_t rows, int64_t in, int64_t whole, int64_t group) {
  std::vector<bf16> out(rows * whole);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < whole; i += 16 * group) {
      for (int64_t t = 0; t < group / 2; ++t) {
        for (int64_t m = 0; m < 32; ++m) out[r * whole + i + t * 32 + m] = x[r * in + i + m / 2 * group + 2 * t + m % 2];
      }
    }
  }
  return out;
}

// Where input i of a row (i < the row's whole superblocks) lies in the integer formats' superblocks of 16 blocks
// of 32 (512 inputs): step t (0..7) of a superblock holds inputs 4t .. 4t + 3 of block k in bytes 4k .. 4k + 3,
// so that lane k of a `vpdpbusd` sum collects block k whole.
struct SuperblockPlace {
  int64_t superblock, step, byte;
};

inline SuperblockPlace superblock_place(int64_t i) {
  const int64_t superblock = i / 512 * 512;
  return {superblock, (i - superblock) % 32 / 4, 4 * ((i - superblock) / 32) + i % 4};
}

// Inputs quantized to int8 per block of 32, for the integer-input formats (W8A8, W4A8), as llama.cpp's x86
// `quantize_row_q8_0` quantizes them: d = max|x| / 127 kept as fp16, qx = x * (127 / max|x|) rounded to the
// nearest integer (ties to even).
struct QuantizedInputs {
  std::vector<int8_t> q;           // (rows, in)
  std::vector<float> lane_scales;  // (rows, in / 4): a block's d for each of its 8 lanes
  std::vector<float> offsets;      // (rows,): 128 * sum over blocks of d * (the block's sum of qx)
  std::vector<float> block_scales;  // (rows, in / 32): each block's d
  std::vector<float> block_sums;    // (rows, in / 32): each block's d * (its sum of qx)
  int64_t whole = 0;                // the inputs in whole superblocks of 512 (`superblock_place`)
  std::vector<int8_t> interleaved;  // (rows, whole): q of those in the superblocks' order

  // x (rows, in) quantized into the buffers, which keep their storage from one call to the next (a decoding step
  // quantizes the inputs of every product, 121 of them for SmolLM2).
  void assign(const float* x, int64_t rows, int64_t in) {
    whole = in / 512 * 512;
    q.resize(rows * in);
    lane_scales.resize(rows * in / 4);
    offsets.resize(rows);
    block_scales.resize(rows * in / 32);
    block_sums.resize(rows * in / 32);
    interleaved.resize(rows * whole);
    for (int64_t r = 0; r < rows; ++r) {
      float offset = 0.f;
      for (int64_t b = 0; b < in; b += 32) {
        int32_t sum = 0;
        const float d = quantize_block(x + r * in + b, q.data() + r * in + b, sum);
        std::fill_n(lane_scales.begin() + (r * in + b) / 4, 8, d);
        block_scales[(r * in + b) / 32] = d;
        block_sums[(r * in + b) / 32] = d * static_cast<float>(sum);
        offset += d * static_cast<float>(sum);
      }
      offsets[r] = 128.f * offset;
      for (int64_t i = 0; i < whole; i += 512) {  // a transpose of 4-byte words: 16 blocks of 8 into 8 steps of 16
        for (int64_t t = 0; t < 8; ++t) {
          for (int64_t k = 0; k < 16; ++k) std::memcpy(&interleaved[r * whole + i + 64 * t + 4 * k], &q[r * in + i + 32 * k + 4 * t], 4);
        }
      }
    }
  }

  // One block of 32: its int8 values into `out`, its d returned. The vector path rounds as `nearbyint` does
  // (the default rounding mode, ties to even), so both paths give the same bytes.
  static float quantize_block(const float* block, int8_t* out, int32_t& sum) {
#if defined(__AVX512F__)
    const __m512 first = _mm512_loadu_ps(block), second = _mm512_loadu_ps(block + 16);
    const float top = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(first), _mm512_abs_ps(second)));
    const __m512 inverse = _mm512_set1_ps(top != 0.f ? 127.f / top : 0.f);
    const __m512i low = _mm512_cvtps_epi32(_mm512_mul_ps(first, inverse));
    const __m512i high = _mm512_cvtps_epi32(_mm512_mul_ps(second, inverse));  // within -127 .. 127: no saturation
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm512_cvtsepi32_epi8(low));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 16), _mm512_cvtsepi32_epi8(high));
    sum = _mm512_reduce_add_epi32(_mm512_add_epi32(low, high));
#else
    float top = 0.f;
    for (int i = 0; i < 32; ++i) top = std::max(top, std::fabs(block[i]));
    const float inverse = top != 0.f ? 127.f / top : 0.f;
    sum = 0;
    for (int i = 0; i < 32; ++i) {
      out[i] = static_cast<int8_t>(std::nearbyint(block[i] * inverse));
      sum += out[i];
    }
#endif
    return static_cast<float>(c10::Half(top / 127.f));
  }
};

#if defined(__AVX512F__)
// One input row's quantized inputs as `stream_held` holds them in registers: each of SUPERS superblocks' 8 steps and
// its 16 blocks' d and d * (sum of qx), then each of REST steps of 64 inputs after them as stored, its lanes' d
// (`lane_scales`), and those blocks' d * (sum of qx) together (`rest_sums`).
template <int SUPERS, int REST>
struct HeldInputs {
  __m512i steps[SUPERS + 1][8];  // + 1: no empty arrays
  __m512 block_scales[SUPERS + 1], block_sums[SUPERS + 1];
  __m512i rest[REST + 1];
  __m512 lane_scales[REST + 1];
  __m512 rest_sums;

  kInline HeldInputs(const QuantizedInputs& inputs, int64_t r) {
    constexpr int64_t whole = 512 * SUPERS, in = whole + 64 * REST, blocks = in / 32;
    for (int u = 0; u < SUPERS; ++u) {
      for (int t = 0; t < 8; ++t) steps[u][t] = _mm512_loadu_si512(inputs.interleaved.data() + r * whole + 512 * u + 64 * t);
      block_scales[u] = _mm512_loadu_ps(inputs.block_scales.data() + r * blocks + 16 * u);
      block_sums[u] = _mm512_loadu_ps(inputs.block_sums.data() + r * blocks + 16 * u);
    }
    for (int p = 0; p < REST; ++p) {
      rest[p] = _mm512_loadu_si512(inputs.q.data() + r * in + whole + 64 * p);
      lane_scales[p] = _mm512_loadu_ps(inputs.lane_scales.data() + (r * in + whole + 64 * p) / 4);
    }
    rest_sums = _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << (2 * REST)) - 1), inputs.block_sums.data() + r * blocks + 16 * SUPERS);
  }
};
#endif

// The integer formats' rows whose inputs a thread can hold in registers (`stream_held`): up to three superblocks and
// up to three steps of 64 inputs after them. Calls held.template operator()<SUPERS, REST>() with `in`'s superblocks
// and steps of 64 after them, and says whether `in` was such a row.
template <class Held>
bool with_held_shape(int64_t in, Held&& held) {
  const int64_t supers = in / 512, rest = in % 512 / 64;
  if (in % 64 != 0 || supers > 3 || rest > 3) return false;
  return [&]<int... K>(std::integer_sequence<int, K...>) {  // K + 1 = 4 * superblocks + steps, from 1 (64 inputs) on
    return ((4 * supers + rest == K + 1 && (held.template operator()<(K + 1) / 4, (K + 1) % 4>(), true)) || ...);
  }(std::make_integer_sequence<int, 15>{});
}

// int8 weights against int8 inputs (W8A8, llama.cpp's way with Q8_0 weights): a weight row meets the quantized
// inputs in integer multiply-adds, `vpdpbusd` multiplying 64 unsigned bytes by 64 signed ones and adding each
// four products into one of 16 int32 lanes (four times the multiply-adds per instruction of the bf16 path,
// where widening int8 weights to fp32 can cost more than reading them when memory is fast). Its unsigned
// operand is the weight plus 128 (the sign bit flipped), so the sum holds 128 * (the block's sum of qx) too,
// taken off once per input row (`offsets`). The weights are laid out in superblocks (`superblock_place`;
// `pack_w8a8` in matvec.py), so the int32 lanes collect whole blocks over 8 steps and one multiply by the 16
// blocks' d ends a superblock; the rest (fewer than 16 blocks) as stored, 64 inputs a step, lanes 8k .. 8k + 7
// holding block k, each lane scaled by its block's d (`lane_scales`). The row's sum is scaled by its bf16 scale.
struct Int8Dynamic {
  using Input = int8_t;
  const int8_t* w;
  const bf16* row_scales;
  const QuantizedInputs* inputs;
  int64_t in;

  template <int ROWS>
  static constexpr int outputs = 1;

#if defined(__AVX512VNNI__)
  // The pieces of a row, each against ROWS input rows r whose inputs come from the callables it is given (loaded from
  // `inputs`, or held in registers by `stream_held`), adding into acc[r].

  // One superblock: `bytes` its 512 weights, x(r, t) step t's 64 inputs, block_scales(r) the 16 blocks' d.
  template <int ROWS, class X, class Scales>
  static kInline void superblock(const int8_t* bytes, X x, Scales block_scales, __m512* acc) {
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
    __m512i part[2 * ROWS];  // two chains of additions per row: even and odd steps
    for (int a = 0; a < 2 * ROWS; ++a) part[a] = _mm512_setzero_si512();
    for (int t = 0; t < 8; ++t) {
      const __m512i weights = _mm512_xor_si512(_mm512_loadu_si512(bytes + 64 * t), flip);
      for (int r = 0; r < ROWS; ++r) part[2 * r + t % 2] = _mm512_dpbusd_epi32(part[2 * r + t % 2], weights, x(r, t));
    }
    for (int r = 0; r < ROWS; ++r) {
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(part[2 * r], part[2 * r + 1])), block_scales(r), acc[r]);
    }
  }

  // A step of the rest as stored: `count` (64, or 32 for a last half step) weights from `bytes`, x(r) their inputs,
  // lane_scales(r) each lane's block d (lanes 8k .. 8k + 7 hold block k).
  template <int ROWS, class X, class LaneScales>
  static kInline void rest_step(const int8_t* bytes, int64_t count, X x, LaneScales lane_scales, __m512* acc) {
    const __mmask64 within = count >= 64 ? ~__mmask64{0} : (__mmask64{1} << 32) - 1;
    const __m512i weights = _mm512_xor_si512(_mm512_maskz_loadu_epi8(within, bytes), _mm512_set1_epi8(static_cast<char>(0x80)));
    for (int r = 0; r < ROWS; ++r) {
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), weights, x(r))), lane_scales(r),
                               acc[r]);
    }
  }
#endif

  // A row's sum of products into what it stands for: less the inputs' offset (the weights' +128), times the row's
  // scale.
  kInline float finish(float sum, int64_t o, int64_t r) const {
    return (sum - inputs->offsets[r]) * static_cast<float>(row_scales[o]);
  }

  // Weight rows begin .. end - 1 against one input row r0, its inputs loaded once and held in registers across the
  // rows, where they are up to three superblocks and up to three whole steps of 64 after them (SmolLM2's 576 and
  // 1536 inputs), as `Int4Dynamic::stream_held` does. The same pieces in the same order as `dot`, so the same sums.
  // False, having done nothing, for other rows.
  template <class Out>
  bool stream_held(int64_t r0, int64_t begin, int64_t end, const Target<Out>& target) const {
#if defined(__AVX512VNNI__)
    return with_held_shape(in, [&]<int SUPERS, int STEPS>() { held<SUPERS, STEPS>(r0, begin, end, target); });
#else
    return false;
#endif
  }

#if defined(__AVX512VNNI__)
  template <int SUPERS, int STEPS, class Out>
  void held(int64_t r0, int64_t begin, int64_t end, const Target<Out>& target) const {
    constexpr int64_t whole = 512 * SUPERS, held_in = whole + 64 * STEPS;
    const HeldInputs<SUPERS, STEPS> x(*inputs, r0);
    for (int64_t o = begin; o < end; ++o) {
      const int8_t* row = w + o * held_in;
      __m512 acc[1] = {_mm512_setzero_ps()};
      for (int u = 0; u < SUPERS; ++u) {
        superblock<1>(row + 512 * u, [&](int, int t) { return x.steps[u][t]; }, [&](int) { return x.block_scales[u]; }, acc);
      }
      for (int p = 0; p < STEPS; ++p) {
        rest_step<1>(row + whole + 64 * p, 64, [&](int) { return x.rest[p]; }, [&](int) { return x.lane_scales[p]; }, acc);
      }
      target.store(r0, o, finish(_mm512_reduce_add_ps(acc[0]), o, r0));
    }
  }
#endif

  template <int ROWS, int OUTS>
  kInline void dot(int64_t o, int64_t r0, float (*block)[ROWS]) const {
    static_assert(OUTS == 1, "W8A8 meets one weight row at a time");
    float* sums = block[0];
    const int8_t* row = w + o * in;
    const int64_t blocks = in / 32, whole = inputs->whole;
#if defined(__AVX512VNNI__)
    __m512 acc[ROWS];
    for (int r = 0; r < ROWS; ++r) acc[r] = _mm512_setzero_ps();
    for (int64_t i = 0; i < whole; i += 512) {
      const int8_t* xs = inputs->interleaved.data() + r0 * whole + i;
      superblock<ROWS>(row + i, [&](int r, int t) { return _mm512_loadu_si512(xs + r * whole + 64 * t); },
                       [&](int r) { return _mm512_loadu_ps(inputs->block_scales.data() + (r0 + r) * blocks + i / 32); }, acc);
    }
    for (int64_t i = whole; i < in; i += 64) {  // in is a multiple of 32: a last step of 32 is masked to its half
      const __mmask64 within = in - i >= 64 ? ~__mmask64{0} : (__mmask64{1} << 32) - 1;
      const __mmask16 lanes = in - i >= 64 ? __mmask16{0xFFFF} : __mmask16{0x00FF};
      rest_step<ROWS>(row + i, in - i, [&](int r) { return _mm512_maskz_loadu_epi8(within, inputs->q.data() + (r0 + r) * in + i); },
                      [&](int r) { return _mm512_maskz_loadu_ps(lanes, inputs->lane_scales.data() + ((r0 + r) * in + i) / 4); },
                      acc);
    }
    for (int r = 0; r < ROWS; ++r) sums[r] = _mm512_reduce_add_ps(acc[r]);
#else
    for (int r = 0; r < ROWS; ++r) {
      const int8_t* xs = inputs->q.data() + (r0 + r) * in;
      float sum = 0.f;
      for (int64_t b = 0; b < blocks; ++b) {
        int32_t block_sum = 0;
        for (int64_t i = b * 32; i < b * 32 + 32; ++i) block_sum += (weight(row, whole, i) + 128) * xs[i];
        sum += static_cast<float>(block_sum) * inputs->block_scales[(r0 + r) * blocks + b];
      }
      sums[r] = sum;
    }
#endif
    for (int r = 0; r < ROWS; ++r) sums[r] = finish(sums[r], o, r0 + r);
  }

  // The weight of input i in the layout above.
  static int weight(const int8_t* row, int64_t whole, int64_t i) {
    if (i >= whole) return row[i];
    const SuperblockPlace place = superblock_place(i);
    return row[place.superblock + 64 * place.step + place.byte];
  }
};

// int4 weights (groups of 32, W = (q - 8) * s + z) against int8 inputs (W4A8, as llama.cpp meets Q4_0 with Q8_0
// inputs): per block b of 32, sum_i W_i x_i = d_b * (s_b * sum_i q_i qx_i + (z_b - 8 s_b) * sum_i qx_i). The first
// sums are integer multiply-adds, the nibbles q (0..15) the unsigned operand of `vpdpbusd`; the second term meets
// `block_sums` (d_b * sum qx) in the same pass. A row is laid out in superblocks (`superblock_place`), so one
// multiply by the 16 blocks' d * s (and one by their z - 8 s) ends a superblock; steps 2u and 2u + 1 share 64
// bytes (low nibbles, then high). A high nibble is used where it lies, as 16 q (a mask, no
// shift), and its chain's sum divided by 16 (exactly: every product is a multiple of 16). The rest (fewer than
// 16 blocks): pairs of blocks in 32 bytes, byte j holding input j of the pair in its low nibble and j + 32 in its
// high one, then a last single block in 16 bytes (j and j + 16). After its nibbles a row holds its blocks' bf16
// scales s, then their zeros z, so that the weights are one stream of bytes: with the scales and zeros in arrays
// of their own (three streams a thread), SmolLM2's decoding step read its W4A8 products at 37-41 GB/s in a spell
// where bf16's read 57 (phase timers; 58 GB/s for the nibbles alone, the scales' reads left out).
// `pack_w4a8` in matvec.py writes this layout; `QuantizedInputs` puts the inputs in the superblocks' order once
// per call.
struct Int4Dynamic {
  using Input = int8_t;
  const uint8_t* q;  // (out, in / 2 + in / 8): each row's nibbles, scales and zeros
  const QuantizedInputs* inputs;
  int64_t in, blocks;

  // Weight row o of `q`, a layer's of `in` inputs: its nibbles, its blocks' scales s and their zeros z (the rows
  // `kNearAhead` bytes on asked for, see `ask_ahead`).
  struct Row {
    const uint8_t* nibbles;
    const bf16* s;
    const bf16* z;
  };
  static kInline Row row_of(const uint8_t* q, int64_t o, int64_t in) {
    const uint8_t* nibbles = q + o * (in / 2 + in / 8);
    const bf16* s = reinterpret_cast<const bf16*>(nibbles + in / 2);
    ask_near(nibbles, in / 2 + in / 8);
    return {nibbles, s, s + in / 32};
  }

  template <int ROWS>
  static constexpr int outputs = 1;

#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  // The pieces of a row, each against ROWS input rows r whose inputs come from the callables it is given (loaded from
  // `inputs`, or held in registers by `stream_held`), adding into acc[r].

  // One superblock: `bytes` its 256 bytes, s and z its 16 blocks' scales and zeros; x(r, t) step t's 64 inputs,
  // block_scales(r) and block_sums(r) the 16 blocks' d and d * (sum of qx).
  template <int ROWS, class X, class Scales, class Sums>
  static kInline void superblock(const uint8_t* bytes, const bf16* s, const bf16* z, X x, Scales block_scales,
                                 Sums block_sums, __m512* acc) {
    const __m512i low = _mm512_set1_epi8(0x0F), high = _mm512_set1_epi8(static_cast<char>(0xF0));
    __m512i part[2 * ROWS];  // per row: the low nibbles' chain, then the high ones' (16 q)
    for (int a = 0; a < 2 * ROWS; ++a) part[a] = _mm512_setzero_si512();
    for (int j = 0; j < 4; ++j) {  // steps 2j and 2j + 1 from 64 bytes
      const __m512i both = _mm512_loadu_si512(bytes + j * 64);
      const __m512i first = _mm512_and_si512(both, low), second = _mm512_and_si512(both, high);
      for (int r = 0; r < ROWS; ++r) {
        part[2 * r] = _mm512_dpbusd_epi32(part[2 * r], first, x(r, 2 * j));
        part[2 * r + 1] = _mm512_dpbusd_epi32(part[2 * r + 1], second, x(r, 2 * j + 1));
      }
    }
    const __m512 weight_scales = widen16(s, 16);
    const __m512 offsets = _mm512_fnmadd_ps(_mm512_set1_ps(8.f), weight_scales, widen16(z, 16));  // z - 8 s
    for (int r = 0; r < ROWS; ++r) {
      const __m512i products = _mm512_add_epi32(part[2 * r], _mm512_srai_epi32(part[2 * r + 1], 4));
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(products), _mm512_mul_ps(weight_scales, block_scales(r)), acc[r]);
      acc[r] = _mm512_fmadd_ps(offsets, block_sums(r), acc[r]);
    }
  }

  // The zero points of the `count` (< 16) blocks after the superblocks at once: sums(r) their d * (sum of qx).
  template <int ROWS, class Sums>
  static kInline void rest_zero_points(const bf16* s, const bf16* z, int64_t count, Sums sums, __m512* acc) {
    const __m512 offsets = _mm512_fnmadd_ps(_mm512_set1_ps(8.f), widen16(s, count), widen16(z, count));
    for (int r = 0; r < ROWS; ++r) acc[r] = _mm512_fmadd_ps(offsets, sums(r), acc[r]);
  }

  // A pair of blocks from 32 bytes: the low nibbles are the first block, the high ones the second, so that with the
  // inputs as stored (x(r): the pair's 64) lanes 0-7 of one `vpdpbusd` sum the first block and 8-15 the second,
  // each lane scaled by its block's s times lane_scales(r) (the inputs' d for each lane).
  template <int ROWS, class X, class LaneScales>
  static kInline void pair(const uint8_t* bytes, const bf16* s, X x, LaneScales lane_scales, __m512* acc) {
    const __m256i low = _mm256_set1_epi8(0x0F);
    const __m256i both = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bytes));
    const __m512i nibbles = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(both, low)),
                                               _mm256_and_si256(_mm256_srli_epi16(both, 4), low), 1);
    const __m512i pair_lanes = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512 weight_scales = _mm512_permutexvar_ps(pair_lanes, widen16(s, 2));
    for (int r = 0; r < ROWS; ++r) {
      const __m512i products = _mm512_dpbusd_epi32(_mm512_setzero_si512(), nibbles, x(r));
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(products), _mm512_mul_ps(weight_scales, lane_scales(r)), acc[r]);
    }
  }
#endif

  // Weight rows begin .. end - 1 against one input row r0, its inputs loaded once and held in registers across the
  // rows, where they are up to three superblocks and up to three pairs after them (SmolLM2's 576 inputs: one
  // superblock and a pair; its 1536: three superblocks): a weight row then loads only its own bytes, where `dot`
  // loads every step of inputs and their scales again for each (one core, weights in cache, ns a row: 9.9 against
  // 14.3 at 576 inputs, 18 against 23 at 1536, where the compiler keeps part of them on the stack). The same pieces
  // in the same order as `dot`, so the same sums. False, having done nothing, for other rows.
  template <class Out>
  bool stream_held(int64_t r0, int64_t begin, int64_t end, const Target<Out>& target) const {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    return with_held_shape(in, [&]<int SUPERS, int PAIRS>() { held<SUPERS, PAIRS>(r0, begin, end, target); });
#else
    return false;
#endif
  }

#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  template <int SUPERS, int PAIRS, class Out>
  void held(int64_t r0, int64_t begin, int64_t end, const Target<Out>& target) const {
    constexpr int64_t whole = 512 * SUPERS, held_in = whole + 64 * PAIRS;
    const HeldInputs<SUPERS, PAIRS> x(*inputs, r0);
    for (int64_t o = begin; o < end; ++o) {
      const auto [row, s, z] = row_of(q, o, held_in);
      __m512 acc[1] = {_mm512_setzero_ps()};
      for (int u = 0; u < SUPERS; ++u) {
        superblock<1>(row + 256 * u, s + 16 * u, z + 16 * u, [&](int, int t) { return x.steps[u][t]; },
                      [&](int) { return x.block_scales[u]; }, [&](int) { return x.block_sums[u]; }, acc);
      }
      if constexpr (PAIRS > 0) {
        rest_zero_points<1>(s + 16 * SUPERS, z + 16 * SUPERS, 2 * PAIRS, [&](int) { return x.rest_sums; }, acc);
        for (int p = 0; p < PAIRS; ++p) {
          pair<1>(row + whole / 2 + 32 * p, s + 16 * SUPERS + 2 * p, [&](int) { return x.rest[p]; },
                  [&](int) { return x.lane_scales[p]; }, acc);
        }
      }
      target.store(r0, o, _mm512_reduce_add_ps(acc[0]));
    }
  }
#endif

  template <int ROWS, int OUTS>
  kInline void dot(int64_t o, int64_t r0, float (*block)[ROWS]) const {
    static_assert(OUTS == 1, "W4A8 meets one weight row at a time");
    float* sums = block[0];
    const auto [row, s, z] = row_of(q, o, in);
    const int64_t whole = inputs->whole;
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    __m512 acc[ROWS];
    for (int r = 0; r < ROWS; ++r) acc[r] = _mm512_setzero_ps();
    for (int64_t i = 0; i < whole; i += 512) {
      const int8_t* xs = inputs->interleaved.data() + r0 * whole + i;
      const int64_t b = r0 * blocks + i / 32;
      superblock<ROWS>(
          row + i / 2, s + i / 32, z + i / 32,
          [&](int r, int t) { return _mm512_loadu_si512(xs + r * whole + 64 * t); },
          [&](int r) { return _mm512_loadu_ps(inputs->block_scales.data() + b + r * blocks); },
          [&](int r) { return _mm512_loadu_ps(inputs->block_sums.data() + b + r * blocks); }, acc);
    }
    if (whole < in) {  // the rest, fewer than 16 blocks: their zero points at once, then a block at a time
      const int64_t b = whole / 32, count = blocks - b;
      const __mmask16 mask = static_cast<__mmask16>((1u << count) - 1);
      rest_zero_points<ROWS>(s + b, z + b, count, [&](int r) {
        return _mm512_maskz_loadu_ps(mask, inputs->block_sums.data() + (r0 + r) * blocks + b);
      }, acc);
    }
    const int64_t pairs = whole + (in - whole) / 64 * 64;
    for (int64_t i = whole; i < pairs; i += 64) {
      pair<ROWS>(row + i / 2, s + i / 32,
                 [&](int r) { return _mm512_loadu_si512(inputs->q.data() + (r0 + r) * in + i); },
                 [&](int r) { return _mm512_loadu_ps(inputs->lane_scales.data() + ((r0 + r) * in + i) / 4); }, acc);
    }
    if (pairs < in) {  // a last single block from 16 bytes: its 8 lanes scaled, added to the row's sum at the end
      const __m128i low16 = _mm_set1_epi8(0x0F);
      const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + pairs / 2));
      const __m256i nibbles = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(bytes, 4), low16), _mm_and_si128(bytes, low16));
      const float scale = static_cast<float>(s[pairs / 32]);
      for (int r = 0; r < ROWS; ++r) {
        const __m256i products = _mm256_dpbusd_epi32(
            _mm256_setzero_si256(), nibbles, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(inputs->q.data() + (r0 + r) * in + pairs)));
        const __m256 rest = _mm256_mul_ps(_mm256_cvtepi32_ps(products),
                                          _mm256_set1_ps(scale * inputs->block_scales[(r0 + r) * blocks + pairs / 32]));
        acc[r] = _mm512_add_ps(acc[r], _mm512_zextps256_ps512(rest));
      }
    }
    for (int r = 0; r < ROWS; ++r) sums[r] = _mm512_reduce_add_ps(acc[r]);
#else
    for (int r = 0; r < ROWS; ++r) {
      const int8_t* xs = inputs->q.data() + (r0 + r) * in;
      sums[r] = 0.f;
      for (int64_t b = 0; b < blocks; ++b) {
        int32_t total = 0;
        for (int64_t i = b * 32; i < b * 32 + 32; ++i) total += block_nibble(row, in, whole, i) * xs[i];
        const float scale = static_cast<float>(s[b]);
        const int64_t at = (r0 + r) * blocks + b;
        sums[r] += static_cast<float>(total) * (scale * inputs->block_scales[at]) +
                   (static_cast<float>(z[b]) - 8.f * scale) * inputs->block_sums[at];
      }
    }
#endif
  }

  // The nibble of input i in the layout above (a row of `in` inputs).
  static int block_nibble(const uint8_t* row, int64_t in, int64_t whole, int64_t i) {
    if (i < whole) {
      const SuperblockPlace place = superblock_place(i);
      const uint8_t byte = row[place.superblock / 2 + place.step / 2 * 64 + place.byte];
      return place.step % 2 == 0 ? byte & 0x0F : byte >> 4;
    }
    const int64_t start = whole + (i - whole) / 64 * 64;  // the pair of blocks holding i, or the last single block
    const int64_t half = in - start >= 64 ? 32 : 16, j = i - start;
    const uint8_t byte = row[start / 2 + j % half];
    return j < half ? byte & 0x0F : byte >> 4;
  }
};

// ---- the one loop: blocks of up to 8 input rows, each block reading the weights once ----

constexpr int64_t kBlock = 8;   // input rows per pass over the weights: 8 accumulators (16 for int4) of 32 registers
constexpr int64_t kGrain = 16;  // the fewest weight rows worth a thread of their own

template <int ROWS, int OUTS, class Format, class Out>
kInline void stream_outputs(const Format& format, int64_t o, int64_t r0, const Target<Out>& target) {
  float sums[OUTS][ROWS];
  format.template dot<ROWS, OUTS>(o, r0, sums);
  for (int k = 0; k < OUTS; ++k) {
    for (int r = 0; r < ROWS; ++r) target.store(r0 + r, o + k, sums[k][r]);
  }
}

// Weight rows begin .. end - 1 against input rows r0 .. r0 + ROWS - 1.
template <int ROWS, class Format, class Out>
void stream_block(const Format& format, int64_t r0, int64_t begin, int64_t end, const Target<Out>& target) {
  constexpr int outs = Format::template outputs<ROWS>;
  if constexpr (ROWS == 1 && (std::is_same_v<Format, Int4Dynamic> || std::is_same_v<Format, Int8Dynamic>)) {
    if (format.stream_held(r0, begin, end, target)) return;
  }
  int64_t o = begin;
  if (outs == 1 || !intel_choices) {
    for (; o + outs <= end; o += outs) stream_outputs<ROWS, outs>(format, o, r0, target);
  }
  for (; o < end; ++o) stream_outputs<ROWS, 1>(format, o, r0, target);
}

#if defined(LM2LLM_TILES)
// AMX tiles stream 16 weight rows at a time in a loop of their own (`Tiles::stream`).
template <int ROWS, class Out>
void stream_block(const Tiles& format, int64_t r0, int64_t begin, int64_t end, const Target<Out>& target) {
  format.stream<ROWS>(r0, begin, end, target);
}
#endif

// Weight rows begin .. end - 1 against every input row, one pass per block of 8: a batch of 7 (a sequence
// finished) reads them once too.
template <class Format, class Out>
void stream_range(const Format& format, int64_t rows, int64_t begin, int64_t end, const Target<Out>& target) {
  for (int64_t r = 0; r < rows; r += kBlock) {
    switch (std::min(rows - r, kBlock)) {
      case 8: stream_block<8>(format, r, begin, end, target); break;
      case 7: stream_block<7>(format, r, begin, end, target); break;
      case 6: stream_block<6>(format, r, begin, end, target); break;
      case 5: stream_block<5>(format, r, begin, end, target); break;
      case 4: stream_block<4>(format, r, begin, end, target); break;
      case 3: stream_block<3>(format, r, begin, end, target); break;
      case 2: stream_block<2>(format, r, begin, end, target); break;
      default: stream_block<1>(format, r, begin, end, target); break;
    }
  }
}

// Inside a parallel region: the calling thread's number, and the region's thread count.
inline int64_t thread_index() {
#if defined(_OPENMP)
  return omp_get_thread_num();
#else
  return 0;
#endif
}

inline int64_t thread_count() {
#if defined(_OPENMP)
  return omp_get_num_threads();
#else
  return 1;
#endif
}

// Inside a parallel region that every thread runs: this thread's share [begin, end) of `count` items, split as
// `at::parallel_for` splits them (one consecutive chunk per thread, threads idle rather than under `grain` each).
inline std::pair<int64_t, int64_t> share(int64_t count, int64_t grain) {
  const int64_t threads = std::min<int64_t>(thread_count(), std::max<int64_t>(1, (count + grain - 1) / grain));
  const int64_t chunk = (count + threads - 1) / threads, t = thread_index();
  return {std::min(count, t * chunk), std::min(count, (t + 1) * chunk)};
}

// The threads' shares of a step's products, in proportion to the rows each computed per second in the products
// before (a running mean over the step): for minutes at a time one core of this machine's two streams its rows up to
// a third slower than the other, and with even halves the faster one waited at every barrier (phase timers, SmolLM2
// fp32: 0.9 to 2.2 ms of a 12 ms step, 0.5 to 0.7 with these shares). Each share stays one run of rows, streamed in
// order.
class Shares {
 public:
  explicit Shares(int64_t threads) : rate_(threads, 1.0), seconds_(threads, 0.0), rows_(threads, 0) {}

  // This thread's rows [begin, end) of `count`, boundaries on multiples of `grain` (`share`'s even split where the
  // region runs another number of threads than the shares were made for).
  std::pair<int64_t, int64_t> range(int64_t count, int64_t grain) const {
    const int64_t t = thread_index();
    if (thread_count() != static_cast<int64_t>(rate_.size())) return share(count, grain);
    double total = 0.0, before = 0.0;
    for (size_t k = 0; k < rate_.size(); ++k) {
      total += rate_[k];
      if (static_cast<int64_t>(k) < t) before += rate_[k];
    }
    auto boundary = [&](double fraction) {
      return std::min(count, static_cast<int64_t>(std::llround(fraction * count / grain)) * grain);
    };
    return {boundary(before / total), t + 1 == static_cast<int64_t>(rate_.size()) ? count : boundary((before + rate_[t]) / total)};
  }

  // What the calling thread took for its rows of the last product.
  void record(int64_t rows, double seconds) {
    const int64_t t = thread_index();
    if (t < static_cast<int64_t>(rate_.size())) {
      rows_[t] = rows;
      seconds_[t] = seconds;
    }
  }

  // The last product's rates folded in (by one thread, after a barrier): each thread's rows per second, relative
  // to the threads' mean, a tenth of the way into its running rate, kept within 0.8 to 1.25 (a share's bounds).
  void update() {
    double mean = 0.0;
    for (size_t k = 0; k < rate_.size(); ++k) {
      if (rows_[k] <= 0 || seconds_[k] <= 0.0) return;
      mean += rows_[k] / seconds_[k] / rate_.size();
    }
    for (size_t k = 0; k < rate_.size(); ++k) {
      rate_[k] = std::clamp(0.9 * rate_[k] + 0.1 * (rows_[k] / seconds_[k] / mean), 0.8, 1.25);
      rows_[k] = 0;
    }
  }

 private:
  std::vector<double> rate_, seconds_;
  std::vector<int64_t> rows_;
};

#if defined(LM2LLM_TILES)
// x (rows, in) as `Tiles` reads it into a tile: per block of up to kBlock rows (as `stream_range` makes them) and
// step of 32 inputs, 16 pairs of neighbouring inputs, each pair given for every row of the block side by side.
void pair_inputs(const bf16* x, int64_t rows, int64_t in, std::vector<bf16>& out) {
  out.resize(rows * in);
  for (int64_t r0 = 0; r0 < rows; r0 += kBlock) {
    const int64_t n = std::min(kBlock, rows - r0);
    for (int64_t r = 0; r < n; ++r) {
      for (int64_t i = 0; i < in; ++i) out[r0 * in + i / 2 * 2 * n + 2 * r + i % 2] = x[(r0 + r) * in + i];
    }
  }
}
#endif

// x (n values) as the type a format multiplies by: x itself where it already is, else a copy held in `copy`.
template <class To, class From>
const To* as_inputs(const From* x, int64_t n, std::vector<To>& copy) {
  if constexpr (std::is_same_v<To, From>) {
    return x;
  } else {
    copy.resize(n);
    for (int64_t i = 0; i < n; ++i) copy[i] = static_cast<To>(x[i]);
    return copy.data();
  }
}

// A weight as `matvec` takes it after the input: (weight, scales, zeros, group_size), the last three for int8 and
// int4 only.
using Streamed = std::tuple<torch::Tensor, c10::optional<torch::Tensor>, c10::optional<torch::Tensor>, int64_t>;

void check_side(const torch::Tensor& t, torch::ScalarType type, at::IntArrayRef shape, const char* name) {
  TORCH_CHECK(t.scalar_type() == type && t.sizes() == shape && t.is_contiguous(), "matvec: ", name,
              " must be a contiguous ", c10::toString(type), " tensor of shape ", shape);
}

// What `matvec` checks of a weight meeting `in` inputs (the whole-model step checks its weights once, when planned).
void check_weight(const Streamed& streamed, int64_t in) {
  const auto& [weight, scales, zeros, group_size] = streamed;
  TORCH_CHECK(weight.dim() == 2 && weight.is_contiguous() && weight.device().is_cpu(),
              "matvec: the weight must be a contiguous 2-D CPU tensor");
  const int64_t out_features = weight.size(0);
  switch (weight.scalar_type()) {
    case torch::kFloat32:
    case torch::kBFloat16:
    case torch::kChar:
      TORCH_CHECK(weight.size(1) == in, "matvec: the weight has ", weight.size(1), " inputs, x ", in);
      if (weight.scalar_type() == torch::kChar) {
        TORCH_CHECK(scales.has_value(), "matvec: int8 weights need their scales");
        check_side(*scales, torch::kBFloat16, {out_features}, "scales");
        TORCH_CHECK(group_size == 0 || (group_size == -32 && in % 32 == 0),
                    "matvec: int8 takes group_size 0 (float inputs) or -32 (inputs quantized per 32, in a multiple of 32)");
      }
      break;
    case torch::kByte: {
      if (group_size == -32) {  // W4A8: groups of 32, inputs quantized per block of 32, scales and zeros in the rows
        TORCH_CHECK(in % 32 == 0 && weight.size(1) == in / 2 + in / 8,
                    "matvec: W4A8 wants (out, in / 2 + in / 8) bytes (each row's nibbles, scales and zeros), in a multiple of 32");
        break;
      }
      TORCH_CHECK(group_size >= 32 && (group_size & (group_size - 1)) == 0 && in % group_size == 0 &&
                      weight.size(1) * 2 == in,
                  "matvec: packed int4 wants (out, in / 2) bytes and groups of 32, 64, 128, ... inputs dividing in");
      TORCH_CHECK(scales.has_value() && zeros.has_value(), "matvec: int4 weights need scales and zeros");
      check_side(*scales, torch::kBFloat16, {out_features, in / group_size}, "scales");
      check_side(*zeros, torch::kBFloat16, {out_features, in / group_size}, "zeros");
      break;
    }
    default:
      TORCH_CHECK(false, "matvec: no format for ", c10::toString(weight.scalar_type()), " weights");
  }
}

// One product's inputs made ready for its weight's format (converted, quantized or reordered once), then read by
// every thread that computes a share of its outputs. Its format points into its own storage, so it is made in
// place and never copied. The weight was checked (`check_weight`).
template <class T>
class Product {
 public:
  Product() = default;
  Product(const Streamed& streamed, const T* x, int64_t rows, int64_t in) { prepare(streamed, x, rows, in); }
  Product(const Product&) = delete;
  Product& operator=(const Product&) = delete;

  // Made ready for `streamed` and x (rows, in), in the storage of the last product made ready.
  void prepare(const Streamed& streamed, const T* x, int64_t rows, int64_t in) {
    rows_ = rows;
    const auto& [weight, scales, zeros, group_size] = streamed;
    const int64_t n = rows * in;
    switch (weight.scalar_type()) {
      case torch::kFloat32:
        format_ = Dense<float, float>{weight.data_ptr<float>(), nullptr, as_inputs(x, n, floats_), in};
        break;
      case torch::kBFloat16: {
        const bf16* inputs = as_inputs(x, n, bf16s_);
#if defined(LM2LLM_TILES)
        if (amx_tiles && in % 32 == 0 && weight.size(0) >= 16) {
          pair_inputs(inputs, rows, in, paired_);
          format_ = Tiles{weight.data_ptr<bf16>(), paired_.data(), in, weight.size(0)};
          break;
        }
#endif
        format_ = Dense<bf16, bf16>{weight.data_ptr<bf16>(), nullptr, inputs, in};
        break;
      }
      case torch::kChar:
        if (group_size == -32) {
          quantized_.assign(as_inputs(x, n, floats_), rows, in);
          format_ = Int8Dynamic{weight.data_ptr<int8_t>(), scales->data_ptr<bf16>(), &quantized_, in};
        } else {
          format_ = Dense<int8_t, float>{weight.data_ptr<int8_t>(), scales->data_ptr<bf16>(), as_inputs(x, n, floats_), in};
        }
        break;
      default:  // packed int4
        if (group_size == -32) {
          quantized_.assign(as_inputs(x, n, floats_), rows, in);
          format_ = Int4Dynamic{weight.data_ptr<uint8_t>(), &quantized_, in, in / 32};
        } else {
          const bf16* inputs = as_inputs(x, n, bf16s_);
          const int64_t groups = in / group_size, whole = in / (16 * group_size) * (16 * group_size);
          group_sums_.assign(rows * groups, 0.f);
          for (int64_t r = 0; r < rows; ++r) {
            for (int64_t i = 0; i < in; ++i) group_sums_[r * groups + i / group_size] += static_cast<float>(inputs[r * in + i]);
          }
          interleaved_ = interleave(inputs, rows, in, whole, group_size);
          format_ = Int4{weight.data_ptr<uint8_t>(), scales->data_ptr<bf16>(), zeros->data_ptr<bf16>(), inputs,
                         interleaved_.data(), group_sums_.data(), in, groups, whole, __builtin_ctzll(group_size)};
        }
    }
  }

  // Weight rows begin .. end - 1 against every input row, into `target`.
  template <class Out>
  void run(int64_t begin, int64_t end, const Target<Out>& target) const {
    std::visit([&](const auto& format) { stream_range(format, rows_, begin, end, target); }, format_);
  }

 private:
  int64_t rows_ = 0;
  std::vector<float> floats_;
  std::vector<bf16> bf16s_;
  QuantizedInputs quantized_;
  std::vector<float> group_sums_;
  std::vector<bf16> interleaved_, paired_;
  std::variant<Dense<float, float>, Dense<bf16, bf16>, Dense<int8_t, float>, Int4, Int8Dynamic, Int4Dynamic
#if defined(LM2LLM_TILES)
               , Tiles
#endif
               > format_;
};

// Runs `body(zero)` with zero a null T* for the tensor's dtype, float32 or bfloat16 (checked by the caller).
template <class Body>
auto with_dtype(torch::ScalarType type, Body&& body) {
  return type == torch::kBFloat16 ? body(static_cast<bf16*>(nullptr)) : body(static_cast<float*>(nullptr));
}

}  // namespace

// x: (..., in) fp32 or bf16 on the CPU; returns (..., out) in x's dtype. The weight's dtype names its format:
// float32 or bfloat16 (out, in); int8 (out, in) with `scales` (out,) bf16, and group_size -32 for int8 inputs (W8A8);
// uint8 (out, in / 2) packed int4 with `scales` and `zeros` (out, in / group_size) bf16, or, with group_size -32,
// W4A8: uint8 (out, in / 2 + in / 8), groups of 32 met by int8 inputs, each row its nibbles, scales and zeros
// (`pack_w4a8`'s layout). Every row of x is one input row (a token of a sequence).
torch::Tensor matvec(const torch::Tensor& input, const torch::Tensor& weight, const c10::optional<torch::Tensor>& scales,
                     const c10::optional<torch::Tensor>& zeros, int64_t group_size,
                     const c10::optional<torch::Tensor>& bias) {
  TORCH_CHECK(input.dim() >= 1 && weight.dim() == 2, "matvec: x needs a last dimension and the weight must be 2-D");
  TORCH_CHECK(weight.is_contiguous() && input.device().is_cpu() && weight.device().is_cpu(),
              "matvec: tensors must be on the CPU and the weight contiguous");
  TORCH_CHECK(input.scalar_type() == torch::kFloat32 || input.scalar_type() == torch::kBFloat16,
              "matvec: x must be float32 or bfloat16");
  const torch::Tensor x = input.contiguous();
  const int64_t in = x.size(-1), rows = in > 0 ? x.numel() / in : 0, out_features = weight.size(0);
  const Streamed streamed{weight, scales, zeros, group_size};
  check_weight(streamed, in);
  if (bias.has_value()) {
    TORCH_CHECK(bias->scalar_type() == x.scalar_type() && bias->numel() == out_features && bias->is_contiguous(),
                "matvec: the bias must be a contiguous ", c10::toString(x.scalar_type()), " tensor of ", out_features);
  }
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = out_features;
  torch::Tensor result = torch::empty(shape, x.options());
  with_dtype(x.scalar_type(), [&](auto* zero) {
    using T = std::remove_pointer_t<decltype(zero)>;
    const Product<T> product(streamed, x.data_ptr<T>(), rows, in);
    const Target<T> target{result.data_ptr<T>(), bias.has_value() ? bias->data_ptr<T>() : nullptr, nullptr, out_features};
    at::parallel_for(0, out_features, kGrain, [&](int64_t begin, int64_t end) { product.run(begin, end, target); });
  });
  return result;
}

// ---- one decoding step's attention: the new token of each row against its layer's KV cache ----
//
// What `Attention.forward` does for one new token per row (T = 1), in one call instead of about twenty torch
// operations: rotate the query and key heads (RoPE, as `Rotary.apply` computes it, each product and the sum
// rounded to the cache's dtype, so the cached keys are bit for bit torch's), write key and value into the
// cache slot `offset`, and attend over slots 0 .. offset: scores q . k / sqrt(D) in fp32, softmax in fp32, the
// values' weighted sum in fp32, rounded once. Query head h reads key/value head h / (H / KV) (GQA).

#if defined(__AVX512F__)
inline __m512 widen(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 widen(const bf16* p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
}

// 16 fp32 values rounded to bfloat16 as c10's conversion rounds them (to nearest, ties to even; NaN to 0x7FC0),
// each in the low half of its 32-bit lane.
inline __m512i bf16_bits(__m512 x) {
  const __m512i bits = _mm512_castps_si512(x);
  const __m512i bias = _mm512_add_epi32(_mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1)),
                                        _mm512_set1_epi32(0x7FFF));
  return _mm512_mask_blend_epi32(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), _mm512_srli_epi32(_mm512_add_epi32(bits, bias), 16),
                                 _mm512_set1_epi32(0x7FC0));
}

// x as a T holds it: rounded to bfloat16 and widened back, or as it is for float32.
inline __m512 as_stored(const float*, __m512 x) { return x; }
inline __m512 as_stored(const bf16*, __m512 x) { return _mm512_castsi512_ps(_mm512_slli_epi32(bf16_bits(x), 16)); }

// 16 values stored as T, each rounded as `static_cast<T>` rounds it.
inline void store16(float* p, __m512 x) { _mm512_storeu_ps(p, x); }
inline void store16(bf16* p, __m512 x) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(bf16_bits(x)));
}
#endif

template <class T>
float dot_float(const float* a, const T* b, int64_t n) {
  int64_t i = 0;
  float sum = 0.f;
#if defined(__AVX512F__)
  __m512 acc = _mm512_setzero_ps();
  for (; i + 16 <= n; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), widen(b + i), acc);
  sum = _mm512_reduce_add_ps(acc);
#endif
  for (; i < n; ++i) sum += a[i] * static_cast<float>(b[i]);
  return sum;
}

// x * cos + roll(x, D / 2) * signed_sin, each operation rounded to T as torch's elementwise ops round it.
template <class T>
void rotate(const T* x, const T* cos, const T* signed_sin, T* out, int64_t D) {
  int64_t d = 0;
#if defined(__AVX512F__)
  if (D % 32 == 0) {  // 16 lanes at a time, the same three roundings
    for (; d < D; d += 16) {
      const __m512 turned = as_stored(x, _mm512_mul_ps(widen(x + d), widen(cos + d)));
      const __m512 rolled = as_stored(x, _mm512_mul_ps(widen(x + (d + D / 2) % D), widen(signed_sin + d)));
      store16(out + d, _mm512_add_ps(turned, rolled));
    }
  }
#endif
  for (; d < D; ++d) {
    const T turned = static_cast<T>(static_cast<float>(x[d]) * static_cast<float>(cos[d]));
    const T rolled = static_cast<T>(static_cast<float>(x[(d + D / 2) % D]) * static_cast<float>(signed_sin[d]));
    out[d] = static_cast<T>(static_cast<float>(turned) + static_cast<float>(rolled));
  }
}

// One thread's working memory for `StepAttention::attend`.
template <class T>
struct AttentionScratch {
  std::vector<T> query;
  std::vector<float> q, acc, scores;
  AttentionScratch(int64_t D, int64_t slots) : query(D), q(D), acc(D), scores(slots) {}
};

// One layer's attention for one new token per row: `write` puts a row's new key (rotated) and value of one KV head
// into the cache, `attend` one query head of a row over the slots 0 .. offset of its KV head, which must all be
// written first.
template <class T>
struct StepAttention {
  const T* qkv;  // (B, (H + 2 KV) D)
  const T* cos;  // (B, D) and signed_sin (B, D), or nullptr without RoPE
  const T* signed_sin;
  T* keys;       // (B, KV, max_len, D), and values
  T* values;
  const bool* allowed;  // (B or 1, offset + 1), or nullptr where every slot may be seen
  int64_t allowed_stride;
  T* out;  // (B, H D)
  int64_t B, H, KV, D, max_len, offset;

  void write(int64_t b, int64_t g) const {
    const T* row = qkv + b * (H + 2 * KV) * D;
    T* key = keys + ((b * KV + g) * max_len + offset) * D;
    if (cos != nullptr) {
      rotate(row + (H + g) * D, cos + b * D, signed_sin + b * D, key, D);
    } else {
      std::copy(row + (H + g) * D, row + (H + g + 1) * D, key);
    }
    std::copy(row + (H + KV + g) * D, row + (H + KV + g + 1) * D, values + ((b * KV + g) * max_len + offset) * D);
  }

  void attend(int64_t b, int64_t h, AttentionScratch<T>& scratch) const {
    const T* row = qkv + b * (H + 2 * KV) * D;
    const int64_t g = h / (H / KV), slots = offset + 1;
    const T* k_cache = keys + (b * KV + g) * max_len * D;
    const T* v_cache = values + (b * KV + g) * max_len * D;
    const bool* sees = allowed == nullptr ? nullptr : allowed + b * allowed_stride;
    const float scale = 1.f / std::sqrt(static_cast<float>(D));
    if (cos != nullptr) {
      rotate(row + h * D, cos + b * D, signed_sin + b * D, scratch.query.data(), D);
    } else {
      std::copy(row + h * D, row + (h + 1) * D, scratch.query.begin());
    }
    float* q = scratch.q.data();
    float* acc = scratch.acc.data();
    float* scores = scratch.scores.data();
    for (int64_t d = 0; d < D; ++d) q[d] = static_cast<float>(scratch.query[d]);
    float top = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < slots; ++j) {
      scores[j] = (sees == nullptr || sees[j]) ? dot_float(q, k_cache + j * D, D) * scale
                                               : -std::numeric_limits<float>::infinity();
      top = std::max(top, scores[j]);
    }
    std::fill(acc, acc + D, 0.f);
    float total = 0.f;
    for (int64_t j = 0; j < slots; ++j) {
      if (scores[j] == -std::numeric_limits<float>::infinity()) continue;
      const float p = std::exp(scores[j] - top);
      total += p;
      const T* v = v_cache + j * D;
      int64_t d = 0;
#if defined(__AVX512F__)
      for (; d + 16 <= D; d += 16) {  // the same product and sum as below, 16 lanes at a time
        _mm512_storeu_ps(acc + d, _mm512_add_ps(_mm512_loadu_ps(acc + d), _mm512_mul_ps(_mm512_set1_ps(p), widen(v + d))));
      }
#endif
      for (; d < D; ++d) acc[d] += p * static_cast<float>(v[d]);
    }
    T* o = out + b * H * D + h * D;
    for (int64_t d = 0; d < D; ++d) o[d] = static_cast<T>(total > 0.f ? acc[d] / total : 0.f);
  }
};

// The checks `decode_attention` makes: keys and values (B, KV, max_len, D) of dtype `type`, a (B, 1, (H + 2 KV) D)
// qkv of that dtype, the rotary tables and the allowed slots; returns allowed's stride per row (0: one for all).
int64_t check_attention(torch::ScalarType type, const torch::Tensor& keys, const torch::Tensor& values,
                        const c10::optional<torch::Tensor>& cos, const c10::optional<torch::Tensor>& signed_sin,
                        int64_t offset, const c10::optional<torch::Tensor>& allowed, int64_t n_head) {
  TORCH_CHECK(keys.device().is_cpu() && values.device().is_cpu(), "decode_attention: tensors must be on the CPU");
  TORCH_CHECK(keys.dim() == 4 && keys.sizes() == values.sizes() && keys.is_contiguous() && values.is_contiguous() &&
                  keys.scalar_type() == type && values.scalar_type() == type &&
                  (type == torch::kFloat32 || type == torch::kBFloat16),
              "decode_attention: keys and values must be contiguous (B, KV, max_len, D) float32 or bfloat16 tensors");
  const int64_t B = keys.size(0), KV = keys.size(1), max_len = keys.size(2), D = keys.size(3), H = n_head;
  TORCH_CHECK(KV > 0 && H % KV == 0 && D % 2 == 0 && offset >= 0 && offset < max_len, "decode_attention: bad heads or offset");
  TORCH_CHECK(cos.has_value() == signed_sin.has_value(), "decode_attention: cos and signed_sin come together");
  if (cos.has_value()) {
    for (const auto* table : {&*cos, &*signed_sin}) {
      TORCH_CHECK(table->scalar_type() == type && table->is_contiguous() && table->numel() == B * D,
                  "decode_attention: the rotary tables must be contiguous (B, 1, 1, D) tensors of the cache's dtype");
    }
  }
  if (!allowed.has_value()) return 0;
  TORCH_CHECK(allowed->scalar_type() == torch::kBool && allowed->is_contiguous() && allowed->size(-1) == offset + 1 &&
                  (allowed->numel() == offset + 1 || allowed->numel() == B * (offset + 1)),
              "decode_attention: allowed must be a contiguous (B or 1, 1, 1, offset + 1) bool tensor");
  return allowed->numel() == offset + 1 ? 0 : offset + 1;
}

template <class T>
StepAttention<T> step_attention(const T* qkv, const c10::optional<torch::Tensor>& cos,
                                const c10::optional<torch::Tensor>& signed_sin, const torch::Tensor& keys,
                                const torch::Tensor& values, int64_t offset, const c10::optional<torch::Tensor>& allowed,
                                int64_t allowed_stride, int64_t n_head, T* out) {
  return {qkv, cos.has_value() ? cos->data_ptr<T>() : nullptr, signed_sin.has_value() ? signed_sin->data_ptr<T>() : nullptr,
          keys.data_ptr<T>(), values.data_ptr<T>(), allowed.has_value() ? allowed->data_ptr<bool>() : nullptr,
          allowed_stride, out, keys.size(0), n_head, keys.size(1), keys.size(3), keys.size(2), offset};
}

// qkv (B, 1, (H + 2 KV) D): the stacked projection's output for one new token per row; cos and signed_sin
// (B, 1, 1, D) `Rotary`'s tables, or None without RoPE; keys and values (B, KV, max_len, D) the layer's cache;
// allowed (B or 1, 1, 1, offset + 1) bool, or None where every slot up to `offset` may be seen. Returns (B, 1, H D).
torch::Tensor decode_attention(const torch::Tensor& qkv, const c10::optional<torch::Tensor>& cos,
                               const c10::optional<torch::Tensor>& signed_sin, torch::Tensor keys, torch::Tensor values,
                               int64_t offset, const c10::optional<torch::Tensor>& allowed, int64_t n_head) {
  const auto type = keys.scalar_type();
  TORCH_CHECK(qkv.device().is_cpu(), "decode_attention: tensors must be on the CPU");
  const int64_t allowed_stride = check_attention(type, keys, values, cos, signed_sin, offset, allowed, n_head);
  const int64_t B = keys.size(0), KV = keys.size(1), D = keys.size(3), H = n_head;
  TORCH_CHECK(qkv.scalar_type() == type && qkv.is_contiguous() && qkv.numel() == B * (H + 2 * KV) * D,
              "decode_attention: qkv must be a contiguous (B, 1, (H + 2 KV) D) tensor of the cache's dtype");
  torch::Tensor out = torch::empty({B, 1, H * D}, qkv.options());
  with_dtype(type, [&](auto* zero) {
    using T = std::remove_pointer_t<decltype(zero)>;
    const StepAttention<T> attention = step_attention<T>(qkv.data_ptr<T>(), cos, signed_sin, keys, values, offset,
                                                         allowed, allowed_stride, n_head, out.data_ptr<T>());
    at::parallel_for(0, B * KV, 1, [&](int64_t begin, int64_t end) {  // a KV head, then its query heads
      AttentionScratch<T> scratch(D, offset + 1);
      for (int64_t task = begin; task < end; ++task) {
        const int64_t b = task / KV, g = task % KV;
        attention.write(b, g);
        for (int64_t h = g * (H / KV); h < (g + 1) * (H / KV); ++h) attention.attend(b, h, scratch);
      }
    });
  });
  return out;
}

// ---- RMSNorm for inference: one call where torch's CPU `rms_norm` makes about eight ----
//
// x / sqrt(mean(x^2) + eps) * weight per row, normalised in fp32 and scaled in x's dtype, as `RMSNorm.forward`
// (and transformers' Llama) does: a bf16 row is normalised in fp32, rounded to bf16, then multiplied by the bf16
// weight (one more rounding); fp32 rows are rounded after each multiplication. Only the order of the mean's
// sum differs from torch's.
template <class T>
void rms_norm_row(const T* row, const T* weight, T* out, int64_t n, float eps) {
#if defined(__AVX512F__)
  if (n % 16 == 0) {  // 16 lanes at a time: the same roundings, the mean's sum in another order
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) acc = _mm512_fmadd_ps(widen(row + i), widen(row + i), acc);
    const __m512 scale = _mm512_set1_ps(1.f / std::sqrt(_mm512_reduce_add_ps(acc) / static_cast<float>(n) + eps));
    for (int64_t i = 0; i < n; i += 16) {
      store16(out + i, _mm512_mul_ps(as_stored(row, _mm512_mul_ps(widen(row + i), scale)), widen(weight + i)));
    }
    return;
  }
#endif
  float squares = 0.f;
  for (int64_t i = 0; i < n; ++i) squares += static_cast<float>(row[i]) * static_cast<float>(row[i]);
  const float scale = 1.f / std::sqrt(squares / static_cast<float>(n) + eps);
  for (int64_t i = 0; i < n; ++i) {
    const T normalised = static_cast<T>(static_cast<float>(row[i]) * scale);
    out[i] = static_cast<T>(static_cast<float>(normalised) * static_cast<float>(weight[i]));
  }
}

torch::Tensor rms_norm(const torch::Tensor& input, const torch::Tensor& weight, double eps) {
  const auto type = input.scalar_type();
  TORCH_CHECK(input.device().is_cpu() && weight.device().is_cpu() && weight.scalar_type() == type &&
                  (type == torch::kFloat32 || type == torch::kBFloat16) && weight.dim() == 1 && weight.is_contiguous() &&
                  input.dim() >= 1 && input.size(-1) == weight.size(0),
              "rms_norm: x (..., n) and weight (n,) must be CPU float32 or bfloat16 tensors of one dtype");
  const torch::Tensor x = input.contiguous();
  torch::Tensor out = torch::empty_like(x);
  const int64_t n = weight.size(0), rows = n > 0 ? x.numel() / n : 0;
  with_dtype(type, [&](auto* zero) {
    using T = std::remove_pointer_t<decltype(zero)>;
    const T *from = x.data_ptr<T>(), *scale = weight.data_ptr<T>();
    T* to = out.data_ptr<T>();
    at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) rms_norm_row(from + r * n, scale, to + r * n, n, static_cast<float>(eps));
    });
  });
  return out;
}

// ---- SwiGLU's elementwise step for inference: silu(gate) * up ----
//
// As torch computes `F.silu(gate) * up` on this CPU, bit for bit (tested): silu in fp32 as x / (1 + exp(-x)) with
// torch's own vectorised exp (SLEEF's, which libtorch exports), rounded to T, then the product rounded to T.
// Without AVX-512 the step calls torch's silu instead (`DecodeLayers`).
#if defined(__AVX512F__)
extern "C" __m512 Sleef_expf16_u10(__m512);

template <class T>
void swiglu_row(const T* gate, const T* up, T* out, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.f), sign = _mm512_set1_ps(-0.f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 g = widen(gate + i);
    const __m512 silu = as_stored(gate, _mm512_div_ps(g, _mm512_add_ps(one, Sleef_expf16_u10(_mm512_xor_ps(sign, g)))));
    store16(out + i, _mm512_mul_ps(silu, widen(up + i)));
  }
  for (; i < n; ++i) {  // torch's scalar tail
    const float g = static_cast<float>(gate[i]);
    out[i] = static_cast<T>(static_cast<float>(static_cast<T>(g / (1.f + std::exp(-g)))) * static_cast<float>(up[i]));
  }
}

// silu(gate) * up for (rows, n) float32 or bfloat16 tensors of one dtype, through `swiglu_row`: the whole-model
// step's SwiGLU, exposed for its test against torch's.
torch::Tensor silu_mul(const torch::Tensor& gate, const torch::Tensor& up) {
  TORCH_CHECK(gate.dim() == 2 && gate.sizes() == up.sizes() && gate.is_contiguous() && up.is_contiguous() &&
                  gate.scalar_type() == up.scalar_type() &&
                  (gate.scalar_type() == torch::kFloat32 || gate.scalar_type() == torch::kBFloat16),
              "silu_mul: gate and up must be contiguous (rows, n) float32 or bfloat16 tensors of one dtype");
  torch::Tensor out = torch::empty_like(gate);
  with_dtype(gate.scalar_type(), [&](auto* zero) {
    using T = std::remove_pointer_t<decltype(zero)>;
    for (int64_t r = 0; r < gate.size(0); ++r) {
      const int64_t at = r * gate.size(1);
      swiglu_row(gate.data_ptr<T>() + at, up.data_ptr<T>() + at, out.data_ptr<T>() + at, gate.size(1));
    }
  });
  return out;
}
#endif

// ---- greedy decoding's choice: each row's largest logit ----
//
// The index of each row's largest value, the first of equal ones (as torch's `max(dim=-1)` gives it), or `invalid`
// where the row holds a NaN or nothing above -inf: what `sampling.choose` asks of greedy rows, in one pass of 16
// lanes. torch's `max` took about 45 us for SmolLM2's 49,152 logits, plus the checks around it.
template <class T>
int64_t best_index(const T* row, int64_t n, int64_t invalid) {
  float top = -std::numeric_limits<float>::infinity();
  int64_t best = -1, i = 0;
  bool nan = false;
#if defined(__AVX512F__)
  if (n >= 16) {
    __m512 tops = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    __m512i where = _mm512_set1_epi32(-1), at = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i step = _mm512_set1_epi32(16);
    __mmask16 nans = 0;
    for (; i + 16 <= n; i += 16) {
      const __m512 x = widen(row + i);
      nans |= _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
      const __mmask16 above = _mm512_cmp_ps_mask(x, tops, _CMP_GT_OQ);  // strictly: a lane keeps its first maximum
      tops = _mm512_mask_blend_ps(above, tops, x);
      where = _mm512_mask_blend_epi32(above, where, at);
      at = _mm512_add_epi32(at, step);
    }
    nan = nans != 0;
    alignas(64) float lane_tops[16];
    alignas(64) int32_t lane_where[16];
    _mm512_store_ps(lane_tops, tops);
    _mm512_store_si512(lane_where, where);
    for (int k = 0; k < 16; ++k) {
      if (lane_where[k] >= 0 && (lane_tops[k] > top || (lane_tops[k] == top && lane_where[k] < best))) {
        top = lane_tops[k];
        best = lane_where[k];
      }
    }
  }
#endif
  for (; i < n; ++i) {
    const float x = static_cast<float>(row[i]);
    nan = nan || std::isnan(x);
    if (x > top) {
      top = x;
      best = i;
    }
  }
  return nan || best < 0 ? invalid : best;
}

torch::Tensor greedy(const torch::Tensor& logits, int64_t invalid) {
  TORCH_CHECK(logits.dim() == 2 && logits.device().is_cpu() &&
                  (logits.scalar_type() == torch::kFloat32 || logits.scalar_type() == torch::kBFloat16),
              "greedy: logits must be a (rows, vocab) CPU float32 or bfloat16 tensor");
  const torch::Tensor x = logits.contiguous();
  torch::Tensor tokens = torch::empty({x.size(0)}, x.options().dtype(torch::kLong));
  with_dtype(x.scalar_type(), [&](auto* zero) {
    using T = std::remove_pointer_t<decltype(zero)>;
    for (int64_t r = 0; r < x.size(0); ++r) {
      tokens.data_ptr<int64_t>()[r] = best_index(x.data_ptr<T>() + r * x.size(1), x.size(1), invalid);
    }
  });
  return tokens;
}

// `StreamingLinear`'s whole call: x (..., in) times a float32 or bfloat16 weight (out, in), plus `bias`. At most
// `max_rows` rows in the weight's dtype, on the CPU and wanting no gradient, stream; anything else (a prompt,
// training, another dtype or device) is torch's own `linear`, so gradients and errors are torch's. Deciding
// here costs nanoseconds where the same checks in Python cost microseconds at each of a step's 121 calls.
torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const c10::optional<torch::Tensor>& bias,
                     int64_t max_rows) {
  const auto type = weight.scalar_type();
  const int64_t in = x.dim() >= 1 ? x.size(-1) : 0;
  const bool float_weight = type == torch::kFloat32 || type == torch::kBFloat16;
  const bool wants_gradient = at::GradMode::is_enabled() && (x.requires_grad() || weight.requires_grad() ||
                                                               (bias.has_value() && bias->requires_grad()));
  const bool streams = float_weight && in > 0 && x.numel() <= max_rows * in && x.scalar_type() == type &&
                       weight.dim() == 2 && weight.size(1) == in && weight.is_contiguous() && x.device().is_cpu() &&
                       weight.device().is_cpu() && !wants_gradient &&
                       (!bias.has_value() || (bias->scalar_type() == type && bias->is_contiguous() && bias->device().is_cpu()));
  if (!streams) return at::linear(x, weight, bias);
  return matvec(x, weight, c10::nullopt, c10::nullopt, 0, bias);
}

// ---- one decoding step through every block of a LLaMA model, in one call ----
//
// What `Block.forward` computes for one new token per row, layer after layer, with its RMSNorms, stacked
// projections and SwiGLU MLP: x + attention(norm(x)), then that plus down(silu(gate) * up) of its norm; the KV
// cache is the model's (n_layer, B, KV, max_len, D). Bit for bit what the module-by-module step gives (tested):
// the same products, attention and norms as above, the residual additions rounded as torch rounds them (made as
// each product is stored), silu as torch computes it (`swiglu_row`). What it saves is everything between the products: the step is
// one parallel region, its threads meeting at a barrier where the next part needs the last one whole, where a
// call per operation started the threads about 150 times a step (a few microseconds each) and allocated the
// result of each (SmolLM2 W4A8: 1.4 of a 4 ms step went to what lay between its products). The weights are
// handed over and checked once, when the plan is made, so a step converts a handful of Python objects.
using BlockWeights = std::tuple<torch::Tensor, torch::Tensor, double, Streamed, Streamed, Streamed, Streamed>;
// The model's two ends around its blocks: the token embedding (vocab, d_model), the final norm's weight and eps, and
// the output layer.
using EndWeights = std::tuple<torch::Tensor, torch::Tensor, double, Streamed>;

// A weight's inputs: its columns, two to a byte for packed int4, whose W4A8 rows hold 5 bytes per 8 inputs (nibbles,
// then scales and zeros).
int64_t in_features(const Streamed& streamed) {
  const torch::Tensor& weight = std::get<0>(streamed);
  if (weight.scalar_type() != torch::kByte) return weight.size(1);
  return std::get<3>(streamed) == -32 ? weight.size(1) / 5 * 8 : weight.size(1) * 2;
}

struct DecodeLayers {
  std::vector<BlockWeights> blocks;  // per layer: norm_attn, norm_mlp, eps, qkv, out, gate_up, down
  std::optional<EndWeights> ends;    // for `logits`: the step from token ids to the output layer
  int64_t n_head, d_model, qkv_width, attention_width, hidden;

  DecodeLayers(std::vector<BlockWeights> layers, int64_t heads, std::optional<EndWeights> model_ends)
      : blocks(std::move(layers)), ends(std::move(model_ends)), n_head(heads) {
    TORCH_CHECK(!blocks.empty() && n_head > 0, "decode_layers: no blocks, or no heads");
    const auto& first = blocks[0];
    const torch::Tensor& norm = std::get<0>(first);
    TORCH_CHECK(norm.scalar_type() == torch::kFloat32 || norm.scalar_type() == torch::kBFloat16,
                "decode_layers: the norms must be float32 or bfloat16");
    for (const auto* streamed : {&std::get<3>(first), &std::get<4>(first), &std::get<5>(first), &std::get<6>(first)}) {
      TORCH_CHECK(std::get<0>(*streamed).dim() == 2, "decode_layers: every weight must be 2-D");
    }
    d_model = norm.numel();
    qkv_width = std::get<0>(std::get<3>(first)).size(0);
    attention_width = in_features(std::get<4>(first));
    hidden = std::get<0>(std::get<5>(first)).size(0) / 2;
    for (const auto& [norm_attn, norm_mlp, eps, qkv, out, gate_up, down] : blocks) {
      for (const torch::Tensor* weight : {&norm_attn, &norm_mlp}) {
        TORCH_CHECK(weight->dim() == 1 && weight->numel() == d_model && weight->is_contiguous() &&
                        weight->device().is_cpu() && weight->scalar_type() == norm.scalar_type(),
                    "decode_layers: every norm must be a contiguous (d_model,) CPU tensor of one dtype");
      }
      check_weight(qkv, d_model);
      check_weight(out, attention_width);
      check_weight(gate_up, d_model);
      check_weight(down, hidden);
      TORCH_CHECK(std::get<0>(qkv).size(0) == qkv_width && std::get<0>(out).size(0) == d_model &&
                      std::get<0>(gate_up).size(0) == 2 * hidden && std::get<0>(down).size(0) == d_model,
                  "decode_layers: every block's products must have the first block's shapes");
    }
    if (ends.has_value()) {
      const auto& [embedding, final_norm, final_eps, head] = *ends;
      TORCH_CHECK(embedding.dim() == 2 && embedding.size(1) == d_model && embedding.size(0) > 0 &&
                      embedding.is_contiguous() && embedding.device().is_cpu() && embedding.scalar_type() == norm.scalar_type(),
                  "decode_layers: the embedding must be a contiguous (vocab, d_model) CPU tensor of the norms' dtype");
      TORCH_CHECK(final_norm.dim() == 1 && final_norm.numel() == d_model && final_norm.is_contiguous() &&
                      final_norm.device().is_cpu() && final_norm.scalar_type() == norm.scalar_type(),
                  "decode_layers: the final norm must be a contiguous (d_model,) CPU tensor of the norms' dtype");
      check_weight(head, d_model);
    }
  }

  // x (B, 1, d_model) in the norms' dtype: the last block's output for it, the cache written at slot `offset`
  // (cos, signed_sin and allowed as `decode_attention` takes them).
  torch::Tensor step(const torch::Tensor& x, const c10::optional<torch::Tensor>& cos,
                     const c10::optional<torch::Tensor>& signed_sin, const torch::Tensor& keys,
                     const torch::Tensor& values, int64_t offset, const c10::optional<torch::Tensor>& allowed) const {
    const int64_t allowed_stride = check_step(x, cos, signed_sin, keys, values, offset, allowed);
    torch::Tensor h = x.contiguous().clone();  // the residual stream: each block's output written over its input
    with_dtype(std::get<0>(blocks[0]).scalar_type(), [&](auto* zero) {
      using T = std::remove_pointer_t<decltype(zero)>;
      run<T>(h, cos, signed_sin, keys, values, offset, allowed, allowed_stride, nullptr);
    });
    return h;
  }

  // ids (B, 1) token ids: the output layer's (B, 1, vocab) logits for them, from their embeddings through every
  // block and the final norm (`step`'s other arguments), what the model's forward gives for one new token per row.
  torch::Tensor logits(const torch::Tensor& ids, const c10::optional<torch::Tensor>& cos,
                       const c10::optional<torch::Tensor>& signed_sin, const torch::Tensor& keys,
                       const torch::Tensor& values, int64_t offset, const c10::optional<torch::Tensor>& allowed) const {
    TORCH_CHECK(ends.has_value(), "decode_layers: planned without the embedding, final norm and output layer");
    const auto& [embedding, final_norm, final_eps, head] = *ends;
    const auto type = embedding.scalar_type();
    const int64_t B = keys.dim() == 5 ? keys.size(1) : -1, vocab = embedding.size(0);
    TORCH_CHECK(ids.scalar_type() == torch::kLong && ids.device().is_cpu() && ids.numel() == B,
                "decode_layers: ids must be a (B, 1) CPU long tensor, one token per row of the cache");
    const torch::Tensor tokens = ids.contiguous();
    torch::Tensor h = torch::empty({B, 1, d_model}, embedding.options());
    for (int64_t r = 0; r < B; ++r) {  // the embedding's rows, as `nn.Embedding` looks them up
      const int64_t id = tokens.data_ptr<int64_t>()[r];
      TORCH_CHECK(id >= 0 && id < vocab, "decode_layers: token id ", id, " is outside the vocabulary of ", vocab);
      std::memcpy(static_cast<char*>(h.data_ptr()) + r * d_model * embedding.element_size(),
                  static_cast<const char*>(embedding.data_ptr()) + id * d_model * embedding.element_size(),
                  d_model * embedding.element_size());
    }
    const int64_t allowed_stride = check_step(h, cos, signed_sin, keys, values, offset, allowed);
    torch::Tensor out = torch::empty({B, 1, std::get<0>(head).size(0)}, embedding.options());
    with_dtype(type, [&](auto* zero) {
      using T = std::remove_pointer_t<decltype(zero)>;
      run<T>(h, cos, signed_sin, keys, values, offset, allowed, allowed_stride, out.data_ptr<T>());
    });
    return out;
  }

 private:
  // What a step checks of its input x (B, 1, d_model) and the cache, as `step` documents them; returns allowed's
  // stride per row.
  int64_t check_step(const torch::Tensor& x, const c10::optional<torch::Tensor>& cos,
                     const c10::optional<torch::Tensor>& signed_sin, const torch::Tensor& keys, const torch::Tensor& values,
                     int64_t offset, const c10::optional<torch::Tensor>& allowed) const {
    const int64_t layers = static_cast<int64_t>(blocks.size());
    const auto type = std::get<0>(blocks[0]).scalar_type();
    TORCH_CHECK(keys.dim() == 5 && keys.size(0) == layers && values.sizes() == keys.sizes(),
                "decode_layers: keys and values must be (n_layer, B, KV, max_len, D) with n_layer = ", layers);
    const int64_t allowed_stride =
        check_attention(type, keys.select(0, 0), values.select(0, 0), cos, signed_sin, offset, allowed, n_head);
    TORCH_CHECK(x.scalar_type() == type && x.device().is_cpu() && x.numel() == keys.size(1) * d_model,
                "decode_layers: x must be a (B, 1, d_model) CPU tensor of the norms' dtype");
    TORCH_CHECK(qkv_width == (n_head + 2 * keys.size(2)) * keys.size(4) && attention_width == n_head * keys.size(4),
                "decode_layers: the projections' shapes do not match the cache's heads");
    return allowed_stride;
  }

  // Every block over the residual stream h, then, given `logits` (B, vocab), the final norm and output layer into it.
  template <class T>
  void run(torch::Tensor& h, const c10::optional<torch::Tensor>& cos, const c10::optional<torch::Tensor>& signed_sin,
           const torch::Tensor& keys, const torch::Tensor& values, int64_t offset,
           const c10::optional<torch::Tensor>& allowed, int64_t allowed_stride, T* logits) const {
    const int64_t B = keys.size(1), KV = keys.size(2), D = keys.size(4), d = d_model;
    const auto options = h.options();
    const torch::Tensor normed = torch::empty({B, d}, options), qkv = torch::empty({B, qkv_width}, options),
                        attended = torch::empty({B, attention_width}, options), mid = torch::empty({B, d}, options),
                        gate_up = torch::empty({B, 2 * hidden}, options);
    torch::Tensor act = torch::empty({B, hidden}, options);
    T *stream = h.data_ptr<T>(), *normed_p = normed.data_ptr<T>(), *qkv_p = qkv.data_ptr<T>(),
      *attended_p = attended.data_ptr<T>(), *mid_p = mid.data_ptr<T>(), *gate_up_p = gate_up.data_ptr<T>(),
      *act_p = act.data_ptr<T>();
    const StepAttention<T> first_layer =
        step_attention<T>(qkv_p, cos, signed_sin, keys.select(0, 0), values.select(0, 0), offset, allowed,
                          allowed_stride, n_head, attended_p);
    const int64_t layer_size = B * KV * keys.size(3) * D;  // one layer's slice of the cache
    Product<T> product;  // the product being computed, made ready by the calling thread
    auto norm_rows = [&](const T* from, const torch::Tensor& weight, double eps) {
      for (int64_t r = 0; r < B; ++r) {
        rms_norm_row(from + r * d, weight.data_ptr<T>(), normed_p + r * d, d, static_cast<float>(eps));
      }
    };
#if defined(_OPENMP)
    Shares shares(omp_get_max_threads());
#else
    Shares shares(1);
#endif
    auto compute = [&](T* y, int64_t out_features, const T* residual) {  // this thread's share of the product
      const auto [begin, end] = shares.range(out_features, kGrain);
      const auto start = std::chrono::steady_clock::now();
      product.run(begin, end, Target<T>{y, nullptr, residual, out_features});
      shares.record(end - begin, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    };
    // The serial parts (norms, the inputs' preparation, SwiGLU) run on the calling thread (`master`), whose
    // thread-local state (inference mode) torch's silu needs where it is called. A barrier follows each part that
    // the next one reads whole.
#pragma omp parallel
    {
      AttentionScratch<T> scratch(D, offset + 1);
      for (size_t layer = 0; layer < blocks.size(); ++layer) {
        const auto& [norm_attn, norm_mlp, eps, w_qkv, w_out, w_gate_up, w_down] = blocks[layer];
#pragma omp master
        {
          shares.update();
          norm_rows(stream, norm_attn, eps);
          product.prepare(w_qkv, normed_p, B, d);
        }
#pragma omp barrier
        compute(qkv_p, qkv_width, nullptr);
#pragma omp barrier
        StepAttention<T> attention = first_layer;
        attention.keys += static_cast<int64_t>(layer) * layer_size;
        attention.values += static_cast<int64_t>(layer) * layer_size;
        for (auto [task, end] = share(B * KV, 1); task < end; ++task) attention.write(task / KV, task % KV);
#pragma omp barrier
        for (auto [task, end] = share(B * n_head, 1); task < end; ++task) {
          attention.attend(task / n_head, task % n_head, scratch);
        }
#pragma omp barrier
#pragma omp master
        {
          shares.update();
          product.prepare(w_out, attended_p, B, attention_width);
        }
#pragma omp barrier
        compute(mid_p, d, stream);  // mid = x + out(attention)
#pragma omp barrier
#pragma omp master
        {
          shares.update();
          norm_rows(mid_p, norm_mlp, eps);
          product.prepare(w_gate_up, normed_p, B, d);
        }
#pragma omp barrier
        compute(gate_up_p, 2 * hidden, nullptr);
#pragma omp barrier
#pragma omp master
        {
          shares.update();
#if defined(__AVX512F__)
          for (int64_t r = 0; r < B; ++r) {
            swiglu_row(gate_up_p + r * 2 * hidden, gate_up_p + r * 2 * hidden + hidden, act_p + r * hidden, hidden);
          }
#else
          at::mul_out(act, at::silu(gate_up.narrow(1, 0, hidden)), gate_up.narrow(1, hidden, hidden));
#endif
          product.prepare(w_down, act_p, B, hidden);
        }
#pragma omp barrier
        compute(stream, d, mid_p);  // x = mid + down(silu(gate) * up)
#pragma omp barrier
      }
      if (logits != nullptr) {
        const auto& [embedding, final_norm, final_eps, head] = *ends;
#pragma omp master
        {
          shares.update();
          norm_rows(stream, final_norm, final_eps);
          product.prepare(head, normed_p, B, d);
        }
#pragma omp barrier
        compute(logits, std::get<0>(head).size(0), nullptr);
      }
    }
  }
};

// A setting's value before, switched to `on` where given (the tests meet each per-CPU choice both ways).
static bool switched(bool& setting, std::optional<bool> on) {
  const bool was = setting;
  if (on.has_value()) setting = *on;
  return was;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
#if defined(_OPENMP)
  m.attr("parallel") = true;  // at::parallel_for splits work between torch's threads (built with -fopenmp)
#else
  m.attr("parallel") = false;
#endif
  m.def("matvec", &matvec, "few-row matrix product streaming float32, bfloat16, int8 or packed int4 weights",
        pybind11::arg("x"), pybind11::arg("weight"), pybind11::arg("scales") = pybind11::none(),
        pybind11::arg("zeros") = pybind11::none(), pybind11::arg("group_size") = 0,
        pybind11::arg("bias") = pybind11::none());
  m.def("linear", &linear, "x @ weight.T + bias: few rows streamed, anything else through torch's linear",
        pybind11::arg("x"), pybind11::arg("weight"), pybind11::arg("bias"), pybind11::arg("max_rows"));
  m.def("rms_norm", &rms_norm, "RMSNorm of each row, normalised in fp32 and scaled in x's dtype",
        pybind11::arg("x"), pybind11::arg("weight"), pybind11::arg("eps"));
#if defined(__AVX512F__)
  m.def("silu_mul", &silu_mul, "silu(gate) * up, as the whole-model step computes SwiGLU", pybind11::arg("gate"),
        pybind11::arg("up"));
#endif
  m.def(
      "intel_choices", [](std::optional<bool> on) { return switched(intel_choices, on); },
      "whether the choices measured on Intel CPUs are made (switched to `on` where given); returns the setting before",
      pybind11::arg("on") = pybind11::none());
  m.def(
      "amx_tiles",
      [](std::optional<bool> on) {
#if defined(LM2LLM_TILES)
        return switched(amx_tiles, on);
#else
        TORCH_CHECK(!on.value_or(false), "matvec: this CPU has no AMX tiles");
        return false;
#endif
      },
      "whether bf16 weights meet their inputs in AMX tiles (switched to `on` where given); returns the setting before",
      pybind11::arg("on") = pybind11::none());
  m.def("greedy", &greedy, "each row's first largest logit, or `invalid` for a row with a NaN or nothing above -inf",
        pybind11::arg("logits"), pybind11::arg("invalid"));
  m.def("decode_attention", &decode_attention, "one new token's attention per row: RoPE, KV-cache write, softmax",
        pybind11::arg("qkv"), pybind11::arg("cos"), pybind11::arg("signed_sin"), pybind11::arg("keys"),
        pybind11::arg("values"), pybind11::arg("offset"), pybind11::arg("allowed"), pybind11::arg("n_head"));
  pybind11::class_<DecodeLayers>(m, "DecodeLayers",
                                 "one new token through every block of a LLaMA model: per layer, its norms, "
                                 "attention and SwiGLU MLP",
                                 pybind11::module_local())  // its own type in each build of the kernel
      .def(pybind11::init([](std::vector<BlockWeights> blocks, int64_t n_head, std::optional<EndWeights> ends) {
             return DecodeLayers{std::move(blocks), n_head, std::move(ends)};
           }),
           pybind11::arg("blocks"), pybind11::arg("n_head"), pybind11::arg("ends") = pybind11::none())
      .def("__call__", &DecodeLayers::step, pybind11::arg("x"), pybind11::arg("cos"), pybind11::arg("signed_sin"),
           pybind11::arg("keys"), pybind11::arg("values"), pybind11::arg("offset"), pybind11::arg("allowed"))
      .def("logits", &DecodeLayers::logits, pybind11::arg("ids"), pybind11::arg("cos"), pybind11::arg("signed_sin"),
           pybind11::arg("keys"), pybind11::arg("values"), pybind11::arg("offset"), pybind11::arg("allowed"));
}
