// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * UDP data path: TC (clsact) programs on the client-facing interfaces.
 *
 * udp_ingress inserts a PROXY v2 or SPP header right after the UDP header of datagrams
 * sent to a service; udp_egress strips the SPP header a backend echoes on its replies.
 *
 * How the packet grows: bpf_skb_adjust_room() inserts at a fixed offset after a 20/40
 * byte IP header (wrong with IPv4 options or IPv6 extension headers) and leaves the
 * transport header and csum_start where they were, so a CHECKSUM_PARTIAL skb would get
 * its checksum written into the inserted header. Instead the packet grows at the tail
 * (bpf_skb_change_tail), the payload is shifted towards the tail and the header is
 * written into the hole: the IP and UDP headers never move. Stripping is the mirror.
 *
 * Checksums: the header is inserted at an even offset and the payload shifted by an even
 * amount, so the payload's contribution to the UDP checksum is unchanged; only the
 * header's bytes and the length (in the UDP header and in the pseudo-header) are folded
 * in, with bpf_l4_csum_replace, which also does the right thing for CHECKSUM_PARTIAL
 * (only the pseudo-header seed changes). bpf_skb_change_tail turns CHECKSUM_COMPLETE
 * into CHECKSUM_NONE, so skb->csum never needs fixing.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "maps.bpf.h"

/*
 * Packets we let through (changed or not) leave with TC_ACT_UNSPEC: classification goes on
 * with the next filter on the hook, if another tool has one, and ends as TC_ACT_OK when
 * there is none. TC_ACT_OK would skip everyone after us.
 */
#define TC_PASS TC_ACT_UNSPEC

#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF
#define IPV6_FRAG_OFFSET_MASK 0xFFF8
#define MAX_VLAN_TAGS 2
#define MAX_IPV6_EXT_HEADERS 4
/* PP_SPP_MAGIC's two bytes in the order they are on the wire. */
#define SPP_MAGIC_0 (PP_SPP_MAGIC >> 8)
#define SPP_MAGIC_1 (PP_SPP_MAGIC & 0xFF)
/* Headers are read from the linear part; this much is pulled in when it is shorter. */
#define MAX_HEADERS_LEN 256

/* Shifting the payload goes through a per-CPU scratch buffer, CHUNK bytes at a time. */
#define CHUNK 2048
#define MAX_CHUNKS 32 /* 64 KiB: any UDP datagram */

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 65536); /* udp_max_flows; the loader sets it before load */
    __type(key, struct pp_flow_key);
    __type(value, struct pp_flow);
} udp_flows SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, PP_UDP_PORT_WORDS);
    __type(key, __u32);
    __type(value, __u64);
} udp_ports SEC(".maps");

struct scratch {
    __u8 buf[CHUNK];
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct scratch);
} shift_buf SEC(".maps");

/* What the parser found out about a packet. Addresses are IPv4-mapped for IPv4. */
struct pkt {
    __u8 saddr[16];
    __u8 daddr[16];
    __u32 l3_off; /* IP header */
    __u32 l4_off; /* UDP header */
    __u32 l3_end; /* end of the IP packet as its header says (trailing padding excluded) */
    __be16 sport;
    __be16 dport;
    __u16 udp_len; /* from the UDP header */
    __u8 ipv6;
    __u8 frag; /* 1: an IP fragment; the UDP header is there only for the first */
};

enum parse_result {
    PARSE_UDP,       /* a UDP datagram (or first fragment) with its ports */
    PARSE_OTHER,     /* not UDP, later fragment, or too short to tell: never touched */
    PARSE_MALFORMED, /* a UDP datagram whose IP/UDP lengths do not hold together */
    PARSE_UNREACHED, /* IPv6 whose extension headers go on past what is walked */
};

static const __u8 v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
static const __u8 v2_signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                      0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* memcmp() == 0 for short constant lengths; clang has no memcmp for BPF. */
static __always_inline int bytes_equal(const __u8 *a, const __u8 *b, const int n) {
    __u8 diff = 0;
#pragma unroll
    for (int i = 0; i < n; i++)
        diff |= a[i] ^ b[i];
    return diff == 0;
}

