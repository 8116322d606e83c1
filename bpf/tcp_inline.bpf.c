// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Inline TCP (mode = "inline"): tc programs on the client-facing interface of a front host
 * that forwards (nftables DNAT, IPVS, routes) write the PROXY header into the client's byte
 * stream and shift sequence numbers for the rest of the connection, as a NAT helper does.
 * No connection is terminated: the backend's TCP peer is the client itself.
 *
 * inline_ingress (tc ingress, client -> backend, before netfilter: the packet still names
 * the address the client dialled, which the header reports as the destination) and
 * inline_egress (tc egress of the same interface, backend -> client, after the front's
 * reverse NAT: the same 4-tuple) share one state per connection in inline_conns.
 *
 * The header takes the backend's sequence numbers isn+1 .. isn+H (isn: the client's initial
 * sequence number, H: the header's length). So:
 *
 * - The client's SYN creates the state and builds the header once; its bytes are the same
 *   every time they are sent. A SYN carrying Fast Open data or a Fast Open option loses
 *   both: no client byte may reach the backend before the header, and the client sends the
 *   data again after the handshake, as for a server that refused it.
 * - The backend's SYN-ACK has its MSS lowered by H, so a full client segment with the
 *   header in front still fits the path.
 * - The header rides on the client segment at sequence isn+1, while the backend has not
 *   acknowledged it: normally the handshake-completing ACK (never a GSO packet: a GSO
 *   packet that would have to carry it is dropped, and its retransmission does), and again
 *   on every later client segment at isn+1 (a retransmission, the first data, or the ACK of
 *   a server's banner) until the backend acknowledges it. If the ACK with the header is
 *   lost the backend stays in SYN-RECV and sends its SYN-ACK again; the client's answer at
 *   isn+1 brings the header again. The backend's TCP discards bytes it already has, so a
 *   header sent twice is received once. A GSO packet at isn+1 after the header went out
 *   once goes on shifted instead (see inline_ingress).
 * - Every other client segment has its sequence number moved H forward.
 * - On the way back, acknowledgements and SACK edges move H back; one inside the header
 *   (the backend has part of it) becomes isn+1, which acknowledges nothing of the client's.
 * - FIN and RST go through shifted like any segment and mark the state closing: it is
 *   removed PP_INLINE_CLOSE_NS after the last segment (retransmissions still find it), or
 *   after the service's idle timeout, by a sweep over the table that a timer runs every
 *   PP_INLINE_SWEEP_NS: nothing in userspace. (Not a timer per state: bpf_timer_init
 *   allocates, and under a burst of SYNs 6.18 fails it with ENOMEM after a few hundred.)
 *
 * The front's conntrack sees the backend's sequence space in both directions (ingress runs
 * before PREROUTING, egress after POSTROUTING), so strict window tracking holds.
 *
 * Checksums: sequence numbers and options change through bpf_l4_csum_replace, which knows
 * whether the skb is CHECKSUM_PARTIAL (then the field holds the pseudo-header's sum only).
 * The header goes in at the payload's start (an even offset); the payload behind it moves
 * by H, and when H is odd its bytes change parity: their sum is byte-swapped (RFC 1071),
 * so the payload is summed first. bpf_skb_change_tail turns CHECKSUM_COMPLETE into NONE.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "frame.bpf.h"
#include "skb_move.bpf.h"

#define CLOCK_MONOTONIC 1
#define EBUSY 16

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, PP_MAX_INLINE_CONNS_DEFAULT); /* inline_max_conns; set before load */
    __type(key, struct pp_flow_key);
    __type(value, struct pp_inline_conn);
} inline_conns SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, PP_MAX_SERVICES);
    __type(key, __u32);
    __type(value, struct pp_inline_tlvs);
} inline_tlvs SEC(".maps");

/* Byte 13 of the TCP header. */
#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

#define TCPOPT_EOL 0
#define TCPOPT_NOP 1
#define TCPOPT_MSS 2
#define TCPOPT_SACK 5
#define TCPOPT_FASTOPEN 34
#define TCPOPT_EXP 254 /* experimental Fast Open: kind 254, magic 0xF989 */
#define MAX_OPTS 40
#define OPT_BUF 64 /* indexes are masked with OPT_BUF - 1: always inside the buffer */

#define TCP_CSUM_OFF 16
#define TCP_SEQ_OFF 4
#define TCP_ACK_OFF 8

/* a >= b in sequence space (RFC 793 arithmetic modulo 2^32). */
static __always_inline int seq_ge(__u32 a, __u32 b) {
    return (__s32)(a - b) >= 0;
}

