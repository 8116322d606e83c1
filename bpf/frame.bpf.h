/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What every packet program of ppinject shares, UDP (tc and XDP) and inline TCP (tc): the
 * frame parser (Ethernet, VLAN tags, IPv4 or IPv6 with extension headers, then the UDP or
 * TCP header), the service lookup, the PROXY v2 address block and the checksum arithmetic.
 * One source: every program sees a frame the same way.
 */
#ifndef PPINJECT_FRAME_BPF_H
#define PPINJECT_FRAME_BPF_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
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
/* Headers are read from the linear part; this much is pulled in when it is shorter. */
#define MAX_HEADERS_LEN 256

/* What the parser found out about a packet. Addresses are IPv4-mapped for IPv4. */
struct pkt {
    __u8 saddr[16];
    __u8 daddr[16];
    __u32 l3_off; /* IP header */
    __u32 l4_off; /* UDP or TCP header */
    __u32 l3_end; /* end of the IP packet as its header says (trailing padding excluded) */
    __be16 sport;
    __be16 dport;
    __u16 udp_len; /* UDP: from the UDP header */
    __u8 ipv6;
    __u8 frag;     /* 1: an IP fragment; the L4 header is there only for the first */
    __u8 tcp_hlen; /* TCP: doff * 4, 20..60 */
    __u8 pad[3];
};

enum parse_result {
    PARSE_OK,        /* a datagram or segment (or first fragment) of the protocol, with ports */
    PARSE_OTHER,     /* another protocol, later fragment, or too short to tell: never touched */
    PARSE_MALFORMED, /* its IP and L4 lengths do not hold together */
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

/* The IPv6 extension headers parse_frame() walks to find UDP or TCP. */
static __always_inline int is_ipv6_ext(__u8 nexthdr) {
    return nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING || nexthdr == IPPROTO_DSTOPTS ||
           nexthdr == IPPROTO_FRAGMENT;
}

/*
 * Parse Ethernet (up to two 802.1Q/802.1ad tags), IPv4 (any IHL) or IPv6 (hop-by-hop,
 * routing, destination options and fragment headers skipped), then the header of `proto`
 * (IPPROTO_UDP or IPPROTO_TCP, a constant), from the bytes [data, data_end) that can be read
 * directly; `len` is the whole frame's length (an skb's paged part, or an XDP frame's
 * fragments, included). Headers that lie past data_end but inside `len` are out of reach:
 * PARSE_UNREACHED once an address is known.
 *
 * Inlined into one global function per program (parse_skb, parse_xdp, ...): see udp.bpf.c.
 */
static __always_inline enum parse_result parse_frame(void *data, void *data_end, __u32 len,
                                                     struct pkt *p, const __u8 proto) {
    __u32 off = sizeof(struct ethhdr);
    __be16 ethproto;
    __u8 l4proto;

    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return PARSE_OTHER;
    ethproto = eth->h_proto;

#pragma unroll
    for (int i = 0; i < MAX_VLAN_TAGS; i++) {
        if (ethproto != bpf_htons(ETH_P_8021Q) && ethproto != bpf_htons(ETH_P_8021AD))
            break;
        /* A VLAN tag is 2 bytes of TCI and 2 bytes of inner EtherType. */
        __be16 *tag = data + off;
        if ((void *)(tag + 2) > data_end)
            return PARSE_OTHER;
        ethproto = tag[1];
        off += 4;
    }
    p->l3_off = off;

    if (ethproto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip = data + off;
        if ((void *)(ip + 1) > data_end)
            return PARSE_OTHER;
        __u32 ihl = ip->ihl * 4;
        if (ip->version != 4 || ihl < sizeof(*ip))
            return PARSE_OTHER;
        if (ip->protocol != proto)
            return PARSE_OTHER;
        __u16 frag = bpf_ntohs(ip->frag_off);
        if (frag & IP_OFFSET)
            return PARSE_OTHER; /* no L4 header here: its first fragment decides */
        p->frag = (frag & IP_MF) ? 1 : 0;
        p->ipv6 = 0;
        p->l3_end = off + bpf_ntohs(ip->tot_len);
        if (bpf_ntohs(ip->tot_len) < ihl)
            return PARSE_OTHER;
        map_v4(p->saddr, ip->saddr);
        map_v4(p->daddr, ip->daddr);
        off += ihl;
    } else if (ethproto == bpf_htons(ETH_P_IPV6)) {
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
        if (l4proto != proto)
            return PARSE_OTHER;
    } else {
        return PARSE_OTHER;
    }