static __always_inline void map_v4(__u8 out[16], __be32 addr) {
    __builtin_memcpy(out, v4_mapped_prefix, 12);
    __builtin_memcpy(out + 12, &addr, 4);
}

/* The IPv6 extension headers parse() walks to find UDP. */
static __always_inline int is_ipv6_ext(__u8 nexthdr) {
    return nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING || nexthdr == IPPROTO_DSTOPTS ||
           nexthdr == IPPROTO_FRAGMENT;
}

/*
 * Parse Ethernet (up to two 802.1Q/802.1ad tags), IPv4 (any IHL) or IPv6 (hop-by-hop,
 * routing, destination options and fragment headers skipped), then UDP.
 *
 * A global function, not inlined: the verifier checks it once, on its own, and its
 * callers go on with one state in which the result and *p are unknown values. Inlined,
 * each way through the parser (tag count, header lengths, fragment flag, result) left
 * its own offsets and flags behind, and the rest of udp_ingress was verified once for
 * each. The callers therefore bound every field of *p they use as an offset or a size.
 */
__noinline enum parse_result parse(struct __sk_buff *skb, struct pkt *p) {
    void *data = (void *)(long)skb->data;
    void *data_end = (void *)(long)skb->data_end;
    __u32 off = sizeof(struct ethhdr);
    __be16 proto;
    __u8 l4proto;

    if (!p)
        return PARSE_OTHER; /* never: the verifier takes a global function's pointer as nullable */
    if (data + MAX_HEADERS_LEN > data_end && skb->len > skb->data_end - skb->data) {
        /* Headers may sit in paged data; bring them into the linear part. */
        bpf_skb_pull_data(skb, skb->len < MAX_HEADERS_LEN ? skb->len : MAX_HEADERS_LEN);
        data = (void *)(long)skb->data;
        data_end = (void *)(long)skb->data_end;
    }

    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return PARSE_OTHER;
    proto = eth->h_proto;

#pragma unroll
    for (int i = 0; i < MAX_VLAN_TAGS; i++) {
        if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
            break;
        /* A VLAN tag is 2 bytes of TCI and 2 bytes of inner EtherType. */
        __be16 *tag = data + off;
        if ((void *)(tag + 2) > data_end)
            return PARSE_OTHER;
        proto = tag[1];
        off += 4;
    }
    p->l3_off = off;

    if (proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip = data + off;
        if ((void *)(ip + 1) > data_end)
            return PARSE_OTHER;
        __u32 ihl = ip->ihl * 4;
        if (ip->version != 4 || ihl < sizeof(*ip))
            return PARSE_OTHER;
        if (ip->protocol != IPPROTO_UDP)
            return PARSE_OTHER;
        __u16 frag = bpf_ntohs(ip->frag_off);
        if (frag & IP_OFFSET)
            return PARSE_OTHER; /* no UDP header here: its first fragment decides */
        p->frag = (frag & IP_MF) ? 1 : 0;
        p->ipv6 = 0;
        p->l3_end = off + bpf_ntohs(ip->tot_len);
        if (bpf_ntohs(ip->tot_len) < ihl)
            return PARSE_OTHER;
        map_v4(p->saddr, ip->saddr);
        map_v4(p->daddr, ip->daddr);
        off += ihl;
    } else if (proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6 = data + off;
        if ((void *)(ip6 + 1) > data_end)
            return PARSE_OTHER;
        if (ip6->version != 6)
            return PARSE_OTHER;
        p->ipv6 = 1;
        p->frag = 0;
        p->l3_end = off + sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
        __builtin_memcpy(p->saddr, &ip6->saddr, 16);
        __builtin_memcpy(p->daddr, &ip6->daddr, 16);
        l4proto = ip6->nexthdr;
        off += sizeof(*ip6);

#pragma unroll
        for (int i = 0; i < MAX_IPV6_EXT_HEADERS; i++) {
            if (!is_ipv6_ext(l4proto))
                break;
            __u8 *ext = data + off;
            if ((void *)(ext + 8) > data_end)
                return off + 8 <= skb->len ? PARSE_UNREACHED : PARSE_OTHER;
            if (l4proto == IPPROTO_FRAGMENT) {
                /* Fragment header: next, reserved, offset (13 bits) + flags, id. */
                __u16 frag = bpf_ntohs(*(__be16 *)(ext + 2));
                if (frag & IPV6_FRAG_OFFSET_MASK)
                    return PARSE_OTHER;
                p->frag = frag & 1; /* M flag; an atomic fragment is whole */
                off += 8;
            } else {
                off += (ext[1] + 1) * 8;
            }
            l4proto = ext[0];
            if (off > MAX_HEADERS_LEN)
                return PARSE_UNREACHED;
        }
        if (is_ipv6_ext(l4proto))
            return PARSE_UNREACHED;
        if (l4proto != IPPROTO_UDP)
            return PARSE_OTHER;
    } else {
        return PARSE_OTHER;
    }

    if (off > MAX_HEADERS_LEN)
        return PARSE_UNREACHED;
    struct udphdr *udp = data + off;
    if ((void *)(udp + 1) > data_end)
        return off + sizeof(*udp) <= skb->len ? PARSE_UNREACHED : PARSE_OTHER;
    p->l4_off = off;
    p->sport = udp->source;
    p->dport = udp->dest;
    p->udp_len = bpf_ntohs(udp->len);

    /* The UDP header must fill the IP payload exactly, and the skb must hold it all. */
    if (p->l3_end > skb->len || p->l3_end < off + sizeof(*udp))
        return PARSE_MALFORMED;
    if (!p->frag && p->udp_len != p->l3_end - off)
        return PARSE_MALFORMED;
    return PARSE_UDP;
}

