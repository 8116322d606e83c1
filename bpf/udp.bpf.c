// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * UDP data path: TC (clsact) programs on the client-facing interfaces, and the same
 * ingress at XDP for services with attach = "xdp".
 *
 * udp_ingress (tc) and udp_xdp (XDP) insert a PROXY v2 or SPP header right after the UDP
 * header of datagrams sent to a service; both are ingress() below, with one branch per
 * hook where the packet is grown. udp_egress (tc) strips the SPP header a backend echoes
 * on its replies, whichever hook inserted it.
 *
 * How the packet grows at tc: bpf_skb_adjust_room() inserts at a fixed offset after a
 * 20/40 byte IP header (wrong with IPv4 options or IPv6 extension headers) and leaves the
 * transport header and csum_start where they were, so a CHECKSUM_PARTIAL skb would get
 * its checksum written into the inserted header. Instead the packet grows at the tail
 * (bpf_skb_change_tail), the payload is shifted towards the tail and the header is
 * written into the hole: the IP and UDP headers never move. Stripping is the mirror.
 *
 * At XDP the frame has headroom (XDP_PACKET_HEADROOM, native or generic): the head
 * grows by the header's length, the Ethernet to UDP headers (at most MAX_HEADERS_LEN + 8
 * bytes) move to the new start and the header is written behind them. The payload never
 * moves, and no skb exists yet.
 *
 * Checksums: the header is inserted at an even offset and the payload shifted by an even
 * amount, so the payload's contribution to the UDP checksum is unchanged; only the
 * header's bytes and the length (in the UDP header and in the pseudo-header) are folded
 * in. At tc with bpf_l4_csum_replace, which also does the right thing for
 * CHECKSUM_PARTIAL (only the pseudo-header seed changes); bpf_skb_change_tail turns
 * CHECKSUM_COMPLETE into CHECKSUM_NONE, so skb->csum never needs fixing. At XDP the
 * frame has no checksum state: the field is a full checksum, updated in place.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include "skb_move.bpf.h"
#include "udp_parse.bpf.h"

/*
 * The parser as one global function per hook, not inlined: the verifier checks it once,
 * on its own, and its callers go on with one state in which the result and *p are
 * unknown values. Inlined, each way through the parser (tag count, header lengths,
 * fragment flag, result) left its own offsets and flags behind, and the rest of the
 * ingress program was verified once for each. The callers therefore bound every field of
 * *p they use as an offset or a size.
 */
__noinline enum parse_result parse_skb(struct __sk_buff *skb, struct pkt *p) {
    if (!p)
        return PARSE_OTHER; /* never: the verifier takes a global function's pointer as nullable */
    return skb_parse(skb, p, IPPROTO_UDP);
}

/*
 * At XDP only the first buffer of a multi-buffer frame can be read in place; headers past
 * it are PARSE_UNREACHED (dropped and counted as chain_dropped for a service address).
 * Drivers put at least the first page in the first buffer, so this never happens to a
 * real frame's headers; a payload that starts in a fragment is read by copy.
 */
__noinline enum parse_result parse_xdp(struct xdp_md *ctx, struct pkt *p) {
    if (!p)
        return PARSE_OTHER;
    return parse_frame((void *)(long)ctx->data, (void *)(long)ctx->data_end,
                       bpf_xdp_get_buff_len(ctx), p, IPPROTO_UDP);
}

/*
 * Write the IP and UDP lengths of a datagram that grew by `diff` bytes (shrank, if
 * negative) right after its UDP header (set_ip_length). Both hooks call it on their packet
 * pointers; the UDP checksum is theirs. Returns the UDP header, or NULL when the frame is
 * shorter than parse_frame() found it (never).
 */
