/*
 * The synthetic, self-checking messages of the shmdeque tools (`producer --count`, `consumer --verify`),
 * byte for byte as the Rust crate shmdeque-synth makes and checks them. Header-only; C99 and C++17.
 *
 *   bytes 0..8    producer id, 8 lowercase hex digits
 *   bytes 8..24   sequence number, 16 lowercase hex digits
 *   bytes 24..32  checksum of every other byte, 8 lowercase hex digits
 *   bytes 32..    filler: the printable characters '!'..'~' in a run starting at a point derived from
 *                 producer and sequence number
 *
 * The checksum is FNV-1a over 64-bit little-endian words of bytes 0..24, then of bytes 32.., each part's
 * tail bytes one at a time, folded to 32 bits.
 */
#ifndef SHMDEQUE_EXAMPLE_SYNTH_H
#define SHMDEQUE_EXAMPLE_SYNTH_H

#include <stddef.h>
#include <stdint.h>

/* The smallest synthetic message: id, sequence number and checksum. */
#define SYNTH_MIN_SIZE 32

static inline void synth_hex(unsigned char *out, size_t digits, uint64_t v) {
    static const char XDIGITS[] = "0123456789abcdef";
    for (size_t i = digits; i > 0; i--) {
        out[i - 1] = (unsigned char)XDIGITS[v & 0xf];
        v >>= 4;
    }
}

/* Lowercase hex only, as written: an uppercase digit means a flipped bit. Returns 0 if not hex. */
static inline int synth_unhex(const unsigned char *s, size_t digits, uint64_t *out) {
    uint64_t v = 0;
    for (size_t i = 0; i < digits; i++) {
        unsigned c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9') {
            d = c - '0';
        } else if (c >= 'a' && c <= 'f') {
            d = c - 'a' + 10;
        } else {
            return 0;
        }
        v = v << 4 | d;
    }
    *out = v;
    return 1;
}

static inline uint64_t synth_mix(uint64_t h, uint64_t word) {
    return (h ^ word) * UINT64_C(0x00000100000001b3);
}

static inline uint64_t synth_sum_part(uint64_t h, const unsigned char *p, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = 0;
        for (size_t k = 0; k < 8; k++) {
            w |= (uint64_t)p[i + k] << (8 * k);
        }
        h = synth_mix(h, w);
    }
    for (; i < n; i++) {
        h = synth_mix(h, p[i]);
    }
    return h;
}

/* The checksum of a message of `size` >= SYNTH_MIN_SIZE bytes: everything but bytes 24..32. */
static inline uint32_t synth_checksum(const unsigned char *msg, size_t size) {
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    h = synth_sum_part(h, msg, 24);
    h = synth_sum_part(h, msg + 32, size - 32);
    return (uint32_t)(h ^ h >> 32);
}

/* Writes message number `seq` of `producer` into `buf`, exactly `size` (>= SYNTH_MIN_SIZE) bytes. */
static inline void synth_fill(unsigned char *buf, size_t size, uint32_t producer, uint64_t seq) {
    synth_hex(buf, 8, producer);
    synth_hex(buf + 8, 16, seq);
    uint64_t start = (seq * 31 + producer) % 94;
    for (size_t i = 32; i < size; i++) {
        buf[i] = (unsigned char)('!' + (start + (i - 32) % 94) % 94);
    }
    synth_hex(buf + 24, 8, synth_checksum(buf, size));
}

/*
 * Checks a message's format and checksum. Returns NULL and sets `*producer` and `*seq` when it is good,
 * or a static description of what is wrong.
 */
static inline const char *synth_check(const unsigned char *msg, size_t size, uint32_t *producer, uint64_t *seq) {
    uint64_t id, sq, stored;
    if (size < SYNTH_MIN_SIZE) {
        return "shorter than a synthetic message (32 bytes)";
    }
    if (!synth_unhex(msg, 8, &id)) {
        return "the producer field is not lowercase hexadecimal";
    }
    if (!synth_unhex(msg + 8, 16, &sq)) {
        return "the sequence field is not lowercase hexadecimal";
    }
    if (!synth_unhex(msg + 24, 8, &stored)) {
        return "the checksum field is not lowercase hexadecimal";
    }
    if ((uint32_t)stored != synth_checksum(msg, size)) {
        return "checksum mismatch";
    }
    *producer = (uint32_t)id;
    *seq = sq;
    return NULL;
}

#endif /* SHMDEQUE_EXAMPLE_SYNTH_H */
