#pragma once

// One event loop per worker thread. Objects that finish inside one of their own callbacks are
// handed to DeleteLater and destroyed after the callback stack has unwound.

#include <functional>
#include <memory>
#include <mutex>
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

  // The one thing another thread may call: runs `task` on this loop's thread, soon, in the
  // order posted. Tasks posted after Close are dropped. Used between workers, never per message.
  void Post(std::function<void()> task);

 private:
  static void Bury(uv_check_t* check);
  void RunPosted();
  uv_loop_t loop_;
  uv_check_t* check_;
  uv_idle_t* idle_;
  std::vector<std::function<void()>> graveyard_;
  uv_async_t* async_;
  std::mutex posted_mu_;
  std::vector<std::function<void()>> posted_;  // guarded by posted_mu_
  bool closed_ = false;                        // guarded by posted_mu_
};

}  // namespace wirepool::core
