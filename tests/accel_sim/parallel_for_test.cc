#include "accel_sim/parallel_for.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

namespace r2f::accel {
namespace {

TEST(ParallelForTest, RunsEveryJobOnceOnTheThreads) {
  std::vector<std::atomic<int>> runs(1000);
  // Job 0 holds its thread until a job has run on another one (or 10 s have passed): jobs are
  // handed out one at a time, so the other threads must take the rest.
  std::atomic<uint64_t> threads_seen{0};
  bool job0_saw_another_thread = false;
  ParallelFor(static_cast<int64_t>(runs.size()), [&](int64_t j) {
    runs[j].fetch_add(1);
    const uint64_t me = uint64_t{1} << (omp_get_thread_num() % 64);
    if (j != 0) {
      threads_seen.fetch_or(me);
      return;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while ((threads_seen.load() & ~me) == 0 && std::chrono::steady_clock::now() < deadline &&
           omp_get_num_threads() > 1) {
      std::this_thread::yield();
    }
    job0_saw_another_thread = (threads_seen.load() & ~me) != 0;
  });
  for (size_t j = 0; j < runs.size(); ++j) EXPECT_EQ(runs[j].load(), 1) << "job " << j;
  if (omp_get_max_threads() > 1) {
    EXPECT_TRUE(job0_saw_another_thread);
  }
}

TEST(ParallelForTest, NoJobsRunsNothing) {
  int runs = 0;
  ParallelFor(0, [&](int64_t) { ++runs; });
  EXPECT_EQ(runs, 0);
}

TEST(ParallelForTest, AnExceptionIsRethrownAfterTheOtherJobsRan) {
  std::vector<std::atomic<int>> runs(64);
  try {
    ParallelFor(static_cast<int64_t>(runs.size()), [&](int64_t j) {
      runs[j].fetch_add(1);
      if (j == 5) throw std::runtime_error("job 5 failed");
    });
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "job 5 failed");
  }
  for (size_t j = 0; j < runs.size(); ++j) EXPECT_EQ(runs[j].load(), 1) << "job " << j;
}

}  // namespace
}  // namespace r2f::accel
