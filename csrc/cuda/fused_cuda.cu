// XLA FFI handlers of the fused block targets on NVIDIA GPUs: the transforms
// of transforms_cuda.cu with a stage of their own at the extension points of
// sphcnn/contract.h, and their kernels (same capture-safe execute path):
// sphcnn_activated_analysis is the analysis with K1's activation prologue (the
// RingLoad); sphcnn_affine_synthesis the synthesis with a batch norm's affine
// map in K1's load (the CoefficientLoad); sphcnn_activated_gradient the
// synthesis with K1 differentiating as it stores (the RingStore; with pooling:
// into scratch, then the unpool and derivative kernel of
// activation_gradient.h), then the bias sums; sphcnn_mixing_analysis the
// (activated) analysis whose K2 ends with a convolution's per-degree mixing
// and a batch norm's partial sums (the CoefficientStore; mixing_stage.h), then
// the energy sums; sphcnn_mixing_gradient the activated gradient whose K2
// starts with the transposed mixing (the CoefficientLoad);
// sphcnn_affine_gradient the affine synthesis's transpose, an analysis whose K2
// ends with the batch norm's backward (the CoefficientStore; affine_stage.h),
// then the products' sums.
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "activation_gradient.h"
#include "affine_stage.h"
#include "handler_cuda.h"
#include "launch_plan.h"
#include "legendre_gemm.h"
#include "mixing_stage.h"
#include "sphcnn/bindings.h"
#include "sphcnn/contract.h"
#include "sphcnn/targets.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace sphcnn {
namespace cuda {
namespace {

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

// The prologue of the activated analysis (ring_dft.h, the RingLoad).
Prologue activation_prologue(const ffi::AnyBuffer& bias, const ffi::AnyBuffer& taps, int64_t leaky_spin, bool pool,
                             double epsilon, double slope) {
  Prologue prologue;
  prologue.bias = bias.untyped_data();
  prologue.taps = pool ? taps.untyped_data() : nullptr;
  prologue.leaky_spin = static_cast<int>(leaky_spin);
  prologue.epsilon = epsilon;
  prologue.slope = slope;
  return prologue;
}

ffi::Error activated_handler(cudaStream_t stream, ffi::AnyBuffer maps, ffi::AnyBuffer bias, ffi::AnyBuffer taps,
                             ffi::AnyBuffer scale, ffi::AnyBuffer table, ffi::Result<ffi::AnyBuffer> out,
                             ffi::Result<ffi::AnyBuffer> scratch, ffi::Span<const int64_t> spins, Sign sign,
                             bool degree_major, LambdaSource source, int64_t leaky_spin, bool pool, double epsilon,
                             double slope) {
  auto call = decode_call("sphcnn_activated_analysis", true, stream, maps, scale, table, *out, *scratch, spins, sign,
                          degree_major, source,
                          [](const Geometry& geometry, LambdaSource s) {
                            return launch_plan(geometry, true, s).scratch_bytes;
                          },
                          pool ? 2 : 1);
  if (call.has_error()) return call.error();
  if (ffi::Error e = check_activation(call->target, call->g, bias, taps, leaky_spin, pool); e.failure()) return e;
  return execute(*call, out->element_count() == 0, {}, [&](auto zero) {
    return run<decltype(zero)>(*call, true, launch_plan(call->g, true, source), maps.untyped_data(),
                               out->untyped_data(), activation_prologue(bias, taps, leaky_spin, pool, epsilon, slope));
  });
}

ffi::Error affine_handler(cudaStream_t stream, ffi::AnyBuffer a, ffi::AnyBuffer factor, ffi::AnyBuffer offset,
                          ffi::AnyBuffer scale, ffi::AnyBuffer table, ffi::Result<ffi::AnyBuffer> out,
                          ffi::Result<ffi::AnyBuffer> scratch, ffi::Span<const int64_t> spins, Sign sign,
                          bool degree_major, LambdaSource source) {
  auto call = decode_call("sphcnn_affine_synthesis", false, stream, a, scale, table, *out, *scratch, spins, sign,
                          degree_major, source, [](const Geometry& geometry, LambdaSource s) {
                            return launch_plan(geometry, false, s).scratch_bytes;
                          });
  if (call.has_error()) return call.error();
  if (ffi::Error e = check_affine(call->target, call->g, a, factor, offset); e.failure()) return e;
  return execute(*call, out->element_count() == 0, {}, [&](auto zero) {
    Prologue prologue;
    prologue.factor = factor.untyped_data();
    prologue.offset = offset.untyped_data();
    for (size_t i = 0; i < spins.size(); ++i) {
      if (spins[i] == 0) prologue.zero_spin = static_cast<int>(i);
    }
    return run<decltype(zero)>(*call, false, launch_plan(call->g, false, source), a.untyped_data(),
                               out->untyped_data(), prologue);
  });
}

// K1 (with the prologue), K2 with the mixing epilogue, the energy sums.
template <typename T>
ffi::Error run_mixing(const Call& call, const MixingLaunch& ml, const void* maps, void* a, const Prologue& prologue,
                      MixingArgs<T> mixing) {
  StageArgs<T> st = stage_args<T>(call, true, ml.plan, maps, a, prologue);
  ffi::Error status = launch_ring<T>(call, true, ml.plan.ring, st.ring);
  if (status.failure()) return status;
  st.gemm.spins = spin_group(call.spins.begin(), static_cast<int64_t>(call.spins.size()), ml.plan.geometry.ell_max, 0);
  analysis_mixing_kernel<T><<<dim3(static_cast<unsigned>(ml.blocks)), kGemmThreads, ml.shared_bytes, call.stream>>>(
      st.gemm, mixing);
  status = launch_error(call.target, "the Legendre stage with the mixing epilogue");
  if (status.failure()) return status;
  energy_sum_kernel<T><<<dim3(static_cast<unsigned>(ml.energy_blocks)), kEnergyThreads, 0, call.stream>>>(mixing,
                                                                                                           ml.shares);
  return launch_error(call.target, "the energy sums");
}

ffi::Error mixing_handler(cudaStream_t stream, ffi::AnyBuffer maps, ffi::AnyBuffer bias, ffi::AnyBuffer taps,
                          ffi::AnyBuffer filters, ffi::AnyBuffer scale, ffi::AnyBuffer table,
                          ffi::Result<ffi::AnyBuffer> mixed, ffi::Result<ffi::AnyBuffer> a,
                          ffi::Result<ffi::AnyBuffer> energy, ffi::Result<ffi::AnyBuffer> scratch,
                          ffi::Span<const int64_t> spins, Sign sign, bool degree_major, LambdaSource source,
                          int64_t leaky_spin, bool pool, double epsilon, double slope, bool activate) {
  const auto widths = filters.dimensions();
  const int out_spins = widths.size() == 5 ? static_cast<int>(widths[2]) : 0;
  const int64_t out_channels = widths.size() == 5 ? widths[4] : 0;
  auto call = decode_call("sphcnn_mixing_analysis", true, stream, maps, scale, table, *a, *scratch, spins, sign,
                          degree_major, source,
                          [&](const Geometry& geometry, LambdaSource s) {
                            return mixing_launch(geometry, s, out_spins, out_channels).scratch_bytes;
                          },
                          pool ? 2 : 1);
  if (call.has_error()) return call.error();
  const char* target = call->target;
  if (activate) {
    if (ffi::Error e = check_activation(target, call->g, bias, taps, leaky_spin, pool); e.failure()) return e;
  } else if (bias.element_count() != 0 || taps.element_count() != 0 || pool) {
    return ffi::Error::InvalidArgument(std::string(target) + ": without activate, bias and taps must be empty "
                                       "and pool false");
  }
  if (ffi::Error e = check_mixing(target, call->g, *a, filters, *mixed, *energy); e.failure()) return e;
  const MixingLaunch ml = mixing_launch(call->g, source, out_spins, out_channels);
  if (!ml.supported) {
    return ffi::Error::InvalidArgument(std::string(target) + ": needs lambda_source = table and at most " +
                                       std::to_string(kSpinsPerLaunch) + " spins");
  }
  // no batch or no input channels: b and its energies sum nothing
  return execute(*call, a->element_count() == 0, {*mixed, *energy}, [&](auto zero) {
    using T = decltype(zero);
    const Prologue prologue =
        activate ? activation_prologue(bias, taps, leaky_spin, pool, epsilon, slope) : Prologue{};
    if (mixed->element_count() == 0) {  // no output channels: a alone, by the (activated) analysis
      return run<T>(*call, true, ml.plan, maps.untyped_data(), a->untyped_data(), prologue);
    }
    MixingArgs<T> x{};
    x.filters = static_cast<const Cpx<T>*>(filters.untyped_data());
    x.mixed = static_cast<Cpx<T>*>(mixed->untyped_data());
    x.partials = reinterpret_cast<T*>(call->scratch + ml.partials_offset);
    x.energy = static_cast<T*>(energy->untyped_data());
    x.out_spins = out_spins;
    x.out_channels = out_channels;
    x.batch = call->g.batch;
    x.batch_tile = ml.batch_tile;
    x.degree_tiles = ml.degree_tiles;
    const SpectralStrides strides = spectral_strides(call->g, out_spins, out_channels);
    x.mixed_batch_stride = strides.batch;
    x.mixed_degree_stride = strides.degree;
    x.items = ml.items;
    return run_mixing<T>(*call, ml, maps.untyped_data(), a->untyped_data(), prologue, x);
  });
}

// K1 of the analysis of ct, K2 with the batch norm's gradient epilogue for every
// spin group, the products' sums.
template <typename T>
ffi::Error run_affine_gradient(const Call& call, const AffineLaunch& al, const void* ct, void* ct_a,
                               AffineArgs<T> affine) {
  StageArgs<T> st = stage_args<T>(call, true, al.plan, ct, ct_a, Prologue{});
  ffi::Error status = launch_ring<T>(call, true, al.plan.ring, st.ring);
  if (status.failure()) return status;
  const GemmLaunch& gl = al.plan.gemm;
  const size_t shared = affine_table_shared<T>(gl.config);
  const cudaStream_t stream = call.stream;
  for (int64_t offset = 0; offset < static_cast<int64_t>(call.spins.size()); offset += kSpinsPerLaunch) {
    GemmArgs<T> args = st.gemm;
    args.spins = spin_group(call.spins.begin(), static_cast<int64_t>(call.spins.size()), al.plan.geometry.ell_max,
                            static_cast<int>(offset));
    args.items = static_cast<int64_t>(gl.tiles) * al.plan.geometry.L() * args.spins.count;
    const dim3 grid(static_cast<unsigned>(std::min<int64_t>(args.items, INT_MAX)));
    switch (gl.config) {
      case 0: affine_gradient_kernel<T, AnalysisTile<T, 32, 32>><<<grid, kGemmThreads, shared, stream>>>(args, affine); break;
      case 1: affine_gradient_kernel<T, AnalysisTile<T, 8, 128>><<<grid, kGemmThreads, shared, stream>>>(args, affine); break;
      default: affine_gradient_kernel<T, AnalysisTile<T, 128, 8>><<<grid, kGemmThreads, shared, stream>>>(args, affine); break;
    }
    status = launch_error(call.target, "the Legendre stage with the batch norm's gradient");
    if (status.failure()) return status;
  }
  affine_sum_kernel<T><<<dim3(static_cast<unsigned>(al.sum_blocks)), kAffineSumThreads, 0, stream>>>(st.gemm, affine);
  return launch_error(call.target, "the products' sums");
}

ffi::Error affine_gradient_handler(cudaStream_t stream, ffi::AnyBuffer ct, ffi::AnyBuffer a, ffi::AnyBuffer factor,
                                   ffi::AnyBuffer scale, ffi::AnyBuffer table, ffi::Result<ffi::AnyBuffer> ct_a,
                                   ffi::Result<ffi::AnyBuffer> products, ffi::Result<ffi::AnyBuffer> constant,
                                   ffi::Result<ffi::AnyBuffer> scratch, ffi::Span<const int64_t> spins, Sign sign,
                                   bool degree_major, LambdaSource source) {
  auto call = decode_call("sphcnn_affine_gradient", true, stream, ct, scale, table, *ct_a, *scratch, spins, sign,
                          degree_major, source, [](const Geometry& geometry, LambdaSource s) {
                            return affine_gradient_launch(geometry, s).scratch_bytes;
                          });
  if (call.has_error()) return call.error();
  const char* target = call->target;
  if (call->g.real_input) return ffi::Error::InvalidArgument(std::string(target) + ": ct must be complex");
  if (ffi::Error e = check_affine_gradient(target, call->g, *ct_a, a, factor, *products, *constant); e.failure()) {
    return e;
  }
  const AffineLaunch al = affine_gradient_launch(call->g, source);
  if (!al.supported) return ffi::Error::InvalidArgument(std::string(target) + ": needs lambda_source = table");
  return execute(*call, ct_a->element_count() == 0, {}, [&](auto zero) {
    using T = decltype(zero);
    AffineArgs<T> x{};
    x.input = static_cast<const Cpx<T>*>(a.untyped_data());
    x.factor = static_cast<const Cpx<T>*>(factor.untyped_data());
    x.shares = reinterpret_cast<Cpx<T>*>(call->scratch + al.shares_offset);
    x.products = static_cast<Cpx<T>*>(products->untyped_data());
    x.constant = static_cast<Cpx<T>*>(constant->untyped_data());
    x.degree_tiles = al.degree_tiles;
    x.batch = call->g.batch;
    return run_affine_gradient<T>(*call, al, ct.untyped_data(), ct_a->untyped_data(), x);
  });
}

// K2 of a synthesis with the transposed mixing as its prologue (mixing_stage.h):
// its arguments and launch.
template <typename T>
struct MixingSynthesis {
  MixingArgs<T> args;
  int64_t blocks;
  size_t shared_bytes;
};

// The synthesis of the gradients: the transform's (run), or with K2 the
// transposed mixing's (`mixing`, sphcnn_mixing_gradient), then K1 with the
// fused stage in `prologue`.
template <typename T>
ffi::Error gradient_synthesis(const Call& call, const LaunchPlan& plan, const void* in, void* out,
                              const Prologue& prologue, const MixingSynthesis<T>* mixing) {
  if (mixing == nullptr) return run<T>(call, false, plan, in, out, prologue);
  StageArgs<T> st = stage_args<T>(call, false, plan, in, out, prologue);
  st.gemm.spins = spin_group(call.spins.begin(), static_cast<int64_t>(call.spins.size()), plan.geometry.ell_max, 0);
  synthesis_mixing_kernel<T><<<dim3(static_cast<unsigned>(mixing->blocks)), kGemmThreads, mixing->shared_bytes,
                               call.stream>>>(st.gemm, mixing->args);
  ffi::Error status = launch_error(call.target, "the Legendre stage with the mixing prologue");
  if (status.failure()) return status;
  return launch_ring<T>(call, false, plan.ring, st.ring);
}

template <typename T>
ffi::Error run_gradient(const Call& call, const LaunchPlan& plan, const void* ct, GradientArgs<T> args,
                        const MixingSynthesis<T>* mixing = nullptr) {
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
    status = gradient_synthesis<T>(call, plan, ct, args.ct_maps, epilogue, mixing);
  } else {
    status = gradient_synthesis<T>(call, plan, ct, const_cast<Cpx<T>*>(args.pooled), Prologue{}, mixing);
    if (status.failure()) return status;
    activation_gradient_kernel<T><<<dim3(static_cast<unsigned>(gradient_blocks(args))), kGradientThreads,
                                    gradient_shared_bytes<T>(), call.stream>>>(args);
    status = launch_error(call.target, "the nonlinearity's gradient");
  }
  if (status.failure()) return status;
  for (const ColumnSum<T>& level : {bias_chunk_sums(args), bias_total(args)}) {
    column_sum_kernel<T><<<dim3(static_cast<unsigned>(column_sum_blocks(level))), kGradientThreads,
                           gradient_shared_bytes<T>(), call.stream>>>(level);
    status = launch_error(call.target, "the bias sums");
    if (status.failure()) return status;
  }
  return status;
}

template <typename T>
GradientArgs<T> gradient_args(const Call& call, const GradientScratch& layout, ffi::AnyBuffer maps,
                              ffi::AnyBuffer bias, ffi::AnyBuffer taps, ffi::AnyBuffer ct_maps,
                              ffi::AnyBuffer ct_bias, int factor, int64_t leaky_spin, bool pool, double epsilon,
                              double slope) {
  const Geometry& g = call.g;
  unsigned char* base = call.scratch;
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
  const int factor = pool ? 2 : 1;
  auto call = decode_call("sphcnn_activated_gradient", false, stream, ct, scale, table, *ct_maps, *scratch, spins,
                          sign, degree_major, source,
                          [factor](const Geometry& geometry, LambdaSource s) {
                            return activated_gradient_scratch(geometry, s, factor * geometry.n).bytes;
                          },
                          factor);
  if (call.has_error()) return call.error();
  const char* target = call->target;
  if (ffi::Error e = check_activation(target, call->g, bias, taps, leaky_spin, pool); e.failure()) return e;
  if (ffi::Error e = check_gradient(target, call->g, maps, *ct_maps, bias, *ct_bias); e.failure()) return e;
  // an empty batch: the bias cotangent sums no terms
  return execute(*call, ct_maps->element_count() == 0, {*ct_bias}, [&](auto zero) {
    using T = decltype(zero);
    const LaunchPlan plan = launch_plan(call->g, false, source);
    const GradientScratch layout = activated_gradient_scratch(call->g, source, factor * call->g.n);
    return run_gradient<T>(*call, plan, ct.untyped_data(),
                           gradient_args<T>(*call, layout, maps, bias, taps, *ct_maps, *ct_bias, factor, leaky_spin,
                                            pool, epsilon, slope));
  });
}

ffi::Error mixing_gradient_handler(cudaStream_t stream, ffi::AnyBuffer ct_b, ffi::AnyBuffer filters,
                                   ffi::AnyBuffer maps, ffi::AnyBuffer bias, ffi::AnyBuffer taps,
                                   ffi::AnyBuffer scale, ffi::AnyBuffer table, ffi::Result<ffi::AnyBuffer> ct_maps,
                                   ffi::Result<ffi::AnyBuffer> ct_bias, ffi::Result<ffi::AnyBuffer> scratch,
                                   ffi::Span<const int64_t> spins, Sign sign, bool degree_major,
                                   LambdaSource source, int64_t leaky_spin, bool pool, double epsilon,
                                   double slope) {
  const int factor = pool ? 2 : 1;
  const auto widths = filters.dimensions();
  const std::array<int64_t, 2> out = {widths.size() == 5 ? widths[2] : 0, widths.size() == 5 ? widths[4] : 0};
  auto call = decode_call("sphcnn_mixing_gradient", false, stream, ct_b, scale, table, *ct_maps, *scratch, spins,
                          sign, degree_major, source,
                          [factor](const Geometry& geometry, LambdaSource s) {
                            return mixing_gradient_launch(geometry, s, factor * geometry.n).scratch_bytes;
                          },
                          factor, out);
  if (call.has_error()) return call.error();
  const char* target = call->target;
  if (ffi::Error e = check_filters(target, call->g, ct_b.element_type(), filters); e.failure()) return e;
  if (ffi::Error e = check_activation(target, call->g, bias, taps, leaky_spin, pool); e.failure()) return e;
  if (ffi::Error e = check_gradient(target, call->g, maps, *ct_maps, bias, *ct_bias); e.failure()) return e;
  const MixingGradientLaunch ml = mixing_gradient_launch(call->g, source, factor * call->g.n);
  if (!ml.supported) {
    return ffi::Error::InvalidArgument(std::string(target) + ": needs lambda_source = table and at most " +
                                       std::to_string(kSpinsPerLaunch) + " spins");
  }
  // an empty batch (the bias cotangent sums no terms), or no output channels
  // (nothing depends on the maps or the bias)
  const bool empty = ct_maps->element_count() == 0 || ct_b.element_count() == 0;
  return execute(*call, empty, {*ct_maps, *ct_bias}, [&](auto zero) {
    using T = decltype(zero);
    void* coefficients = call->scratch + ml.coefficients_offset;
    MixingSynthesis<T> m{};
    m.args.filters = static_cast<const Cpx<T>*>(filters.untyped_data());
    m.args.mixed_cotangent = static_cast<const Cpx<T>*>(ct_b.untyped_data());
    m.args.coefficients = static_cast<Cpx<T>*>(coefficients);
    m.args.out_spins = static_cast<int>(out[0]);
    m.args.out_channels = out[1];
    m.args.batch = call->g.batch;
    m.args.batch_tile = ml.batch_tile;
    const SpectralStrides strides = spectral_strides(call->g, out[0], out[1]);
    m.args.mixed_batch_stride = strides.batch;
    m.args.mixed_degree_stride = strides.degree;
    m.args.items = ml.items;
    m.blocks = ml.blocks;
    m.shared_bytes = ml.shared_bytes;
    return run_gradient<T>(*call, ml.plan, coefficients,
                           gradient_args<T>(*call, ml.scratch, maps, bias, taps, *ct_maps, *ct_bias, factor,
                                            leaky_spin, pool, epsilon, slope),
                           &m);
  });
}

}  // namespace
}  // namespace cuda
}  // namespace sphcnn

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnActivatedAnalysisCuda, sphcnn::cuda::activated_handler,
                              sphcnn::bindings::activated_analysis<xla::ffi::PlatformStream<cudaStream_t>>(),
                              {xla::ffi::Traits::kCmdBufferCompatible});