static __always_inline struct udphdr *set_lengths(void *data, void *data_end, const struct pkt *p,
                                                  int diff) {
    __u32 l4 = p->l4_off;

    if (l4 > MAX_HEADERS_LEN || set_ip_length(data, data_end, p, diff) < 0)
        return NULL;
    struct udphdr *udp = data + l4;
    if ((void *)(udp + 1) > data_end)
        return NULL;
    udp->len = bpf_htons(p->udp_len + diff);
    return udp;
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
    /* A result of 0 is sent as 0xFFFF (RFC 768; for IPv6 0 means no checksum, RFC 8200
     * 8.1, and receivers drop it); an IPv4 "no checksum" 0 stays 0. */
    __u64 mangled0 = BPF_F_MARK_MANGLED_0;
    __be16 old_ulen = bpf_htons(p->udp_len);
    __be16 new_ulen = bpf_htons(p->udp_len + diff);
    if (!set_lengths((void *)(long)skb->data, (void *)(long)skb->data_end, p, diff))
        return -1;
    /* The covered bytes' change: the header, and the length word (~old + new, RFC 1624);
     * folded to 32 bits with end-around carry, as a "from 0 to sum" replacement adds it. */
    __u64 delta = (__u32)hdr_sum + (__u16)~old_ulen + (__u16)new_ulen;
    delta = (delta & 0xFFFFFFFF) + (delta >> 32);
    __u32 csum_off = p->l4_off + offsetof(struct udphdr, check);
    if (bpf_l4_csum_replace(skb, csum_off, 0, delta, mangled0) < 0)
        return -1;
    /* The UDP length counts twice: in the UDP header (in delta) and in the pseudo-header. */
    if (bpf_l4_csum_replace(skb, csum_off, old_ulen, new_ulen,
                            mangled0 | BPF_F_PSEUDO_HDR | sizeof(new_ulen)) < 0)
        return -1;
    return 0;
}

/*
 * Fix lengths and checksums at XDP after `hlen` bytes whose one's-complement sum is
 * `hdr_sum` were inserted right after the UDP header (whose offsets in *p still hold: the
 * headers moved with the frame's start). An XDP frame has no checksum state, so the UDP
 * checksum field is the full checksum (or 0, no checksum, which stays 0 as at tc), updated
 * as RFC 1624 eqn. 3 for the header's words and the length, which counts twice: in the
 * UDP header and in the pseudo-header.
 */
static __always_inline int xdp_fix_lengths(struct xdp_md *ctx, const struct pkt *p, __u32 hlen,
                                           __s64 hdr_sum) {
    __be16 old_ulen = bpf_htons(p->udp_len);
    __be16 new_ulen = bpf_htons(p->udp_len + hlen);
    struct udphdr *udp =
        set_lengths((void *)(long)ctx->data, (void *)(long)ctx->data_end, p, (int)hlen);
    if (!udp)
        return -1;
    if (udp->check == 0)
        return 0; /* IPv4 "no checksum" (and what tc's BPF_F_MARK_MANGLED_0 keeps) */
    __u64 sum = (__u16)~udp->check + (__u64)(__u32)hdr_sum +
                2 * ((__u64)(__u16)~old_ulen + (__u16)new_ulen);
    sum = (sum & 0xFFFF) + (sum >> 16);
    sum = (sum & 0xFFFF) + (sum >> 16);
    sum = (sum & 0xFFFF) + (sum >> 16);
    __u16 check = ~sum & 0xFFFF;
    /* 0 is sent as 0xFFFF (RFC 768; for IPv6 0 means no checksum, RFC 8200 8.1). */
    udp->check = check ? check : 0xFFFF;
    return 0;
}

/*
 * Move the first `n` bytes at data + shift to data (n a constant, shift >= 8: copying 8-byte
 * words front to back never overwrites a word before it is read). Returns -1 when the frame
 * is too short, which parse_frame() already ruled out.
 */
static __always_inline int move_front(void *data, void *data_end, __u32 shift, const __u32 n) {
    __u8 *src = data + shift;
    __u8 *dst = data;

    if ((void *)(src + n) > data_end)
        return -1;
#pragma unroll
    for (__u32 i = 0; i + 8 <= n; i += 8)
        *(__u64 *)(dst + i) = *(__u64 *)(src + i);
    if (n % 8 >= 4)
        *(__u32 *)(dst + n / 8 * 8) = *(__u32 *)(src + n / 8 * 8);
    if (n % 4 >= 2)
        *(__u16 *)(dst + n / 4 * 4) = *(__u16 *)(src + n / 4 * 4);
    return 0;
}

/*
 * The one's-complement sum (unfolded, as bpf_csum_diff gives it) of a header built into a
 * zero-padded 56-byte buffer: 28 16-bit words in the order they go on the wire, inline
 * instead of a helper call.
 */
static __always_inline __u32 header_sum(const __u8 hdr[56]) {
    __u32 sum = 0;
#pragma unroll
    for (int i = 0; i < 56; i += 2)
        sum += *(const __u16 *)(hdr + i);
    return sum;
}

/*
 * Write the header (hlen: 28, 38 or 52 bytes) at `at` inside the frame with constant-size
 * copies, one per length: a helper copy of a variable size costs more than the copy.
 */
