// XLA FFI handlers of the spin-weighted spherical harmonic transforms on NVIDIA
// GPUs, with the contract of sphcnn/contract.h (shared with the CPU handlers).
// Each transform is two kernels on XLA's stream, no FFT library, no transposes:
//   analysis:  K1 grid_to_orders (ring_dft.h): maps -> Fourier rings F in scratch,
//              K2 analysis (legendre_gemm.h): F -> coefficients;
//   synthesis: K2 synthesis: coefficients -> rings G in scratch,
//              K1 orders_to_grid: G -> maps.
// The autodiff transposes are the same two targets with the other sign and
// ring scale. The grid targets sphcnn_grid_analysis / sphcnn_grid_synthesis run
// the same two kernels on any nlat x nlon grid (grid_launch_plan, lambda on the
// fly at the colatitudes of their ring_theta operand, read on the device).
// Handlers are capture-safe and declare command-buffer
// compatibility: the execute path only validates, computes launch geometry and
// launches; work space is the scratch result, lambda the plan's table operand
// or the recurrence inside K2. The launches of K1 and K2 defined here
// (handler_cuda.h) also serve the fused targets (fused_cuda.cu).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "handler_cuda.h"
#include "launch_plan.h"
#include "legendre_gemm.h"
#include "ring_dft.h"
#include "sphcnn/bindings.h"
#include "sphcnn/contract.h"
#include "sphcnn/targets.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace sphcnn {
namespace cuda {
namespace {

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

// The kernels of the grid targets: the same blocks on a grid of nlat rings of
// nlon points (kGrid), lambda on the fly at the device's ring colatitudes.
template <typename T>
__global__ void __launch_bounds__(kRingThreads) ring_grid_to_orders_kernel(const RingArgs<T> args) {
  extern __shared__ __align__(16) unsigned char smem[];
  grid_to_orders_block<T, true>(DeviceCtx{}, args, smem);
}

template <typename T>
__global__ void __launch_bounds__(kRingThreads) orders_to_ring_grid_kernel(const RingArgs<T> args) {
  extern __shared__ __align__(16) unsigned char smem[];
  orders_to_grid_block<T, true>(DeviceCtx{}, args, smem);
}

template <typename T, typename Tile>
__global__ void __launch_bounds__(kGemmThreads) ring_grid_analysis_kernel(const GemmArgs<T> args) {
  extern __shared__ __align__(16) unsigned char smem[];
  analysis_otf_block<T, Tile, true>(DeviceCtx{}, args, smem);
}

template <typename T, typename Tile>
__global__ void __launch_bounds__(kGemmThreads) ring_grid_synthesis_kernel(const GemmArgs<T> args) {
  extern __shared__ __align__(16) unsigned char smem[];
  synthesis_block<T, Tile, false, true>(DeviceCtx{}, args, smem);
}

template <typename T, typename Tile>
void launch_analysis_table(const GemmLaunch& gl, const GemmArgs<T>& args, cudaStream_t stream) {
  analysis_table_kernel<T, Tile><<<dim3(static_cast<unsigned>(gl.blocks)), kGemmThreads, gl.shared_bytes, stream>>>(args);
}

template <typename T, typename Tile>
void launch_analysis_otf(const GemmLaunch& gl, bool ring_grid, const GemmArgs<T>& args, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(gl.blocks));
  if (ring_grid) {
    ring_grid_analysis_kernel<T, Tile><<<grid, kGemmThreads, gl.shared_bytes, stream>>>(args);
  } else {
    analysis_otf_kernel<T, Tile><<<grid, kGemmThreads, gl.shared_bytes, stream>>>(args);
  }
}

template <typename T, typename Tile>
void launch_synthesis(const GemmLaunch& gl, bool table, bool ring_grid, const GemmArgs<T>& args,
                      cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(gl.blocks));
  if (ring_grid) {
    ring_grid_synthesis_kernel<T, Tile><<<grid, kGemmThreads, gl.shared_bytes, stream>>>(args);
  } else if (table) {
    synthesis_kernel<T, Tile, true><<<grid, kGemmThreads, gl.shared_bytes, stream>>>(args);
  } else {
    synthesis_kernel<T, Tile, false><<<grid, kGemmThreads, gl.shared_bytes, stream>>>(args);
  }
}

}  // namespace

