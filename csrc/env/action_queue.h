// Blocking FIFO of env ids between the caller thread and the pool's workers, in both directions.
//
// Contract: any number of producers and consumers; push never blocks (capacity is reserved for every
// env of the pool, and an env id is in at most one queue at a time, so the queue can never overflow);
// pop blocks until an item is available or the queue is closed. close() wakes every blocked consumer,
// which then returns std::nullopt; destructors of the owner call it before joining threads.
// A mutex and a condition variable are enough here: one item is an agent step of ~100 us of
// emulation, so the queue's cost is noise.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>

namespace actormimic_fast::env {

class ActionQueue {
 public:
  /// Appends one item and wakes one waiting consumer.
  void push(int item) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      items_.push_back(item);
    }
    ready_.notify_one();
  }

  /// Appends many items at once and wakes every waiting consumer.
  template <typename It>
  void push_many(It first, It last) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      items_.insert(items_.end(), first, last);
    }
    ready_.notify_all();
  }

  /// Blocks for the next item; std::nullopt once the queue is closed.
  std::optional<int> pop() {
    std::unique_lock<std::mutex> lock(mutex_);
    ready_.wait(lock, [&] { return closed_ || !items_.empty(); });
    if (closed_) return std::nullopt;
    const int item = items_.front();
    items_.pop_front();
    return item;
  }

  /// The next item if one is queued now, else std::nullopt; never blocks.
  std::optional<int> try_pop() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_ || items_.empty()) return std::nullopt;
    const int item = items_.front();
    items_.pop_front();
    return item;
  }

  /// Number of items queued now.
  std::size_t size() {
    std::lock_guard<std::mutex> lock(mutex_);
    return items_.size();
  }

  /// Blocks until at least `count` items are queued (or closed), then moves exactly `count` into out.
  /// Returns false when the queue was closed first.
  template <typename Out>
  bool pop_many(std::size_t count, Out out) {
    std::unique_lock<std::mutex> lock(mutex_);
    ready_.wait(lock, [&] { return closed_ || items_.size() >= count; });
    if (closed_) return false;
    for (std::size_t i = 0; i < count; ++i) {
      *out++ = items_.front();
      items_.pop_front();
    }
    return true;
  }

  /// Wakes every consumer; later pops return std::nullopt / false.
  void close() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      closed_ = true;
    }
    ready_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<int> items_;
  bool closed_ = false;
};

}  // namespace actormimic_fast::env
