#pragma once

// One event loop per worker thread. Objects that finish inside one of their own callbacks are
// handed to DeleteLater and destroyed after the callback stack has unwound.

#include <functional>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "uv.h"

namespace wirepool::core {

class EventLoop {
 public:
  EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;
  ~EventLoop();

  uv_loop_t* get() { return &loop_; }
  void Run();
  void Stop() { uv_stop(&loop_); }

  template <typename T>
  void DeleteLater(std::unique_ptr<T> object) {
    T* raw = object.release();
    graveyard_.push_back([raw] { delete raw; });
    uv_check_start(check_, &EventLoop::Bury);
    uv_idle_start(idle_, [](uv_idle_t*) {});  // keeps the loop from blocking before the burial
  }

  // Runs what is left until every handle has closed; returns an error naming what stayed open.
  absl::Status Close();

 private:
  static void Bury(uv_check_t* check);
  uv_loop_t loop_;
  uv_check_t* check_;
  uv_idle_t* idle_;
  std::vector<std::function<void()>> graveyard_;
};

}  // namespace wirepool::core