static __always_inline int closing(const struct pp_inline_conn *c) {
    __u8 f = c->flags | c->flags_backend;
    return (f & (PP_INLINE_RESET_CLIENT | PP_INLINE_RESET_BACKEND)) ||
           (f & (PP_INLINE_FIN_CLIENT | PP_INLINE_FIN_BACKEND)) ==
               (PP_INLINE_FIN_CLIENT | PP_INLINE_FIN_BACKEND);
}

/* The time a state may stay without a segment: short once closing, else the service's. */
static __always_inline __u64 lifetime(const struct pp_inline_conn *c) {
    return closing(c) ? PP_INLINE_CLOSE_NS : (__u64)c->idle_timeout_ms * 1000000;
}

/*
 * inline_sweep: the one timer that removes expired states. Armed by the first SYN a program
 * sees (pinned with inline_conns: it goes on sweeping after the daemon is gone, and a new
 * run adopts it armed).
 */
struct sweep {
    struct bpf_timer timer;
    __u64 armed;
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct sweep);
} inline_sweep SEC(".maps");

/* One state of the sweep: removed once it has been idle for its lifetime. */
static long sweep_one(void *map, struct pp_flow_key *key, struct pp_inline_conn *c, __u64 *now) {
    __u64 idle = *now > c->last_seen_ns ? *now - c->last_seen_ns : 0;

    if (idle < lifetime(c))
        return 0;
    struct pp_counters *ctr = counters_of(c->service_id);
    if (ctr)
        ctr->inline_closed++;
    bpf_map_delete_elem(map, key);
    return 0;
}

static int sweep_all(void *map, __u32 *key, struct sweep *s) {
    __u64 now = bpf_ktime_get_coarse_ns();
    bpf_for_each_map_elem(&inline_conns, sweep_one, &now, 0);
    bpf_timer_start(&s->timer, PP_INLINE_SWEEP_NS, 0);
    return 0;
}

/* Arms the sweep the first time (racing CPUs may both set it going: no harm). */
static __always_inline void arm_sweep(void) {
    __u32 zero = 0;
    struct sweep *s = bpf_map_lookup_elem(&inline_sweep, &zero);
    if (!s || s->armed)
        return;
    long err = bpf_timer_init(&s->timer, &inline_sweep, CLOCK_MONOTONIC);
    if (err < 0 && err != -EBUSY)
        return; /* no memory now: the next SYN tries again */
    if (bpf_timer_set_callback(&s->timer, sweep_all) < 0 ||
        bpf_timer_start(&s->timer, PP_INLINE_SWEEP_NS, 0) < 0)
        return;
    s->armed = 1;
}

/* The parse as a global function: see parse_skb in udp.bpf.c. */
__noinline enum parse_result parse_tcp(struct __sk_buff *skb, struct pkt *p) {
    if (!p)
        return PARSE_OTHER; /* never: the verifier takes a global function's pointer as nullable */
    return skb_parse(skb, p, IPPROTO_TCP);
}

/* The TCP header's fixed part, copied out of the packet. */
struct seg {
    __u32 seq; /* host order */
    __u32 ack;
    __u8 flags;
};

static __always_inline int read_seg(struct __sk_buff *skb, const struct pkt *p, struct seg *s) {
    struct tcphdr t;
    if (bpf_skb_load_bytes(skb, p->l4_off, &t, sizeof(t)) < 0)
        return -1;
    s->seq = bpf_ntohl(t.seq);
    s->ack = bpf_ntohl(t.ack_seq);
    s->flags = ((__u8 *)&t)[13];
    return 0;
}

/* Replace the 32-bit field at `field` (TCP_SEQ_OFF, TCP_ACK_OFF) of the TCP header. */
static __always_inline int set_word(struct __sk_buff *skb, const struct pkt *p, __u32 field,
                                    __u32 from, __u32 to) {
    __be32 old = bpf_htonl(from), new = bpf_htonl(to);
    if (from == to)
        return 0;
    if (bpf_skb_store_bytes(skb, p->l4_off + field, &new, sizeof(new), 0) < 0)
        return -1;
    return bpf_l4_csum_replace(skb, p->l4_off + TCP_CSUM_OFF, old, new, sizeof(new));
}

/* Backend sequence space -> client's, for acknowledgements and SACK edges. */
static __always_inline __u32 to_client(const struct pp_inline_conn *c, __u32 x) {
    __u32 first = c->isn + 1;
    if (seq_ge(x, first + c->hdr_len))
        return x - c->hdr_len;
    if (seq_ge(x, first))
        return first; /* inside the header: acknowledges nothing of the client's */
    return x;
}

struct opts {
    __u8 b[OPT_BUF];
};

/* What rewrite_options() does to the options it finds. */
enum opt_job {
    OPT_STRIP_TFO, /* client SYN: Fast Open options become NOPs */
    OPT_CLAMP_MSS, /* backend SYN-ACK: MSS lowered by the header's length */
    OPT_MAP_SACK,  /* backend segment: SACK edges to the client's space */
};