static __always_inline int put_header(__u8 *at, void *data_end, const __u8 *hdr, __u32 hlen) {
#define PUT(n)                                                                        \
    do {                                                                              \
        if ((void *)(at + (n)) > data_end)                                            \
            return -1;                                                                \
        _Pragma("unroll") for (int i = 0; i + 4 <= (n); i += 4) * (__u32 *)(at + i) = \
            *(const __u32 *)(hdr + i);                                                \
        if ((n) % 4)                                                                  \
            *(__u16 *)(at + (n) / 4 * 4) = *(const __u16 *)(hdr + (n) / 4 * 4);       \
        return 0;                                                                     \
    } while (0)
    if (hlen == PP_V2_HDR_LEN_INET)
        PUT(PP_V2_HDR_LEN_INET);
    if (hlen == PP_SPP_HDR_LEN)
        PUT(PP_SPP_HDR_LEN);
    if (hlen == PP_V2_HDR_LEN_INET6)
        PUT(PP_V2_HDR_LEN_INET6);
#undef PUT
    return -1;
}

/* How a grow went: done, refused with the frame unchanged, or failed half-way. */
enum grow {
    GROW_DONE,
    GROW_REFUSED,
    GROW_BROKEN,
};

/*
 * Insert `hlen` bytes of `hdr` after the UDP header of the frame at XDP: grow the head,
 * move the Ethernet..UDP headers to the new start, write the header behind them, cut
 * trailing padding (frame past the IP packet), fix lengths and checksums.
 */
static __always_inline enum grow xdp_grow(struct xdp_md *ctx, const struct pkt *p, const __u8 *hdr,
                                          __u32 hlen, __s64 hsum) {
    __u32 zero = 0;
    __u64 hdrs = p->l4_off + sizeof(struct udphdr); /* 64-bit: see move_chunk */
    __u32 frame = bpf_xdp_get_buff_len(ctx);
    struct scratch *buf = bpf_map_lookup_elem(&shift_buf, &zero);

    if (!buf || hdrs > MAX_HEADERS_LEN + sizeof(struct udphdr) || frame < p->l3_end)
        return GROW_REFUSED; /* never: parse_frame() bounds l4_off and l3_end */
    if (bpf_xdp_adjust_head(ctx, -(int)hlen) < 0)
        return GROW_REFUSED; /* no headroom: the frame is as it was */
    /* From here on the frame is half-rewritten until the end. Untagged IPv4 without
     * options and IPv6 without extension headers (nearly every datagram) move in place
     * with constant-size word copies. Other layouts go through the scratch buffer: a
     * helper copy of a size the verifier bounds once, where a copy loop in place would be
     * checked for every offset. */
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    int moved = -1;
    if (hdrs == ETH_HLEN + sizeof(struct iphdr) + sizeof(struct udphdr))
        moved = move_front(data, data_end, hlen,
                           ETH_HLEN + sizeof(struct iphdr) + sizeof(struct udphdr));
    else if (hdrs == ETH_HLEN + sizeof(struct ipv6hdr) + sizeof(struct udphdr))
        moved = move_front(data, data_end, hlen,
                           ETH_HLEN + sizeof(struct ipv6hdr) + sizeof(struct udphdr));
    if (moved < 0) {
        SIZE_AT_LEAST_1(hdrs, 511);
        if (bpf_xdp_load_bytes(ctx, hlen, buf->buf, hdrs) < 0 ||
            bpf_xdp_store_bytes(ctx, 0, buf->buf, hdrs) < 0)
            return GROW_BROKEN;
    }
    data = (void *)(long)ctx->data; /* the helpers above invalidate packet pointers */
    data_end = (void *)(long)ctx->data_end;
    if (hdrs > MAX_HEADERS_LEN + sizeof(struct udphdr) ||
        put_header(data + hdrs, data_end, hdr, hlen) < 0)
        return GROW_BROKEN;
    if (frame > p->l3_end && bpf_xdp_adjust_tail(ctx, -(int)(frame - p->l3_end)) < 0)
        return GROW_BROKEN;
    return xdp_fix_lengths(ctx, p, hlen, hsum) < 0 ? GROW_BROKEN : GROW_DONE;
}

/* The same at tc: grow at the tail, shift the payload, write the header, fix the rest. */
static __always_inline enum grow skb_grow(struct __sk_buff *skb, const struct pkt *p,
                                          const __u8 *hdr, __u32 hlen, __s64 hsum) {
    __u32 payload = p->l4_off + sizeof(struct udphdr);
    __u32 payload_len = p->udp_len - sizeof(struct udphdr);

    /* The packet is unchanged if this fails (trailing padding goes). */
    if (bpf_skb_change_tail(skb, p->l3_end + hlen, 0) < 0)
        return GROW_REFUSED;
    if (move_bytes(skb, payload, payload + hlen, payload_len) < 0 ||
        bpf_skb_store_bytes(skb, payload, hdr, hlen, 0) < 0 || fix_lengths(skb, p, hlen, hsum) < 0)
        return GROW_BROKEN;
    return GROW_DONE;
}