template <typename T>
ffi::Error launch_ring(const Call& call, bool to_orders, const RingLaunch& rl, const RingArgs<T>& args) {
  if (rl.blocks == 0) return ffi::Error::Success();
  const dim3 grid(static_cast<unsigned>(rl.blocks));
  const bool ring_grid = call.theta != nullptr;
  if (to_orders && ring_grid) {
    ring_grid_to_orders_kernel<T><<<grid, kRingThreads, rl.shared_bytes, call.stream>>>(args);
  } else if (to_orders) {
    grid_to_orders_kernel<T><<<grid, kRingThreads, rl.shared_bytes, call.stream>>>(args);
  } else if (ring_grid) {
    orders_to_ring_grid_kernel<T><<<grid, kRingThreads, rl.shared_bytes, call.stream>>>(args);
  } else {
    orders_to_grid_kernel<T><<<grid, kRingThreads, rl.shared_bytes, call.stream>>>(args);
  }
  return launch_error(call.target, "the ring DFT");
}

template <typename T>
ffi::Error launch_gemm(const Call& call, bool analysis, const LaunchPlan& plan, GemmArgs<T> args) {
  const GemmLaunch& gl = plan.gemm;
  const bool table = plan.source == LambdaSource::kTable;
  const bool ring_grid = call.theta != nullptr;
  const ffi::Span<const int64_t> spins = call.spins;
  for (int64_t offset = 0; offset < static_cast<int64_t>(spins.size()); offset += kSpinsPerLaunch) {
    args.spins = spin_group(spins.begin(), static_cast<int64_t>(spins.size()), plan.geometry.ell_max,
                             static_cast<int>(offset));
    const int L = plan.geometry.ell_max + 1;
    args.items = static_cast<int64_t>(gl.tiles) * L * args.spins.count;
    GemmLaunch launch = gl;
    launch.blocks = std::min<int64_t>(args.items, gl.max_blocks);
    if (analysis && table) {
      switch (gl.config) {
        case 0: launch_analysis_table<T, AnalysisTile<T, 32, 32>>(launch, args, call.stream); break;
        case 1: launch_analysis_table<T, AnalysisTile<T, 8, 128>>(launch, args, call.stream); break;
        default: launch_analysis_table<T, AnalysisTile<T, 128, 8>>(launch, args, call.stream); break;
      }
    } else if (analysis) {
      switch (gl.config) {
        case 0: launch_analysis_otf<T, AnalysisOtfTile<T, 32, 2>>(launch, ring_grid, args, call.stream); break;
        case 1: launch_analysis_otf<T, AnalysisOtfTile<T, 16, 2>>(launch, ring_grid, args, call.stream); break;
        default: launch_analysis_otf<T, AnalysisOtfTile<T, 16, 4>>(launch, ring_grid, args, call.stream); break;
      }
    } else {
      switch (gl.config) {
        case 0: launch_synthesis<T, SynthesisTile<T, 32, 32>>(launch, table, ring_grid, args, call.stream); break;
        case 1: launch_synthesis<T, SynthesisTile<T, 8, 128>>(launch, table, ring_grid, args, call.stream); break;
        default: launch_synthesis<T, SynthesisTile<T, 128, 8>>(launch, table, ring_grid, args, call.stream); break;
      }
    }
    ffi::Error status = launch_error(call.target, "the Legendre stage");
    if (status.failure()) return status;
  }
  return ffi::Error::Success();
}

template <typename T>
ffi::Error run(const Call& call, bool analysis, const LaunchPlan& plan, const void* in, void* out,
               const Prologue& prologue) {
  StageArgs<T> st = stage_args<T>(call, analysis, plan, in, out, prologue);
  if (analysis) {
    ffi::Error status = launch_ring<T>(call, true, plan.ring, st.ring);
    if (status.failure()) return status;
    return launch_gemm<T>(call, true, plan, st.gemm);
  }
  ffi::Error status = launch_gemm<T>(call, false, plan, st.gemm);
  if (status.failure()) return status;
  return launch_ring<T>(call, false, plan.ring, st.ring);
}

