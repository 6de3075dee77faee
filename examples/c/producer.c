/*
 * A producer in C: pushes COUNT synthetic, self-checking messages of SIZE bytes into the deque NAME, which
 * `consumer --name NAME --verify` (the Rust tool) or examples/cpp/consumer checks. Like the Rust `producer`,
 * it opens or creates the deque (1024 slots of 4096 bytes if it creates it), registers as a producer, and
 * closes the deque when it is the last producer to leave, so that consumers drain it and finish.
 *
 *   producer NAME COUNT SIZE [ID]      ID: the producer id stamped into the messages (default: the pid)
 *
 * Exit codes as the tools': 0 success, 1 runtime failure, 2 bad usage, 3 the deque stayed full 30 s.
 *
 * Build (from the repository root, after `cargo build --release`):
 *   cc -std=c11 -O2 -I shmdeque-ffi/include examples/c/producer.c target/release/libshmdeque_ffi.a \
 *      -lpthread -ldl -lm -lrt -lutil -lgcc_s -o producer-c
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "shmdeque.h"
#include "synth.h"

/* How long a push may wait for room before the producer gives up (exit 3). */
#define PUSH_TIMEOUT_MS 30000

static int fail(const char *what, shmdeque_status s) {
    fprintf(stderr, "producer: %s: %s\n", what, shmdeque_last_error());
    return s == SHMDEQUE_TIMEOUT ? 3 : (s == SHMDEQUE_INVALID || s == SHMDEQUE_CLOSED) ? 2 : 1;
}

static int parse_u64(const char *s, unsigned long long *out) {
    char *end;
    errno = 0;
    *out = strtoull(s, &end, 10);
    return errno == 0 && end != s && *end == '\0' && s[0] != '-';
}

int main(int argc, char **argv) {
    unsigned long long count, size, id = (unsigned long long)getpid();
    if (argc < 4 || argc > 5 || !parse_u64(argv[2], &count) || !parse_u64(argv[3], &size) ||
        (argc == 5 && (!parse_u64(argv[4], &id) || id > UINT32_MAX))) {
        fprintf(stderr, "usage: producer NAME COUNT SIZE [ID]\n");
        return 2;
    }
    if (size < SYNTH_MIN_SIZE) {
        fprintf(stderr, "producer: SIZE %llu is too small: a synthetic message is at least %d bytes\n", size,
                SYNTH_MIN_SIZE);
        return 2;
    }

    shmdeque *q = NULL;
    shmdeque_status s = shmdeque_open(argv[1], 0, 0, 1 /* open or create */, 0, &q);
    if (s != SHMDEQUE_OK) {
        return fail("opening the deque", s);
    }
    size_t max = 0;
    shmdeque_max_message_len(q, &max);
    if (size > max) {
        fprintf(stderr, "producer: SIZE %llu is larger than the deque's %zu-byte message limit\n", size, max);
        shmdeque_close_handle(q);
        return 2;
    }
    shmdeque_producer *me = NULL;
    s = shmdeque_register_producer(q, &me);
    if (s != SHMDEQUE_OK) {
        int code = fail("registering as a producer", s);
        shmdeque_close_handle(q);
        return code;
    }

    unsigned char *msg = malloc(size);
    if (msg == NULL) {
        fprintf(stderr, "producer: out of memory for a %llu-byte message\n", size);
        shmdeque_producer_leave(me, 0, NULL);
        shmdeque_close_handle(q);
        return 1;
    }
    int code = 0;
    for (unsigned long long seq = 0; seq < count; seq++) {
        synth_fill(msg, size, (uint32_t)id, seq);
        s = shmdeque_push_back(q, msg, size, PUSH_TIMEOUT_MS);
        if (s != SHMDEQUE_OK) {
            code = fail("pushing", s);
            break;
        }
    }
    free(msg);

    /* The last producer to leave closes the deque; one that failed leaves it open, as the Rust tool does. */
    bool closed = false;
    s = shmdeque_producer_leave(me, code == 0, &closed);
    if (s != SHMDEQUE_OK && code == 0) {
        code = fail("leaving", s);
    }
    shmdeque_close_handle(q);
    if (code == 0) {
        fprintf(stderr, "producer: %llu messages of %llu bytes as producer %llu%s\n", count, size, id,
                closed ? "; closed the deque" : "");
    }
    return code;
}
