// The call context and the handler skeleton of the CPU handlers
// (transforms_cpu.cc, mixing_cpu.cc). A handler of the contract of
// sphcnn/contract.h decodes its call with decode_call (the contract's checks
// and what every stage takes from the call), runs its target's own checks,
// and ends with execute (an empty output, or the target's body in the data's
// precision):
//
//   auto call = decode_call(target, analysis, in, scale, table, *out, *scratch, spins, sign, degree_major, source);
//   if (call.has_error()) return call.error();
//   (the target's checks)
//   return execute(call->g.is_double, out->element_count() == 0, {}, [&](auto zero) { ... });
#pragma once

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <utility>
#include <vector>

#include "lambda_blocks.h"
#include "sphcnn/contract.h"
#include "transforms_cpu.h"
#include "xla/ffi/api/ffi.h"

namespace sphcnn {
namespace cpu {

// What every CPU handler of the contract takes from its call.
struct Call {
  const char* target;
  Geometry g;
  std::vector<double> scale;  // the ring scale in double (it comes in the real dtype of the data)
  const void* table;          // the packed lambda table, or null: the recurrence
  std::shared_ptr<const RingTrig> rings;  // the rings the recurrence runs over
  xla::ffi::Span<const int64_t> spins;
  int sign;
  template <typename T>
  const T* lambda() const {
    return static_cast<const T*>(table);
  }
};

namespace detail {

// The call of a geometry the contract accepted, its rings given.
inline Call make_call(const char* target, const Geometry& g, const xla::ffi::AnyBuffer& scale,
                      const xla::ffi::AnyBuffer& table, xla::ffi::Span<const int64_t> spins, Sign sign,
                      LambdaSource source, std::shared_ptr<const RingTrig> rings) {
  std::vector<double> values(g.nlat);
  if (g.is_double) {
    const double* p = reinterpret_cast<const double*>(scale.untyped_data());
    for (int j = 0; j < g.nlat; ++j) values[j] = p[j];
  } else {
    const float* p = reinterpret_cast<const float*>(scale.untyped_data());
    for (int j = 0; j < g.nlat; ++j) values[j] = p[j];
  }
  const void* lambda = source == LambdaSource::kTable ? table.untyped_data() : nullptr;
  return Call{target, g, std::move(values), lambda, std::move(rings), spins, static_cast<int>(sign)};
}

inline size_t no_scratch(const Geometry& geometry, LambdaSource) { return scratch_bytes(geometry); }

}  // namespace detail

// The call-context builder: the contract's checks of the call (with their
// error messages), then its geometry, ring scale, lambda source, rings, spins
// and sign. pool_factor: the spatial operand's grid over the transform's (2
// for the fused targets reading or writing maps on the 2n grid).
inline xla::ffi::ErrorOr<Call> decode_call(const char* target, bool analysis, const xla::ffi::AnyBuffer& in,
                                           const xla::ffi::AnyBuffer& scale, const xla::ffi::AnyBuffer& table,
                                           const xla::ffi::AnyBuffer& out, const xla::ffi::AnyBuffer& scratch,
                                           xla::ffi::Span<const int64_t> spins, Sign sign, bool degree_major,
                                           LambdaSource source, int pool_factor = 1) {
  auto g = contract_geometry(target, analysis, in, scale, table, out, scratch, spins, sign, degree_major, source,
                             detail::no_scratch, pool_factor);
  if (g.has_error()) return xla::ffi::Unexpected(g.error());
  return detail::make_call(target, *g, scale, table, spins, sign, source, ring_trig(g->n));
}

// The same for the grid targets: any nlat x nlon grid at the colatitudes
// ring_theta, whose mirror rings (found from them) must be what the attribute
// `mirrored` says.
inline xla::ffi::ErrorOr<Call> decode_grid_call(const char* target, bool analysis, const xla::ffi::AnyBuffer& in,
                                                const xla::ffi::AnyBuffer& scale, const xla::ffi::AnyBuffer& table,
                                                const xla::ffi::AnyBuffer& out, const xla::ffi::AnyBuffer& scratch,
                                                xla::ffi::Span<const int64_t> spins, Sign sign, bool degree_major,
                                                LambdaSource source, const xla::ffi::AnyBuffer& ring_theta,
                                                bool mirrored) {
  auto g = contract_geometry(target, analysis, in, scale, table, out, scratch, spins, sign, degree_major, source,
                             detail::no_scratch, 1, {-1, -1}, true);
  if (g.has_error()) return xla::ffi::Unexpected(g.error());
  if (xla::ffi::Error e = check_ring_theta(target, *g, ring_theta, ring_theta.untyped_data()); e.failure()) {
    return xla::ffi::Unexpected(e);
  }
  std::vector<double> theta(g->nlat);
  for (int j = 0; j < g->nlat; ++j) {
    theta[j] = g->is_double ? ring_colatitude(static_cast<const double*>(ring_theta.untyped_data()), g->nlat, j)
                            : ring_colatitude(static_cast<const float*>(ring_theta.untyped_data()), g->nlat, j);
  }
  std::shared_ptr<const RingTrig> rings = ring_trig(theta);
  if (rings->mirrored != mirrored) {
    return xla::ffi::Unexpected(xla::ffi::Error::InvalidArgument(
        std::string(target) + ": the attribute mirrored is " + (mirrored ? "true" : "false") +
        " but ring_theta's rings j and nlat - 1 - j are " + (rings->mirrored ? "" : "not ") +
        "mirror images for every j < nlat / 2 (theta summing to pi within 1e-13, the north one above the equator)"));
  }
  return detail::make_call(target, *g, scale, table, spins, sign, source, std::move(rings));
}

// The skeleton every CPU handler ends with, once its operands passed the
// contract's and its target's checks: for an output without elements
// (`empty`) nothing is computed and only `zeros`, the results that are then
// sums of no terms, are zeroed; else body(T()) runs with T the real type of
// the data (by_precision).
template <typename Body>
xla::ffi::Error execute(bool is_double, bool empty, std::initializer_list<xla::ffi::AnyBuffer> zeros, Body&& body) {
  if (empty) {
    for (const xla::ffi::AnyBuffer& result : zeros) {
      if (result.size_bytes() > 0) std::memset(result.untyped_data(), 0, result.size_bytes());
    }
    return xla::ffi::Error::Success();
  }
  return by_precision(is_double, body);
}

}  // namespace cpu
}  // namespace sphcnn
