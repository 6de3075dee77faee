// shmdeque for C++17: a header-only RAII wrapper over the C API of shmdeque.h.
//
//   shmdeque::Deque q("jobs", {1024, 256});              // open or create: 1024 slots of 256 bytes
//   q.push_back("hello");                                 // blocks while full
//   q.push_front(std::string_view("urgent"));
//   if (auto m = q.pop_front<std::string>(std::chrono::seconds(1))) { ... }   // std::optional
//   {
//       auto lock = q.lock();                             // like QSharedMemory::lock()
//       for (shmdeque::View m : lock) { ... }             // every message, front to back, in place
//   }                                                     // unlocked here
//
// Errors are exceptions derived from std::runtime_error (shmdeque::Error) that carry the C status. Not
// waiting (`try_`) and timeouts that expire are not errors: pushes return false, pops std::nullopt.
// Timeouts are any std::chrono::duration (rounded up to whole milliseconds); the default is to wait as long
// as it takes. One Deque may be used by many threads at once; a Lock only by the thread that took it.
//
// Link as for shmdeque.h (see the README, "From C and C++"): c++ -std=c++17 -I shmdeque-ffi/include ...
#ifndef SHMDEQUE_HPP
#define SHMDEQUE_HPP

#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "shmdeque.h"

namespace shmdeque {

/// A C status code: SHMDEQUE_OK, SHMDEQUE_FULL, ...
using Status = shmdeque_status;

/// A failed operation: what the library said, and the status.
class Error : public std::runtime_error {
public:
    Error(Status status, const std::string& message) : std::runtime_error(message), status_(status) {}

    /// The C status, e.g. SHMDEQUE_NOT_FOUND or SHMDEQUE_CLOSED.
    Status status() const noexcept { return status_; }

    /// The status's name, e.g. "SHMDEQUE_NOT_FOUND".
    const char* status_name() const noexcept { return shmdeque_status_name(static_cast<int>(status_)); }

private:
    Status status_;
};

/// The bytes of a message: a byte vector by default; pops also fill std::string and other byte containers.
using Bytes = std::vector<std::byte>;

namespace detail {

/// Throws the Error for `s`, with this thread's last error message.
[[noreturn]] inline void raise(Status s) {
    const char* message = shmdeque_last_error();
    throw Error(s, *message != '\0' ? message : shmdeque_status_name(static_cast<int>(s)));
}

inline void check(Status s) {
    if (s != SHMDEQUE_OK) {
        raise(s);
    }
}

/// A container that pops can fill: contiguous, of 1-byte elements, with assign(first, last).
template <class Buffer>
using ByteElement = std::enable_if_t<sizeof(typename Buffer::value_type) == 1 &&
                                     std::is_trivially_copyable_v<typename Buffer::value_type>>;

template <class Buffer>
void assign(Buffer& out, const void* msg, std::size_t len) {
    auto first = static_cast<const typename Buffer::value_type*>(msg);
    out.assign(first, first + len);
}

/// What an in-place callback threw, rethrown once the C call has returned (nothing may unwind through it).
struct Callback {
    std::exception_ptr error;

    void rethrow_if_failed() {
        if (error) {
            std::rethrow_exception(std::exchange(error, nullptr));
        }
    }
};

}  // namespace detail

/// How long an operation may wait: any std::chrono::duration (rounded up to whole milliseconds; zero or
/// negative means not at all), or Timeout::forever().
class Timeout {
public:
    template <class Rep, class Period>
    constexpr Timeout(std::chrono::duration<Rep, Period> d) : ms_(to_ms(d)) {}  // NOLINT: implicit on purpose

    /// As long as it takes.
    static constexpr Timeout forever() { return Timeout(-1); }
    /// Not at all.
    static constexpr Timeout none() { return Timeout(0); }

    /// The C API's `timeout_ms`: -1, 0 or a positive count.
    constexpr std::int64_t ms() const { return ms_; }

private:
    constexpr explicit Timeout(std::int64_t ms) : ms_(ms) {}

    template <class Rep, class Period>
    static constexpr std::int64_t to_ms(std::chrono::duration<Rep, Period> d) {
        // Through long double, so that no duration overflows on the way; beyond the range: forever.
        const long double ms = std::chrono::duration<long double, std::milli>(d).count();
        if (!(ms > 0)) {
            return 0;
        }
        if (ms >= 9.2e18L) {
            return -1;
        }
        const auto whole = static_cast<std::int64_t>(ms);
        return static_cast<long double>(whole) < ms ? whole + 1 : whole;
    }

