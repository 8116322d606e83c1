// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Test-only: a lossy link for the inline TCP tests, since the host kernel has no netem.
 * A tc program for either hook of a veth, configured through lossy_conf (lossy.h): drop
 * exactly the first N packets that carry a PROXY header (payload starts with a v1 or v2
 * signature), drop a random share of TCP packets, or send every TCP packet twice.
 * Everything else passes. Ethernet, then IPv4 (not fragmented) or IPv6 with TCP as the
 * first next header: what the tests' veth links carry.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "lossy.h"

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct lossy_conf);
} lossy_conf SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, LOSSY_STATS);
    __type(key, __u32);
    __type(value, __u64);
} lossy_stats SEC(".maps");

/* Adds 1 to lossy_stats[i] and returns the value before (atomic across CPUs: the tests
 * count "exactly N"). */
static __always_inline __u64 count(__u32 i) {
    __u64 *v = bpf_map_lookup_elem(&lossy_stats, &i);
    return v ? __sync_fetch_and_add(v, 1) : 0;
}

/* Offset of the TCP header and the end of the IP packet, or 0 when it is not TCP. */
static __always_inline __u32 tcp_offset(struct __sk_buff *skb, __u32 *ip_end) {
    __u16 proto = bpf_ntohs(skb->protocol);
    if (proto == ETH_P_IP) {
        struct iphdr ip;
        if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof ip) != 0 || ip.protocol != IPPROTO_TCP ||
            (ip.frag_off & bpf_htons(0x3FFF)) != 0) {
            return 0;
        }
        *ip_end = ETH_HLEN + bpf_ntohs(ip.tot_len);
        return ETH_HLEN + ip.ihl * 4;
    }
    if (proto == ETH_P_IPV6) {
        struct ipv6hdr ip6;
        if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip6, sizeof ip6) != 0 ||
            ip6.nexthdr != IPPROTO_TCP) {
            return 0;
        }
        *ip_end = ETH_HLEN + sizeof ip6 + bpf_ntohs(ip6.payload_len);
        return ETH_HLEN + sizeof ip6;
    }
    return 0;
}

/* Whether the TCP payload starts with "PROXY " or the 12-byte v2 signature. Both headers
 * are at least 12 bytes long (v1's shortest, "PROXY UNKNOWN\r\n", has 15). */
static __always_inline int carries_header(struct __sk_buff *skb, __u32 l4, __u32 ip_end) {
    static const char v2[12] = "\r\n\r\n\0\r\nQUIT\n";
    struct tcphdr th;
    char p[12];
    if (bpf_skb_load_bytes(skb, l4, &th, sizeof th) != 0) {
        return 0;
    }
    __u32 payload = l4 + th.doff * 4;
    if (payload + sizeof p > ip_end || bpf_skb_load_bytes(skb, payload, p, sizeof p) != 0) {
        return 0;
    }
    if (p[0] == 'P' && p[1] == 'R' && p[2] == 'O' && p[3] == 'X' && p[4] == 'Y' && p[5] == ' ') {
        return 1;
    }
    for (int i = 0; i < 12; i++) {
        if (p[i] != v2[i]) {
            return 0;
        }
    }
    return 1;
}

static __always_inline int lossy(struct __sk_buff *skb, __u64 redirect_flags) {
    if (skb->mark == LOSSY_COPY_MARK) {
        skb->mark = 0; /* a copy we sent: it passes once, untouched */
        return TC_ACT_OK;
    }
    __u32 zero = 0, ip_end = 0;
    struct lossy_conf *conf = bpf_map_lookup_elem(&lossy_conf, &zero);
    __u32 l4 = tcp_offset(skb, &ip_end);
    if (!conf || l4 == 0) {
        return TC_ACT_OK;
    }
    count(LOSSY_TCP);
    if (carries_header(skb, l4, ip_end) && count(LOSSY_HEADERS_SEEN) < conf->drop_headers) {
        count(LOSSY_HEADERS_DROPPED); /* drop: one of the first N header packets */
        return TC_ACT_SHOT;
    }
    if (conf->drop_per_mille && bpf_get_prandom_u32() % 1000 < conf->drop_per_mille) {
        count(LOSSY_RANDOM_DROPPED); /* drop: the random share */
        return TC_ACT_SHOT;
    }
    if (conf->duplicate) {
        /* The copy goes out on the same hook of the same device and meets this program
         * again: the mark lets it through there, so there is one copy, not a loop. */
        __u32 mark = skb->mark;
        skb->mark = LOSSY_COPY_MARK;
        count(bpf_clone_redirect(skb, skb->ifindex, redirect_flags) == 0 ? LOSSY_DUPLICATED
                                                                         : LOSSY_DUPLICATE_FAILED);
        skb->mark = mark;
    }
    return TC_ACT_OK;
}

SEC("tc")
int lossy_egress(struct __sk_buff *skb) {
    return lossy(skb, 0);
}

SEC("tc")
int lossy_ingress(struct __sk_buff *skb) {
    return lossy(skb, BPF_F_INGRESS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
