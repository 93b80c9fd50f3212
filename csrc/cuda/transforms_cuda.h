// XLA FFI handler symbols of the CUDA transforms (defined in transforms_cuda.cu)
// and fused block targets (fused_cuda.cu), with the contract of
// sphcnn/contract.h. Includes no CUDA header, so that module_cuda.cc is plain
// C++.
#pragma once

#include "xla/ffi/api/ffi.h"

XLA_FFI_DECLARE_HANDLER_SYMBOL(SphcnnAnalysisCuda);
XLA_FFI_DECLARE_HANDLER_SYMBOL(SphcnnSynthesisCuda);
XLA_FFI_DECLARE_HANDLER_SYMBOL(SphcnnActivatedAnalysisCuda);
XLA_FFI_DECLARE_HANDLER_SYMBOL(SphcnnActivatedGradientCuda);
XLA_FFI_DECLARE_HANDLER_SYMBOL(SphcnnAffineSynthesisCuda);
XLA_FFI_DECLARE_HANDLER_SYMBOL(SphcnnMixingAnalysisCuda);
XLA_FFI_DECLARE_HANDLER_SYMBOL(SphcnnMixingGradientCuda);
XLA_FFI_DECLARE_HANDLER_SYMBOL(SphcnnAffineGradientCuda);
