/*
 * In-process cost of the C API: push a 64-byte message and pop it again, ITERATIONS times, on a deque of
 * 1024 slots of 128 bytes (the setting of the criterion group in_process/raw_64B), after a warm-up of a tenth
 * as many. The Rust counterpart is `cargo run --release -p shmdeque-ffi --example push_pop`; the README's
 * "From C and C++" compares the two, run in turn.
 *
 *   push_pop [ITERATIONS] [copy|inplace]     default 10000000 copy
 *
 * copy:    shmdeque_push_back + shmdeque_pop_front into the caller's buffer (timeout 0: never waits)
 * inplace: shmdeque_push_back_with + shmdeque_pop_front_with, the callbacks copying 64 bytes
 *
 * Prints one line: "c MODE: N iterations, X ns per push+pop".
 *
 * Build (from the repository root, after `cargo build --release`):
 *   cc -std=c11 -O2 -I shmdeque-ffi/include shmdeque-ffi/bench/push_pop.c target/release/libshmdeque_ffi.a \
 *      -lpthread -ldl -lm -lrt -lutil -lgcc_s -o push_pop-c
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shmdeque.h"

#define SIZE 64

static int fill(void *ctx, void *slot, size_t len) {
    memcpy(slot, ctx, len);
    return 0;
}

static int take(void *ctx, const void *msg, size_t len) {
    memcpy(ctx, msg, len);
    return 0;
}

static void check(shmdeque_status s, const char *what) {
    if (s != SHMDEQUE_OK) {
        fprintf(stderr, "push_pop: %s: %s\n", what, shmdeque_last_error());
        exit(1);
    }
}

static void loop(shmdeque *q, long n, int inplace, unsigned char *msg, unsigned char *buf, size_t cap) {
    for (long i = 0; i < n; i++) {
        msg[0] = (unsigned char)i;
        if (inplace) {
            check(shmdeque_push_back_with(q, SIZE, fill, msg, 0), "push");
            check(shmdeque_pop_front_with(q, take, buf, 0), "pop");
        } else {
            size_t len = cap;
            check(shmdeque_push_back(q, msg, SIZE, 0), "push");
            check(shmdeque_pop_front(q, buf, &len, 0), "pop");
            if (len != SIZE || buf[0] != msg[0]) {
                fprintf(stderr, "push_pop: popped the wrong message\n");
                exit(1);
            }
        }
    }
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 10000000;
    int inplace = argc > 2 && strcmp(argv[2], "inplace") == 0;
    if (n <= 0 || (argc > 2 && !inplace && strcmp(argv[2], "copy") != 0)) {
        fprintf(stderr, "usage: push_pop [ITERATIONS] [copy|inplace]\n");
        return 2;
    }
    char name[64];
    snprintf(name, sizeof name, "shmdeque-bench-c-%ld", (long)getpid());
    shmdeque *q = NULL;
    check(shmdeque_open(name, 1024, 128, 2, 0, &q), "creating the deque");
    shmdeque_remove(name); /* the handle keeps it; nothing is left behind however the run ends */
    unsigned char msg[SIZE], buf[128 - 4];
    memset(msg, 'm', sizeof msg);

    loop(q, n / 10, inplace, msg, buf, sizeof buf);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    loop(q, n, inplace, msg, buf, sizeof buf);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / (double)n;
    printf("c %s: %ld iterations, %.1f ns per push+pop\n", inplace ? "inplace" : "copy", n, ns);
    shmdeque_close_handle(q);
    return 0;
}