    std::int64_t ms_;
};

/// A message's bytes where they lie, from a Lock or an in-place pop: valid only as long as they say.
class View {
public:
    View(const void* data, std::size_t size) : data_(static_cast<const std::byte*>(data)), size_(size) {}

    const std::byte* data() const { return data_; }
    std::size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    const std::byte* begin() const { return data_; }
    const std::byte* end() const { return data_ + size_; }
    std::byte operator[](std::size_t i) const { return data_[i]; }

    /// The bytes as characters, in place.
    std::string_view str() const { return {reinterpret_cast<const char*>(data_), size_}; }
    /// A copy of the bytes.
    Bytes bytes() const { return Bytes(begin(), end()); }

private:
    const std::byte* data_;
    std::size_t size_;
};

/// Bytes to push: from a string, a string_view, a byte vector, a View, or a pointer and a length. Only
/// borrows them for the call.
class ByteView {
public:
    ByteView(const void* data, std::size_t size) : data_(data), size_(size) {}
    ByteView(std::string_view s) : data_(s.data()), size_(s.size()) {}               // NOLINT: implicit
    ByteView(const char* s) : ByteView(std::string_view(s)) {}                       // NOLINT: implicit
    ByteView(const std::string& s) : data_(s.data()), size_(s.size()) {}             // NOLINT: implicit
    ByteView(const View& v) : data_(v.data()), size_(v.size()) {}                    // NOLINT: implicit
    template <class T, class = std::enable_if_t<sizeof(T) == 1 && std::is_trivially_copyable_v<T>>>
    ByteView(const std::vector<T>& v) : data_(v.data()), size_(v.size()) {}         // NOLINT: implicit

    const void* data() const { return data_; }
    std::size_t size() const { return size_; }

private:
    const void* data_;
    std::size_t size_;
};

/// How to open a deque. Capacity and slot size 0 mean: the existing deque's when opening, the defaults
/// (1024, 4096) when creating; nonzero values must match an existing deque.
struct Options {
    /// What to do about an existing or missing deque.
    enum class Create : int { open = 0, open_or_create = 1, create_exclusive = 2 };

    std::uint32_t capacity = 0;
    std::uint32_t slot_size = 0;
    Create create = Create::open_or_create;
    /// Permission bits of a new segment; 0 for the default 0600.
    std::uint32_t mode = 0;
};

/// A deque's state and counters.
using Stats = shmdeque_stats;

/// The deque's lock, held: several operations under it happen atomically for every other thread and
/// process, and the messages can be read in place. Unlocks when it goes out of scope (or at unlock()).
/// Keep it briefly; use it only on the thread that took it. Never waits: its pushes and pops are try_.
class Lock {
public:
    explicit Lock(shmdeque_handle* q) { detail::check(shmdeque_lock(q, &g_)); }
    ~Lock() { unlock(); }
    Lock(Lock&& other) noexcept : g_(std::exchange(other.g_, nullptr)) {}
    Lock& operator=(Lock&& other) noexcept {
        if (this != &other) {
            unlock();
            g_ = std::exchange(other.g_, nullptr);
        }
        return *this;
    }
    Lock(const Lock&) = delete;
    Lock& operator=(const Lock&) = delete;

    /// Unlocks now; the Lock is empty afterwards.
    void unlock() noexcept {
        if (g_ != nullptr) {
            shmdeque_unlock(g_);
            g_ = nullptr;
        }
    }

    /// Number of messages (exact while locked).
    std::size_t size() const {
        std::size_t n = 0;
        detail::check(shmdeque_guard_len(g_, &n));
        return n;
    }
    bool empty() const { return size() == 0; }

    bool closed() const {
        bool c = false;
        detail::check(shmdeque_guard_is_closed(g_, &c));
        return c;
    }

    /// The message at `i` from the front, in place until the next change through this Lock; throws Error
    /// (SHMDEQUE_NOT_FOUND) when `i >= size()`.
    View operator[](std::size_t i) const {
        const void* msg = nullptr;
        std::size_t len = 0;
        detail::check(shmdeque_guard_get(g_, i, &msg, &len));
        return View(msg, len);
    }