static __always_inline __u32 get32(const struct opts *o, __u32 i) {
    return (__u32)o->b[i & (OPT_BUF - 1)] << 24 | (__u32)o->b[(i + 1) & (OPT_BUF - 1)] << 16 |
           (__u32)o->b[(i + 2) & (OPT_BUF - 1)] << 8 | o->b[(i + 3) & (OPT_BUF - 1)];
}

static __always_inline void put32(struct opts *o, __u32 i, __u32 v) {
    o->b[i & (OPT_BUF - 1)] = v >> 24;
    o->b[(i + 1) & (OPT_BUF - 1)] = v >> 16;
    o->b[(i + 2) & (OPT_BUF - 1)] = v >> 8;
    o->b[(i + 3) & (OPT_BUF - 1)] = v;
}

/*
 * One step of the option walk, a bpf_loop() callback: the verifier checks it once (a loop
 * over the options in the program itself was checked once for every way through the
 * options before it, past the 1M instruction limit). Finds the first option of `kind` (for
 * TCPOPT_FASTOPEN also the experimental form) and stops there.
 */
struct walk {
    struct opts o;
    __u32 len;  /* bytes of options, at most MAX_OPTS */
    __u32 i;    /* the next option's offset */
    __u32 at;   /* the option found */
    __u32 olen; /* its length; 0: none found */
    __u32 kind;
};

static long walk_option(__u32 index, void *ctx) {
    struct walk *w = ctx;
    __u32 i = w->i;

    if (i >= w->len || i >= MAX_OPTS)
        return 1;
    __u8 kind = w->o.b[i & (OPT_BUF - 1)];
    if (kind == TCPOPT_EOL)
        return 1;
    if (kind == TCPOPT_NOP) {
        w->i = i + 1;
        return 0;
    }
    __u32 olen = w->o.b[(i + 1) & (OPT_BUF - 1)];
    if (olen < 2 || i + olen > w->len)
        return 1; /* malformed: the rest is left as it is */
    if (kind == w->kind ||
        (w->kind == TCPOPT_FASTOPEN && kind == TCPOPT_EXP && olen >= 4 &&
         w->o.b[(i + 2) & (OPT_BUF - 1)] == 0xF9 && w->o.b[(i + 3) & (OPT_BUF - 1)] == 0x89)) {
        w->at = i;
        w->olen = olen;
        return 1;
    }
    w->i = i + olen;
    return 0;
}

/*
 * Find the option `job` (a constant) concerns and rewrite it; write the option area back
 * with the checksum moved by the difference. Returns 1 when an option changed, 0 when
 * none did, -1 when a rewrite failed half-way.
 */
static __always_inline int rewrite_options(struct __sk_buff *skb, const struct pkt *p,
                                           const struct pp_inline_conn *c, const int job) {
    __u32 len = p->tcp_hlen - sizeof(struct tcphdr); /* kept here: the callback may write w */
    struct walk w = {.len = len};
    struct opts orig;

    if (len == 0 || len > MAX_OPTS)
        return 0;
    SIZE_AT_LEAST_1(len, OPT_BUF - 1);
    if (len > MAX_OPTS)
        return 0;
    if (bpf_skb_load_bytes(skb, p->l4_off + sizeof(struct tcphdr), w.o.b, len) < 0)
        return 0; /* the parser saw the header in the packet: never */
    /* Nearly every backend segment carries NOP NOP TIMESTAMP and nothing else: no walk. */
    if (job == OPT_MAP_SACK && len == 12 && w.o.b[0] == TCPOPT_NOP && w.o.b[1] == TCPOPT_NOP &&
        w.o.b[2] == 8 && w.o.b[3] == 10)
        return 0;
    w.kind = job == OPT_STRIP_TFO   ? TCPOPT_FASTOPEN
             : job == OPT_CLAMP_MSS ? TCPOPT_MSS
                                    : TCPOPT_SACK;
    if (bpf_loop(MAX_OPTS, walk_option, &w, 0) < 0 || w.olen == 0)
        return 0;
    orig = w.o;

    __u32 at = w.at;
    if (job == OPT_CLAMP_MSS) {
        __u32 mss = (__u32)w.o.b[(at + 2) & (OPT_BUF - 1)] << 8 | w.o.b[(at + 3) & (OPT_BUF - 1)];
        if (w.olen != 4 || mss <= c->hdr_len + 64)
            return 0; /* a path that small gets no smaller */
        mss -= c->hdr_len;
        w.o.b[(at + 2) & (OPT_BUF - 1)] = mss >> 8;
        w.o.b[(at + 3) & (OPT_BUF - 1)] = mss;
    } else if (job == OPT_MAP_SACK) {
#pragma unroll
        for (__u32 e = 0; e < 8; e++) { /* at most 4 blocks of 2 edges */
            if (2 + 4 * e + 4 > w.olen)
                break;
            put32(&w.o, at + 2 + 4 * e, to_client(c, get32(&w.o, at + 2 + 4 * e)));
        }
    } else {
        for (__u32 k = 0; k < MAX_OPTS; k++) { /* the option becomes NOPs */
            if (k >= w.olen)
                break;
            w.o.b[(at + k) & (OPT_BUF - 1)] = TCPOPT_NOP;
        }
    }
    /* The option area starts at an even offset and is whole words: one difference. */
    __s64 diff = bpf_csum_diff((__be32 *)orig.b, len, (__be32 *)w.o.b, len, 0);
    if (diff < 0 ||
        bpf_skb_store_bytes(skb, p->l4_off + sizeof(struct tcphdr), w.o.b, len, 0) < 0 ||
        bpf_l4_csum_replace(skb, p->l4_off + TCP_CSUM_OFF, 0, diff, 0) < 0)
        return -1;
    return 1;
}

