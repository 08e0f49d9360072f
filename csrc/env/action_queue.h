// Blocking FIFO of env ids between the caller thread and the pool's workers, in both directions, with a
// second, lower-priority FIFO of background items (the pool's eager resets).
//
// Contract: any number of producers and consumers; push never blocks (capacity is reserved for every
// env of the pool, and an env id is in at most one queue of each kind at a time, so the queue can never
// overflow); pop blocks until an item is available or the queue is closed, and returns a normal item
// whenever one is queued (background items only when none is); try_pop returns normal items only, so a
// caller that must not be held up by background work never takes one. close() wakes every blocked
// consumer, which then returns std::nullopt; destructors of the owner call it before joining threads.
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
  struct Item {
    int id;
    bool background;
  };

  /// Appends one item and wakes one waiting consumer.
  void push(int item) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      items_.push_back(item);
    }
    ready_.notify_one();
  }

  /// Appends one background item (taken by pop() only while no normal item is queued).
  void push_background(int item) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      background_.push_back(item);
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

  /// Blocks for the next item, normal ones first; std::nullopt once the queue is closed.
  std::optional<Item> pop() {
    std::unique_lock<std::mutex> lock(mutex_);
    ready_.wait(lock, [&] { return closed_ || !items_.empty() || !background_.empty(); });
    if (closed_) return std::nullopt;
    std::deque<int>& from = items_.empty() ? background_ : items_;
    const Item item{from.front(), &from == &background_};
    from.pop_front();
    return item;
  }

  /// The next normal item if one is queued now, else std::nullopt; never blocks.
  std::optional<int> try_pop() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_ || items_.empty()) return std::nullopt;
    const int item = items_.front();
    items_.pop_front();
    return item;
  }

  /// Number of normal items queued now.
  std::size_t size() {
    std::lock_guard<std::mutex> lock(mutex_);
    return items_.size();
  }

  /// Blocks until at least `count` normal items are queued (or closed), then moves exactly `count` into
  /// out. Returns false when the queue was closed first.
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
  std::deque<int> items_, background_;
  bool closed_ = false;
};

}  // namespace actormimic_fast::env
