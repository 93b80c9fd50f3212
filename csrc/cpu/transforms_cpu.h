// XLA FFI handler symbols of the CPU transforms (defined in transforms_cpu.cc).
#pragma once

#include "xla/ffi/api/ffi.h"

// Operands: x or a (complex64/complex128), ring_scale (n,) float32/float64 (the data's precision).
// Attributes: spins (int64[S]), sign (+1 or -1), degree_major (0: spectral
// (..., L, 2L-1, S, C); 1: (L, ..., 2L-1, S, C)). See transforms_cpu.cc.
XLA_FFI_DECLARE_HANDLER_SYMBOL(SphcnnAnalysisCpu);
XLA_FFI_DECLARE_HANDLER_SYMBOL(SphcnnSynthesisCpu);