/*
 * Ingress, at either hook (`xdp` is a constant: each program gets its own copy with one
 * branch of each choice). Looks the datagram's service up, refuses what cannot carry a
 * header, keeps the flow table, and inserts the header the service wants.
 */
static __always_inline enum verdict ingress(void *ctx, const int xdp) {
    struct pkt p = {};
    enum parse_result r = xdp ? parse_xdp(ctx, &p) : parse_skb(ctx, &p);
    if (r == PARSE_OTHER || (r != PARSE_UNREACHED && !port_served(p.dport)))
        return VERDICT_PASS;

    struct pp_service *svc = r == PARSE_UNREACHED ? lookup_address(p.daddr)
                                                  : lookup_service(IPPROTO_UDP, p.daddr, p.dport);
    if (!svc)
        return VERDICT_PASS; /* not ours: untouched */
    struct pp_counters *c = counters_of(svc->id);
    if (!c)
        return VERDICT_PASS;
    c->seen++;

    /* No port and no payload to check for a forged header: never passed, whatever on_error. */
    if (r == PARSE_UNREACHED) {
        c->chain_dropped++;
        return VERDICT_DROP;
    }
    if (r == PARSE_MALFORMED)
        return refuse(svc, c, &c->malformed_dropped);
    if (p.frag)
        return refuse(svc, c, &c->frag_dropped);
    /* A client must not be able to choose the address the backend will believe. */
    if (is_forged(ctx, xdp, &p)) {
        c->spoof_dropped++;
        return VERDICT_DROP;
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
            return VERDICT_PASS;
        }
    }

    /* One header for a GRO/GSO train of many datagrams would corrupt all but the first.
     * XDP runs before GRO (native), or sees what generic XDP made linear: one datagram
     * unless UDP GRO forwarding is on (README). */
    if (!xdp && ((struct __sk_buff *)ctx)->gso_segs > 1)
        return refuse(svc, c, &c->gso_dropped);

    __u8 hdr[56] = {}; /* bytes past the header stay 0: they add nothing to its sum */
    __u32 hlen = build_header(svc, &p, hdr);
    __u32 mtu = p.l3_end - p.l3_off; /* the IP packet: tags and padding do not count */
    if (bpf_check_mtu(ctx, 0, &mtu, hlen, 0) != BPF_MTU_CHK_RET_SUCCESS)
        return refuse(svc, c, &c->mtu_dropped);
    if (p.udp_len + hlen > 0xFFFF)
        return refuse(svc, c, &c->mtu_dropped);

    __s64 hsum = header_sum(hdr);
    /* Summed here, into one register: left to itself clang loaded the 28 words here and
     * added them after the helper calls, spilling each to the stack (6.1 then refused the
     * combined stack of udp_ingress and move_chunk, 544 > 512 bytes). */
    barrier_var(hsum);
    enum grow g = xdp ? xdp_grow(ctx, &p, hdr, hlen, hsum) : skb_grow(ctx, &p, hdr, hlen, hsum);
    if (g == GROW_REFUSED)
        return refuse(svc, c, &c->grow_failed);
    if (g != GROW_DONE) {
        c->grow_failed++; /* half-rewritten: never passed, whatever on_error */
        return VERDICT_DROP;
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
    return VERDICT_PASS;
}

SEC("tc")
int udp_ingress(struct __sk_buff *skb) {
    return ingress(skb, 0) == VERDICT_PASS ? TC_PASS : TC_ACT_SHOT;
}

/*
 * The same ingress at XDP (attach = "xdp"). xdp.frags: it takes multi-buffer frames
 * (jumbo MTUs), whose headers are in the first buffer and whose payload may not be.
 */
SEC("xdp.frags")
int udp_xdp(struct xdp_md *ctx) {
    return ingress(ctx, 1) == VERDICT_PASS ? XDP_PASS : XDP_DROP;
}

/*
 * Replies leaving towards clients: a datagram from an SPP service carries the header the
 * backend echoed. It must name the client the reply goes to; then it is removed.
 */
SEC("tc")
int udp_egress(struct __sk_buff *skb) {
    struct pkt p = {};
    enum parse_result r = parse_skb(skb, &p);
    if (r == PARSE_OTHER || r == PARSE_UNREACHED)
        return TC_PASS; /* a reply hides no client address: at worst it shows the client its own */

    struct pp_service *svc = lookup_service(IPPROTO_UDP, p.saddr, p.sport);
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
