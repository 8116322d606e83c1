/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the UDP programs share, whichever hook they run at (tc in udp.bpf.c, XDP beside
 * it): the frame parser, the service and flow maps and their lookups, the header a service
 * wants, the forged-header test and the on_error rule. One source: the TC and the XDP
 * program see the same datagram the same way and count it under the same names.
 */
#ifndef PPINJECT_UDP_PARSE_BPF_H
#define PPINJECT_UDP_PARSE_BPF_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "maps.bpf.h"

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

/* The IPv6 extension headers parse_frame() walks to find UDP. */
static __always_inline int is_ipv6_ext(__u8 nexthdr) {
    return nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING || nexthdr == IPPROTO_DSTOPTS ||
           nexthdr == IPPROTO_FRAGMENT;
}

/*
 * Parse Ethernet (up to two 802.1Q/802.1ad tags), IPv4 (any IHL) or IPv6 (hop-by-hop,
 * routing, destination options and fragment headers skipped), then UDP, from the bytes
 * [data, data_end) that can be read directly; `len` is the whole frame's length (an skb's
 * paged part, or an XDP frame's fragments, included). Headers that lie past data_end but
 * inside `len` are out of reach: PARSE_UNREACHED once an address is known.
 *
 * Inlined into one global function per hook (parse_skb, parse_xdp): see there.
 */
static __always_inline enum parse_result parse_frame(void *data, void *data_end, __u32 len,
                                                     struct pkt *p) {
    __u32 off = sizeof(struct ethhdr);
    __be16 proto;
    __u8 l4proto;

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
                return off + 8 <= len ? PARSE_UNREACHED : PARSE_OTHER;
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
        return off + sizeof(*udp) <= len ? PARSE_UNREACHED : PARSE_OTHER;
    p->l4_off = off;
    p->sport = udp->source;
    p->dport = udp->dest;
    p->udp_len = bpf_ntohs(udp->len);

    /* The UDP header must fill the IP payload exactly, and the frame must hold it all. */
    if (p->l3_end > len || p->l3_end < off + sizeof(*udp))
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
 * What the TC and the XDP program do differently when they read a frame, chosen by a
 * constant `xdp` that inlining folds away: each program's code has one of the two.
 */
static __always_inline void *frame_data(void *ctx, const int xdp) {
    return xdp ? (void *)(long)((struct xdp_md *)ctx)->data
               : (void *)(long)((struct __sk_buff *)ctx)->data;
}
static __always_inline void *frame_end(void *ctx, const int xdp) {
    return xdp ? (void *)(long)((struct xdp_md *)ctx)->data_end
               : (void *)(long)((struct __sk_buff *)ctx)->data_end;
}
/* Copy bytes that may lie past frame_end (an skb's paged part, an XDP frame's fragments). */
static __always_inline long frame_load(void *ctx, const int xdp, __u32 off, void *to, __u32 len) {
    return xdp ? bpf_xdp_load_bytes(ctx, off, to, len) : bpf_skb_load_bytes(ctx, off, to, len);
}

/* What ingress decided, in words of neither hook; each program maps it to its own codes. */
enum verdict {
    VERDICT_PASS, /* on, changed or not */
    VERDICT_DROP,
};

/* RFC 1624 eqn. 3: a 16-bit one's-complement checksum after one 16-bit word changed. */
static __always_inline __sum16 csum16_replace(__sum16 check, __be16 from, __be16 to) {
    __u32 sum = (__u16)~check + (__u16)~from + (__u16)to;
    sum = (sum & 0xFFFF) + (sum >> 16);
    sum = (sum & 0xFFFF) + (sum >> 16);
    return (__sum16)~sum;
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
 * place when the first buffer holds it (nearly always), else through a copy.
 */
static __always_inline int is_forged(void *ctx, const int xdp, const struct pkt *p) {
    void *data = frame_data(ctx, xdp);
    void *data_end = frame_end(ctx, xdp);
    __u32 plen = p->udp_len - sizeof(struct udphdr);
    __u32 off = p->l4_off + sizeof(struct udphdr);
    __u64 copy[2];
    const __u64 *head = data + off;
    __u64 sig0;
    __u32 sig1;

    if (plen < sizeof(v2_signature) || off > MAX_HEADERS_LEN + sizeof(struct udphdr))
        return 0; /* too short to carry one; parse_frame() never returns a longer off */
    if ((void *)head + sizeof(v2_signature) > data_end) {
        if (frame_load(ctx, xdp, off, copy, sizeof(v2_signature)) < 0)
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
static __always_inline enum verdict refuse(const struct pp_service *svc, struct pp_counters *c,
                                           __u64 *reason) {
    if (svc->on_error == PP_ON_ERROR_PASS) {
        c->error_passed++;
        return VERDICT_PASS;
    }
    (*reason)++;
    return VERDICT_DROP;
}

#endif /* PPINJECT_UDP_PARSE_BPF_H */
