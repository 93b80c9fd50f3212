// Launches and asynchronous copies that the hardware refuses, one per run, for
// the emulation's checks (emulated_launch.h, emulated_async.h through
// csrc/cuda/block_common.h): each must end the program with its message on
// stderr. "within-limits" makes everything at the limits instead and must exit
// 0. Usage: refused_launches CASE.
#if !defined(SPHCNN_EMULATED_ASYNC)
#error "build with -DSPHCNN_EMULATED_ASYNC -Itests/cuda_emulation (the emulated asynchronous copies)"
#endif

#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <string>

#include "block_common.h"
#include "emulated_launch.h"

using namespace sphcnn::cuda;
using namespace sphcnn::emulation;

namespace {

void nothing(const HostCtx&, unsigned char*) {}

// One thread of one block with `smem_bytes` of shared memory runs `copies`
// against a 16-byte aligned global source, then waits for them.
void copy_in_block(size_t smem_bytes,
                   const std::function<void(unsigned char* smem, const unsigned char* src)>& copies) {
  alignas(16) static unsigned char global[64] = {};
  launch(1, 1, smem_bytes, [&](const HostCtx&, unsigned char* smem) {
    copies(smem, global);
    async_commit();
    async_wait<0>();
  });
}

}  // namespace

int main(int argc, char** argv) {
  const std::map<std::string, std::function<void()>> cases = {
      {"threads-0", [] { launch(0, 1, 0, nothing); }},
      {"threads-1025", [] { launch(1025, 1, 0, nothing); }},
      {"grid-0", [] { launch(32, 0, 0, nothing); }},
      {"grid-2^31", [] { launch(32, int64_t{1} << 31, 0, nothing); }},
      {"shared-49153", [] { launch(32, 1, 49153, nothing); }},
      {"shared-opt-in-above-maximum", [] { launch(32, 1, kSharedOptInMaximum + 1, nothing, SharedOptIn::kYes); }},
      {"copy16-destination", [] {
         copy_in_block(64, [](unsigned char* smem, const unsigned char* src) { async_copy<16>(smem + 8, src, true); });
       }},
      {"copy16-source", [] {
         copy_in_block(64, [](unsigned char* smem, const unsigned char* src) { async_copy<16>(smem, src + 8, true); });
       }},
      {"copy16-source-not-read", [] {
         copy_in_block(64, [](unsigned char* smem, const unsigned char* src) { async_copy<16>(smem, src + 4, false); });
       }},
      {"copy8-destination", [] {
         copy_in_block(64, [](unsigned char* smem, const unsigned char* src) { async_copy<8>(smem + 4, src, true); });
       }},
      {"copy8-source", [] {
         copy_in_block(64, [](unsigned char* smem, const unsigned char* src) { async_copy<8>(smem, src + 12, true); });
       }},
      {"copy-past-shared", [] {
         copy_in_block(64, [](unsigned char* smem, const unsigned char* src) { async_copy<16>(smem + 64, src, true); });
       }},
      {"within-limits", [] {
         launch(kMaxThreadsPerBlock, 1, kSharedWithoutOptIn, nothing);
         launch(1, 3, 0, nothing);
         launch(32, 1, kSharedOptInMaximum, nothing, SharedOptIn::kYes);
         check_launch(1, kMaxGridBlocks, 0, SharedOptIn::kNo);  // too many blocks to run
         copy_in_block(64, [](unsigned char* smem, const unsigned char* src) {
           async_copy<16>(smem + 48, src + 16, true);
           async_copy<8>(smem + 8, src + 40, true);
           async_copy<16>(smem, src, false);
         });
       }},
  };
  const auto found = argc == 2 ? cases.find(argv[1]) : cases.end();
  if (found == cases.end()) {
    std::fprintf(stderr, "usage: refused_launches CASE\n");
    return 2;
  }
  found->second();
  std::printf("%s: no refusal\n", argv[1]);
  return 0;
}