SPHCNN_TARGET("sphcnn_activated_analysis", SphcnnActivatedAnalysisCuda);

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnActivatedGradientCuda, sphcnn::cuda::gradient_handler,
                              sphcnn::bindings::activated_gradient<xla::ffi::PlatformStream<cudaStream_t>>(),
                              {xla::ffi::Traits::kCmdBufferCompatible});
SPHCNN_TARGET("sphcnn_activated_gradient", SphcnnActivatedGradientCuda);

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnMixingAnalysisCuda, sphcnn::cuda::mixing_handler,
                              sphcnn::bindings::mixing_analysis<xla::ffi::PlatformStream<cudaStream_t>>(),
                              {xla::ffi::Traits::kCmdBufferCompatible});
SPHCNN_TARGET("sphcnn_mixing_analysis", SphcnnMixingAnalysisCuda);

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnMixingGradientCuda, sphcnn::cuda::mixing_gradient_handler,
                              sphcnn::bindings::mixing_gradient<xla::ffi::PlatformStream<cudaStream_t>>(),
                              {xla::ffi::Traits::kCmdBufferCompatible});
SPHCNN_TARGET("sphcnn_mixing_gradient", SphcnnMixingGradientCuda);

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnAffineGradientCuda, sphcnn::cuda::affine_gradient_handler,
                              sphcnn::bindings::affine_gradient<xla::ffi::PlatformStream<cudaStream_t>>(),
                              {xla::ffi::Traits::kCmdBufferCompatible});
SPHCNN_TARGET("sphcnn_affine_gradient", SphcnnAffineGradientCuda);

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnAffineSynthesisCuda, sphcnn::cuda::affine_handler,
                              sphcnn::bindings::affine_synthesis<xla::ffi::PlatformStream<cudaStream_t>>(),
                              {xla::ffi::Traits::kCmdBufferCompatible});
SPHCNN_TARGET("sphcnn_affine_synthesis", SphcnnAffineSynthesisCuda);
