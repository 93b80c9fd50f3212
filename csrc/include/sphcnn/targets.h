// FFI targets register themselves where they are defined: one
// SPHCNN_TARGET("name", Symbol) line after XLA_FFI_DEFINE_HANDLER_SYMBOL(Symbol,
// ...), and the platform module's registrations() lists every target of its
// library (name -> handler), with no list of its own to keep in step.
#pragma once

#include <utility>
#include <vector>

namespace sphcnn {

// The targets of this library in definition order: (FFI target name, handler).
inline std::vector<std::pair<const char*, void*>>& registered_targets() {
  static std::vector<std::pair<const char*, void*>> targets;
  return targets;
}

struct TargetRegistration {
  TargetRegistration(const char* name, void* handler) { registered_targets().emplace_back(name, handler); }
};

}  // namespace sphcnn

#define SPHCNN_TARGET(name, symbol) \
  static const ::sphcnn::TargetRegistration symbol##_target(name, reinterpret_cast<void*>(symbol))