    std::optional<View> front() const { return end_view(shmdeque_guard_front); }
    std::optional<View> back() const { return end_view(shmdeque_guard_back); }

    /// Iterates over the messages front to back, in place, without removing them.
    class iterator {
    public:
        using iterator_category = std::input_iterator_tag;
        using value_type = View;
        using difference_type = std::ptrdiff_t;
        using pointer = void;
        using reference = View;

        iterator(const Lock* lock, std::size_t i) : lock_(lock), i_(i) {}
        View operator*() const { return (*lock_)[i_]; }
        iterator& operator++() {
            ++i_;
            return *this;
        }
        iterator operator++(int) {
            iterator old = *this;
            ++i_;
            return old;
        }
        bool operator==(const iterator& o) const { return i_ == o.i_; }
        bool operator!=(const iterator& o) const { return i_ != o.i_; }

    private:
        const Lock* lock_;
        std::size_t i_;
    };
    iterator begin() const { return iterator(this, 0); }
    iterator end() const { return iterator(this, size()); }

    /// Pushes if there is room; false when full. Throws Error when closed or the message is too large.
    bool try_push_back(ByteView msg) { return pushed(shmdeque_guard_try_push_back(g_, msg.data(), msg.size())); }
    bool try_push_front(ByteView msg) { return pushed(shmdeque_guard_try_push_front(g_, msg.data(), msg.size())); }

    /// Removes the front message if there is one.
    template <class Buffer = Bytes, class = detail::ByteElement<Buffer>>
    std::optional<Buffer> try_pop_front() {
        return pop<Buffer>(shmdeque_guard_front, shmdeque_guard_try_pop_front);
    }
    template <class Buffer = Bytes, class = detail::ByteElement<Buffer>>
    std::optional<Buffer> try_pop_back() {
        return pop<Buffer>(shmdeque_guard_back, shmdeque_guard_try_pop_back);
    }

    /// Removes every message; returns how many there were.
    std::size_t clear() {
        std::size_t n = 0;
        detail::check(shmdeque_guard_clear(g_, &n));
        return n;
    }

    /// Closes the deque for everyone; blocked processes wake when this unlocks.
    void close() { detail::check(shmdeque_guard_close(g_)); }

    /// The C guard, for the shmdeque_guard_* functions.
    shmdeque_guard* native_handle() const { return g_; }

private:
    using Locate = shmdeque_status (*)(shmdeque_guard*, const void**, std::size_t*);
    using TryPop = shmdeque_status (*)(shmdeque_guard*, void*, std::size_t*);

    std::optional<View> end_view(Locate locate) const {
        const void* msg = nullptr;
        std::size_t len = 0;
        Status s = locate(g_, &msg, &len);
        if (s == SHMDEQUE_EMPTY) {
            return std::nullopt;
        }
        detail::check(s);
        return View(msg, len);
    }

    static bool pushed(Status s) {
        if (s == SHMDEQUE_FULL) {
            return false;
        }
        detail::check(s);
        return true;
    }

    template <class Buffer>
    std::optional<Buffer> pop(Locate locate, TryPop try_pop) {
        // The lock is held, so the message measured is the one popped.
        std::optional<View> m = end_view(locate);
        if (!m) {
            return std::nullopt;
        }
        Buffer out(m->size(), typename Buffer::value_type());
        std::size_t len = out.size();
        detail::check(try_pop(g_, out.data(), &len));
        return out;
    }

    shmdeque_guard* g_ = nullptr;
};

/// A registration as a producer (see Deque::register_producer). Leaves without closing when destroyed.
class Producer {
public:
    explicit Producer(shmdeque_handle* q) { detail::check(shmdeque_register_producer(q, &p_)); }
    ~Producer() {
        if (p_ != nullptr) {
            shmdeque_producer_leave(p_, 0, nullptr);
        }
    }
    Producer(Producer&& other) noexcept : p_(std::exchange(other.p_, nullptr)) {}
    Producer& operator=(Producer&&) = delete;
    Producer(const Producer&) = delete;
    Producer& operator=(const Producer&) = delete;

