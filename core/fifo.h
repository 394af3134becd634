#pragma once

// A first-in first-out queue over a vector: nothing is allocated until the first push (std::deque
// allocates a 512-byte chunk on construction, which an idle connection would carry for nothing),
// and once it has grown, pushing and popping allocate nothing either.

#include <cstddef>
#include <iterator>
#include <utility>
#include <vector>

namespace wirepool::core {

template <typename T>
class Fifo {
 public:
  using iterator = typename std::vector<T>::iterator;
  using const_iterator = typename std::vector<T>::const_iterator;

  bool empty() const { return head_ == items_.size(); }
  size_t size() const { return items_.size() - head_; }
  T& front() { return items_[head_]; }
  const T& front() const { return items_[head_]; }
  T& back() { return items_.back(); }
  const T& back() const { return items_.back(); }

  // Front to back (and back to front), for queues that are searched as well as popped.
  iterator begin() { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  iterator end() { return items_.end(); }
  const_iterator begin() const { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  const_iterator end() const { return items_.end(); }
  auto rbegin() { return std::make_reverse_iterator(end()); }
  auto rend() { return std::make_reverse_iterator(begin()); }
  auto rbegin() const { return std::make_reverse_iterator(end()); }
  auto rend() const { return std::make_reverse_iterator(begin()); }

  void push_back(const T& item) { emplace_back(item); }
  void push_back(T&& item) { emplace_back(std::move(item)); }
  template <typename... Args>
  T& emplace_back(Args&&... args) {
    if (head_ > 0 && items_.size() == items_.capacity()) {
      // Reuse the popped slots before the vector grows.
      items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
    return items_.emplace_back(std::forward<Args>(args)...);
  }
  void pop_front() {
    if (head_ + 1 == items_.size()) {
      clear();  // the usual case, one in and one out: nothing to reset first
      return;
    }
    items_[head_++] = T();  // what the item held goes now, not when its slot is reused
  }
  // Removes one queued item (an iterator from begin()..end()); returns the one after it.
  iterator erase(iterator it) {
    iterator next = items_.erase(it);
    if (head_ == items_.size()) {
      items_.clear();
      head_ = 0;
      return items_.end();
    }
    return next;
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
