// What the CUDA handlers share (transforms_cuda.cu, fused_cuda.cu): the device
// context of the kernels, the call context and the handler skeleton, and the
// launches of the transforms' two kernels, K1 (ring_dft.h) and K2
// (legendre_gemm.h), that the fused targets reuse with their own stages at the
// extension points of sphcnn/contract.h. A handler decodes its call with
// decode_call (the contract's checks and what every launch takes from the
// call; decode_grid_call for the grid targets), runs its target's own checks,
// and ends with execute (an empty output, or the target's launches in the
// data's precision).
#pragma once

#include <cuda_runtime.h>

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "launch_plan.h"
#include "legendre_gemm.h"
#include "ring_dft.h"
#include "sphcnn/contract.h"
#include "xla/ffi/api/ffi.h"

namespace sphcnn {
namespace cuda {

// The context of the block functions (block_common.h) in a __global__ kernel.
struct DeviceCtx {
  __device__ __forceinline__ int tid() const { return static_cast<int>(threadIdx.x); }
  __device__ __forceinline__ int64_t block() const { return static_cast<int64_t>(blockIdx.x); }
  __device__ __forceinline__ int64_t blocks() const { return static_cast<int64_t>(gridDim.x); }
  __device__ __forceinline__ void sync() const { __syncthreads(); }
  __device__ __forceinline__ void fence_block() const { __threadfence_block(); }
};

inline xla::ffi::Error launch_error(const char* target, const char* kernel) {
  const cudaError_t err = cudaGetLastError();
  if (err == cudaSuccess) return xla::ffi::Error::Success();
  return xla::ffi::Error(xla::ffi::ErrorCode::kInternal, std::string(target) + ": launching " + kernel + " failed: " +
                                                             cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
}

// What every CUDA handler of the contract takes from its call.
struct Call {
  const char* target;
  Geometry g;
  cudaStream_t stream;         // XLA's
  LambdaSource source;
  const void* scale;           // the ring scale (nlat,) in the real dtype of the data
  const void* table;           // the packed lambda table, or null: the recurrence
  unsigned char* scratch;      // the scratch result
  xla::ffi::Span<const int64_t> spins;
  int sign;
  const void* theta = nullptr;  // a grid target's ring_theta (2, nlat) on the device, the data's real dtype;
                                // null: the n x n grid
  bool mirrored = false;        // a grid target's attribute mirrored (sphcnn/contract.h)
};

// The call-context builder: the contract's checks of the call (with their
// error messages; scratch_bytes(geometry, source) is the target's scratch
// size), then its geometry, ring scale, lambda source, spins and sign.
// pool_factor and spectral_widths as contract_geometry's.
template <typename ScratchBytes>
xla::ffi::ErrorOr<Call> decode_call(const char* target, bool analysis, cudaStream_t stream,
                                    const xla::ffi::AnyBuffer& in, const xla::ffi::AnyBuffer& scale,
                                    const xla::ffi::AnyBuffer& table, const xla::ffi::AnyBuffer& out,
                                    const xla::ffi::AnyBuffer& scratch, xla::ffi::Span<const int64_t> spins,
                                    Sign sign, bool degree_major, LambdaSource source, ScratchBytes scratch_bytes,
                                    int pool_factor = 1, std::array<int64_t, 2> spectral_widths = {-1, -1}) {
  auto g = contract_geometry(target, analysis, in, scale, table, out, scratch, spins, sign, degree_major, source,
                             scratch_bytes, pool_factor, spectral_widths);
  if (g.has_error()) return xla::ffi::Unexpected(g.error());
  const void* lambda = source == LambdaSource::kTable ? table.untyped_data() : nullptr;
  return Call{target, *g, stream, source, scale.untyped_data(), lambda,
              static_cast<unsigned char*>(scratch.untyped_data()), spins, static_cast<int>(sign)};
}

// The same for the grid targets (sphcnn/contract.h): any nlat x nlon grid, lambda
// on the fly, the ring colatitudes in the device operand ring_theta (checked for
// its dtype and size only: its values stay on the device, so the attribute
// `mirrored` is taken as given), the scratch of grid_launch_plan.
inline xla::ffi::ErrorOr<Call> decode_grid_call(const char* target, bool analysis, cudaStream_t stream,
                                                const xla::ffi::AnyBuffer& in, const xla::ffi::AnyBuffer& scale,
                                                const xla::ffi::AnyBuffer& table, const xla::ffi::AnyBuffer& out,
                                                const xla::ffi::AnyBuffer& scratch,
                                                xla::ffi::Span<const int64_t> spins, Sign sign, bool degree_major,
                                                LambdaSource source, const xla::ffi::AnyBuffer& ring_theta,
                                                bool mirrored) {
  auto g = contract_geometry(
      target, analysis, in, scale, table, out, scratch, spins, sign, degree_major, source,
      [analysis, mirrored](const Geometry& geometry, LambdaSource) {
        return grid_launch_plan(geometry, analysis, mirrored).scratch_bytes;
      },
      1, {-1, -1}, true);
  if (g.has_error()) return xla::ffi::Unexpected(g.error());
  if (xla::ffi::Error e = check_ring_theta(target, *g, ring_theta, nullptr); e.failure()) {
    return xla::ffi::Unexpected(e);
  }
  return Call{target, *g, stream, source, scale.untyped_data(), nullptr,
              static_cast<unsigned char*>(scratch.untyped_data()), spins, static_cast<int>(sign),
              ring_theta.untyped_data(), mirrored};
}

// Zeros in `out` on XLA's stream: the outputs of a call that are sums without
// terms (the bias cotangent of an empty batch, the mixed coefficients and
// energies without input channels, the cotangents without output channels),
// for which no kernel is launched.
inline xla::ffi::Error zero_fill(const Call& call, const xla::ffi::AnyBuffer& out) {
  if (out.size_bytes() == 0) return xla::ffi::Error::Success();
  cudaMemsetAsync(out.untyped_data(), 0, out.size_bytes(), call.stream);
  return launch_error(call.target, "the zeros of an empty sum");
}

// The skeleton every CUDA handler ends with, once its operands passed the
// contract's and its target's checks: for an output without elements
// (`empty`) no kernel is launched and only `zeros` are zeroed (zero_fill);
// else body(T()) launches with T the real type of the data (by_precision).
template <typename Body>
xla::ffi::Error execute(const Call& call, bool empty, std::initializer_list<xla::ffi::AnyBuffer> zeros, Body&& body) {
  if (empty) {
    for (const xla::ffi::AnyBuffer& result : zeros) {
      if (xla::ffi::Error e = zero_fill(call, result); e.failure()) return e;
    }
    return xla::ffi::Error::Success();
  }
  return by_precision(call.g.is_double, body);
}

// The fused stages of K1 (ring_dft.h): the RingLoad of the activated analysis
// (bias set), the CoefficientLoad of the affine synthesis (factor set), or the
// RingStore of the activated gradient without pooling (gradient_maps set);
// none by default.
struct Prologue {
  const void* bias = nullptr;  // (S, C) in the real dtype
  const void* taps = nullptr;  // (n, 4) when pooling
  int leaky_spin = -1;
  double epsilon = 0.0, slope = 0.0;
  const void* factor = nullptr;  // (S, C) complex
  const void* offset = nullptr;  // (S, C) complex
  int zero_spin = -1;
  // the gradient epilogue of a synthesis (bias, leaky_spin, epsilon, slope as above)
  const void* gradient_maps = nullptr;  // pre-activation maps (B, n, n, S, C)
  void* gradient_partials = nullptr;    // (n, B S C) bias shares
};

// (batch, degree) strides of coefficients with `spins` x `channels` per order,
// in the call's spectral layout.
struct SpectralStrides {
  int64_t batch, degree;
};

inline SpectralStrides spectral_strides(const Geometry& g, int64_t spins, int64_t channels) {
  const int64_t row = static_cast<int64_t>(g.M()) * spins * channels;
  return g.degree_major ? SpectralStrides{row, g.batch * row} : SpectralStrides{g.L() * row, row};
}

template <typename T>
struct StageArgs {
  RingArgs<T> ring;
  GemmArgs<T> gemm;
};

// The arguments of K1 and K2 of one transform: `in` the maps (analysis) or the
// coefficients, `out` the other; the rings live in the scratch result.
template <typename T>
StageArgs<T> stage_args(const Call& call, bool analysis, const LaunchPlan& plan, const void* in, void* out,
                        const Prologue& prologue) {
  const Geometry& g = plan.geometry;
  unsigned char* base = call.scratch;
  Cpx<T>* rings = reinterpret_cast<Cpx<T>*>(base + plan.rings_offset);

  RingArgs<T> ring{};
  ring.in = analysis ? in : rings;
  ring.out = analysis ? static_cast<void*>(rings) : out;
  ring.ring_scale = static_cast<const T*>(call.scale);
  ring.global_buffers = plan.ring.global ? reinterpret_cast<Cpx<T>*>(base + plan.ring_buffers_offset) : nullptr;
  ring.nlat = g.nlat;
  ring.ell_max = g.ell_max;
  ring.lanes = g.spins * static_cast<int>(g.channels);
  ring.channels = g.channels;
  ring.rows = g.batch * g.spins * g.channels;
  ring.padded_maps = plan.padded_maps;
  ring.tile_rows = plan.ring.tile_rows;
  ring.row_tiles = plan.ring.row_tiles;
  ring.sign = call.sign;
  ring.real_input = g.real_input;
  ring.plan = ring_plan(g.nlon);
  ring.activation_bias = static_cast<const T*>(prologue.bias);
  ring.pool_taps = static_cast<const T*>(prologue.taps);
  ring.leaky_spin = prologue.leaky_spin;
  ring.epsilon = static_cast<T>(prologue.epsilon);
  ring.slope = static_cast<T>(prologue.slope);
  ring.affine_factor = static_cast<const Cpx<T>*>(prologue.factor);
  ring.affine_offset = static_cast<const Cpx<T>*>(prologue.offset);
  ring.zero_spin = prologue.zero_spin;
  ring.gradient_maps = static_cast<const Cpx<T>*>(prologue.gradient_maps);
  ring.gradient_partials = static_cast<T*>(prologue.gradient_partials);

  GemmArgs<T> gemm{};
  gemm.rings_in = analysis ? rings : nullptr;
  gemm.rings_out = analysis ? nullptr : rings;
  gemm.spec_in = analysis ? nullptr : static_cast<const Cpx<T>*>(in);
  gemm.spec_out = analysis ? static_cast<Cpx<T>*>(out) : nullptr;
  gemm.table = static_cast<const T*>(call.table);
  gemm.accumulators = plan.gemm.global_accumulators ? reinterpret_cast<Cpx<T>*>(base + plan.accumulators_offset) : nullptr;
  gemm.n = g.nlat;
  gemm.theta = static_cast<const T*>(call.theta);
  gemm.mirrored = call.mirrored;
  gemm.ell_max = g.ell_max;
  gemm.total_spins = g.spins;
  gemm.channels = g.channels;
  gemm.maps = g.batch * g.channels;
  gemm.padded_maps = plan.padded_maps;
  const SpectralStrides strides = spectral_strides(g, g.spins, g.channels);
  gemm.spec_batch_stride = strides.batch;
  gemm.spec_degree_stride = strides.degree;
  gemm.tiles = plan.gemm.tiles;
  return StageArgs<T>{ring, gemm};
}

// The launches of transforms_cuda.cu (instantiated there for float and double).
// K1 over the plan's ring tiles: grid -> orders (the analysis) or back.
template <typename T>
xla::ffi::Error launch_ring(const Call& call, bool to_orders, const RingLaunch& rl, const RingArgs<T>& args);

// K2 with the tile of the plan, for every spin group of kSpinsPerLaunch spins.
template <typename T>
xla::ffi::Error launch_gemm(const Call& call, bool analysis, const LaunchPlan& plan, GemmArgs<T> args);

// One transform, K1 then K2 (analysis) or K2 then K1, with the fused stages of
// K1 in `prologue`.
template <typename T>
xla::ffi::Error run(const Call& call, bool analysis, const LaunchPlan& plan, const void* in, void* out,
                    const Prologue& prologue = Prologue{});

}  // namespace cuda
}  // namespace sphcnn