    if (off > MAX_HEADERS_LEN)
        return PARSE_UNREACHED;
    p->l4_off = off;
    if (proto == IPPROTO_TCP) {
        struct tcphdr *tcp = data + off;
        if ((void *)(tcp + 1) > data_end)
            return off + sizeof(*tcp) <= len ? PARSE_UNREACHED : PARSE_OTHER;
        p->sport = tcp->source;
        p->dport = tcp->dest;
        p->tcp_hlen = tcp->doff * 4;
        /* The TCP header must fit the IP payload, and the frame must hold the packet. */
        if (p->l3_end > len || p->tcp_hlen < sizeof(*tcp) || p->l3_end < off + p->tcp_hlen)
            return PARSE_MALFORMED;
        return PARSE_OK;
    }
    struct udphdr *udp = data + off;
    if ((void *)(udp + 1) > data_end)
        return off + sizeof(*udp) <= len ? PARSE_UNREACHED : PARSE_OTHER;
    p->sport = udp->source;
    p->dport = udp->dest;
    p->udp_len = bpf_ntohs(udp->len);

    /* The UDP header must fill the IP payload exactly, and the frame must hold it all. */
    if (p->l3_end > len || p->l3_end < off + sizeof(*udp))
        return PARSE_MALFORMED;
    if (!p->frag && p->udp_len != p->l3_end - off)
        return PARSE_MALFORMED;
    return PARSE_OK;
}

/* The service `proto` (IPPROTO_UDP or IPPROTO_TCP) has on addr:port, or NULL. */
static __always_inline struct pp_service *lookup_service(__u8 proto, const __u8 addr[16],
                                                         __be16 port) {
    struct pp_service_key key = {
        .prefixlen = PP_SERVICE_KEY_FIXED_BITS + 128,
        .protocol = proto,
        .port = port,
    };
    __builtin_memcpy(key.addr, addr, 16);
    return bpf_map_lookup_elem(&services, &key);
}

/*
 * The PROXY v2 header without TLVs into buf (at least 52 bytes): signature, version 2 +
 * PROXY, address family + `transport` (1 STREAM, 2 DGRAM), length, addresses and ports of
 * *p. Returns its length, PP_V2_HDR_LEN_INET or PP_V2_HDR_LEN_INET6.
 */
static __always_inline __u32 build_v2(__u8 *buf, const struct pkt *p, const __u8 transport) {
    __builtin_memcpy(buf, v2_signature, 12);
    buf[12] = 0x21;
    if (p->ipv6) {
        buf[13] = 0x20 | transport;
        buf[14] = 0;
        buf[15] = 36;
        __builtin_memcpy(buf + 16, p->saddr, 16);
        __builtin_memcpy(buf + 32, p->daddr, 16);
        __builtin_memcpy(buf + 48, &p->sport, 2);
        __builtin_memcpy(buf + 50, &p->dport, 2);
        return PP_V2_HDR_LEN_INET6;
    }
    buf[13] = 0x10 | transport;
    buf[14] = 0;
    buf[15] = 12;
    __builtin_memcpy(buf + 16, p->saddr + 12, 4);
    __builtin_memcpy(buf + 20, p->daddr + 12, 4);
    __builtin_memcpy(buf + 24, &p->sport, 2);
    __builtin_memcpy(buf + 26, &p->dport, 2);
    return PP_V2_HDR_LEN_INET;
}

/* RFC 1624 eqn. 3: a 16-bit one's-complement checksum after one 16-bit word changed. */
static __always_inline __sum16 csum16_replace(__sum16 check, __be16 from, __be16 to) {
    __u32 sum = (__u16)~check + (__u16)~from + (__u16)to;
    sum = (sum & 0xFFFF) + (sum >> 16);
    sum = (sum & 0xFFFF) + (sum >> 16);
    return (__sum16)~sum;
}

/*
 * Write the IP length of a packet that grew by `diff` bytes (shrank, if negative) behind
 * its L4 header, and the IPv4 header checksum with it (IPv6 payload_len is covered by no
 * checksum but the pseudo-header's, which is the caller's). Returns -1 when the frame is
 * shorter than parse_frame() found it (never).
 */
static __always_inline int set_ip_length(void *data, void *data_end, const struct pkt *p,
                                         int diff) {
    __u32 l3 = p->l3_off;

    if (l3 > MAX_HEADERS_LEN)
        return -1;
    if (p->ipv6) {
        struct ipv6hdr *ip6 = data + l3;
        if ((void *)(ip6 + 1) > data_end)
            return -1;
        ip6->payload_len = bpf_htons(p->l3_end - l3 - sizeof(struct ipv6hdr) + diff);
    } else {
        struct iphdr *ip = data + l3;
        if ((void *)(ip + 1) > data_end)
            return -1;
        __be16 new_tot = bpf_htons(p->l3_end - l3 + diff);
        ip->check = csum16_replace(ip->check, ip->tot_len, new_tot);
        ip->tot_len = new_tot;
    }
    return 0;
}

#endif /* PPINJECT_FRAME_BPF_H */
