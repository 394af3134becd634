#include "core/deadlines.h"

#include <memory>
#include <string>
#include <vector>

#include "core/loop.h"
#include "gtest/gtest.h"

namespace wirepool::core {
namespace {

// A deadline that records its name when it fires, and may run something more.
struct Named {
  Named(std::string n, std::vector<std::string>& log)
      : name(std::move(n)),
        log(log),
        deadline([](void* self) { static_cast<Named*>(self)->Fired(); }, this) {}
  void Fired() {
    log.push_back(name);
    if (then) {
      then();
    }
  }
  std::string name;
  std::vector<std::string>& log;
  std::function<void()> then;
  Deadline deadline;
};

TEST(DeadlinesTest, FireInOrderOfDueTimeAndNotWhenDisarmed) {
  EventLoop loop;
  std::vector<std::string> log;
  {
    DeadlineQueue queue(loop.get());
    std::vector<std::unique_ptr<Named>> all;
    for (const char* name : {"c", "a", "gone", "b", "moved"}) {
      all.push_back(std::make_unique<Named>(name, log));
    }
    queue.Arm(all[0]->deadline, absl::Milliseconds(30));  // c
    queue.Arm(all[1]->deadline, absl::Milliseconds(5));   // a
    queue.Arm(all[2]->deadline, absl::Milliseconds(1));   // gone: disarmed below
    queue.Arm(all[3]->deadline, absl::Milliseconds(15));  // b
    queue.Arm(all[4]->deadline, absl::Milliseconds(2));   // moved: re-armed later than c
    queue.Disarm(all[2]->deadline);
    queue.Arm(all[4]->deadline, absl::Milliseconds(45));
    EXPECT_EQ(queue.size(), 4u);
    EXPECT_FALSE(all[2]->deadline.armed());
    loop.Run();
    EXPECT_EQ(log, (std::vector<std::string>{"a", "b", "c", "moved"}));
    EXPECT_EQ(queue.size(), 0u);
    for (auto& n : all) {
      EXPECT_FALSE(n->deadline.armed());
    }
  }
}

TEST(DeadlinesTest, CallbackMayArmAndDestroyedEntriesLeave) {
  EventLoop loop;
  std::vector<std::string> log;
  {
    DeadlineQueue queue(loop.get());
    Named first("first", log);
    Named again("again", log);
    auto dropped = std::make_unique<Named>("dropped", log);
    queue.Arm(dropped->deadline, absl::Milliseconds(1));
    dropped.reset();  // its destructor takes it out of the heap
    int rounds = 0;
    first.then = [&] {
      if (++rounds < 3) {
        queue.Arm(first.deadline, absl::Milliseconds(1));  // re-arms itself from its callback
      } else {
        queue.Arm(again.deadline, absl::Milliseconds(1));
      }
    };
    queue.Arm(first.deadline, absl::Milliseconds(1));
    loop.Run();
    EXPECT_EQ(log, (std::vector<std::string>{"first", "first", "first", "again"}));
  }
}

}  // namespace
}  // namespace wirepool::core
