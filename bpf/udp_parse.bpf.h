/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the UDP programs share, whichever hook they run at (tc in udp.bpf.c, XDP beside
 * it): the flow and port maps and their lookups, the header a service wants, the
 * forged-header test and the on_error rule, on top of the frame parser (frame.bpf.h). One
 * source: the TC and the XDP program see the same datagram the same way and count it
 * under the same names.
 */
#ifndef PPINJECT_UDP_PARSE_BPF_H
#define PPINJECT_UDP_PARSE_BPF_H

#include "frame.bpf.h"

/* PP_SPP_MAGIC's two bytes in the order they are on the wire. */
#define SPP_MAGIC_0 (PP_SPP_MAGIC >> 8)
#define SPP_MAGIC_1 (PP_SPP_MAGIC & 0xFF)

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

/* Whether some UDP service listens on `port` (see udp_ports): a cheap test first. */
static __always_inline int port_served(__be16 port) {
    __u32 p = bpf_ntohs(port);
    __u32 word = p / 64;
    __u64 *bits = bpf_map_lookup_elem(&udp_ports, &word);
    return bits && ((*bits >> (p % 64)) & 1);
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
    return build_v2(buf, p, 2); /* DGRAM */
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
