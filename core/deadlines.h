#pragma once

// Many one-shot deadlines on one uv timer: a binary heap of entries that live inside their
// owners. A client connection needs a deadline (login, borrow, idle in transaction) but a uv
// timer costs a heap cell of about 200 bytes; an entry here is 40 bytes inside the owner and
// costs nothing while it is not armed. Arming and disarming are O(log n) and allocate nothing
// once the heap has grown. Single-threaded: one queue per event loop (worker).

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/time/time.h"
#include "core/timer.h"
#include "uv.h"

namespace wirepool::core {

class DeadlineQueue;

class Deadline {
 public:
  using Fire = void (*)(void* arg);
  Deadline(Fire fire, void* arg) : fire_(fire), arg_(arg) {}
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;
  ~Deadline();

  bool armed() const { return queue_ != nullptr; }

 private:
  friend class DeadlineQueue;
  static constexpr uint32_t kNone = UINT32_MAX;
  Fire fire_;
  void* arg_;
  DeadlineQueue* queue_ = nullptr;  // set while armed
  uint64_t due_ms_ = 0;
  uint32_t index_ = kNone;
};

class DeadlineQueue {
 public:
  explicit DeadlineQueue(uv_loop_t* loop);
  DeadlineQueue(const DeadlineQueue&) = delete;
  DeadlineQueue& operator=(const DeadlineQueue&) = delete;
  ~DeadlineQueue();

  // (Re)arms `d` to fire `after` from now (at least 1 ms); its callback runs from the loop.
  void Arm(Deadline& d, absl::Duration after);
  void Disarm(Deadline& d);
  size_t size() const { return heap_.size(); }

 private:
  void Place(Deadline* d, size_t i);
  void SiftUp(size_t i);
  void SiftDown(size_t i);
  void RemoveAt(size_t i);
  void Reschedule();
  void FireDue();

  uv_loop_t* loop_;
  Timer timer_;
  std::vector<Deadline*> heap_;
  uint64_t timer_due_ms_ = 0;  // when timer_ fires, if armed
};

}  // namespace wirepool::core