/* A 32-bit one's-complement sum folded to 16 bits. */
static __always_inline __u32 fold16(__u64 sum) {
    sum = (sum & 0xFFFF) + (sum >> 16);
    sum = (sum & 0xFFFF) + (sum >> 16);
    sum = (sum & 0xFFFF) + (sum >> 16);
    return sum;
}

/*
 * Lengths and checksum of a segment whose TCP length went from `old_len` by `diff` bytes
 * behind the TCP header, the covered bytes' sum changing by `delta` (32 bits).
 */
static __always_inline int fix_segment(struct __sk_buff *skb, const struct pkt *p, __u32 old_len,
                                       int diff, __u32 delta) {
    __be16 from = bpf_htons(old_len), to = bpf_htons(old_len + diff);
    __u32 csum = p->l4_off + TCP_CSUM_OFF;

    if (set_ip_length((void *)(long)skb->data, (void *)(long)skb->data_end, p, diff) < 0)
        return -1;
    if (bpf_l4_csum_replace(skb, csum, 0, delta, 0) < 0)
        return -1;
    /* The TCP length is in the pseudo-header only (IPv6: the low half of a 32-bit word). */
    return bpf_l4_csum_replace(skb, csum, from, to, BPF_F_PSEUDO_HDR | sizeof(to));
}

/* How a rewrite went: done, refused with the packet unchanged, or failed half-way. */
enum rewrite {
    REWRITE_DONE,
    REWRITE_REFUSED,
    REWRITE_BROKEN,
};

/* A header being built: the hdr[] of a state (global functions take sized pointers). */
struct hdr_buf {
    __u8 b[PP_INLINE_HDR_MAX];
};

/*
 * Write the header's h bytes at `off` in the packet; the one's-complement sum of its bytes
 * (32 bits, unfolded), or -1. Global, verified on its own: inlined, clang bounded h on a
 * register and passed the helpers an unchecked copy from the stack, which 6.1 refused.
 */
__noinline __s64 put_header(struct __sk_buff *skb, __u32 off, const struct hdr_buf *hb, __u32 h) {
    __u32 words = (h + 3) & ~3U; /* zeros follow the header in hdr[] */

    if (!skb || !hb || h == 0 || h > PP_INLINE_HDR_MAX)
        return -1;
    SIZE_AT_LEAST_1(h, 255);
    SIZE_AT_LEAST_1(words, 255);
    if (h > PP_INLINE_HDR_MAX || words > PP_INLINE_HDR_MAX)
        return -1;
    if (bpf_skb_store_bytes(skb, off, hb->b, h, 0) < 0)
        return -1;
    return bpf_csum_diff(NULL, 0, (__be32 *)hb->b, words, 0);
}

/*
 * Insert the connection's header at the start of the segment's payload: grow at the tail,
 * move the payload H on, write the header in front of it, fix lengths and the checksum.
 * A function of its own (a BPF-to-BPF call), so that its stack is not ingress's: the
 * deepest chain of calls (ingress, on_syn, the header's builder) has to fit 512 bytes.
 */