template ffi::Error launch_ring<float>(const Call&, bool, const RingLaunch&, const RingArgs<float>&);
template ffi::Error launch_ring<double>(const Call&, bool, const RingLaunch&, const RingArgs<double>&);
template ffi::Error launch_gemm<float>(const Call&, bool, const LaunchPlan&, GemmArgs<float>);
template ffi::Error launch_gemm<double>(const Call&, bool, const LaunchPlan&, GemmArgs<double>);
template ffi::Error run<float>(const Call&, bool, const LaunchPlan&, const void*, void*, const Prologue&);
template ffi::Error run<double>(const Call&, bool, const LaunchPlan&, const void*, void*, const Prologue&);

namespace {

template <bool kAnalysis>
ffi::Error transform_handler(cudaStream_t stream, ffi::AnyBuffer in, ffi::AnyBuffer scale, ffi::AnyBuffer table,
                             ffi::Result<ffi::AnyBuffer> out, ffi::Result<ffi::AnyBuffer> scratch,
                             ffi::Span<const int64_t> spins, Sign sign, bool degree_major, LambdaSource source) {
  auto call = decode_call(kAnalysis ? "sphcnn_analysis" : "sphcnn_synthesis", kAnalysis, stream, in, scale, table,
                          *out, *scratch, spins, sign, degree_major, source,
                          [](const Geometry& geometry, LambdaSource s) {
                            return launch_plan(geometry, kAnalysis, s).scratch_bytes;
                          });
  if (call.has_error()) return call.error();
  return execute(*call, out->element_count() == 0, {}, [&](auto zero) {
    return run<decltype(zero)>(*call, kAnalysis, launch_plan(call->g, kAnalysis, source), in.untyped_data(),
                               out->untyped_data());
  });
}

// The same transforms on any grid of nlat rings of nlon points at the
// colatitudes ring_theta (the grid targets of sphcnn/contract.h).
template <bool kAnalysis>
ffi::Error grid_handler(cudaStream_t stream, ffi::AnyBuffer in, ffi::AnyBuffer scale, ffi::AnyBuffer table,
                        ffi::AnyBuffer ring_theta, ffi::Result<ffi::AnyBuffer> out,
                        ffi::Result<ffi::AnyBuffer> scratch, ffi::Span<const int64_t> spins, Sign sign,
                        bool degree_major, LambdaSource source, bool mirrored) {
  auto call = decode_grid_call(kAnalysis ? "sphcnn_grid_analysis" : "sphcnn_grid_synthesis", kAnalysis, stream, in,
                               scale, table, *out, *scratch, spins, sign, degree_major, source, ring_theta, mirrored);
  if (call.has_error()) return call.error();
  return execute(*call, out->element_count() == 0, {}, [&](auto zero) {
    return run<decltype(zero)>(*call, kAnalysis, grid_launch_plan(call->g, kAnalysis, mirrored), in.untyped_data(),
                               out->untyped_data());
  });
}

}  // namespace
}  // namespace cuda
}  // namespace sphcnn

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnAnalysisCuda, sphcnn::cuda::transform_handler<true>,
                              sphcnn::bindings::transform<xla::ffi::PlatformStream<cudaStream_t>>(),
                              {xla::ffi::Traits::kCmdBufferCompatible});
SPHCNN_TARGET("sphcnn_analysis", SphcnnAnalysisCuda);

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnSynthesisCuda, sphcnn::cuda::transform_handler<false>,
                              sphcnn::bindings::transform<xla::ffi::PlatformStream<cudaStream_t>>(),
                              {xla::ffi::Traits::kCmdBufferCompatible});
SPHCNN_TARGET("sphcnn_synthesis", SphcnnSynthesisCuda);

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnGridAnalysisCuda, sphcnn::cuda::grid_handler<true>,
                              sphcnn::bindings::grid_transform<xla::ffi::PlatformStream<cudaStream_t>>(),
                              {xla::ffi::Traits::kCmdBufferCompatible});
SPHCNN_TARGET("sphcnn_grid_analysis", SphcnnGridAnalysisCuda);

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnGridSynthesisCuda, sphcnn::cuda::grid_handler<false>,
                              sphcnn::bindings::grid_transform<xla::ffi::PlatformStream<cudaStream_t>>(),
                              {xla::ffi::Traits::kCmdBufferCompatible});
SPHCNN_TARGET("sphcnn_grid_synthesis", SphcnnGridSynthesisCuda);
