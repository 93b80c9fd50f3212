// XLA FFI handlers of the spin-weighted spherical harmonic transforms on NVIDIA
// GPUs, with the contract of sphcnn/contract.h (shared with the CPU handlers).
// Each transform is two kernels on XLA's stream, no FFT library, no transposes:
//   analysis:  K1 grid_to_orders (ring_dft.h): maps -> Fourier rings F in scratch,
//              K2 analysis (legendre_gemm.h): F -> coefficients;
//   synthesis: K2 synthesis: coefficients -> rings G in scratch,
//              K1 orders_to_grid: G -> maps.
// The autodiff transposes are the same two targets with the other sign and
// ring scale. Handlers are capture-safe and declare command-buffer
// compatibility: the execute path only validates, computes launch geometry and
// launches; work space is the scratch result, lambda the plan's table operand
// or the recurrence inside K2.
// The fused block targets: sphcnn_activated_analysis is the analysis with K1's
// activation prologue; sphcnn_affine_synthesis the synthesis with a batch
// norm's affine map in K1's load; sphcnn_activated_gradient the synthesis with
// K1 differentiating as it stores (with pooling: into scratch, then the unpool
// and derivative kernel of activation_gradient.h), then the bias sums;
// sphcnn_mixing_analysis the (activated) analysis whose K2 ends with a
// convolution's per-degree mixing and a batch norm's partial sums
// (mixing_stage.h), then the energy sums; sphcnn_mixing_gradient the activated
// gradient whose K2 starts with the transposed mixing; sphcnn_affine_gradient
// the affine synthesis's transpose, an analysis whose K2 ends with the batch
// norm's backward (affine_stage.h), then the products' sums.
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "activation_gradient.h"
#include "affine_stage.h"
#include "launch_plan.h"
#include "legendre_gemm.h"
#include "mixing_stage.h"
#include "ring_dft.h"
#include "sphcnn/contract.h"
#include "transforms_cuda.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace sphcnn {
namespace cuda {
namespace {

struct DeviceCtx {
  __device__ __forceinline__ int tid() const { return static_cast<int>(threadIdx.x); }
  __device__ __forceinline__ int64_t block() const { return static_cast<int64_t>(blockIdx.x); }
  __device__ __forceinline__ int64_t blocks() const { return static_cast<int64_t>(gridDim.x); }
  __device__ __forceinline__ void sync() const { __syncthreads(); }
  __device__ __forceinline__ void fence_block() const { __threadfence_block(); }
};

template <typename T>
__global__ void __launch_bounds__(kRingThreads) grid_to_orders_kernel(const RingArgs<T> args) {
  extern __shared__ __align__(16) unsigned char smem[];
  grid_to_orders_block<T>(DeviceCtx{}, args, smem);
}

template <typename T>
__global__ void __launch_bounds__(kRingThreads) orders_to_grid_kernel(const RingArgs<T> args) {
  extern __shared__ __align__(16) unsigned char smem[];
  orders_to_grid_block<T>(DeviceCtx{}, args, smem);
}

template <typename T, typename Tile>
__global__ void __launch_bounds__(kGemmThreads) analysis_table_kernel(const GemmArgs<T> args) {
  extern __shared__ __align__(16) unsigned char smem[];
  analysis_table_block<T, Tile>(DeviceCtx{}, args, smem);
}

template <typename T, typename Tile>
__global__ void __launch_bounds__(kGemmThreads) analysis_otf_kernel(const GemmArgs<T> args) {
  extern __shared__ __align__(16) unsigned char smem[];
  analysis_otf_block<T, Tile>(DeviceCtx{}, args, smem);
}

template <typename T, typename Tile, bool kTable>
__global__ void __launch_bounds__(kGemmThreads) synthesis_kernel(const GemmArgs<T> args) {
  extern __shared__ __align__(16) unsigned char smem[];
  synthesis_block<T, Tile, kTable>(DeviceCtx{}, args, smem);
}

template <typename T>
__global__ void __launch_bounds__(kGradientThreads) activation_gradient_kernel(const GradientArgs<T> args) {
  extern __shared__ __align__(16) unsigned char smem[];
  activation_gradient_block<T>(DeviceCtx{}, args, smem);
}

template <typename T>
__global__ void __launch_bounds__(kGradientThreads) column_sum_kernel(const ColumnSum<T> sum) {
  extern __shared__ __align__(16) unsigned char smem[];
  column_sum_block<T>(DeviceCtx{}, sum, smem);
}

template <typename T>
__global__ void __launch_bounds__(kGemmThreads) analysis_mixing_kernel(const GemmArgs<T> args,
                                                                       const MixingArgs<T> mixing) {
  extern __shared__ __align__(16) unsigned char smem[];
  analysis_mixing_block<T>(DeviceCtx{}, args, mixing, smem);
}

template <typename T>
__global__ void __launch_bounds__(kGemmThreads) synthesis_mixing_kernel(const GemmArgs<T> args,
                                                                        const MixingArgs<T> mixing) {
  extern __shared__ __align__(16) unsigned char smem[];
  synthesis_mixing_block<T>(DeviceCtx{}, args, mixing, smem);
}

template <typename T, typename Tile>
__global__ void __launch_bounds__(kGemmThreads) affine_gradient_kernel(const GemmArgs<T> args,
                                                                       const AffineArgs<T> affine) {
  extern __shared__ __align__(16) unsigned char smem[];
  affine_gradient_block<T, Tile>(DeviceCtx{}, args, affine, smem);
}

template <typename T>
__global__ void __launch_bounds__(kAffineSumThreads) affine_sum_kernel(const GemmArgs<T> args,
                                                                      const AffineArgs<T> affine) {
  affine_sum_block<T>(DeviceCtx{}, args, affine);
}

template <typename T>
__global__ void __launch_bounds__(kEnergyThreads) energy_sum_kernel(const MixingArgs<T> mixing, int shares) {
  energy_sum_block<T>(DeviceCtx{}, mixing, shares);
}

ffi::Error launch_error(const char* target, const char* kernel) {
  const cudaError_t err = cudaGetLastError();
  if (err == cudaSuccess) return ffi::Error::Success();
  return ffi::Error(ffi::ErrorCode::kInternal, std::string(target) + ": launching " + kernel + " failed: " +
                                                   cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
}

// Zeros in `out` on XLA's stream: the outputs of a call that are sums without
// terms (the bias cotangent of an empty batch, the mixed coefficients and
// energies without input channels, the cotangents without output channels),
// for which no kernel is launched.
ffi::Error zero_fill(const char* target, cudaStream_t stream, ffi::AnyBuffer out) {
  if (out.size_bytes() == 0) return ffi::Error::Success();
  cudaMemsetAsync(out.untyped_data(), 0, out.size_bytes(), stream);
  return launch_error(target, "the zeros of an empty sum");
}

template <typename T>
ffi::Error launch_ring(const char* target, bool to_orders, const RingLaunch& rl, RingArgs<T> args,
                       cudaStream_t stream) {
  if (rl.blocks == 0) return ffi::Error::Success();
  const dim3 grid(static_cast<unsigned>(rl.blocks));
  if (to_orders) {
    grid_to_orders_kernel<T><<<grid, kRingThreads, rl.shared_bytes, stream>>>(args);
  } else {
    orders_to_grid_kernel<T><<<grid, kRingThreads, rl.shared_bytes, stream>>>(args);
  }
  return launch_error(target, "the ring DFT");
}

template <typename T, typename Tile>
void launch_analysis_table(const GemmLaunch& gl, const GemmArgs<T>& args, cudaStream_t stream) {
  analysis_table_kernel<T, Tile><<<dim3(static_cast<unsigned>(gl.blocks)), kGemmThreads, gl.shared_bytes, stream>>>(args);
}

template <typename T, typename Tile>
void launch_analysis_otf(const GemmLaunch& gl, const GemmArgs<T>& args, cudaStream_t stream) {
  analysis_otf_kernel<T, Tile><<<dim3(static_cast<unsigned>(gl.blocks)), kGemmThreads, gl.shared_bytes, stream>>>(args);
}

template <typename T, typename Tile>
void launch_synthesis(const GemmLaunch& gl, bool table, const GemmArgs<T>& args, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(gl.blocks));
  if (table) {
    synthesis_kernel<T, Tile, true><<<grid, kGemmThreads, gl.shared_bytes, stream>>>(args);
  } else {
    synthesis_kernel<T, Tile, false><<<grid, kGemmThreads, gl.shared_bytes, stream>>>(args);
  }
}

// K2 with the tile of the plan, for every spin group of kSpinsPerLaunch spins.
template <typename T>
ffi::Error launch_gemm(const char* target, bool analysis, const LaunchPlan& plan, GemmArgs<T> args,
                       ffi::Span<const int64_t> spins, cudaStream_t stream) {
  const GemmLaunch& gl = plan.gemm;
  const bool table = plan.source == LambdaSource::kTable;
  for (int64_t offset = 0; offset < static_cast<int64_t>(spins.size()); offset += kSpinsPerLaunch) {
    args.spins = spin_group(spins.begin(), static_cast<int64_t>(spins.size()), plan.geometry.ell_max,
                             static_cast<int>(offset));
    const int L = plan.geometry.ell_max + 1;
    args.items = static_cast<int64_t>(gl.tiles) * L * args.spins.count;
    GemmLaunch launch = gl;
    launch.blocks = std::min<int64_t>(args.items, gl.max_blocks);
    if (analysis && table) {
      switch (gl.config) {
        case 0: launch_analysis_table<T, AnalysisTile<T, 32, 32>>(launch, args, stream); break;
        case 1: launch_analysis_table<T, AnalysisTile<T, 8, 128>>(launch, args, stream); break;
        default: launch_analysis_table<T, AnalysisTile<T, 128, 8>>(launch, args, stream); break;
      }
    } else if (analysis) {
      switch (gl.config) {
        case 0: launch_analysis_otf<T, AnalysisOtfTile<T, 32, 2>>(launch, args, stream); break;
        case 1: launch_analysis_otf<T, AnalysisOtfTile<T, 16, 2>>(launch, args, stream); break;
        default: launch_analysis_otf<T, AnalysisOtfTile<T, 16, 4>>(launch, args, stream); break;
      }
    } else {
      switch (gl.config) {
        case 0: launch_synthesis<T, SynthesisTile<T, 32, 32>>(launch, table, args, stream); break;
        case 1: launch_synthesis<T, SynthesisTile<T, 8, 128>>(launch, table, args, stream); break;
        default: launch_synthesis<T, SynthesisTile<T, 128, 8>>(launch, table, args, stream); break;
      }
    }
    ffi::Error status = launch_error(target, "the Legendre stage");
    if (status.failure()) return status;
  }
  return ffi::Error::Success();
}

// The prologue of the activated analysis (ring_dft.h), or none (bias null); or
// the affine map of the affine synthesis (factor null: none).
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
StageArgs<T> stage_args(bool analysis, const LaunchPlan& plan, const void* in, const void* scale, const void* table,
                        void* out, void* scratch, int sign, const Prologue& prologue) {
  const Geometry& g = plan.geometry;
  unsigned char* base = static_cast<unsigned char*>(scratch);
  Cpx<T>* rings = reinterpret_cast<Cpx<T>*>(base + plan.rings_offset);

  RingArgs<T> ring{};
  ring.in = analysis ? in : rings;
  ring.out = analysis ? static_cast<void*>(rings) : out;
  ring.ring_scale = static_cast<const T*>(scale);
  ring.global_buffers = plan.ring.global ? reinterpret_cast<Cpx<T>*>(base + plan.ring_buffers_offset) : nullptr;
  ring.n = g.n;
  ring.ell_max = g.ell_max;
  ring.lanes = g.spins * static_cast<int>(g.channels);
  ring.channels = g.channels;
  ring.rows = g.batch * g.spins * g.channels;
  ring.padded_maps = plan.padded_maps;
  ring.tile_rows = plan.ring.tile_rows;
  ring.row_tiles = plan.ring.row_tiles;
  ring.sign = sign;
  ring.real_input = g.real_input;
  ring.plan = ring_plan(g.n);
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
  gemm.table = plan.source == LambdaSource::kTable ? static_cast<const T*>(table) : nullptr;
  gemm.accumulators = plan.gemm.global_accumulators ? reinterpret_cast<Cpx<T>*>(base + plan.accumulators_offset) : nullptr;
  gemm.n = g.n;
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

// K2 of a synthesis with the transposed mixing as its prologue (mixing_stage.h):
// its arguments and launch.
template <typename T>
struct MixingSynthesis {
  MixingArgs<T> args;
  int64_t blocks;
  size_t shared_bytes;
};

template <typename T>
ffi::Error run(const char* target, bool analysis, const LaunchPlan& plan, cudaStream_t stream, const void* in,
               const void* scale, const void* table, void* out, void* scratch, ffi::Span<const int64_t> spins,
               int sign, const Prologue& prologue = Prologue{}, const MixingSynthesis<T>* mixing = nullptr) {
  StageArgs<T> st = stage_args<T>(analysis, plan, in, scale, table, out, scratch, sign, prologue);
  if (analysis) {
    ffi::Error status = launch_ring<T>(target, true, plan.ring, st.ring, stream);
    if (status.failure()) return status;
    return launch_gemm<T>(target, true, plan, st.gemm, spins, stream);
  }
  ffi::Error status;
  if (mixing != nullptr) {
    st.gemm.spins = spin_group(spins.begin(), static_cast<int64_t>(spins.size()), plan.geometry.ell_max, 0);
    synthesis_mixing_kernel<T><<<dim3(static_cast<unsigned>(mixing->blocks)), kGemmThreads, mixing->shared_bytes,
                                 stream>>>(st.gemm, mixing->args);
    status = launch_error(target, "the Legendre stage with the mixing prologue");
  } else {
    status = launch_gemm<T>(target, false, plan, st.gemm, spins, stream);
  }
  if (status.failure()) return status;
  return launch_ring<T>(target, false, plan.ring, st.ring, stream);
}

// K1 (with the prologue), K2 with the mixing epilogue, the energy sums.
template <typename T>
ffi::Error run_mixing(const char* target, const MixingLaunch& ml, cudaStream_t stream, const void* maps,
                      const void* scale, const void* table, void* a, void* scratch, ffi::Span<const int64_t> spins,
                      int sign, const Prologue& prologue, MixingArgs<T> mixing) {
  StageArgs<T> st = stage_args<T>(true, ml.plan, maps, scale, table, a, scratch, sign, prologue);
  ffi::Error status = launch_ring<T>(target, true, ml.plan.ring, st.ring, stream);
  if (status.failure()) return status;
  st.gemm.spins = spin_group(spins.begin(), static_cast<int64_t>(spins.size()), ml.plan.geometry.ell_max, 0);
  analysis_mixing_kernel<T><<<dim3(static_cast<unsigned>(ml.blocks)), kGemmThreads, ml.shared_bytes, stream>>>(
      st.gemm, mixing);
  status = launch_error(target, "the Legendre stage with the mixing epilogue");
  if (status.failure()) return status;
  energy_sum_kernel<T><<<dim3(static_cast<unsigned>(ml.energy_blocks)), kEnergyThreads, 0, stream>>>(mixing,
                                                                                                      ml.shares);
  return launch_error(target, "the energy sums");
}

template <bool kAnalysis>
ffi::Error transform_handler(cudaStream_t stream, ffi::AnyBuffer in, ffi::AnyBuffer scale, ffi::AnyBuffer table,
                             ffi::Result<ffi::AnyBuffer> out, ffi::Result<ffi::AnyBuffer> scratch,
                             ffi::Span<const int64_t> spins, Sign sign, bool degree_major, LambdaSource source) {
  const char* target = kAnalysis ? "sphcnn_analysis" : "sphcnn_synthesis";
  auto g = contract_geometry(target, kAnalysis, in, scale, table, *out, *scratch, spins, sign, degree_major, source,
                             [](const Geometry& geometry, LambdaSource s) {
                               return launch_plan(geometry, kAnalysis, s).scratch_bytes;
                             });
  if (g.has_error()) return g.error();
  if (out->element_count() == 0) return ffi::Error::Success();
  const LaunchPlan plan = launch_plan(*g, kAnalysis, source);
  const int sg = static_cast<int>(sign);
  if (g->is_double) {
    return run<double>(target, kAnalysis, plan, stream, in.untyped_data(), scale.untyped_data(), table.untyped_data(),
                       out->untyped_data(), scratch->untyped_data(), spins, sg);
  }
  return run<float>(target, kAnalysis, plan, stream, in.untyped_data(), scale.untyped_data(), table.untyped_data(),
                    out->untyped_data(), scratch->untyped_data(), spins, sg);
}

ffi::Error activated_handler(cudaStream_t stream, ffi::AnyBuffer maps, ffi::AnyBuffer bias, ffi::AnyBuffer taps,
                             ffi::AnyBuffer scale, ffi::AnyBuffer table, ffi::Result<ffi::AnyBuffer> out,
                             ffi::Result<ffi::AnyBuffer> scratch, ffi::Span<const int64_t> spins, Sign sign,
                             bool degree_major, LambdaSource source, int64_t leaky_spin, bool pool, double epsilon,
                             double slope) {
  const char* target = "sphcnn_activated_analysis";
  auto g = contract_geometry(target, true, maps, scale, table, *out, *scratch, spins, sign, degree_major, source,
                             [](const Geometry& geometry, LambdaSource s) {
                               return launch_plan(geometry, true, s).scratch_bytes;
                             },
                             pool ? 2 : 1);
  if (g.has_error()) return g.error();
  if (ffi::Error e = check_activation(target, *g, bias, taps, leaky_spin, pool); e.failure()) return e;
  if (out->element_count() == 0) return ffi::Error::Success();
  const LaunchPlan plan = launch_plan(*g, true, source);
  Prologue prologue;
  prologue.bias = bias.untyped_data();
  prologue.taps = pool ? taps.untyped_data() : nullptr;
  prologue.leaky_spin = static_cast<int>(leaky_spin);
  prologue.epsilon = epsilon;
  prologue.slope = slope;
  const int sg = static_cast<int>(sign);
  if (g->is_double) {
    return run<double>(target, true, plan, stream, maps.untyped_data(), scale.untyped_data(), table.untyped_data(),
                       out->untyped_data(), scratch->untyped_data(), spins, sg, prologue);
  }
  return run<float>(target, true, plan, stream, maps.untyped_data(), scale.untyped_data(), table.untyped_data(),
                    out->untyped_data(), scratch->untyped_data(), spins, sg, prologue);
}

ffi::Error affine_handler(cudaStream_t stream, ffi::AnyBuffer a, ffi::AnyBuffer factor, ffi::AnyBuffer offset,
                          ffi::AnyBuffer scale, ffi::AnyBuffer table, ffi::Result<ffi::AnyBuffer> out,
                          ffi::Result<ffi::AnyBuffer> scratch, ffi::Span<const int64_t> spins, Sign sign,
                          bool degree_major, LambdaSource source) {
  const char* target = "sphcnn_affine_synthesis";
  auto g = contract_geometry(target, false, a, scale, table, *out, *scratch, spins, sign, degree_major, source,
                             [](const Geometry& geometry, LambdaSource s) {
                               return launch_plan(geometry, false, s).scratch_bytes;
                             });
  if (g.has_error()) return g.error();
  if (ffi::Error e = check_affine(target, *g, a, factor, offset); e.failure()) return e;
  if (out->element_count() == 0) return ffi::Error::Success();
  const LaunchPlan plan = launch_plan(*g, false, source);
  Prologue prologue;
  prologue.factor = factor.untyped_data();
  prologue.offset = offset.untyped_data();
  for (size_t i = 0; i < spins.size(); ++i) {
    if (spins[i] == 0) prologue.zero_spin = static_cast<int>(i);
  }
  const int sg = static_cast<int>(sign);
  if (g->is_double) {
    return run<double>(target, false, plan, stream, a.untyped_data(), scale.untyped_data(), table.untyped_data(),
                       out->untyped_data(), scratch->untyped_data(), spins, sg, prologue);
  }
  return run<float>(target, false, plan, stream, a.untyped_data(), scale.untyped_data(), table.untyped_data(),
                    out->untyped_data(), scratch->untyped_data(), spins, sg, prologue);
}

ffi::Error mixing_handler(cudaStream_t stream, ffi::AnyBuffer maps, ffi::AnyBuffer bias, ffi::AnyBuffer taps,
                          ffi::AnyBuffer filters, ffi::AnyBuffer scale, ffi::AnyBuffer table,
                          ffi::Result<ffi::AnyBuffer> mixed, ffi::Result<ffi::AnyBuffer> a,
                          ffi::Result<ffi::AnyBuffer> energy, ffi::Result<ffi::AnyBuffer> scratch,
                          ffi::Span<const int64_t> spins, Sign sign, bool degree_major, LambdaSource source,
                          int64_t leaky_spin, bool pool, double epsilon, double slope, bool activate) {
  const char* target = "sphcnn_mixing_analysis";
  const auto widths = filters.dimensions();
  const int out_spins = widths.size() == 5 ? static_cast<int>(widths[2]) : 0;
  const int64_t out_channels = widths.size() == 5 ? widths[4] : 0;
  auto g = contract_geometry(target, true, maps, scale, table, *a, *scratch, spins, sign, degree_major, source,
                             [&](const Geometry& geometry, LambdaSource s) {
                               return mixing_launch(geometry, s, out_spins, out_channels).scratch_bytes;
                             },
                             pool ? 2 : 1);
  if (g.has_error()) return g.error();
  if (activate) {
    if (ffi::Error e = check_activation(target, *g, bias, taps, leaky_spin, pool); e.failure()) return e;
  } else if (bias.element_count() != 0 || taps.element_count() != 0 || pool) {
    return ffi::Error::InvalidArgument(std::string(target) + ": without activate, bias and taps must be empty "
                                       "and pool false");
  }
  if (ffi::Error e = check_mixing(target, *g, *a, filters, *mixed, *energy); e.failure()) return e;
  const MixingLaunch ml = mixing_launch(*g, source, out_spins, out_channels);
  if (!ml.supported) {
    return ffi::Error::InvalidArgument(std::string(target) + ": needs lambda_source = table and at most " +
                                       std::to_string(kSpinsPerLaunch) + " spins");
  }
  if (a->element_count() == 0) {  // no batch or no input channels: b and its energies sum nothing
    if (ffi::Error e = zero_fill(target, stream, *mixed); e.failure()) return e;
    return zero_fill(target, stream, *energy);
  }
  Prologue prologue;
  if (activate) {
    prologue.bias = bias.untyped_data();
    prologue.taps = pool ? taps.untyped_data() : nullptr;
    prologue.leaky_spin = static_cast<int>(leaky_spin);
    prologue.epsilon = epsilon;
    prologue.slope = slope;
  }
  unsigned char* base = static_cast<unsigned char*>(scratch->untyped_data());
  const int sg = static_cast<int>(sign);
  if (mixed->element_count() == 0) {  // no output channels: a alone, by the (activated) analysis
    if (g->is_double) {
      return run<double>(target, true, ml.plan, stream, maps.untyped_data(), scale.untyped_data(),
                         table.untyped_data(), a->untyped_data(), base, spins, sg, prologue);
    }
    return run<float>(target, true, ml.plan, stream, maps.untyped_data(), scale.untyped_data(), table.untyped_data(),
                      a->untyped_data(), base, spins, sg, prologue);
  }
  auto args_of = [&](auto zero) {
    using T = decltype(zero);
    MixingArgs<T> x{};
    x.filters = static_cast<const Cpx<T>*>(filters.untyped_data());
    x.mixed = static_cast<Cpx<T>*>(mixed->untyped_data());
    x.partials = reinterpret_cast<T*>(base + ml.partials_offset);
    x.energy = static_cast<T*>(energy->untyped_data());
    x.out_spins = out_spins;
    x.out_channels = out_channels;
    x.batch = g->batch;
    x.batch_tile = ml.batch_tile;
    x.degree_tiles = ml.degree_tiles;
    const SpectralStrides strides = spectral_strides(*g, out_spins, out_channels);
    x.mixed_batch_stride = strides.batch;
    x.mixed_degree_stride = strides.degree;
    x.items = ml.items;
    return x;
  };
  if (g->is_double) {
    return run_mixing<double>(target, ml, stream, maps.untyped_data(), scale.untyped_data(), table.untyped_data(),
                              a->untyped_data(), base, spins, sg, prologue, args_of(0.0));
  }
  return run_mixing<float>(target, ml, stream, maps.untyped_data(), scale.untyped_data(), table.untyped_data(),
                           a->untyped_data(), base, spins, sg, prologue, args_of(0.0f));
}

// K1 of the analysis of ct, K2 with the batch norm's gradient epilogue for every
// spin group, the products' sums.
template <typename T>
ffi::Error run_affine_gradient(const char* target, const AffineLaunch& al, cudaStream_t stream, const void* ct,
                               const void* scale, const void* table, void* ct_a, void* scratch,
                               ffi::Span<const int64_t> spins, int sign, AffineArgs<T> affine) {
  StageArgs<T> st = stage_args<T>(true, al.plan, ct, scale, table, ct_a, scratch, sign, Prologue{});
  ffi::Error status = launch_ring<T>(target, true, al.plan.ring, st.ring, stream);
  if (status.failure()) return status;
  const GemmLaunch& gl = al.plan.gemm;
  const size_t shared = affine_table_shared<T>(gl.config);
  for (int64_t offset = 0; offset < static_cast<int64_t>(spins.size()); offset += kSpinsPerLaunch) {
    GemmArgs<T> args = st.gemm;
    args.spins = spin_group(spins.begin(), static_cast<int64_t>(spins.size()), al.plan.geometry.ell_max,
                            static_cast<int>(offset));
    args.items = static_cast<int64_t>(gl.tiles) * al.plan.geometry.L() * args.spins.count;
    const dim3 grid(static_cast<unsigned>(std::min<int64_t>(args.items, INT_MAX)));
    switch (gl.config) {
      case 0: affine_gradient_kernel<T, AnalysisTile<T, 32, 32>><<<grid, kGemmThreads, shared, stream>>>(args, affine); break;
      case 1: affine_gradient_kernel<T, AnalysisTile<T, 8, 128>><<<grid, kGemmThreads, shared, stream>>>(args, affine); break;
      default: affine_gradient_kernel<T, AnalysisTile<T, 128, 8>><<<grid, kGemmThreads, shared, stream>>>(args, affine); break;
    }
    status = launch_error(target, "the Legendre stage with the batch norm's gradient");
    if (status.failure()) return status;
  }
  affine_sum_kernel<T><<<dim3(static_cast<unsigned>(al.sum_blocks)), kAffineSumThreads, 0, stream>>>(st.gemm, affine);
  return launch_error(target, "the products' sums");
}

ffi::Error affine_gradient_handler(cudaStream_t stream, ffi::AnyBuffer ct, ffi::AnyBuffer a, ffi::AnyBuffer factor,
                                   ffi::AnyBuffer scale, ffi::AnyBuffer table, ffi::Result<ffi::AnyBuffer> ct_a,
                                   ffi::Result<ffi::AnyBuffer> products, ffi::Result<ffi::AnyBuffer> constant,
                                   ffi::Result<ffi::AnyBuffer> scratch, ffi::Span<const int64_t> spins, Sign sign,
                                   bool degree_major, LambdaSource source) {
  const char* target = "sphcnn_affine_gradient";
  auto g = contract_geometry(target, true, ct, scale, table, *ct_a, *scratch, spins, sign, degree_major, source,
                             [](const Geometry& geometry, LambdaSource s) {
                               return affine_gradient_launch(geometry, s).scratch_bytes;
                             });
  if (g.has_error()) return g.error();
  if (g->real_input) return ffi::Error::InvalidArgument(std::string(target) + ": ct must be complex");
  if (ffi::Error e = check_affine_gradient(target, *g, *ct_a, a, factor, *products, *constant); e.failure()) {
    return e;
  }
  const AffineLaunch al = affine_gradient_launch(*g, source);
  if (!al.supported) return ffi::Error::InvalidArgument(std::string(target) + ": needs lambda_source = table");
  if (ct_a->element_count() == 0) return ffi::Error::Success();
  unsigned char* base = static_cast<unsigned char*>(scratch->untyped_data());
  auto affine_of = [&](auto zero) {
    using T = decltype(zero);
    AffineArgs<T> x{};
    x.input = static_cast<const Cpx<T>*>(a.untyped_data());
    x.factor = static_cast<const Cpx<T>*>(factor.untyped_data());
    x.shares = reinterpret_cast<Cpx<T>*>(base + al.shares_offset);
    x.products = static_cast<Cpx<T>*>(products->untyped_data());
    x.constant = static_cast<Cpx<T>*>(constant->untyped_data());
    x.degree_tiles = al.degree_tiles;
    x.batch = g->batch;
    return x;
  };
  const int sg = static_cast<int>(sign);
  if (g->is_double) {
    return run_affine_gradient<double>(target, al, stream, ct.untyped_data(), scale.untyped_data(),
                                       table.untyped_data(), ct_a->untyped_data(), base, spins, sg, affine_of(0.0));
  }
  return run_affine_gradient<float>(target, al, stream, ct.untyped_data(), scale.untyped_data(), table.untyped_data(),
                                    ct_a->untyped_data(), base, spins, sg, affine_of(0.0f));
}

template <typename T>
ffi::Error run_gradient(const char* target, const LaunchPlan& plan, cudaStream_t stream, const void* ct,
                        const void* scale, const void* table, void* scratch, ffi::Span<const int64_t> spins, int sign,
                        GradientArgs<T> args, const MixingSynthesis<T>* mixing = nullptr) {
  ffi::Error status;
  if (args.taps == nullptr) {
    // without pooling K1 of the synthesis differentiates as it stores (ring_dft.h, gradient_store)
    Prologue epilogue;
    epilogue.bias = args.bias;
    epilogue.leaky_spin = args.leaky_spin;
    epilogue.epsilon = static_cast<double>(args.epsilon);
    epilogue.slope = static_cast<double>(args.slope);
    epilogue.gradient_maps = args.maps;
    epilogue.gradient_partials = args.partials;
    status = run<T>(target, false, plan, stream, ct, scale, table, args.ct_maps, scratch, spins, sign, epilogue,
                    mixing);
  } else {
    status = run<T>(target, false, plan, stream, ct, scale, table, const_cast<Cpx<T>*>(args.pooled), scratch, spins,
                    sign, Prologue{}, mixing);
    if (status.failure()) return status;
    activation_gradient_kernel<T><<<dim3(static_cast<unsigned>(gradient_blocks(args))), kGradientThreads,
                                    gradient_shared_bytes<T>(), stream>>>(args);
    status = launch_error(target, "the nonlinearity's gradient");
  }
  if (status.failure()) return status;
  for (const ColumnSum<T>& level : {bias_chunk_sums(args), bias_total(args)}) {
    column_sum_kernel<T><<<dim3(static_cast<unsigned>(column_sum_blocks(level))), kGradientThreads,
                           gradient_shared_bytes<T>(), stream>>>(level);
    status = launch_error(target, "the bias sums");
    if (status.failure()) return status;
  }
  return status;
}

template <typename T>
GradientArgs<T> gradient_args(const Geometry& g, const GradientScratch& layout, void* scratch, ffi::AnyBuffer maps,
                              ffi::AnyBuffer bias, ffi::AnyBuffer taps, ffi::AnyBuffer ct_maps,
                              ffi::AnyBuffer ct_bias, int factor, int64_t leaky_spin, bool pool, double epsilon,
                              double slope) {
  unsigned char* base = static_cast<unsigned char*>(scratch);
  GradientArgs<T> a{};
  a.pooled = reinterpret_cast<const Cpx<T>*>(base + layout.pooled_offset);
  a.maps = static_cast<const Cpx<T>*>(maps.untyped_data());
  a.bias = static_cast<const T*>(bias.untyped_data());
  a.taps = pool ? static_cast<const T*>(taps.untyped_data()) : nullptr;
  a.ct_maps = static_cast<Cpx<T>*>(ct_maps.untyped_data());
  a.partials = reinterpret_cast<T*>(base + layout.partials_offset);
  a.chunk_sums = reinterpret_cast<T*>(base + layout.chunk_sums_offset);
  a.ct_bias = static_cast<T*>(ct_bias.untyped_data());
  a.n = g.n;
  a.n_in = factor * g.n;
  a.lanes = g.spins * static_cast<int>(g.channels);
  a.channels = g.channels;
  a.batch = g.batch;
  a.leaky_spin = static_cast<int>(leaky_spin);
  a.epsilon = static_cast<T>(epsilon);
  a.slope = static_cast<T>(slope);
  return a;
}

ffi::Error gradient_handler(cudaStream_t stream, ffi::AnyBuffer ct, ffi::AnyBuffer maps, ffi::AnyBuffer bias,
                            ffi::AnyBuffer taps, ffi::AnyBuffer scale, ffi::AnyBuffer table,
                            ffi::Result<ffi::AnyBuffer> ct_maps, ffi::Result<ffi::AnyBuffer> ct_bias,
                            ffi::Result<ffi::AnyBuffer> scratch, ffi::Span<const int64_t> spins, Sign sign,
                            bool degree_major, LambdaSource source, int64_t leaky_spin, bool pool, double epsilon,
                            double slope) {
  const char* target = "sphcnn_activated_gradient";
  const int factor = pool ? 2 : 1;
  auto g = contract_geometry(target, false, ct, scale, table, *ct_maps, *scratch, spins, sign, degree_major, source,
                             [factor](const Geometry& geometry, LambdaSource s) {
                               return activated_gradient_scratch(geometry, s, factor * geometry.n).bytes;
                             },
                             factor);
  if (g.has_error()) return g.error();
  if (ffi::Error e = check_activation(target, *g, bias, taps, leaky_spin, pool); e.failure()) return e;
  if (ffi::Error e = check_gradient(target, *g, maps, *ct_maps, bias, *ct_bias); e.failure()) return e;
  if (ct_maps->element_count() == 0) return zero_fill(target, stream, *ct_bias);  // an empty batch
  const LaunchPlan plan = launch_plan(*g, false, source);
  const GradientScratch layout = activated_gradient_scratch(*g, source, factor * g->n);
  void* base = scratch->untyped_data();
  const int sg = static_cast<int>(sign);
  if (g->is_double) {
    return run_gradient<double>(target, plan, stream, ct.untyped_data(), scale.untyped_data(), table.untyped_data(),
                                base, spins, sg,
                                gradient_args<double>(*g, layout, base, maps, bias, taps, *ct_maps, *ct_bias, factor,
                                                      leaky_spin, pool, epsilon, slope));
  }
  return run_gradient<float>(target, plan, stream, ct.untyped_data(), scale.untyped_data(), table.untyped_data(),
                             base, spins, sg,
                             gradient_args<float>(*g, layout, base, maps, bias, taps, *ct_maps, *ct_bias, factor,
                                                  leaky_spin, pool, epsilon, slope));
}

ffi::Error mixing_gradient_handler(cudaStream_t stream, ffi::AnyBuffer ct_b, ffi::AnyBuffer filters,
                                   ffi::AnyBuffer maps, ffi::AnyBuffer bias, ffi::AnyBuffer taps,
                                   ffi::AnyBuffer scale, ffi::AnyBuffer table, ffi::Result<ffi::AnyBuffer> ct_maps,
                                   ffi::Result<ffi::AnyBuffer> ct_bias, ffi::Result<ffi::AnyBuffer> scratch,
                                   ffi::Span<const int64_t> spins, Sign sign, bool degree_major,
                                   LambdaSource source, int64_t leaky_spin, bool pool, double epsilon,
                                   double slope) {
  const char* target = "sphcnn_mixing_gradient";
  const int factor = pool ? 2 : 1;
  const auto widths = filters.dimensions();
  const std::array<int64_t, 2> out = {widths.size() == 5 ? widths[2] : 0, widths.size() == 5 ? widths[4] : 0};
  auto g = contract_geometry(target, false, ct_b, scale, table, *ct_maps, *scratch, spins, sign, degree_major, source,
                             [factor](const Geometry& geometry, LambdaSource s) {
                               return mixing_gradient_launch(geometry, s, factor * geometry.n).scratch_bytes;
                             },
                             factor, out);
  if (g.has_error()) return g.error();
  if (ffi::Error e = check_filters(target, *g, ct_b.element_type(), filters); e.failure()) return e;
  if (ffi::Error e = check_activation(target, *g, bias, taps, leaky_spin, pool); e.failure()) return e;
  if (ffi::Error e = check_gradient(target, *g, maps, *ct_maps, bias, *ct_bias); e.failure()) return e;
  const MixingGradientLaunch ml = mixing_gradient_launch(*g, source, factor * g->n);
  if (!ml.supported) {
    return ffi::Error::InvalidArgument(std::string(target) + ": needs lambda_source = table and at most " +
                                       std::to_string(kSpinsPerLaunch) + " spins");
  }
  if (ct_maps->element_count() == 0) return zero_fill(target, stream, *ct_bias);  // an empty batch
  if (ct_b.element_count() == 0) {  // no output channels: nothing depends on the maps or the bias
    if (ffi::Error e = zero_fill(target, stream, *ct_maps); e.failure()) return e;
    return zero_fill(target, stream, *ct_bias);
  }
  unsigned char* base = static_cast<unsigned char*>(scratch->untyped_data());
  void* coefficients = base + ml.coefficients_offset;
  auto mixing_of = [&](auto zero) {
    using T = decltype(zero);
    MixingSynthesis<T> m{};
    m.args.filters = static_cast<const Cpx<T>*>(filters.untyped_data());
    m.args.mixed_cotangent = static_cast<const Cpx<T>*>(ct_b.untyped_data());
    m.args.coefficients = static_cast<Cpx<T>*>(coefficients);
    m.args.out_spins = static_cast<int>(out[0]);
    m.args.out_channels = out[1];
    m.args.batch = g->batch;
    m.args.batch_tile = ml.batch_tile;
    const SpectralStrides strides = spectral_strides(*g, out[0], out[1]);
    m.args.mixed_batch_stride = strides.batch;
    m.args.mixed_degree_stride = strides.degree;
    m.args.items = ml.items;
    m.blocks = ml.blocks;
    m.shared_bytes = ml.shared_bytes;
    return m;
  };
  const int sg = static_cast<int>(sign);
  if (g->is_double) {
    const MixingSynthesis<double> m = mixing_of(0.0);
    return run_gradient<double>(target, ml.plan, stream, coefficients, scale.untyped_data(), table.untyped_data(),
                                base, spins, sg,
                                gradient_args<double>(*g, ml.scratch, base, maps, bias, taps, *ct_maps, *ct_bias,
                                                      factor, leaky_spin, pool, epsilon, slope),
                                &m);
  }
  const MixingSynthesis<float> m = mixing_of(0.0f);
  return run_gradient<float>(target, ml.plan, stream, coefficients, scale.untyped_data(), table.untyped_data(), base,
                             spins, sg,
                             gradient_args<float>(*g, ml.scratch, base, maps, bias, taps, *ct_maps, *ct_bias, factor,
                                                  leaky_spin, pool, epsilon, slope),
                             &m);
}

}  // namespace
}  // namespace cuda
}  // namespace sphcnn

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnAnalysisCuda, sphcnn::cuda::transform_handler<true>,
                              SPHCNN_CONTRACT_BINDING(xla::ffi::PlatformStream<cudaStream_t>),
                              {xla::ffi::Traits::kCmdBufferCompatible});

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnSynthesisCuda, sphcnn::cuda::transform_handler<false>,
                              SPHCNN_CONTRACT_BINDING(xla::ffi::PlatformStream<cudaStream_t>),
                              {xla::ffi::Traits::kCmdBufferCompatible});

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnActivatedAnalysisCuda, sphcnn::cuda::activated_handler,
                              SPHCNN_ACTIVATED_BINDING(xla::ffi::PlatformStream<cudaStream_t>),
                              {xla::ffi::Traits::kCmdBufferCompatible});

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnActivatedGradientCuda, sphcnn::cuda::gradient_handler,
                              SPHCNN_GRADIENT_BINDING(xla::ffi::PlatformStream<cudaStream_t>),
                              {xla::ffi::Traits::kCmdBufferCompatible});

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnMixingAnalysisCuda, sphcnn::cuda::mixing_handler,
                              SPHCNN_MIXING_ANALYSIS_BINDING(xla::ffi::PlatformStream<cudaStream_t>),
                              {xla::ffi::Traits::kCmdBufferCompatible});

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnMixingGradientCuda, sphcnn::cuda::mixing_gradient_handler,
                              SPHCNN_MIXING_GRADIENT_BINDING(xla::ffi::PlatformStream<cudaStream_t>),
                              {xla::ffi::Traits::kCmdBufferCompatible});

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnAffineGradientCuda, sphcnn::cuda::affine_gradient_handler,
                              SPHCNN_AFFINE_GRADIENT_BINDING(xla::ffi::PlatformStream<cudaStream_t>),
                              {xla::ffi::Traits::kCmdBufferCompatible});

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnAffineSynthesisCuda, sphcnn::cuda::affine_handler,
                              SPHCNN_CONTRACT_AFFINE_BINDING(xla::ffi::PlatformStream<cudaStream_t>),
                              {xla::ffi::Traits::kCmdBufferCompatible});
