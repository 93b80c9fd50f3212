// The size of the scratch result of the CPU targets (transforms_cpu.cc; each
// target registers itself where it is defined, sphcnn/targets.h).
#pragma once

#include <cstddef>

#include "sphcnn/contract.h"

namespace sphcnn {
namespace cpu {

// Bytes of the scratch result a call of this geometry needs (either direction,
// either lambda source): none, the CPU kernels keep warm work buffers of their own.
size_t scratch_bytes(const Geometry& g);

}  // namespace cpu
}  // namespace sphcnn
