#pragma once

// A first-in first-out queue over a vector: nothing is allocated until the first push (std::deque
// allocates a 512-byte chunk on construction, which an idle connection would carry for nothing),
// and once it has grown, pushing and popping allocate nothing either.

#include <cstddef>
#include <utility>
#include <vector>

namespace wirepool::core {

template <typename T>
class Fifo {
 public:
  bool empty() const { return head_ == items_.size(); }
  size_t size() const { return items_.size() - head_; }
  T& front() { return items_[head_]; }
  const T& front() const { return items_[head_]; }

  void push_back(T item) {
    if (head_ > 0 && items_.size() == items_.capacity()) {
      // Reuse the popped slots before the vector grows.
      items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
    items_.push_back(std::move(item));
  }
  void pop_front() {
    items_[head_] = T();
    if (++head_ == items_.size()) {
      items_.clear();
      head_ = 0;
    }
  }
  void clear() {
    items_.clear();
    head_ = 0;
  }

 private:
  std::vector<T> items_;
  size_t head_ = 0;
};

}  // namespace wirepool::core
