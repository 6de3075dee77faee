/*
 * The C API from C: compiled with -std=c11 -pedantic -Werror by the test `c_and_cpp`, linked once against
 * the static and once against the shared library, and run (also under AddressSanitizer and UBSan) on a deque
 * name the test chooses and removes.
 *
 *   api_test NAME
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmdeque.h"

static int checks = 0;

#define CHECK(cond)                                                                                    \
    do {                                                                                               \
        checks++;                                                                                      \
        if (!(cond)) {                                                                                 \
            fprintf(stderr, "api_test.c:%d: check failed: %s (last error: %s)\n", __LINE__, #cond,      \
                    shmdeque_last_error());                                                            \
            exit(1);                                                                                   \
        }                                                                                              \
    } while (0)

#define OK(call) CHECK((call) == SHMDEQUE_OK)

static int fill_x(void *ctx, void *slot, size_t len) {
    memset(slot, *(const char *)ctx, len);
    return 0;
}

struct copy {
    char bytes[64];
    size_t len;
};

static int read_copy(void *ctx, const void *msg, size_t len) {
    struct copy *c = ctx;
    if (len > sizeof c->bytes) {
        return 1; /* leave it in the deque */
    }
    memcpy(c->bytes, msg, len);
    c->len = len;
    return 0;
}

static void add_len(void *ctx, const void *msg, size_t len) {
    (void)msg;
    *(size_t *)ctx += len;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: api_test NAME\n");
        return 2;
    }
    const char *name = argv[1];
    shmdeque *q = NULL;
    CHECK(shmdeque_open(name, 0, 0, 0, 0, &q) == SHMDEQUE_NOT_FOUND && q == NULL);
    CHECK(strstr(shmdeque_last_error(), "does not exist") != NULL);
    CHECK(shmdeque_open(NULL, 0, 0, 1, 0, &q) == SHMDEQUE_INVALID);
    OK(shmdeque_open(name, 8, 68, 2, 0600, &q));
    shmdeque *again = NULL;
    CHECK(shmdeque_open(name, 0, 0, 2, 0, &again) == SHMDEQUE_EXISTS);
    OK(shmdeque_open(name, 0, 0, 0, 0, &again));
    size_t n = 0;
    OK(shmdeque_max_message_len(again, &n));
    CHECK(n == 64);
    shmdeque_close_handle(again);
    shmdeque_close_handle(NULL);

    /* Single messages at both ends. */
    OK(shmdeque_push_back(q, "world", 5, 0));
    OK(shmdeque_push_front(q, "hello", 5, -1));
    OK(shmdeque_len(q, &n));
    CHECK(n == 2);
    char buf[64];
    n = sizeof buf;
    OK(shmdeque_pop_front(q, buf, &n, 100));
    CHECK(n == 5 && memcmp(buf, "hello", 5) == 0);
    /* Too small: the message stays and *len says what it needs. */
    n = 2;
    CHECK(shmdeque_pop_back(q, buf, &n, -1) == SHMDEQUE_BUFFER_TOO_SMALL && n == 5);
    n = sizeof buf;
    OK(shmdeque_peek_back(q, buf, &n));
    n = sizeof buf;
    OK(shmdeque_pop_back(q, buf, &n, 0));
    CHECK(n == 5 && memcmp(buf, "world", 5) == 0);
    n = sizeof buf;
    CHECK(shmdeque_pop_front(q, buf, &n, 0) == SHMDEQUE_EMPTY);
    CHECK(shmdeque_pop_front(q, buf, &n, 1) == SHMDEQUE_TIMEOUT);
    CHECK(shmdeque_pop_front(q, buf, &n, -5) == SHMDEQUE_INVALID);
    CHECK(shmdeque_push_back(q, buf, 65, 0) == SHMDEQUE_TOO_LARGE);
    CHECK(shmdeque_push_back(q, NULL, 1, 0) == SHMDEQUE_INVALID);

    /* In place. */
    char x = 'x';
    OK(shmdeque_push_back_with(q, 10, fill_x, &x, -1));
    struct copy c = {{0}, 0};
    OK(shmdeque_pop_front_with(q, read_copy, &c, -1));
    CHECK(c.len == 10 && memcmp(c.bytes, "xxxxxxxxxx", 10) == 0);

    /* Batches. */
    shmdeque_msg batch[3] = {{"a", 1}, {"bb", 2}, {"ccc", 3}};
    size_t pushed = 0;
    OK(shmdeque_push_back_many(q, batch, 3, &pushed, -1));
    CHECK(pushed == 3);
    size_t lens[3], count = 0;
    char many[3 * 64];
    OK(shmdeque_pop_front_many(q, many, sizeof many, lens, 2, &count, 0));
    CHECK(count == 2 && lens[0] == 1 && lens[1] == 2 && memcmp(many, "abb", 3) == 0);
    size_t total = 0;
    OK(shmdeque_pop_front_many_with(q, 10, add_len, &total, &count, 0));
    CHECK(count == 1 && total == 3);

    /* The lock guard, iterating in place. */
    OK(shmdeque_push_back_many(q, batch, 3, &pushed, -1));
    shmdeque_guard *g = NULL;
    OK(shmdeque_lock(q, &g));
    size_t len = 0;
    OK(shmdeque_guard_len(g, &len));
    CHECK(len == 3);
    size_t sum = 0;
    for (size_t i = 0; i < len; i++) {
        const void *m = NULL;
        size_t ml = 0;
        OK(shmdeque_guard_get(g, i, &m, &ml));
        CHECK(memcmp(m, batch[i].data, ml) == 0);
        sum += ml;
    }
    CHECK(sum == 6);
    const void *m = NULL;
    CHECK(shmdeque_guard_get(g, 3, &m, &n) == SHMDEQUE_NOT_FOUND);
    n = sizeof buf;
    OK(shmdeque_guard_try_pop_back(g, buf, &n));
    OK(shmdeque_guard_try_push_front(g, buf, n));
    OK(shmdeque_guard_front(g, &m, &n));
    CHECK(n == 3 && memcmp(m, "ccc", 3) == 0);
    CHECK(shmdeque_push_back(q, "x", 1, -1) == SHMDEQUE_INVALID); /* this thread holds the lock */
    OK(shmdeque_guard_clear(g, &n));
    CHECK(n == 3);
    OK(shmdeque_unlock(g));

    /* Stats, producers, closing. */
    shmdeque_producer *p = NULL;
    OK(shmdeque_register_producer(q, &p));
    shmdeque_stats s;
    OK(shmdeque_get_stats(q, &s));
    CHECK(s.capacity == 8 && s.slot_size == 68 && s.producers == 1 && s.mode == 0600 && !s.closed);
    OK(shmdeque_push_back(q, "last", 4, 0));
    bool closed = false;
    OK(shmdeque_producer_leave(p, 1, &closed));
    CHECK(closed);
    CHECK(shmdeque_push_back(q, "late", 4, 0) == SHMDEQUE_CLOSED);
    n = sizeof buf;
    OK(shmdeque_pop_front(q, buf, &n, -1));
    CHECK(shmdeque_pop_front(q, buf, &n, -1) == SHMDEQUE_CLOSED);
    CHECK(strcmp(shmdeque_status_name(SHMDEQUE_CLOSED), "SHMDEQUE_CLOSED") == 0);
    shmdeque_close_handle(q);
    /* The last handle of a closed, drained deque removed it. */
    CHECK(shmdeque_remove(name) == SHMDEQUE_NOT_FOUND);

    printf("c api: %d checks passed\n", checks);
    return 0;
}