static __noinline enum rewrite insert_header(struct __sk_buff *skb, const struct pkt *p,
                                             const struct pp_inline_conn *c) {
    __u32 h = c->hdr_len;
    __u32 payload = p->l4_off + p->tcp_hlen;
    __u32 tcp_len = p->l3_end - p->l4_off;
    __u32 plen = p->l3_end - payload;
    __s64 psum = 0;

    if (h == 0 || h > PP_INLINE_HDR_MAX || payload > p->l3_end)
        return REWRITE_REFUSED; /* never: the SYN built it, the parser bounds the rest */
    if (h & 1) {
        psum = sum_bytes(skb, payload, plen); /* its parity changes: see the top */
        if (psum < 0)
            return REWRITE_REFUSED;
    }
    if (bpf_skb_change_tail(skb, p->l3_end + h, 0) < 0)
        return REWRITE_REFUSED; /* unchanged (trailing padding goes) */
    if (move_bytes(skb, payload, payload + h, plen) < 0)
        return REWRITE_BROKEN;
    __s64 hsum = put_header(skb, payload, (const struct hdr_buf *)c->hdr, h);
    if (hsum < 0)
        return REWRITE_BROKEN;
    __u64 delta = (__u32)hsum;
    if (h & 1) {
        __u32 s = fold16(psum);
        delta += (__u16)~s + (__u16)((s >> 8) | (s << 8)); /* -old + byte-swapped */
    }
    delta = (delta & 0xFFFFFFFF) + (delta >> 32);
    return fix_segment(skb, p, tcp_len, h, delta) < 0 ? REWRITE_BROKEN : REWRITE_DONE;
}

/* Cut the payload of a SYN (Fast Open data): nothing of the client's precedes the header. */
static __always_inline enum rewrite cut_payload(struct __sk_buff *skb, const struct pkt *p) {
    __u32 payload = p->l4_off + p->tcp_hlen;
    __u32 plen = p->l3_end - payload;
    __s64 psum = sum_bytes(skb, payload, plen);

    if (psum < 0)
        return REWRITE_REFUSED;
    if (bpf_skb_change_tail(skb, payload, 0) < 0)
        return REWRITE_REFUSED;
    return fix_segment(skb, p, p->l3_end - p->l4_off, -(int)plen, (__u16)~fold16(psum)) < 0
               ? REWRITE_BROKEN
               : REWRITE_DONE;
}

/* Decimal digits of v (< 100000) into buf at pos; the new pos. */
static __always_inline __u32 put_dec(__u8 *buf, __u32 pos, __u32 v) {
    __u8 d[5] = {};
    __u32 n = 0;
#pragma unroll
    for (int k = 0; k < 5; k++) {
        d[k] = '0' + v % 10;
        v /= 10;
        n++;
        if (v == 0)
            break;
    }
#pragma unroll
    for (int k = 4; k >= 0; k--) {
        if (k < n && pos < PP_INLINE_HDR_MAX)
            buf[pos++] = d[k];
    }
    return pos;
}

/* Lower-case hex digits of v (< 0x10000), no leading zeros, into buf at pos; the new pos. */
static __always_inline __u32 put_hex(__u8 *buf, __u32 pos, __u32 v) {
    int started = 0;
#pragma unroll
    for (int shift = 12; shift >= 0; shift -= 4) {
        __u32 x = (v >> shift) & 0xF;
        if (x || started || shift == 0) {
            started = 1;
            if (pos < PP_INLINE_HDR_MAX)
                buf[pos++] = x < 10 ? '0' + x : 'a' + x - 10;
        }
    }
    return pos;
}

static __always_inline __u32 put_char(__u8 *buf, __u32 pos, __u8 ch) {
    if (pos < PP_INLINE_HDR_MAX)
        buf[pos++] = ch;
    return pos;
}

/* An address as v1 writes it: dotted quad, or eight hex groups (any form inet_pton reads). */
static __always_inline __u32 put_addr(__u8 *buf, __u32 pos, const __u8 *a, int ipv6) {
    if (!ipv6) {
        for (int k = 12; k < 16; k++) {
            if (k > 12)
                pos = put_char(buf, pos, '.');
            pos = put_dec(buf, pos, a[k]);
        }
        return pos;
    }
    for (int k = 0; k < 16; k += 2) {
        if (k)
            pos = put_char(buf, pos, ':');
        pos = put_hex(buf, pos, (__u32)a[k] << 8 | a[k + 1]);
    }
    return pos;
}

/*
 * "PROXY TCP4 <src> <dst> <sport> <dport>\r\n" into buf (zeroed); its length. Global, so
 * verified once on its own: inlined, its digit-by-digit branches multiplied the states of
 * everything around it.
 */
__noinline __u32 build_v1(struct hdr_buf *hb, const struct pkt *p) {
    if (!hb || !p)
        return 0; /* never: the verifier takes a global function's pointers as nullable */
    __u8 *buf = hb->b;
    static const char proxy[] = "PROXY TCP";
    __u32 pos = 0;
#pragma unroll
    for (int k = 0; k < sizeof(proxy) - 1; k++)
        pos = put_char(buf, pos, proxy[k]);
    pos = put_char(buf, pos, p->ipv6 ? '6' : '4');
    pos = put_char(buf, pos, ' ');
    pos = put_addr(buf, pos, p->saddr, p->ipv6);
    pos = put_char(buf, pos, ' ');
    pos = put_addr(buf, pos, p->daddr, p->ipv6);
    pos = put_char(buf, pos, ' ');
    pos = put_dec(buf, pos, bpf_ntohs(p->sport));
    pos = put_char(buf, pos, ' ');
    pos = put_dec(buf, pos, bpf_ntohs(p->dport));
    pos = put_char(buf, pos, '\r');
    return put_char(buf, pos, '\n');
}