/* Whether some UDP service listens on `port` (see udp_ports): a cheap test first. */
static __always_inline int port_served(__be16 port) {
    __u32 p = bpf_ntohs(port);
    __u32 word = p / 64;
    __u64 *bits = bpf_map_lookup_elem(&udp_ports, &word);
    return bits && ((*bits >> (p % 64)) & 1);
}

static __always_inline struct pp_service *lookup_service(const __u8 addr[16], __be16 port) {
    struct pp_service_key key = {
        .prefixlen = PP_SERVICE_KEY_FIXED_BITS + 128,
        .protocol = IPPROTO_UDP,
        .port = port,
    };
    __builtin_memcpy(key.addr, addr, 16);
    return bpf_map_lookup_elem(&services, &key);
}

/* Some UDP service listening on `addr`, whatever the port (see udp_addresses). */
static __always_inline struct pp_service *lookup_address(const __u8 addr[16]) {
    struct pp_address_key key = {.prefixlen = 128};
    __builtin_memcpy(key.addr, addr, 16);
    return bpf_map_lookup_elem(&udp_addresses, &key);
}

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
    /* Identity for 1..CHUNK, and a form whose range [1, CHUNK] every verifier derives: 6.1's
     * does not learn n >= 1 from the n == 0 test above and refuses a possibly-zero size. */
    barrier_var(n);
    n = ((n - 1) & (CHUNK - 1)) + 1;
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

/* RFC 1624 eqn. 3: a 16-bit one's-complement checksum after one 16-bit word changed. */
static __always_inline __sum16 csum16_replace(__sum16 check, __be16 from, __be16 to) {
    __u32 sum = (__u16)~check + (__u16)~from + (__u16)to;
    sum = (sum & 0xFFFF) + (sum >> 16);
    sum = (sum & 0xFFFF) + (sum >> 16);
    return (__sum16)~sum;
}

/*
 * Fix lengths and checksums after `diff` bytes whose one's-complement sum is `hdr_sum`
 * were inserted (diff > 0) or removed (diff < 0, hdr_sum negated) right after the UDP
 * header. Lengths are written in place; the UDP checksum goes through
 * bpf_l4_csum_replace, which alone knows whether the skb is CHECKSUM_PARTIAL (then the
 * field holds only the pseudo-header's sum, and only pseudo-header changes apply).
 */