    /// Leaves; if `close_if_last` and no other live producer remains, closes the deque. Returns whether
    /// this call closed it.
    bool leave(bool close_if_last = true) {
        bool closed = false;
        shmdeque_status s = shmdeque_producer_leave(std::exchange(p_, nullptr), close_if_last ? 1 : 0, &closed);
        detail::check(s);
        return closed;
    }

private:
    shmdeque_producer* p_ = nullptr;
};

/// A bounded deque of messages shared between processes, opened by name (/dev/shm/NAME).
class Deque {
public:
    /// Opens (or creates, as `options.create` says) the deque. Throws Error: SHMDEQUE_NOT_FOUND,
    /// SHMDEQUE_EXISTS, SHMDEQUE_INVALID (a bad name, or sizes that do not match), ...
    explicit Deque(const std::string& name, const Options& options = Options()) {
        detail::check(shmdeque_open(name.c_str(), options.capacity, options.slot_size,
                                    static_cast<int>(options.create), options.mode, &q_));
    }
    ~Deque() { shmdeque_close_handle(q_); }
    Deque(Deque&& other) noexcept : q_(std::exchange(other.q_, nullptr)) {}
    Deque& operator=(Deque&& other) noexcept {
        if (this != &other) {
            shmdeque_close_handle(q_);
            q_ = std::exchange(other.q_, nullptr);
        }
        return *this;
    }
    Deque(const Deque&) = delete;
    Deque& operator=(const Deque&) = delete;

    // --- Pushes: true when pushed, false when full (not waiting) or the timeout expired; Error otherwise
    // (SHMDEQUE_CLOSED, SHMDEQUE_TOO_LARGE, ...). The blocking forms return true or throw.

    bool push_back(ByteView msg, Timeout timeout = Timeout::forever()) {
        return pushed(shmdeque_push_back(q_, msg.data(), msg.size(), timeout.ms()));
    }
    bool push_front(ByteView msg, Timeout timeout = Timeout::forever()) {
        return pushed(shmdeque_push_front(q_, msg.data(), msg.size(), timeout.ms()));
    }
    bool try_push_back(ByteView msg) { return push_back(msg, Timeout::none()); }
    bool try_push_front(ByteView msg) { return push_front(msg, Timeout::none()); }

    /// Pushes an `n`-byte message that `fill(std::byte* slot, std::size_t n)` writes straight into its
    /// slot, under the lock. If `fill` throws, nothing is pushed and the exception propagates.
    template <class F>
    bool push_back_with(std::size_t n, F&& fill, Timeout timeout = Timeout::forever()) {
        return push_with(shmdeque_push_back_with, n, std::forward<F>(fill), timeout);
    }
    template <class F>
    bool push_front_with(std::size_t n, F&& fill, Timeout timeout = Timeout::forever()) {
        return push_with(shmdeque_push_front_with, n, std::forward<F>(fill), timeout);
    }

    /// Pushes all of `msgs` in order; returns how many were pushed (fewer only if the timeout expired or,
    /// not waiting, there was no room for all).
    std::size_t push_back_many(const std::vector<ByteView>& msgs, Timeout timeout = Timeout::forever()) {
        return push_many(shmdeque_push_back_many, msgs, timeout);
    }
    std::size_t push_front_many(const std::vector<ByteView>& msgs, Timeout timeout = Timeout::forever()) {
        return push_many(shmdeque_push_front_many, msgs, timeout);
    }

    // --- Pops: the message, or std::nullopt when none came: empty (not waiting), the timeout expired, or
    // the deque is closed and drained (drained() tells). The blocking forms return std::nullopt only for
    // the last. Buffer is Bytes by default; std::string, std::vector<char> or <unsigned char> also work.

    template <class Buffer = Bytes, class = detail::ByteElement<Buffer>>
    std::optional<Buffer> pop_front(Timeout timeout = Timeout::forever()) {
        Buffer out;
        if (!pop_front_into(out, timeout)) {
            return std::nullopt;
        }
        return out;
    }
    template <class Buffer = Bytes, class = detail::ByteElement<Buffer>>
    std::optional<Buffer> pop_back(Timeout timeout = Timeout::forever()) {
        Buffer out;
        if (!pop_back_into(out, timeout)) {
            return std::nullopt;
        }
        return out;
    }
    template <class Buffer = Bytes, class = detail::ByteElement<Buffer>>
    std::optional<Buffer> try_pop_front() {
        return pop_front<Buffer>(Timeout::none());
    }
    template <class Buffer = Bytes, class = detail::ByteElement<Buffer>>
    std::optional<Buffer> try_pop_back() {
        return pop_back<Buffer>(Timeout::none());
    }

