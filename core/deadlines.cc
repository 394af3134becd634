#include "core/deadlines.h"

#include <algorithm>
#include <utility>

namespace wirepool::core {

Deadline::~Deadline() {
  if (queue_ != nullptr) {
    queue_->Disarm(*this);
  }
}

DeadlineQueue::DeadlineQueue(uv_loop_t* loop) : loop_(loop), timer_(loop, [this] { FireDue(); }) {}

DeadlineQueue::~DeadlineQueue() {
  for (Deadline* d : heap_) {
    d->queue_ = nullptr;
    d->index_ = Deadline::kNone;
  }
}

void DeadlineQueue::Arm(Deadline& d, absl::Duration after) {
  if (d.queue_ != nullptr) {
    RemoveAt(d.index_);
  }
  int64_t ms = std::max<int64_t>(1, absl::ToInt64Milliseconds(after));
  d.due_ms_ = uv_now(loop_) + static_cast<uint64_t>(ms);
  d.queue_ = this;
  heap_.push_back(&d);
  Place(&d, heap_.size() - 1);
  SiftUp(heap_.size() - 1);
  Reschedule();
}

void DeadlineQueue::Disarm(Deadline& d) {
  if (d.queue_ != this) {
    return;
  }
  RemoveAt(d.index_);
  Reschedule();
}

void DeadlineQueue::Place(Deadline* d, size_t i) {
  heap_[i] = d;
  d->index_ = static_cast<uint32_t>(i);
}

void DeadlineQueue::SiftUp(size_t i) {
  Deadline* d = heap_[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (heap_[parent]->due_ms_ <= d->due_ms_) {
      break;
    }
    Place(heap_[parent], i);
    i = parent;
  }
  Place(d, i);
}

void DeadlineQueue::SiftDown(size_t i) {
  Deadline* d = heap_[i];
  const size_t n = heap_.size();
  while (true) {
    size_t child = 2 * i + 1;
    if (child >= n) {
      break;
    }
    if (child + 1 < n && heap_[child + 1]->due_ms_ < heap_[child]->due_ms_) {
      ++child;
    }
    if (d->due_ms_ <= heap_[child]->due_ms_) {
      break;
    }
    Place(heap_[child], i);
    i = child;
  }
  Place(d, i);
}

void DeadlineQueue::RemoveAt(size_t i) {
  Deadline* gone = heap_[i];
  gone->queue_ = nullptr;
  gone->index_ = Deadline::kNone;
  Deadline* last = heap_.back();
  heap_.pop_back();
  if (last == gone) {
    return;
  }
  Place(last, i);
  SiftDown(i);
  SiftUp(last->index_);
}

void DeadlineQueue::Reschedule() {
  if (heap_.empty()) {
    timer_.Stop();
    return;
  }
  uint64_t due = heap_.front()->due_ms_;
  if (timer_.armed() && timer_due_ms_ == due) {
    return;  // most arms and disarms do not change the earliest deadline
  }
  uint64_t now = uv_now(loop_);
  timer_due_ms_ = due;
  timer_.Start(absl::Milliseconds(due > now ? due - now : 0));
}

void DeadlineQueue::FireDue() {
  const uint64_t now = uv_now(loop_);
  while (!heap_.empty() && heap_.front()->due_ms_ <= now) {
    Deadline* d = heap_.front();
    RemoveAt(0);
    d->fire_(d->arg_);  // may arm or disarm any deadline, this one included
  }
  Reschedule();
}

}  // namespace wirepool::core
