#include "core/loop.h"
#include "core/strings.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "core/log.h"

namespace wirepool::core {

EventLoop::EventLoop() : check_(new uv_check_t), idle_(new uv_idle_t), async_(new uv_async_t) {
  uv_loop_init(&loop_);
  uv_check_init(&loop_, check_);
  uv_idle_init(&loop_, idle_);
  uv_async_init(&loop_, async_,
                [](uv_async_t* a) { static_cast<EventLoop*>(a->data)->RunPosted(); });
  check_->data = this;
  async_->data = this;
  // The burial and mailbox handles must not keep the loop alive on their own.
  uv_unref(reinterpret_cast<uv_handle_t*>(check_));
  uv_unref(reinterpret_cast<uv_handle_t*>(idle_));
  uv_unref(reinterpret_cast<uv_handle_t*>(async_));
}

void EventLoop::Post(std::function<void()> task) {
  std::lock_guard<std::mutex> lock(posted_mu_);
  if (closed_) {
    return;
  }
  posted_.push_back(std::move(task));
  uv_async_send(async_);  // wakes the loop; several sends may fold into one callback
}

void EventLoop::RunPosted() {
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    tasks.swap(posted_);
  }
  for (auto& task : tasks) {
    task();
  }
}

EventLoop::~EventLoop() {
  absl::Status st = Close();
  if (!st.ok()) {
    spdlog::error("event loop closed with handles open: {}", st.message());
  }
}

void EventLoop::Run() { uv_run(&loop_, UV_RUN_DEFAULT); }

void EventLoop::Bury(uv_check_t* check) {
  auto* self = static_cast<EventLoop*>(check->data);
  while (!self->graveyard_.empty()) {
    auto batch = std::move(self->graveyard_);
    self->graveyard_.clear();
    for (auto& destroy : batch) {
      destroy();
    }
  }
  uv_check_stop(self->check_);
  uv_idle_stop(self->idle_);
}

absl::Status EventLoop::Close() {
  if (check_ == nullptr) {
    return absl::OkStatus();
  }
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    closed_ = true;
    posted_.clear();
  }
  Bury(check_);
  uv_close(reinterpret_cast<uv_handle_t*>(async_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
  async_ = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(check_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_check_t*>(h); });
  uv_close(reinterpret_cast<uv_handle_t*>(idle_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_idle_t*>(h); });
  check_ = nullptr;
  idle_ = nullptr;
  // Let close callbacks run.
  uv_run(&loop_, UV_RUN_NOWAIT);
  uv_run(&loop_, UV_RUN_NOWAIT);
  if (uv_loop_close(&loop_) == 0) {
    return absl::OkStatus();
  }
  std::string open;
  uv_walk(
      &loop_,
      [](uv_handle_t* h, void* arg) {
        absl::StrAppend(static_cast<std::string*>(arg), uv_handle_type_name(h->type), " ");
      },
      &open);
  return absl::FailedPreconditionError(Cat("open handles: ", open));
}

}  // namespace wirepool::core
