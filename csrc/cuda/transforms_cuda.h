// XLA FFI handler symbols of the CUDA Legendre stage (defined in transforms_cuda.cu)
// and the table cache control used by the Python module. Includes no CUDA header,
// so that module_cuda.cc is plain C++.
#pragma once

#include <cstddef>

#include "xla/ffi/api/ffi.h"

// Operands: F rings (..., n, 2L-1, S, C) for analysis or coefficients
// (..., L, 2L-1, S, C) for synthesis (complex64/complex128), ring_scale (n,) in
// the data's real precision. Attributes: spins (int64[S]), mode (1 = table,
// 2 = on the fly). Context: the CUDA stream. See transforms_cuda.cu.
XLA_FFI_DECLARE_HANDLER_SYMBOL(SphcnnLegendreAnalysisCuda);
XLA_FFI_DECLARE_HANDLER_SYMBOL(SphcnnLegendreSynthesisCuda);

namespace sphcnn {
namespace cuda {

// Frees every cached lambda table (after synchronizing the devices that hold
// them) and returns how many there were. Calls no CUDA function when the cache
// is empty.
size_t clear_table_cache();

}  // namespace cuda
}  // namespace sphcnn
