#include "replay/sampler_threads.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace actormimic_fast::replay {

SamplerThreads::SamplerThreads(int num_threads) {
  if (num_threads < 1)
    throw std::invalid_argument("num_threads must be >= 1, got " + std::to_string(num_threads));
  for (int i = 1; i < num_threads; ++i) helpers_.emplace_back([this] { helper_loop(); });
}

SamplerThreads::~SamplerThreads() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : helpers_) t.join();
}

void SamplerThreads::run_chunks() {
  for (int64_t begin = next_.fetch_add(chunk_); begin < count_; begin = next_.fetch_add(chunk_)) {
    try {
      (*body_)(begin, std::min(begin + chunk_, count_));
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }
}

void SamplerThreads::helper_loop() {
  uint64_t seen = 0;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    wake_.wait(lock, [&] { return stop_ || (open_ && generation_ != seen); });
    if (stop_) return;
    seen = generation_;
    ++joined_;
    lock.unlock();
    run_chunks();
    lock.lock();
    if (--joined_ == 0 && !open_) finished_.notify_all();
  }
}

void SamplerThreads::parallel_for(int64_t count, int64_t chunk,
                                  const std::function<void(int64_t, int64_t)>& body) {
  if (count <= 0) return;
  chunk = std::max<int64_t>(chunk, 1);
  if (helpers_.empty() || count <= chunk || !busy_.try_lock()) {
    body(0, count);  // helpers busy (another caller) or not worth waking: the caller does it all
    return;
  }
  std::lock_guard<std::mutex> owner(busy_, std::adopt_lock);
  {
    std::lock_guard<std::mutex> lock(mu_);
    body_ = &body;
    count_ = count;
    chunk_ = chunk;
    next_.store(0, std::memory_order_relaxed);
    error_ = nullptr;
    open_ = true;
    ++generation_;
  }
  wake_.notify_all();
  run_chunks();
  std::exception_ptr error;
  {
    std::unique_lock<std::mutex> lock(mu_);
    open_ = false;
    finished_.wait(lock, [&] { return joined_ == 0; });
    body_ = nullptr;
    error = error_;
    error_ = nullptr;
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace actormimic_fast::replay
