// SamplerThreads: helper threads that copy one sample() call's batch together with the calling thread.
//
// Data flow: parallel_for(count, chunk, body) cuts [0, count) into chunks; the caller and every helper
// that wakes in time claim chunks with an atomic counter and run body(begin, end) on them.
//
// Concurrency contract:
//  - The helpers serve one call at a time. A caller takes them with try_lock and never waits for
//    another caller: when they are busy (a second thread samples at the same time) it runs all its
//    chunks itself. So samplers never block each other, and none ever blocks the replay's writer.
//  - Job hand-off is under mu_: a helper joins the open job (joined_ += 1) or sleeps; the caller, once
//    no chunk is left, closes the job and waits only for helpers that joined, so a helper that wakes
//    late costs nothing and never sees a later job's body.
//  - body must not throw past a chunk: exceptions are caught per chunk; the first is rethrown on the
//    caller's thread after every joined helper is done.
//  - The destructor sets stop_, wakes every helper and joins them.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace actormimic_fast::replay {

class SamplerThreads {
 public:
  /// num_threads counts the caller: num_threads - 1 helper threads are started.
  explicit SamplerThreads(int num_threads);
  ~SamplerThreads();
  SamplerThreads(const SamplerThreads&) = delete;
  SamplerThreads& operator=(const SamplerThreads&) = delete;

  /// Runs body(begin, end) over [0, count) in chunks of `chunk`; rethrows the first exception.
  void parallel_for(int64_t count, int64_t chunk, const std::function<void(int64_t, int64_t)>& body);
  int num_threads() const { return static_cast<int>(helpers_.size()) + 1; }

 private:
  void helper_loop();
  void run_chunks();

  std::vector<std::thread> helpers_;
  std::mutex busy_;  // held by the caller that owns the helpers (try_lock only)
  std::mutex mu_;
  std::condition_variable wake_, finished_;
  bool stop_ = false;
  bool open_ = false;
  uint64_t generation_ = 0;
  int joined_ = 0;
  // The current job: written under mu_ before open_ is set, read by joined helpers.
  const std::function<void(int64_t, int64_t)>* body_ = nullptr;
  int64_t count_ = 0, chunk_ = 1;
  std::atomic<int64_t> next_{0};
  std::mutex error_mutex_;
  std::exception_ptr error_;
};

}  // namespace actormimic_fast::replay