    /// Pops into `out` (replacing its contents), reusing its storage: true when a message came.
    template <class Buffer, class = detail::ByteElement<Buffer>>
    bool pop_front_into(Buffer& out, Timeout timeout = Timeout::forever()) {
        return pop_front_with([&out](View m) { detail::assign(out, m.data(), m.size()); }, timeout);
    }
    template <class Buffer, class = detail::ByteElement<Buffer>>
    bool pop_back_into(Buffer& out, Timeout timeout = Timeout::forever()) {
        return pop_back_with([&out](View m) { detail::assign(out, m.data(), m.size()); }, timeout);
    }

    /// Removes the front message, handing it to `read(View)` where it lies, under the lock: true when a
    /// message came. If `read` throws, the message stays in the deque and the exception propagates.
    template <class F>
    bool pop_front_with(F&& read, Timeout timeout = Timeout::forever()) {
        return pop_with(shmdeque_pop_front_with, std::forward<F>(read), timeout);
    }
    template <class F>
    bool pop_back_with(F&& read, Timeout timeout = Timeout::forever()) {
        return pop_with(shmdeque_pop_back_with, std::forward<F>(read), timeout);
    }

    /// Removes up to `max` messages under one lock acquisition, waiting for the first.
    template <class Buffer = Bytes, class = detail::ByteElement<Buffer>>
    std::vector<Buffer> pop_front_many(std::size_t max, Timeout timeout = Timeout::forever()) {
        return pop_many<Buffer>(shmdeque_pop_front_many_with, max, timeout);
    }
    template <class Buffer = Bytes, class = detail::ByteElement<Buffer>>
    std::vector<Buffer> pop_back_many(std::size_t max, Timeout timeout = Timeout::forever()) {
        return pop_many<Buffer>(shmdeque_pop_back_many_with, max, timeout);
    }

    // --- The rest

    /// Takes the lock, waiting as long as it takes; see Lock.
    Lock lock() { return Lock(q_); }

    /// Registers this process as a producer; see Producer::leave.
    Producer register_producer() { return Producer(q_); }

    /// Messages in the deque now (a snapshot).
    std::size_t size() const { return get(shmdeque_len); }
    bool empty() const { return size() == 0; }
    std::size_t capacity() const { return get(shmdeque_capacity); }
    /// The largest message in bytes.
    std::size_t max_message_len() const { return get(shmdeque_max_message_len); }

    bool closed() const {
        bool c = false;
        detail::check(shmdeque_is_closed(q_, &c));
        return c;
    }
    /// Closed and empty: no message will ever come again.
    bool drained() const { return closed() && empty(); }

    /// How this handle waits for room or for a message, from its next wait on (SHMDEQUE_WAIT_ADAPTIVE by
    /// default; SHMDEQUE_WAIT_BUSY_SPIN for a thread with a core of its own).
    void set_wait_strategy(shmdeque_wait_strategy s) {
        detail::check(shmdeque_set_wait_strategy(q_, static_cast<int>(s)));
    }

    /// Closes the deque for everyone: pushes fail, pops drain what is left.
    void close() { detail::check(shmdeque_close(q_)); }

    /// Removes every message; returns how many there were.
    std::size_t clear() { return get(shmdeque_clear); }

    Stats stats() const {
        Stats s{};
        detail::check(shmdeque_get_stats(q_, &s));
        return s;
    }

    /// The C handle, for the shmdeque_* functions. Stays owned by this Deque.
    shmdeque_handle* native_handle() const { return q_; }

private:
    template <class F>
    static int call_fill(void* ctx, void* slot, std::size_t len) noexcept {
        auto* c = static_cast<std::pair<F*, detail::Callback*>*>(ctx);
        try {
            (*c->first)(static_cast<std::byte*>(slot), len);
            return 0;
        } catch (...) {
            c->second->error = std::current_exception();
            return 1;
        }
    }

    template <class F>
    static int call_read(void* ctx, const void* msg, std::size_t len) noexcept {
        auto* c = static_cast<std::pair<F*, detail::Callback*>*>(ctx);
        try {
            (*c->first)(View(msg, len));
            return 0;
        } catch (...) {
            c->second->error = std::current_exception();
            return 1;
        }
    }

