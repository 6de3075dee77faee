// A consumer in C++: pops every message of the deque NAME until it is closed and drained, and checks each
// as a synthetic, self-checking message (checksum, and per producer the sequence 0, 1, 2, ... with no gap,
// as `consumer --verify --consecutive` does). Feed it with the Rust `producer --name NAME --count N --size S`
// or with examples/c/producer.
//
//   consumer NAME [--expect N] [--wait SECS] [--timeout SECS]
//
// --expect N  fail unless exactly N messages came;   --wait SECS  wait that long for the deque to appear
// (default 10);   --timeout SECS  give up (exit 3) when no message comes for that long (default 30).
// Prints "consumer: N messages verified" on stdout. Exit codes as the tools': 0 success, 1 a bad message or
// another failure, 2 bad usage or no such deque, 3 timeout.
//
// Build (from the repository root, after `cargo build --release`):
//   c++ -std=c++17 -O2 -I shmdeque-ffi/include examples/cpp/consumer.cpp target/release/libshmdeque_ffi.a
//       -lpthread -ldl -lm -lrt -lutil -lgcc_s -o consumer-cpp
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "../c/synth.h"
#include "shmdeque.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Args {
    std::string name;
    long long expect = -1;
    std::chrono::milliseconds wait = 10s;
    std::chrono::milliseconds timeout = 30s;
};

bool parse(int argc, char** argv, Args& a) {
    if (argc < 2) {
        return false;
    }
    a.name = argv[1];
    for (int i = 2; i < argc; i += 2) {
        if (i + 1 >= argc) {
            return false;
        }
        const std::string flag = argv[i];
        char* end = nullptr;
        const long long v = std::strtoll(argv[i + 1], &end, 10);
        if (*end != '\0' || v < 0) {
            return false;
        }
        if (flag == "--expect") {
            a.expect = v;
        } else if (flag == "--wait") {
            a.wait = std::chrono::seconds(v);
        } else if (flag == "--timeout") {
            a.timeout = std::chrono::seconds(v);
        } else {
            return false;
        }
    }
    return true;
}

/// Opens the deque, waiting up to `wait` for a producer to create it.
shmdeque::Deque open(const Args& a) {
    const auto give_up = Clock::now() + a.wait;
    shmdeque::Options options;
    options.create = shmdeque::Options::Create::open;
    for (;;) {
        try {
            return shmdeque::Deque(a.name, options);
        } catch (const shmdeque::Error& e) {
            if (e.status() != SHMDEQUE_NOT_FOUND || Clock::now() >= give_up) {
                throw;
            }
        }
        std::this_thread::sleep_for(10ms);
    }
}

int run(const Args& a) {
    shmdeque::Deque q = open(a);
    std::unordered_map<std::uint32_t, std::uint64_t> next;  // per producer, the sequence number due
    std::vector<unsigned char> msg;
    msg.reserve(q.max_message_len());
    long long count = 0;
    for (;;) {
        if (!q.pop_front_into(msg, a.timeout)) {
            if (q.drained()) {
                break;  // closed, and every message popped
            }
            if (!q.closed()) {
                std::fprintf(stderr, "consumer: no message for %lld s; is a producer running?\n",
                             static_cast<long long>(a.timeout.count() / 1000));
                return 3;
            }
            continue;  // closed with messages left: drain them
        }
        std::uint32_t producer = 0;
        std::uint64_t seq = 0;
        if (const char* bad = synth_check(msg.data(), msg.size(), &producer, &seq)) {
            std::fprintf(stderr, "consumer: message #%lld is bad: %s\n", count, bad);
            return 1;
        }
        std::uint64_t& due = next[producer];
        if (seq != due) {
            std::fprintf(stderr, "consumer: message #%lld is bad: producer %u sent sequence %llu where %llu was due\n",
                         count, producer, static_cast<unsigned long long>(seq), static_cast<unsigned long long>(due));
            return 1;
        }
        due = seq + 1;
        count++;
    }
    if (a.expect >= 0 && count != a.expect) {
        std::fprintf(stderr, "consumer: %lld messages came, %lld were expected\n", count, a.expect);
        return 1;
    }
    std::printf("consumer: %lld messages verified\n", count);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Args args;
    if (!parse(argc, argv, args)) {
        std::fprintf(stderr, "usage: consumer NAME [--expect N] [--wait SECS] [--timeout SECS]\n");
        return 2;
    }
    try {
        return run(args);
    } catch (const shmdeque::Error& e) {
        std::fprintf(stderr, "consumer: %s\n", e.what());
        return e.status() == SHMDEQUE_NOT_FOUND || e.status() == SHMDEQUE_INVALID ? 2 : 1;
    }
}
