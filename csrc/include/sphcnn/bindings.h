// The FFI bindings of the targets of the contract (sphcnn/contract.h), one
// builder per target, shared by the CPU and CUDA handlers: a target binds the
// same operands, results and attributes on every platform, and differs only in
// its context (Ctx: xla::ffi::ThreadPool on the CPU,
// xla::ffi::PlatformStream<cudaStream_t> on CUDA). Every target of the
// contract takes its own operands, then ring_scale and the table (and
// ring_theta, the grid targets); its own results, then the scratch; then the
// transform attributes spins, sign, degree_major and lambda_source, and its
// own. Use as the binding of XLA_FFI_DEFINE_HANDLER_SYMBOL:
//
//   XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnAnalysisCpu, handler, sphcnn::bindings::transform<xla::ffi::ThreadPool>());
#pragma once

#include <cstdint>
#include <utility>

#include "sphcnn/contract.h"
#include "xla/ffi/api/ffi.h"

namespace sphcnn {
namespace bindings {

// `kCount` (>= 1) more buffer operands. Bindings move only into a new binding
// (their move constructor is private): every step passes on a prvalue.
template <int kCount, typename Binding>
auto operands(Binding binding) {
  if constexpr (kCount == 1) {
    return std::move(binding).template Arg<xla::ffi::AnyBuffer>();
  } else {
    return operands<kCount - 1>(std::move(binding).template Arg<xla::ffi::AnyBuffer>());
  }
}

// `kCount` (>= 1) more buffer results.
template <int kCount, typename Binding>
auto results(Binding binding) {
  if constexpr (kCount == 1) {
    return std::move(binding).template Ret<xla::ffi::AnyBuffer>();
  } else {
    return results<kCount - 1>(std::move(binding).template Ret<xla::ffi::AnyBuffer>());
  }
}

// A target of the contract with `kOperands` operands and `kResults` results in
// all (its own, the contract's trailing ones and the scratch) and the transform
// attributes: spins (int64[S]), sign (-1 or +1), degree_major (coefficients
// (L, B..., 2L - 1, S, C)) and lambda_source (the packed table or the recurrence).
template <typename Ctx, int kOperands, int kResults>
auto contract_target() {
  return results<kResults>(operands<kOperands>(xla::ffi::Ffi::Bind().template Ctx<Ctx>()))
      .template Attr<xla::ffi::Span<const int64_t>>("spins")
      .template Attr<Sign>("sign")
      .template Attr<bool>("degree_major")
      .template Attr<LambdaSource>("lambda_source");
}

// The activation's attributes after the transform's: leaky_spin (the spin index
// of the leaky ReLU, or -1), pool (maps on the 2n grid, pooled), epsilon (of the
// magnitude nonlinearity) and slope (of the leaky ReLU).
template <typename Binding>
auto activation(Binding binding) {
  return std::move(binding)
      .template Attr<int64_t>("leaky_spin")
      .template Attr<bool>("pool")
      .template Attr<double>("epsilon")
      .template Attr<double>("slope");
}

// sphcnn_analysis, sphcnn_synthesis: input, ring_scale, table -> output, scratch.
template <typename Ctx>
auto transform() {
  return contract_target<Ctx, 3, 2>();
}

// sphcnn_grid_analysis, sphcnn_grid_synthesis: input, ring_scale, table,
// ring_theta -> output, scratch; mirrored (rings j and nlat - 1 - j are mirror
// images, sphcnn/contract.h).
template <typename Ctx>
auto grid_transform() {
  return contract_target<Ctx, 4, 2>().template Attr<bool>("mirrored");
}

// sphcnn_activated_analysis: maps, bias, taps, ring_scale, table ->
// coefficients, scratch; the activation's attributes.
template <typename Ctx>
auto activated_analysis() {
  return activation(contract_target<Ctx, 5, 2>());
}

// sphcnn_activated_gradient: ct, maps, bias, taps, ring_scale, table ->
// ct_maps, ct_bias, scratch; the activation's attributes.
template <typename Ctx>
auto activated_gradient() {
  return activation(contract_target<Ctx, 6, 3>());
}

// sphcnn_affine_synthesis: coefficients, factor, offset, ring_scale, table ->
// maps, scratch.
template <typename Ctx>
auto affine_synthesis() {
  return contract_target<Ctx, 5, 2>();
}

// sphcnn_affine_gradient: ct, a, factor, ring_scale, table -> ct_a, products,
// constant, scratch.
template <typename Ctx>
auto affine_gradient() {
  return contract_target<Ctx, 5, 4>();
}

// sphcnn_mixing_analysis: maps, bias, taps, filters, ring_scale, table -> b, a,
// energy, scratch; the activation's attributes and activate (with the
// prologue of the activated analysis).
template <typename Ctx>
auto mixing_analysis() {
  return activation(contract_target<Ctx, 6, 4>()).template Attr<bool>("activate");
}

// sphcnn_mixing_gradient: ct_b, filters, maps, bias, taps, ring_scale, table ->
// ct_maps, ct_bias, scratch; the activation's attributes.
template <typename Ctx>
auto mixing_gradient() {
  return activation(contract_target<Ctx, 7, 3>());
}

}  // namespace bindings
}  // namespace sphcnn