static __always_inline int fix_lengths(struct __sk_buff *skb, const struct pkt *p, int diff,
                                       __s64 hdr_sum) {
    __u32 l3 = p->l3_off, l4 = p->l4_off;
    /* A result of 0 is sent as 0xFFFF (RFC 768; for IPv6 0 means no checksum, RFC 8200
     * 8.1, and receivers drop it); an IPv4 "no checksum" 0 stays 0. */
    __u64 mangled0 = BPF_F_MARK_MANGLED_0;
    __be16 old_ulen = bpf_htons(p->udp_len);
    __be16 new_ulen = bpf_htons(p->udp_len + diff);
    void *data = (void *)(long)skb->data;
    void *data_end = (void *)(long)skb->data_end;

    if (l3 > MAX_HEADERS_LEN || l4 > MAX_HEADERS_LEN)
        return -1;
    struct udphdr *udp = data + l4;
    if ((void *)(udp + 1) > data_end)
        return -1;
    if (p->ipv6) {
        struct ipv6hdr *ip6 = data + l3;
        if ((void *)(ip6 + 1) > data_end)
            return -1;
        /* payload_len is not covered by any checksum but the pseudo-header's. */
        ip6->payload_len = bpf_htons(p->l3_end - l3 - sizeof(struct ipv6hdr) + diff);
    } else {
        struct iphdr *ip = data + l3;
        if ((void *)(ip + 1) > data_end)
            return -1;
        __be16 new_tot = bpf_htons(p->l3_end - l3 + diff);
        ip->check = csum16_replace(ip->check, ip->tot_len, new_tot);
        ip->tot_len = new_tot;
    }
    udp->len = new_ulen;
    /* The covered bytes' change: the header, and the length word (~old + new, RFC 1624);
     * folded to 32 bits with end-around carry, as a "from 0 to sum" replacement adds it. */
    __u64 delta = (__u32)hdr_sum + (__u16)~old_ulen + (__u16)new_ulen;
    delta = (delta & 0xFFFFFFFF) + (delta >> 32);
    __u32 csum_off = l4 + offsetof(struct udphdr, check);
    if (bpf_l4_csum_replace(skb, csum_off, 0, delta, mangled0) < 0)
        return -1;
    /* The UDP length counts twice: in the UDP header (in delta) and in the pseudo-header. */
    if (bpf_l4_csum_replace(skb, csum_off, old_ulen, new_ulen,
                            mangled0 | BPF_F_PSEUDO_HDR | sizeof(new_ulen)) < 0)
        return -1;
    return 0;
}

/* Build the header a service wants into buf (zeroed, 52 bytes are always enough); its length. */
static __always_inline __u32 build_header(const struct pp_service *svc, const struct pkt *p,
                                          __u8 buf[56]) {
    if (svc->header == PP_HDR_SPP) {
        __be16 magic = bpf_htons(PP_SPP_MAGIC);
        __builtin_memcpy(buf, &magic, 2);
        __builtin_memcpy(buf + 2, p->saddr, 16);
        __builtin_memcpy(buf + 18, p->daddr, 16);
        __builtin_memcpy(buf + 34, &p->sport, 2);
        __builtin_memcpy(buf + 36, &p->dport, 2);
        return PP_SPP_HDR_LEN;
    }
    /* PROXY v2: signature, version 2 + PROXY, family + DGRAM, length, addresses. */
    __builtin_memcpy(buf, v2_signature, 12);
    buf[12] = 0x21;
    if (p->ipv6) {
        buf[13] = 0x22;
        buf[14] = 0;
        buf[15] = 36;
        __builtin_memcpy(buf + 16, p->saddr, 16);
        __builtin_memcpy(buf + 32, p->daddr, 16);
        __builtin_memcpy(buf + 48, &p->sport, 2);
        __builtin_memcpy(buf + 50, &p->dport, 2);
        return PP_V2_HDR_LEN_INET6;
    }
    buf[13] = 0x12;
    buf[14] = 0;
    buf[15] = 12;
    __builtin_memcpy(buf + 16, p->saddr + 12, 4);
    __builtin_memcpy(buf + 20, p->daddr + 12, 4);
    __builtin_memcpy(buf + 24, &p->sport, 2);
    __builtin_memcpy(buf + 26, &p->dport, 2);
    return PP_V2_HDR_LEN_INET;
}

/*
 * Does the payload already start with a PROXY v2 signature or an SPP magic? Read in
 * place when the linear part holds it (nearly always), else through a copy.
 */
