// Reads an XLA FFI handler's metadata the way XLA does when a target is
// registered: a call frame whose extension chain starts with the metadata
// extension, which the handler fills (API version, traits) without running.
// Built as a shared library by tests/test_ffi_contract.py and called through
// ctypes with the handler pointer of a registration capsule.
#include <cstdint>

#include "xla/ffi/api/c_api.h"

extern "C" int handler_metadata(void* handler, uint32_t* traits, int* major, int* minor) {
  XLA_FFI_Metadata metadata{};
  metadata.struct_size = XLA_FFI_Metadata_STRUCT_SIZE;
  metadata.api_version.struct_size = XLA_FFI_Api_Version_STRUCT_SIZE;
  XLA_FFI_Metadata_Extension extension{};
  extension.extension_base.struct_size = XLA_FFI_Metadata_Extension_STRUCT_SIZE;
  extension.extension_base.type = XLA_FFI_Extension_Metadata;
  extension.metadata = &metadata;
  XLA_FFI_CallFrame frame{};
  frame.struct_size = XLA_FFI_CallFrame_STRUCT_SIZE;
  frame.extension_start = &extension.extension_base;
  XLA_FFI_Error* error = reinterpret_cast<XLA_FFI_Handler*>(handler)(&frame);
  if (error != nullptr) return 1;
  *traits = metadata.traits;
  *major = metadata.api_version.major_version;
  *minor = metadata.api_version.minor_version;
  return 0;
}
