// PatternReloader on a real event loop: the discovery runs on another
// thread while the loop goes on, and each request is answered after a
// discovery that began after it, once that discovery is applied.
#include "daemon/pattern_reloader.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/event_loop.h"

namespace {

using namespace std::chrono_literals;
using launcher::Discovery;
using launcher::EventLoop;
using launcher::FileError;
using launcher::PatternReloader;

// A discovery that blocks until opened (a slow NSS lookup), at most 2 s.
struct Gate {
    std::promise<void> promise;
    std::shared_future<void> future = promise.get_future().share();
    void open() { promise.set_value(); }
    bool wait() const { return future.wait_for(2s) == std::future_status::ready; }
};

Discovery one_invalid_manifest() {
    Discovery d;
    d.errors.emplace_back("/patterns/typo/manifest.yaml", 3, "unknown key 'memroy_limit'");
    return d;
}

TEST(PatternReloader, DiscoversOffTheLoopAndAnswersAfterApplying) {
    EventLoop loop;
    Gate gate;
    std::vector<std::string> events;
    std::thread::id discover_thread;
    bool gate_opened_in_time = false;
    PatternReloader reloader(
        loop, {.begin = [&] { events.push_back("begin"); },
               .discover =
                   [&] {
                       discover_thread = std::this_thread::get_id();
                       gate_opened_in_time = gate.wait();
                       return one_invalid_manifest();
                   },
               .apply =
                   [&](Discovery found) {
                       events.push_back("apply " + std::to_string(found.errors.size()));
                   },
               .end = [&](const PatternReloader::Outcome&) { events.push_back("end"); }});

    // The loop keeps turning while the discovery waits: a 5 ms ticker runs.
    int ticks = 0;
    std::function<void()> tick = [&] {
        ++ticks;
        loop.add_timer(5ms, tick);
    };
    loop.add_timer(5ms, tick);
    int ticks_while_discovering = -1;
    PatternReloader::Outcome answer;
    loop.post([&] {
        reloader.request([&](const PatternReloader::Outcome& outcome) {
            events.push_back("done");
            answer = outcome;
            loop.stop();
        });
        EXPECT_TRUE(reloader.running());
        loop.add_timer(150ms, [&] {
            ticks_while_discovering = ticks;
            EXPECT_TRUE(events.size() == 1) << "answered before the discovery finished";
            gate.open();
        });
    });
    loop.add_timer(10s, [&] { loop.stop(); });
    const std::thread::id loop_thread = std::this_thread::get_id();
    loop.run();

    EXPECT_TRUE(gate_opened_in_time) << "the discovery blocked the loop";
    EXPECT_NE(discover_thread, loop_thread);
    EXPECT_GE(ticks_while_discovering, 5);
    EXPECT_EQ(events, (std::vector<std::string>{"begin", "apply 1", "end", "done"}));
    EXPECT_FALSE(answer.failure);
    ASSERT_EQ(answer.invalid_manifests.size(), 1u);
    EXPECT_NE(answer.invalid_manifests[0].find("memroy_limit"), std::string::npos);
    EXPECT_FALSE(reloader.running());
}

TEST(PatternReloader, RequestsDuringARunGetOneMoreRunAfterIt) {
    EventLoop loop;
    Gate first_gate;
    int discoveries = 0, applied = 0;
    PatternReloader reloader(loop, {.discover =
                                        [&] {
                                            if (++discoveries == 1) first_gate.wait();
                                            return Discovery{};
                                        },
                                    .apply = [&](Discovery) { ++applied; }});
    std::vector<int> answered_after;  // how many applies each answer saw
    auto answer = [&](const PatternReloader::Outcome&) {
        answered_after.push_back(applied);
        if (answered_after.size() == 3) loop.stop();
    };
    loop.post([&] {
        reloader.request(answer);
        // While the first discovery runs (it may have read the old files):
        loop.add_timer(50ms, [&] {
            reloader.request(answer);
            reloader.request(answer);
            first_gate.open();
        });
    });
    loop.add_timer(10s, [&] { loop.stop(); });
    loop.run();

    EXPECT_EQ(discoveries, 2);
    EXPECT_EQ(applied, 2);
    EXPECT_EQ(answered_after, (std::vector<int>{1, 2, 2}));
}

TEST(PatternReloader, AFailedDiscoveryAppliesNothingAndSaysWhy) {
    EventLoop loop;
    bool applied = false, ended = false;
    PatternReloader reloader(loop, {.discover = []() -> Discovery {
                                        throw FileError("/patterns", 0,
                                                        "cannot read the patterns directory");
                                    },
                                    .apply = [&](Discovery) { applied = true; },
                                    .end = [&](const PatternReloader::Outcome&) { ended = true; }});
    PatternReloader::Outcome answer;
    loop.post([&] {
        reloader.request([&](const PatternReloader::Outcome& outcome) {
            answer = outcome;
            loop.stop();
        });
    });
    loop.add_timer(10s, [&] { loop.stop(); });
    loop.run();

    EXPECT_FALSE(applied);
    EXPECT_TRUE(ended);
    ASSERT_TRUE(answer.failure);
    EXPECT_NE(answer.failure->find("cannot read the patterns directory"), std::string::npos);
}

}  // namespace