/* The connection's state for a segment of an inline service, and its counters. */
struct conn_ctx {
    struct pp_service *svc;
    struct pp_counters *ctr;
    struct pp_flow_key key;
};

/*
 * CRC32C (Castagnoli, reflected 0x82F63B78) of a header, bit by bit, one byte a bpf_loop()
 * step: as a loop in the program the verifier followed every byte's exact value (most of
 * a header is constant) through every way to it, past the 1M instruction limit.
 */
struct crc_walk {
    const struct hdr_buf *hb;
    __u32 len; /* at most PP_INLINE_HDR_MAX */
    __u32 crc;
};

static long crc_byte(__u32 index, void *ctx) {
    struct crc_walk *w = ctx;
    __u64 i = index; /* 64-bit: see move_chunk */

    if (i >= w->len)
        return 1;
    /* Apart, behind a barrier: merged with the test above into one against min(len, MAX),
     * it told the verifier nothing about i. */
    barrier_var(i);
    if (i >= PP_INLINE_HDR_MAX)
        return 1;
    __u32 crc = w->crc ^ w->hb->b[i];
#pragma unroll
    for (int k = 0; k < 8; k++)
        crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1));
    w->crc = crc;
    return 0;
}

static __always_inline __u32 crc32c(const struct hdr_buf *hb, __u32 len) {
    struct crc_walk w = {.hb = hb, .len = len, .crc = ~0U};
    bpf_loop(PP_INLINE_HDR_MAX, crc_byte, &w, 0);
    return ~w.crc;
}

/* Copy a service's TLV block behind the addresses, `at` 28 or 52 (zeros follow len). */
static __always_inline void put_tlvs(__u8 *hdr, const struct pp_inline_tlvs *t, __u32 at) {
    /* A plain loop: unrolled, clang kept 35 precomputed offsets on the stack. */
    for (__u32 k = 0; k < PP_INLINE_TLV_MAX / 4; k++) {
        __u32 to = at + 4 * k;
        if (to + 4 > PP_INLINE_HDR_MAX)
            break;
        *(__u32 *)(hdr + to) = *(const __u32 *)(t->tlvs + 4 * k);
    }
}

/*
 * The v2 header of a connection into hdr (zeroed): addresses, then the service's TLVs with
 * a UNIQUE_ID of its own and the CRC32C over the whole. Its length, or 0 when the TLVs the
 * loader wrote do not fit (never: config validation bounds them). Global, as build_v1.
 */
__noinline __u32 build_inline_v2(struct hdr_buf *hb, const struct pkt *p, __u32 service_id) {
    if (!hb || !p)
        return 0;
    __u8 *hdr = hb->b;
    __u32 base = build_v2(hdr, p, 1); /* STREAM */
    struct pp_inline_tlvs *t = bpf_map_lookup_elem(&inline_tlvs, &service_id);
    if (!t || t->len == 0)
        return base;
    if (t->len > PP_INLINE_TLV_MAX)
        return 0;
    put_tlvs(hdr, t, base);
    __u32 len = base + t->len;
    __be16 v2len = bpf_htons(len - 16); /* what follows the 16-byte fixed part */
    __builtin_memcpy(hdr + 14, &v2len, 2);
    __u32 at = base + t->unique_id_at;
    if (t->unique_id_at != PP_INLINE_NO_TLV && at + 16 <= len && at <= PP_INLINE_HDR_MAX - 16) {
#pragma unroll
        for (int k = 0; k < 16; k += 4) {
            __u32 r = bpf_get_prandom_u32();
            __builtin_memcpy(hdr + at + k, &r, 4);
        }
    }
    at = base + t->crc32c_at;
    if (t->crc32c_at != PP_INLINE_NO_TLV && at + 4 <= len && at <= PP_INLINE_HDR_MAX - 4) {
        __be32 crc = bpf_htonl(crc32c(hb, len));
        __builtin_memcpy(hdr + at, &crc, 4);
    }
    return len;
}

/*
 * A client SYN: create the state (or keep it, for a retransmitted SYN), strip Fast Open.
 * Returns 0 to pass the SYN on, -1 to drop it. A function of its own (a BPF-to-BPF call),
 * so that its stack (the option walk, the header being built) is not added to the rest of
 * ingress's.
 */