static __always_inline int is_forged(struct __sk_buff *skb, const struct pkt *p) {
    void *data = (void *)(long)skb->data;
    void *data_end = (void *)(long)skb->data_end;
    __u32 plen = p->udp_len - sizeof(struct udphdr);
    __u32 off = p->l4_off + sizeof(struct udphdr);
    __u64 copy[2];
    const __u64 *head = data + off;
    __u64 sig0;
    __u32 sig1;

    if (plen < sizeof(v2_signature) || off > MAX_HEADERS_LEN + sizeof(struct udphdr))
        return 0; /* too short to carry one; parse() never returns a longer off */
    if ((void *)head + sizeof(v2_signature) > data_end) {
        if (bpf_skb_load_bytes(skb, off, copy, sizeof(v2_signature)) < 0)
            return 0;
        head = copy;
    }
    if (plen >= PP_SPP_HDR_LEN && ((const __u8 *)head)[0] == SPP_MAGIC_0 &&
        ((const __u8 *)head)[1] == SPP_MAGIC_1)
        return 1;
    __builtin_memcpy(&sig0, v2_signature, 8); /* constants, in the packet's byte order */
    __builtin_memcpy(&sig1, v2_signature + 8, 4);
    return head[0] == sig0 && *(const __u32 *)(head + 1) == sig1;
}

/*
 * A datagram of `svc` that cannot carry its header: dropped and counted under `reason`,
 * or passed bare when the service says on_error = "pass".
 */
static __always_inline int refuse(const struct pp_service *svc, struct pp_counters *c,
                                  __u64 *reason) {
    if (svc->on_error == PP_ON_ERROR_PASS) {
        c->error_passed++;
        return TC_PASS;
    }
    (*reason)++;
    return TC_ACT_SHOT;
}

SEC("tc")
int udp_ingress(struct __sk_buff *skb) {
    struct pkt p = {};
    enum parse_result r = parse(skb, &p);
    if (r == PARSE_OTHER || (r != PARSE_UNREACHED && !port_served(p.dport)))
        return TC_PASS;

    struct pp_service *svc =
        r == PARSE_UNREACHED ? lookup_address(p.daddr) : lookup_service(p.daddr, p.dport);
    if (!svc)
        return TC_PASS; /* not ours: untouched */
    struct pp_counters *c = counters_of(svc->id);
    if (!c)
        return TC_PASS;
    c->seen++;

    /* No port and no payload to check for a forged header: never passed, whatever on_error. */
    if (r == PARSE_UNREACHED) {
        c->chain_dropped++;
        return TC_ACT_SHOT;
    }
    if (r == PARSE_MALFORMED)
        return refuse(svc, c, &c->malformed_dropped);
    if (p.frag)
        return refuse(svc, c, &c->frag_dropped);
    /* A client must not be able to choose the address the backend will believe. */
    if (is_forged(skb, &p)) {
        c->spoof_dropped++;
        return TC_ACT_SHOT;
    }

    __u64 now = bpf_ktime_get_coarse_ns(); /* one tick's precision is plenty for timeouts */
    struct pp_flow_key fk = {.client_port = p.sport, .service_port = p.dport};
    __builtin_memcpy(fk.client_addr, p.saddr, 16);
    __builtin_memcpy(fk.service_addr, p.daddr, 16);
    __u32 payload_len = p.udp_len - sizeof(struct udphdr);
    struct pp_flow *flow = bpf_map_lookup_elem(&udp_flows, &fk);
    int live = flow && now - flow->last_seen_ns <= svc->flow_timeout_ns;
    if (live) {
        flow->last_seen_ns = now;
        flow->packets++;
        flow->bytes += payload_len;
        if (svc->header == PP_HDR_V2 && svc->udp_header == PP_UDP_FIRST) {
            c->passed++;
            return TC_PASS;
        }
    }

    /* One header for a GRO/GSO train of many datagrams would corrupt all but the first. */
    if (skb->gso_segs > 1)
        return refuse(svc, c, &c->gso_dropped);

    __u8 hdr[56] = {}; /* whole 4-byte words for bpf_csum_diff; bytes past the header are 0 */
    __u32 hlen = build_header(svc, &p, hdr);
    __u32 mtu = p.l3_end - p.l3_off; /* the IP packet: tags and padding do not count */
    if (bpf_check_mtu(skb, 0, &mtu, hlen, 0) != BPF_MTU_CHK_RET_SUCCESS)
        return refuse(svc, c, &c->mtu_dropped);
    if (p.udp_len + hlen > 0xFFFF)
        return refuse(svc, c, &c->mtu_dropped);

    __s64 hsum = bpf_csum_diff(0, 0, (__be32 *)hdr, (hlen + 3) & ~3u, 0);
    __u32 payload = p.l4_off + sizeof(struct udphdr);
    /* Grow at the tail; the packet is unchanged if this fails (trailing padding goes). */
    if (bpf_skb_change_tail(skb, p.l3_end + hlen, 0) < 0)
        return refuse(svc, c, &c->grow_failed);
    /* From here on a failure leaves the packet half-rewritten: always drop it. */
    if (move_bytes(skb, payload, payload + hlen, payload_len) < 0 ||
        bpf_skb_store_bytes(skb, payload, hdr, hlen, 0) < 0 ||
        fix_lengths(skb, &p, hlen, hsum) < 0) {
        c->grow_failed++;
        return TC_ACT_SHOT;
    }

    if (svc->header == PP_HDR_SPP)
        c->injected_spp++;
    else
        c->injected_v2++;
    if (!live) {
        struct pp_flow nf = {
            .created_ns = now,
            .last_seen_ns = now,
            .packets = 1,
            .bytes = payload_len,
            .service_id = svc->id,
        };
        bpf_map_update_elem(&udp_flows, &fk, &nf, BPF_ANY);
        c->flows_new++;
    }
    return TC_PASS;
}

