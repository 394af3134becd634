#include "core/timer.h"

#include <cstdint>

namespace wirepool::core {
namespace {

uint64_t ToMillis(absl::Duration d) {
  int64_t ms = absl::ToInt64Milliseconds(d);
  return ms <= 0 ? 1 : static_cast<uint64_t>(ms);
}

}  // namespace

struct Timer::Cell {
  uv_timer_t handle;
  std::function<void()> callback;
};

Timer::Timer(uv_loop_t* loop, std::function<void()> callback) : cell_(new Cell) {
  cell_->callback = std::move(callback);
  uv_timer_init(loop, &cell_->handle);
  cell_->handle.data = cell_;
}

Timer::~Timer() {
  cell_->callback = nullptr;
  uv_timer_stop(&cell_->handle);
  uv_close(reinterpret_cast<uv_handle_t*>(&cell_->handle),
           [](uv_handle_t* h) { delete static_cast<Cell*>(h->data); });
}

void Timer::Start(absl::Duration after) {
  uv_timer_start(
      &cell_->handle,
      [](uv_timer_t* h) {
        auto* cell = static_cast<Cell*>(h->data);
        if (cell->callback) {
          cell->callback();
        }
      },
      ToMillis(after), 0);
}

void Timer::StartRepeating(absl::Duration every) {
  uint64_t ms = ToMillis(every);
  uv_timer_start(
      &cell_->handle,
      [](uv_timer_t* h) {
        auto* cell = static_cast<Cell*>(h->data);
        if (cell->callback) {
          cell->callback();
        }
      },
      ms, ms);
}

void Timer::Stop() { uv_timer_stop(&cell_->handle); }

bool Timer::armed() const {
  return uv_is_active(reinterpret_cast<const uv_handle_t*>(&cell_->handle)) != 0;
}

struct SignalWatcher::Cell {
  uv_signal_t handle;
  std::function<void()> callback;
};

SignalWatcher::SignalWatcher(uv_loop_t* loop, int signum, std::function<void()> callback)
    : cell_(new Cell) {
  cell_->callback = std::move(callback);
  uv_signal_init(loop, &cell_->handle);
  cell_->handle.data = cell_;
  uv_signal_start(
      &cell_->handle,
      [](uv_signal_t* h, int) {
        auto* cell = static_cast<Cell*>(h->data);
        if (cell->callback) {
          cell->callback();
        }
      },
      signum);
}

SignalWatcher::~SignalWatcher() {
  cell_->callback = nullptr;
  uv_signal_stop(&cell_->handle);
  uv_close(reinterpret_cast<uv_handle_t*>(&cell_->handle),
           [](uv_handle_t* h) { delete static_cast<Cell*>(h->data); });
}

}  // namespace wirepool::core