static __noinline int on_syn(struct __sk_buff *skb, const struct pkt *p, struct conn_ctx *x,
                             const struct seg *s, __u64 now) {
    const struct pp_service *svc = x->svc;
    struct pp_counters *ctr = x->ctr;
    const struct pp_flow_key *key = &x->key;
    struct pp_inline_conn *c = bpf_map_lookup_elem(&inline_conns, key);
    if (c && c->isn != s->seq && !closing(c))
        return 0; /* a SYN inside a live connection: the backend answers it with an ACK */
    if (!c || c->isn != s->seq) {
        __u32 zero = 0;
        struct scratch *buf = bpf_map_lookup_elem(&shift_buf, &zero);
        if (!buf)
            return -1;
        struct pp_inline_conn *v = (struct pp_inline_conn *)buf->buf;
#pragma unroll
        for (int k = 0; k < sizeof(*v) / 8; k++)
            ((__u64 *)v)[k] = 0;
        v->created_ns = v->last_seen_ns = now;
        v->isn = s->seq;
        v->service_id = svc->id;
        v->idle_timeout_ms = svc->flow_timeout_ns / 1000000;
        v->hdr_len = svc->header == PP_HDR_V1
                         ? build_v1((struct hdr_buf *)v->hdr, p)
                         : build_inline_v2((struct hdr_buf *)v->hdr, p, svc->id);
        if (v->hdr_len == 0) {
            ctr->inline_rewrite_failed++;
            return -1;
        }
        /* A closing state of the same 4-tuple gives way (a new connection after the old). */
        /* != 0, not < 0: before 6.4 the JIT calls the map's own update, which returns an
         * int, and the error comes back zero-extended (E2BIG as 4294967289 on 6.1). */
        if (bpf_map_update_elem(&inline_conns, key, v, c ? BPF_EXIST : BPF_NOEXIST) != 0) {
            ctr->inline_refused++; /* full: E2BIG; the client tries again */
            return -1;
        }
        c = bpf_map_lookup_elem(&inline_conns, key);
        if (!c)
            return -1;
        arm_sweep();
        ctr->inline_conns_new++;
    }
    c->last_seen_ns = now;
    c->packets_in++;

    int stripped = rewrite_options(skb, p, c, OPT_STRIP_TFO);
    if (stripped < 0) {
        ctr->inline_rewrite_failed++;
        return -1;
    }
    if (p->l3_end > p->l4_off + p->tcp_hlen) {
        if (cut_payload(skb, p) != REWRITE_DONE) {
            ctr->inline_rewrite_failed++;
            return -1;
        }
        stripped++;
    }
    if (stripped)
        ctr->inline_tfo_stripped++;
    return 0;
}

/*
 * The inline service of a parsed segment, seen from the client (`egress` 0: its
 * destination) or from the backend (1: its source). 0 when the segment is none of ours.
 */
static __always_inline int find_service(const struct pkt *p, const int egress, struct conn_ctx *x) {
    const __u8 *client = egress ? p->daddr : p->saddr;
    const __u8 *service = egress ? p->saddr : p->daddr;
    __be16 cport = egress ? p->dport : p->sport;
    __be16 sport = egress ? p->sport : p->dport;

    x->svc = lookup_service(IPPROTO_TCP, service, sport);
    if (!x->svc || !(x->svc->flags & PP_SVC_INLINE))
        return 0;
    x->ctr = counters_of(x->svc->id);
    if (!x->ctr)
        return 0;
    __builtin_memcpy(x->key.client_addr, client, 16);
    __builtin_memcpy(x->key.service_addr, service, 16);
    x->key.client_port = cport;
    x->key.service_port = sport;
    return 1;
}

/* FIN or RST seen (a closing state is removed PP_INLINE_CLOSE_NS after its last segment). */
static __always_inline void mark(__u8 *flags, __u8 bits) {
    if ((*flags & bits) != bits)
        *flags |= bits;
}

/* The payload bytes of a parsed segment. */
static __always_inline __u32 payload_len(const struct pkt *p) {
    return p->l3_end - p->l4_off - p->tcp_hlen;
}