/*
 * Replies leaving towards clients: a datagram from an SPP service carries the header the
 * backend echoed. It must name the client the reply goes to; then it is removed.
 */
SEC("tc")
int udp_egress(struct __sk_buff *skb) {
    struct pkt p = {};
    enum parse_result r = parse(skb, &p);
    if (r == PARSE_OTHER || r == PARSE_UNREACHED)
        return TC_PASS; /* a reply hides no client address: at worst it shows the client its own */

    struct pp_service *svc = lookup_service(p.saddr, p.sport);
    if (!svc || svc->header != PP_HDR_SPP)
        return TC_PASS;
    struct pp_counters *c = counters_of(svc->id);
    if (!c)
        return TC_PASS;

    /* Replies are never passed on error: a stray header would reach the client. */
    if (r == PARSE_MALFORMED || p.frag || skb->gso_segs > 1) {
        c->spp_reply_dropped++;
        return TC_ACT_SHOT;
    }
    __u32 payload = p.l4_off + sizeof(struct udphdr);
    __u32 payload_len = p.udp_len - sizeof(struct udphdr);
    /* Whole 4-byte words for bpf_csum_diff; the bytes past the header stay 0. */
    __u8 hdr[(PP_SPP_HDR_LEN + 3) & ~3] = {};
    if (payload_len < PP_SPP_HDR_LEN || bpf_skb_load_bytes(skb, payload, hdr, PP_SPP_HDR_LEN) < 0) {
        c->spp_reply_dropped++;
        return TC_ACT_SHOT;
    }
    if (hdr[0] != SPP_MAGIC_0 || hdr[1] != SPP_MAGIC_1 || !bytes_equal(hdr + 2, p.daddr, 16) ||
        !bytes_equal(hdr + 34, (const __u8 *)&p.dport, 2)) {
        c->spp_reply_dropped++;
        return TC_ACT_SHOT;
    }

    __s64 hsum = bpf_csum_diff((__be32 *)hdr, sizeof(hdr), 0, 0, 0);
    /* Shift the payload over the header, fix the headers, then cut the tail. */
    if (move_bytes(skb, payload + PP_SPP_HDR_LEN, payload, payload_len - PP_SPP_HDR_LEN) < 0 ||
        fix_lengths(skb, &p, -PP_SPP_HDR_LEN, hsum) < 0 ||
        bpf_skb_change_tail(skb, p.l3_end - PP_SPP_HDR_LEN, 0) < 0) {
        c->spp_reply_dropped++;
        return TC_ACT_SHOT;
    }
    c->spp_reply_stripped++;
    return TC_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
