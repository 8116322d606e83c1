/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the tc programs share to read and rewrite an skb: the parse of an skb, the verdict
 * for a packet let through, and
 * moving bytes inside the packet through a per-CPU scratch buffer (the UDP programs shift
 * a datagram's payload to insert or strip a header behind the UDP header, the inline TCP
 * program a segment's payload to insert the PROXY header behind the TCP header).
 */
#ifndef PPINJECT_SKB_MOVE_BPF_H
#define PPINJECT_SKB_MOVE_BPF_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "frame.bpf.h"

/*
 * Packets we let through (changed or not) leave with TC_ACT_UNSPEC: classification goes on
 * with the next filter on the hook, if another tool has one, and ends as TC_ACT_OK when
 * there is none. TC_ACT_OK would skip everyone after us.
 */
#define TC_PASS TC_ACT_UNSPEC

/* Shifting the payload goes through a per-CPU scratch buffer, CHUNK bytes at a time. */
#define CHUNK 2048
#define MAX_CHUNKS 32 /* 64 KiB: any UDP datagram or TCP segment */

struct scratch {
    __u8 buf[CHUNK];
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct scratch);
} shift_buf SEC(".maps");

/*
 * parse_frame() on an skb, with the headers pulled into the linear part first when they
 * may sit in paged data. Each program wraps it in a global function of its own (see
 * parse_skb in udp.bpf.c for why global), with `proto` a constant.
 */
static __always_inline enum parse_result skb_parse(struct __sk_buff *skb, struct pkt *p,
                                                   const __u8 proto) {
    void *data = (void *)(long)skb->data;
    void *data_end = (void *)(long)skb->data_end;

    if (data + MAX_HEADERS_LEN > data_end && skb->len > skb->data_end - skb->data) {
        bpf_skb_pull_data(skb, skb->len < MAX_HEADERS_LEN ? skb->len : MAX_HEADERS_LEN);
        data = (void *)(long)skb->data;
        data_end = (void *)(long)skb->data_end;
    }
    return parse_frame(data, data_end, skb->len, p, proto);
}

/*
 * A size n already tested to be in [1, max], rewritten into a form whose range every
 * verifier derives for a helper's size argument: 6.1's learns nothing from a test against
 * 0 (it refines only the branch where the value equals it) and refuses a possibly-zero size,
 * so the lower bound comes from the arithmetic, the identity ((n - 1) & mask) + 1 for a
 * power-of-two mask + 1 >= max; the caller tests n <= max again on the result. The barrier
 * keeps clang from folding it away.
 */
#define SIZE_AT_LEAST_1(n, mask)      \
    ({                                \
        barrier_var(n);               \
        (n) = (((n)-1) & (mask)) + 1; \
    })

/*
 * State of one payload move, shared with the bpf_loop() callback. The callback only reads
 * it (err aside, set on the way out): chunk `index` is found from the index alone.
 *
 * Why not keep a running position and count down `len` in here: since 6.7 the verifier
 * checks a bpf_loop() callback as a loop, again and again until a pass starts in a state
 * it has seen. `len` bounds the helpers' size argument, so it is precise, and a precise
 * value that shrinks by CHUNK on every pass is a new state on every pass: on 6.18 the
 * exploration ran into the 1M instruction limit. With nothing in here changing, the
 * second pass starts where the first did and is pruned at once.
 */
struct move {
    struct __sk_buff *skb;
    struct scratch *buf;
    __u64 from;
    __u64 to;
    __u64 len; /* at most MAX_CHUNKS * CHUNK */
    int err;
};

static long move_chunk(__u32 index, void *ctx) {
    const struct move *m = ctx;
    /* 64-bit on purpose: a 32-bit n is bounds-checked on a zero-extended copy while the
     * unchecked register goes to the helper, which the verifier refuses. */
    __u64 done = (__u64)index * CHUNK; /* bytes the earlier calls moved */
    __u64 n, src, dst;

    if (done >= m->len)
        return 1; /* not reached: the last chunk stops the loop */
    n = m->len - done > CHUNK ? CHUNK : m->len - done;
    if (m->to > m->from) {
        /* Towards the tail: last chunk first, so none is overwritten before it is read. */
        src = m->from + m->len - done - n;
        dst = m->to + m->len - done - n;
    } else {
        src = m->from + done;
        dst = m->to + done;
    }
    barrier_var(n); /* keep the check below: the verifier needs it on this register */
    if (n == 0 || n > CHUNK) {
        ((struct move *)ctx)->err = 1;
        return 1;
    }
    SIZE_AT_LEAST_1(n, CHUNK - 1); /* 6.1 learns no n >= 1 from the test above */
    if (bpf_skb_load_bytes(m->skb, src, m->buf->buf, n) < 0 ||
        bpf_skb_store_bytes(m->skb, dst, m->buf->buf, n, 0) < 0) {
        ((struct move *)ctx)->err = 1;
        return 1;
    }
    return done + n >= m->len; /* 1 after the last chunk: bpf_loop() stops */
}

