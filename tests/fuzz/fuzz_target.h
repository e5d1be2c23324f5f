// What every fuzz target of tests/fuzz/ defines, and its oracle. A target is one
// LLVMFuzzerTestOneInput: libFuzzer's main drives it in the clang build (-DR2F_FUZZ=ON), and
// replay_main.cc drives it in every build (CTest fuzz_replay.*). docs/security.md#fuzzing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include <google/protobuf/stubs/logging.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

// A property of the code under test that must hold for every input: a violation aborts, which
// libFuzzer and the replay driver both report as a crash with the input saved.
#define R2F_FUZZ_CHECK(cond)                                                             \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)

// libprotobuf logs a line for every message it refuses to parse (invalid UTF-8 in a string
// field): silence it, the fuzzer makes millions of those. Call first in a target.
inline void QuietProtobuf() {
  static const bool quiet = (google::protobuf::SetLogHandler(nullptr), true);
  (void)quiet;
}