SEC("tc")
int inline_ingress(struct __sk_buff *skb) {
    struct pkt p = {};
    struct conn_ctx x = {};
    struct seg s;

    enum parse_result r = parse_tcp(skb, &p);
    if (r == PARSE_OTHER || r == PARSE_UNREACHED || !find_service(&p, 0, &x))
        return TC_PASS;
    x.ctr->seen++;
    /* A segment that cannot be shifted must not reach the backend unshifted. */
    if (r == PARSE_MALFORMED || p.tcp_hlen > sizeof(struct tcphdr) + MAX_OPTS ||
        read_seg(skb, &p, &s) < 0) {
        x.ctr->malformed_dropped++;
        return TC_ACT_SHOT;
    }
    if (p.frag) {
        x.ctr->frag_dropped++;
        return TC_ACT_SHOT;
    }
    __u64 now = bpf_ktime_get_coarse_ns();
    if ((s.flags & (TCP_SYN | TCP_ACK)) == TCP_SYN)
        return on_syn(skb, &p, &x, &s, now) < 0 ? TC_ACT_SHOT : TC_PASS;

    struct pp_inline_conn *c = bpf_map_lookup_elem(&inline_conns, &x.key);
    if (!c) {
        x.ctr->inline_no_state++;
        return TC_ACT_SHOT;
    }
    c->last_seen_ns = now;
    c->packets_in++;
    c->bytes_in += payload_len(&p);
    if (s.flags & TCP_RST)
        mark(&c->flags, PP_INLINE_RESET_CLIENT);
    else if (s.flags & TCP_FIN)
        mark(&c->flags, PP_INLINE_FIN_CLIENT);

    if (s.seq == c->isn + 1 && !(c->flags_backend & PP_INLINE_HDR_ACKED) &&
        !(s.flags & (TCP_RST | TCP_SYN))) {
        /* The header's place: it goes in here (see the top). Never into a GSO packet: one
         * that follows a header already sent (the handshake's ACK, just before: the
         * backend's acknowledgement is on its way) goes on shifted as if that header
         * arrived; if it did not, the backend's SACKs show the client its data received but
         * not acknowledged, and its retransmission timeout resends the head, one segment,
         * which gets the header. One before any header is dropped: the client resends it. */
        if (skb->gso_segs > 1 || skb->gso_size) {
            if (c->flags & PP_INLINE_HDR_SENT)
                goto shift;
            x.ctr->inline_gso_dropped++;
            return TC_ACT_SHOT;
        }
        enum rewrite w = insert_header(skb, &p, c);
        if (w != REWRITE_DONE) {
            x.ctr->inline_rewrite_failed++; /* dropped either way: the client sends it again */
            return TC_ACT_SHOT;
        }
        if (c->flags & PP_INLINE_HDR_SENT) {
            x.ctr->inline_header_resent++;
        } else {
            c->flags |= PP_INLINE_HDR_SENT;
            x.ctr->inline_headers++;
        }
        return TC_PASS;
    }
shift:
    if (set_word(skb, &p, TCP_SEQ_OFF, s.seq, s.seq + c->hdr_len) < 0) {
        x.ctr->inline_rewrite_failed++;
        return TC_ACT_SHOT;
    }
    return TC_PASS;
}

SEC("tc")
int inline_egress(struct __sk_buff *skb) {
    struct pkt p = {};
    struct conn_ctx x = {};
    struct seg s;

    enum parse_result r = parse_tcp(skb, &p);
    if (r == PARSE_OTHER || r == PARSE_UNREACHED || !find_service(&p, 1, &x))
        return TC_PASS;
    if (r == PARSE_MALFORMED || p.tcp_hlen > sizeof(struct tcphdr) + MAX_OPTS ||
        read_seg(skb, &p, &s) < 0) {
        x.ctr->malformed_dropped++;
        return TC_ACT_SHOT;
    }
    if (p.frag) {
        x.ctr->frag_dropped++;
        return TC_ACT_SHOT;
    }
    struct pp_inline_conn *c = bpf_map_lookup_elem(&inline_conns, &x.key);
    if (!c) {
        x.ctr->inline_no_state++; /* its acknowledgements would be the backend's, unshifted */
        return TC_ACT_SHOT;
    }
    c->last_seen_ns = bpf_ktime_get_coarse_ns();
    c->packets_out++;
    c->bytes_out += payload_len(&p);
    if (s.flags & TCP_RST)
        mark(&c->flags_backend, PP_INLINE_RESET_BACKEND);
    else if (s.flags & TCP_FIN)
        mark(&c->flags_backend, PP_INLINE_FIN_BACKEND);

    int changed;
    if (s.flags & TCP_SYN) {
        changed = rewrite_options(skb, &p, c, OPT_CLAMP_MSS);
        if (changed > 0)
            x.ctr->inline_mss_clamped++;
    } else {
        changed = rewrite_options(skb, &p, c, OPT_MAP_SACK);
    }
    if (changed < 0) {
        x.ctr->inline_rewrite_failed++;
        return TC_ACT_SHOT;
    }
    if (!(s.flags & TCP_ACK))
        return TC_PASS;
    if (!(c->flags_backend & PP_INLINE_HDR_ACKED) && seq_ge(s.ack, c->isn + 1 + c->hdr_len))
        c->flags_backend |= PP_INLINE_HDR_ACKED;
    if (set_word(skb, &p, TCP_ACK_OFF, s.ack, to_client(c, s.ack)) < 0) {
        x.ctr->inline_rewrite_failed++;
        return TC_ACT_SHOT;
    }
    return TC_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
