// A bounded, deterministic fuzz run without libFuzzer: feeds every file of the given corpus
// directories (or files) to LLVMFuzzerTestOneInput, then `--mutations` inputs made by mutating
// them (bit flips, byte changes, inserts, deletes, duplicated ranges, splices, interesting
// values), from a fixed `--seed`. Linked with one fuzz target into fuzz_replay_<target>; CTest
// runs it in every build (docs/security.md#fuzzing).
//
//   fuzz_replay_envelope [--mutations N] [--seed S] [--max-len L] CORPUS_DIR_OR_FILE...
//
// A crash (signal) writes the input being run to ./fuzz-replay-crash.bin before dying, so it
// can be replayed (fuzz_replay_<target> fuzz-replay-crash.bin) and added to the corpus.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_target.h"

namespace {

using Input = std::vector<uint8_t>;

// The input being run, for the crash handler (async-signal-safe access only).
const uint8_t* g_current = nullptr;
size_t g_current_size = 0;

void OnCrash(int sig) {
  const int fd = ::open("fuzz-replay-crash.bin", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    if (g_current_size > 0 && ::write(fd, g_current, g_current_size) < 0) {
      // Nothing more can be done inside a signal handler.
    }
    ::close(fd);
  }
  const char msg[] = "fuzz_replay: crashed; input written to fuzz-replay-crash.bin\n";
  if (::write(2, msg, sizeof(msg) - 1) < 0) {
  }
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void Run(const Input& in) {
  g_current = in.data();
  g_current_size = in.size();
  LLVMFuzzerTestOneInput(in.data(), in.size());
  g_current = nullptr;
  g_current_size = 0;
}

bool ReadInput(const std::filesystem::path& path, Input* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  out->assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  return true;
}

class Mutator {
 public:
  Mutator(uint64_t seed, size_t max_len) : rng_(seed), max_len_(max_len) {}

  Input Mutate(const std::vector<Input>& corpus) {
    Input in = corpus[Below(corpus.size())];
    const int steps = 1 + static_cast<int>(Below(4));
    for (int s = 0; s < steps; ++s) Step(&in, corpus);
    if (in.size() > max_len_) in.resize(max_len_);
    return in;
  }

 private:
  size_t Below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(rng_() % n); }

  void Step(Input* in, const std::vector<Input>& corpus) {
    static const uint8_t kInteresting[] = {0, 1, 2, 0x7f, 0x80, 0xff, 0xfe, 16, 32, 64};
    switch (Below(8)) {
      case 0:  // flip a bit
        if (!in->empty()) (*in)[Below(in->size())] ^= static_cast<uint8_t>(1u << Below(8));
        break;
      case 1:  // random byte
        if (!in->empty()) (*in)[Below(in->size())] = static_cast<uint8_t>(rng_());
        break;
      case 2:  // interesting byte
        if (!in->empty()) {
          (*in)[Below(in->size())] = kInteresting[Below(sizeof(kInteresting))];
        }
        break;
      case 3: {  // insert random bytes
        const size_t at = Below(in->size() + 1);
        const size_t n = 1 + Below(8);
        for (size_t i = 0; i < n; ++i) in->insert(in->begin() + at, static_cast<uint8_t>(rng_()));
        break;
      }
      case 4: {  // delete a range
        if (in->empty()) break;
        const size_t at = Below(in->size());
        const size_t n = 1 + Below(std::min<size_t>(16, in->size() - at));
        in->erase(in->begin() + at, in->begin() + at + n);
        break;
      }
      case 5: {  // duplicate a range
        if (in->empty()) break;
        const size_t at = Below(in->size());
        const size_t n = 1 + Below(std::min<size_t>(64, in->size() - at));
        Input piece(in->begin() + at, in->begin() + at + n);
        in->insert(in->begin() + Below(in->size() + 1), piece.begin(), piece.end());
        break;
      }
      case 6: {  // splice: our head, another input's tail
        const Input& other = corpus[Below(corpus.size())];
        const size_t cut = Below(in->size() + 1);
        const size_t from = Below(other.size() + 1);
        in->resize(cut);
        in->insert(in->end(), other.begin() + from, other.end());
        break;
      }
      default:  // truncate
        if (!in->empty()) in->resize(Below(in->size()));
        break;
    }
  }

  std::mt19937_64 rng_;
  size_t max_len_;
};

int Usage() {
  std::cerr << "usage: fuzz_replay [--mutations N] [--seed S] [--max-len L] "
               "CORPUS_DIR_OR_FILE...\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t mutations = 10000, seed = 1;
  size_t max_len = 1 << 16;
  std::vector<std::filesystem::path> paths;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--mutations" || a == "--seed" || a == "--max-len") && i + 1 < argc) {
      const uint64_t v = std::stoull(argv[++i]);
      if (a == "--mutations") mutations = v;
      if (a == "--seed") seed = v;
      if (a == "--max-len") max_len = static_cast<size_t>(v);
    } else if (!a.empty() && a[0] == '-') {
      return Usage();
    } else {
      paths.emplace_back(a);
    }
  }
  if (paths.empty()) return Usage();
  for (int sig : {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL}) ::signal(sig, OnCrash);

  std::vector<Input> corpus;
  for (const auto& p : paths) {
    std::vector<std::filesystem::path> files;
    if (std::filesystem::is_directory(p)) {
      for (const auto& e : std::filesystem::directory_iterator(p)) {
        if (e.is_regular_file()) files.push_back(e.path());
      }
      std::sort(files.begin(), files.end());  // a fixed order: the run is reproducible
    } else {
      files.push_back(p);
    }
    for (const auto& f : files) {
      Input in;
      if (!ReadInput(f, &in)) {
        std::cerr << "fuzz_replay: cannot read " << f << "\n";
        return 2;
      }
      corpus.push_back(std::move(in));
    }
  }
  if (corpus.empty()) {
    std::cerr << "fuzz_replay: no inputs in the given corpus\n";
    return 2;
  }
  const auto start = std::chrono::steady_clock::now();
  for (const Input& in : corpus) Run(in);
  Mutator mutator(seed, max_len);
  for (uint64_t i = 0; i < mutations; ++i) Run(mutator.Mutate(corpus));
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "fuzz_replay: " << corpus.size() << " corpus inputs and " << mutations
            << " mutations (seed " << seed << ") ran without a crash in " << s << " s\n";
  return 0;
}