/* Move `len` bytes at `from` to `to` inside the packet; the regions may overlap. */
static __always_inline int move_bytes(struct __sk_buff *skb, __u64 from, __u64 to, __u64 len) {
    __u32 zero = 0;
    struct move m = {.skb = skb, .from = from, .to = to, .len = len};

    if (len == 0)
        return 0;
    if (len > (__u64)MAX_CHUNKS * CHUNK)
        return -1; /* more than MAX_CHUNKS calls would move; no UDP payload is this long */
    m.buf = bpf_map_lookup_elem(&shift_buf, &zero);
    if (!m.buf)
        return -1;
    if (bpf_loop(MAX_CHUNKS, move_chunk, &m, 0) < 0 || m.err)
        return -1;
    return 0;
}

/*
 * The one's-complement sum (32 bits, unfolded, as bpf_csum_diff gives it) of `len` bytes at
 * `off` in the packet, read SUM_CHUNK bytes at a time into the scratch buffer: what those
 * bytes add to a transport checksum when they start at an even offset of the segment.
 */
#define SUM_CHUNK 512 /* bpf_csum_diff's limit */

struct sum {
    struct __sk_buff *skb;
    struct scratch *buf;
    __u64 off;
    __u64 len; /* at most MAX_CHUNKS * CHUNK */
    __u64 sum;
    int err;
};

static long sum_chunk(__u32 index, void *ctx) {
    struct sum *s = ctx;
    __u64 done = (__u64)index * SUM_CHUNK; /* 64-bit: see move_chunk */
    __u64 n;

    if (done >= s->len)
        return 1;
    n = s->len - done > SUM_CHUNK ? SUM_CHUNK : s->len - done;
    SIZE_AT_LEAST_1(n, SUM_CHUNK - 1);
    if (bpf_skb_load_bytes(s->skb, s->off + done, s->buf->buf, n) < 0) {
        s->err = 1;
        return 1;
    }
    /* bpf_csum_diff takes whole words: the bytes past n are zeros, which add nothing. The
     * word holding byte n is at n & ~3; the mask (CHUNK - 4) keeps it inside the buffer and
     * aligned without moving it (CHUNK - 8 cleared the wrong word when n % 8 was 5..7). */
    __u64 words = (n + 3) & ~3ULL;
    *(__u32 *)(s->buf->buf + ((n & ~3ULL) & (CHUNK - 4))) &=
        n % 4 ? ((1U << (8 * (n % 4))) - 1) : ~0U;
    SIZE_AT_LEAST_1(words, SUM_CHUNK - 1);
    __s64 part = bpf_csum_diff(NULL, 0, (__be32 *)s->buf->buf, words & ~3ULL, 0);
    if (part < 0) {
        s->err = 1;
        return 1;
    }
    s->sum += (__u32)part;
    return done + n >= s->len;
}

/* The sum of `len` bytes at `off`, folded to 32 bits; -1 when they cannot be read. */
static __always_inline __s64 sum_bytes(struct __sk_buff *skb, __u64 off, __u64 len) {
    __u32 zero = 0;
    struct sum s = {.skb = skb, .off = off, .len = len};

    if (len == 0)
        return 0;
    if (len > (__u64)MAX_CHUNKS * CHUNK)
        return -1;
    s.buf = bpf_map_lookup_elem(&shift_buf, &zero);
    if (!s.buf)
        return -1;
    if (bpf_loop(MAX_CHUNKS * CHUNK / SUM_CHUNK, sum_chunk, &s, 0) < 0 || s.err)
        return -1;
    s.sum = (s.sum & 0xFFFFFFFF) + (s.sum >> 32);
    s.sum = (s.sum & 0xFFFFFFFF) + (s.sum >> 32);
    return s.sum;
}

#endif /* PPINJECT_SKB_MOVE_BPF_H */
