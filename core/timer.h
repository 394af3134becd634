#pragma once

// RAII timer and signal watchers. The uv handle lives in a heap cell freed only in its close
// callback; destroying the owner closes the handle and detaches the callback first, so a closed
// owner never hears from the loop again.

#include <functional>

#include "absl/time/time.h"
#include "uv.h"

namespace wirepool::core {

class Timer {
 public:
  explicit Timer(uv_loop_t* loop, std::function<void()> callback);
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  ~Timer();

  void Start(absl::Duration after);               // one shot; restarts if armed
  void StartRepeating(absl::Duration every);
  void Stop();
  bool armed() const;

 private:
  struct Cell;
  Cell* cell_;
};

class SignalWatcher {
 public:
  SignalWatcher(uv_loop_t* loop, int signum, std::function<void()> callback);
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;
  ~SignalWatcher();

 private:
  struct Cell;
  Cell* cell_;
};

}  // namespace wirepool::core