    static bool pushed(Status s) {
        if (s == SHMDEQUE_FULL || s == SHMDEQUE_TIMEOUT) {
            return false;
        }
        detail::check(s);
        return true;
    }

    static bool popped(Status s, detail::Callback& cb) {
        if (s == SHMDEQUE_EMPTY || s == SHMDEQUE_TIMEOUT || s == SHMDEQUE_CLOSED) {
            return false;
        }
        if (s == SHMDEQUE_CANCELLED) {
            cb.rethrow_if_failed();
        }
        detail::check(s);
        return true;
    }

    using PushWith = shmdeque_status (*)(shmdeque_handle*, std::size_t, shmdeque_fill_fn, void*, std::int64_t);
    using PopWith = shmdeque_status (*)(shmdeque_handle*, shmdeque_read_fn, void*, std::int64_t);
    using PushMany =
        shmdeque_status (*)(shmdeque_handle*, const shmdeque_msg*, std::size_t, std::size_t*, std::int64_t);
    using PopManyWith =
        shmdeque_status (*)(shmdeque_handle*, std::size_t, shmdeque_each_fn, void*, std::size_t*, std::int64_t);

    template <class F>
    bool push_with(PushWith op, std::size_t n, F&& fill, Timeout timeout) {
        using Fn = std::remove_reference_t<F>;
        detail::Callback cb;
        std::pair<Fn*, detail::Callback*> ctx(&fill, &cb);
        Status s = op(q_, n, &call_fill<Fn>, &ctx, timeout.ms());
        if (s == SHMDEQUE_CANCELLED) {
            cb.rethrow_if_failed();
        }
        return pushed(s);
    }

    template <class F>
    bool pop_with(PopWith op, F&& read, Timeout timeout) {
        using Fn = std::remove_reference_t<F>;
        detail::Callback cb;
        std::pair<Fn*, detail::Callback*> ctx(&read, &cb);
        return popped(op(q_, &call_read<Fn>, &ctx, timeout.ms()), cb);
    }

    std::size_t push_many(PushMany op, const std::vector<ByteView>& msgs, Timeout timeout) {
        std::vector<shmdeque_msg> c(msgs.size());
        for (std::size_t i = 0; i < msgs.size(); i++) {
            c[i].data = msgs[i].data();
            c[i].len = msgs[i].size();
        }
        std::size_t n = 0;
        Status s = op(q_, c.data(), c.size(), &n, timeout.ms());
        if (s != SHMDEQUE_FULL && s != SHMDEQUE_TIMEOUT) {
            detail::check(s);
        }
        return n;
    }

    template <class Buffer>
    std::vector<Buffer> pop_many(PopManyWith op, std::size_t max, Timeout timeout) {
        // Room first, so that appending under the lock cannot throw: every message handed over is kept.
        std::vector<Buffer> out;
        out.reserve(max < capacity() ? max : capacity());  // a batch never holds more than the deque
        struct Ctx {
            std::vector<Buffer>* out;
            std::exception_ptr error;
        } ctx{&out, nullptr};
        auto each = [](void* p, const void* msg, std::size_t len) noexcept {
            auto* c = static_cast<Ctx*>(p);
            try {
                c->out->emplace_back();
                detail::assign(c->out->back(), msg, len);
            } catch (...) {
                // Out of memory for a message's bytes: it is removed all the same; say so after the batch.
                if (!c->error) {
                    c->error = std::current_exception();
                }
            }
        };
        std::size_t n = 0;
        Status s = op(q_, max, each, &ctx, &n, timeout.ms());
        if (ctx.error) {
            std::rethrow_exception(ctx.error);
        }
        if (s != SHMDEQUE_EMPTY && s != SHMDEQUE_TIMEOUT && s != SHMDEQUE_CLOSED) {
            detail::check(s);
        }
        return out;
    }

    std::size_t get(shmdeque_status (*op)(shmdeque_handle*, std::size_t*)) const {
        std::size_t n = 0;
        detail::check(op(q_, &n));
        return n;
    }

    shmdeque_handle* q_ = nullptr;
};

/// Removes the deque's name: true if it existed, false if there was none. Throws Error otherwise.
inline bool remove(const std::string& name) {
    Status s = shmdeque_remove(name.c_str());
    if (s == SHMDEQUE_NOT_FOUND) {
        return false;
    }
    detail::check(s);
    return true;
}

}  // namespace shmdeque

#endif  // SHMDEQUE_HPP
