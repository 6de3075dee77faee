// The C++ wrapper (shmdeque.hpp): compiled with -std=c++17 -Wall -Wextra -pedantic -Werror by the test
// `c_and_cpp` and run (also under AddressSanitizer and UBSan) on a deque name the test chooses and removes.
//
//   wrapper_test NAME
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "shmdeque.hpp"

namespace {

int checks = 0;

#define CHECK(cond)                                                                                  \
    do {                                                                                             \
        checks++;                                                                                    \
        if (!(cond)) {                                                                               \
            std::fprintf(stderr, "wrapper_test.cpp:%d: check failed: %s\n", __LINE__, #cond);        \
            std::exit(1);                                                                            \
        }                                                                                            \
    } while (0)

/// The status of the shmdeque::Error that `f` throws, or SHMDEQUE_OK if it throws none.
template <class F>
shmdeque::Status status_of(F&& f) {
    try {
        f();
    } catch (const shmdeque::Error& e) {
        return e.status();
    }
    return SHMDEQUE_OK;
}

}  // namespace

int main(int argc, char** argv) {
    using namespace std::chrono_literals;
    if (argc != 2) {
        std::fprintf(stderr, "usage: wrapper_test NAME\n");
        return 2;
    }
    const std::string name = argv[1];

    shmdeque::Options open_only;
    open_only.create = shmdeque::Options::Create::open;
    CHECK(status_of([&] { shmdeque::Deque d(name, open_only); }) == SHMDEQUE_NOT_FOUND);
    try {
        shmdeque::Deque d(name, open_only);
    } catch (const std::runtime_error& e) {  // a std::runtime_error, with the library's words
        CHECK(std::string(e.what()).find("does not exist") != std::string::npos);
    }

    shmdeque::Options options;
    options.capacity = 4;
    options.slot_size = 36;  // messages of up to 32 bytes
    options.create = shmdeque::Options::Create::create_exclusive;
    shmdeque::Deque q(name, options);
    CHECK(status_of([&] { shmdeque::Deque d(name, options); }) == SHMDEQUE_EXISTS);
    CHECK(q.capacity() == 4 && q.max_message_len() == 32 && q.empty());

    // Pushes from strings, string_views and bytes; pops into optionals of several containers.
    CHECK(q.push_back("two"));
    CHECK(q.push_front(std::string("one")));
    CHECK(q.try_push_back(std::string_view("three")));
    const std::vector<std::byte> four{std::byte{4}, std::byte{0}, std::byte{4}};
    CHECK(q.push_back(four, 10ms));
    CHECK(!q.try_push_back("five"));          // full
    CHECK(!q.push_back("five", 1ms));         // still full
    CHECK(q.size() == 4);
    CHECK(q.pop_front<std::string>() == std::optional<std::string>("one"));
    CHECK(q.pop_front<std::string>(std::chrono::seconds(1)).value() == "two");
    std::optional<std::vector<std::byte>> back = q.pop_back();
    CHECK(back && *back == four);
    std::string reused;
    CHECK(q.pop_front_into(reused, 0ms) && reused == "three");
    CHECK(!q.try_pop_front());
    CHECK(!q.pop_back<std::string>(2ms));
    CHECK(status_of([&] { q.push_back(std::string(33, 'x')); }) == SHMDEQUE_TOO_LARGE);

    // In place; a callable that throws leaves the deque as it was and its exception comes out.
    CHECK(q.push_back_with(5, [](std::byte* slot, std::size_t n) {
        for (std::size_t i = 0; i < n; i++) slot[i] = std::byte{'z'};
    }));
    bool threw = false;
    try {
        q.push_back_with(5, [](std::byte*, std::size_t) { throw std::logic_error("no"); });
    } catch (const std::logic_error&) {
        threw = true;
    }
    CHECK(threw && q.size() == 1);
    threw = false;
    try {
        q.pop_front_with([](shmdeque::View) { throw std::logic_error("not now"); });
    } catch (const std::logic_error&) {
        threw = true;
    }
    CHECK(threw && q.size() == 1);
    std::string seen;
    CHECK(q.pop_front_with([&](shmdeque::View m) { seen = std::string(m.str()); }, 0ms));
    CHECK(seen == "zzzzz" && q.empty());

    // Batches.
    CHECK(q.push_back_many({"a", "b", std::string("c")}) == 3);
    CHECK(q.push_front_many({"d", "e"}, 0ms) == 1);  // room for one more
    std::vector<std::string> got = q.pop_front_many<std::string>(10);
    CHECK((got == std::vector<std::string>{"d", "a", "b", "c"}));
    CHECK(q.pop_back_many(10, 1ms).empty());

    // The lock: iteration in place, try_ operations, atomically; unlocked at the end of the scope.
    q.push_back_many({"x", "yy", "zzz"});
    {
        shmdeque::Lock lock = q.lock();
        std::string all;
        for (shmdeque::View m : lock) {
            all += m.str();
            all += ',';
        }
        CHECK(all == "x,yy,zzz,");
        CHECK(lock.size() == 3 && lock[1].str() == "yy" && lock.front()->str() == "x");
        CHECK(status_of([&] { lock[3]; }) == SHMDEQUE_NOT_FOUND);
        std::optional<std::string> zzz = lock.try_pop_back<std::string>();
        CHECK(zzz == std::optional<std::string>("zzz"));
        CHECK(lock.try_push_front(*zzz));
        CHECK(lock.try_push_back("w"));
        CHECK(!lock.try_push_back("full"));
        CHECK(lock.back()->str() == "w");
        // The locking thread's blocking operations are refused rather than deadlocked.
        CHECK(status_of([&] { q.push_back("deadlock?"); }) == SHMDEQUE_INVALID);
    }
    CHECK(q.pop_front<std::string>().value() == "zzz");
    {
        shmdeque::Lock lock = q.lock();
        CHECK(lock.clear() == 3 && !lock.front());
    }

    // Threads share one Deque, waiting without sleeping.
    q.set_wait_strategy(SHMDEQUE_WAIT_YIELDING);
    std::thread consumer([&] {
        for (int i = 0; i < 1000; i++) {
            std::optional<std::string> m = q.pop_front<std::string>(std::chrono::seconds(30));
            if (!m || *m != std::to_string(i)) {
                std::fprintf(stderr, "wrapper_test: message %d came wrong\n", i);
                std::exit(1);
            }
        }
    });
    for (int i = 0; i < 1000; i++) {
        q.push_back(std::to_string(i));
    }
    consumer.join();
    q.set_wait_strategy(SHMDEQUE_WAIT_ADAPTIVE);

    // Stats, producers, closing.
    shmdeque::Stats s = q.stats();
    CHECK(s.capacity == 4 && s.slot_size == 36 && s.len == 0 && s.pushed > 1000);
    {
        shmdeque::Producer p = q.register_producer();
        CHECK(q.stats().producers == 1);
        q.push_back("bye");
        CHECK(p.leave(true));
    }
    CHECK(q.closed() && !q.drained());
    CHECK(status_of([&] { q.push_back("late"); }) == SHMDEQUE_CLOSED);
    CHECK(q.pop_front<std::string>().value() == "bye");
    CHECK(!q.pop_front() && q.drained());
    CHECK(shmdeque::remove(name));
    CHECK(!shmdeque::remove(name));
    CHECK(status_of([&] { shmdeque::remove("a/b"); }) == SHMDEQUE_INVALID);

    std::printf("c++ wrapper: %d checks passed\n", checks);
    return 0;
}
