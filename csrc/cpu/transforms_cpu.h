// XLA FFI handler symbols of the CPU transforms and fused block targets (defined
// in transforms_cpu.cc, the per-degree mixing in mixing_cpu.cc), with the
// contracts of sphcnn/contract.h and sphcnn/degree_mixing.h, and the size of
// their scratch result.
#pragma once

#include <cstddef>

#include "sphcnn/contract.h"
#include "xla/ffi/api/ffi.h"

XLA_FFI_DECLARE_HANDLER_SYMBOL(SphcnnAnalysisCpu);
XLA_FFI_DECLARE_HANDLER_SYMBOL(SphcnnSynthesisCpu);
XLA_FFI_DECLARE_HANDLER_SYMBOL(SphcnnActivatedAnalysisCpu);
XLA_FFI_DECLARE_HANDLER_SYMBOL(SphcnnActivatedGradientCpu);
XLA_FFI_DECLARE_HANDLER_SYMBOL(SphcnnAffineSynthesisCpu);
XLA_FFI_DECLARE_HANDLER_SYMBOL(SphcnnDegreeMixingCpu);  // mixing_cpu.cc
XLA_FFI_DECLARE_HANDLER_SYMBOL(SphcnnDegreeMixingWeightGradientCpu);

namespace sphcnn {
namespace cpu {

// Bytes of the scratch result a call of this geometry needs (either direction,
// either lambda source): none, the CPU kernels keep warm work buffers of their own.
size_t scratch_bytes(const Geometry& g);

}  // namespace cpu
}  // namespace sphcnn
