/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * TCP data path. steer_tcp (sk_lookup) hands new connections for a transparent service's
 * addresses and ports to the daemon's listening socket, so the accepted socket's local
 * address is whatever the client dialled. sockmap_verdict (sk_skb stream verdict on
 * tcp_socks) sends each spliced socket's bytes straight to its peer: once the daemon has
 * written the PROXY header, payload reaches userspace only when a slow reader made the
 * daemon hold its sender back (pp_tcp_conn).
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/socket.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "maps.bpf.h"

#ifndef AF_INET6
#define AF_INET6 10
#endif

struct {
    __uint(type, BPF_MAP_TYPE_SOCKMAP);
    __uint(max_entries, PP_TCP_LISTEN_SLOTS);
    __type(key, __u32);
    __type(value, __u64);
} tcp_listen SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_SOCKHASH);
    __uint(max_entries, PP_MAX_TCP_SOCKS);
    __type(key, __u64); /* socket cookie */
    __type(value, __u64);
} tcp_socks SEC(".maps");

/*
 * The same sockets, without programs: redirect targets. A connection's two sockets join
 * tcp_targets first, then tcp_socks one by one; a redirect never finds its target
 * missing, which would drop the bytes.
 */
struct {
    __uint(type, BPF_MAP_TYPE_SOCKHASH);
    __uint(max_entries, PP_MAX_TCP_SOCKS);
    __type(key, __u64); /* socket cookie */
    __type(value, __u64);
} tcp_targets SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, PP_MAX_TCP_SOCKS);
    __type(key, __u64); /* socket cookie */
    __type(value, struct pp_tcp_peer);
} tcp_peers SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(map_flags, BPF_F_MMAPABLE);
    __uint(max_entries, PP_MAX_TCP_CONNS);
    __type(key, __u32);
    __type(value, struct pp_tcp_conn);
} tcp_conns SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(map_flags, BPF_F_MMAPABLE);
    __uint(max_entries, PP_MAX_SERVICES);
    __type(key, __u32);
    __type(value, struct pp_tcp_stats);
} tcp_stats SEC(".maps");

SEC("sk_lookup")
int steer_tcp(struct bpf_sk_lookup *ctx) {
    if (ctx->protocol != IPPROTO_TCP)
        return SK_PASS;

    int ipv6 = ctx->family == AF_INET6;
    struct pp_service_key key = {
        .prefixlen = PP_SERVICE_KEY_FIXED_BITS + 128,
        .protocol = IPPROTO_TCP,
        .port = bpf_htons(ctx->local_port), /* the context gives it in host order */
    };
    if (ipv6) {
        __builtin_memcpy(key.addr, ctx->local_ip6, 16);
    } else {
        key.addr[10] = 0xff;
        key.addr[11] = 0xff;
        __u32 ip4 = ctx->local_ip4;
        __builtin_memcpy(key.addr + 12, &ip4, 4);
    }
    struct pp_service *svc = bpf_map_lookup_elem(&services, &key);
    if (!svc || !(svc->flags & PP_SVC_TRANSPARENT))
        return SK_PASS; /* not ours: the regular socket lookup decides */

    __u32 slot = PP_TCP_LISTEN_SLOT(svc->id, ipv6);
    struct bpf_sock *sk = bpf_map_lookup_elem(&tcp_listen, &slot);
    if (!sk)
        return SK_PASS; /* the daemon is gone or not ready: no listener, the client gets RST */
    bpf_sk_assign(ctx, sk, 0); /* on failure the regular lookup runs */
    bpf_sk_release(sk);
    return SK_PASS;
}

/*
 * The kernel's view of a received segment and its socket (CO-RE; read with
 * bpf_probe_read_kernel, as 6.1 has no bpf_cast_to_kern_ctx).
 */
struct tcp_skb_cb___pp {
    __u32 seq;
} __attribute__((preserve_access_index));
struct sk_buff___pp {
    char cb[48];
    struct tcp_sock___pp *sk;
} __attribute__((preserve_access_index));
struct tcp_sock___pp {
    __u32 copied_seq;
} __attribute__((preserve_access_index));

/* sk_skb_adjust_room removes at most this many bytes per call. */
#define PP_CUT_STEP 4095
#define PP_CUT_MAX_STEPS 64 /* 262080 bytes: more than one segment of 64 KiB */

/*
 * Removes the first n bytes of the segment; nonzero if it could not.
 *
 * Needed because the kernel hands the verdict whole queued segments (tcp_read_skb), even one
 * that starts before what the socket has already passed on: when a retransmission fills a
 * hole and reaches past the start of a segment waiting out of order, that segment joins
 * the queue with its first bytes a second time. tcp_recvmsg skips them; the verdict would
 * send them on again.
 */
static __always_inline int cut_front(struct __sk_buff *skb, __u32 n) {
    for (int i = 0; i < PP_CUT_MAX_STEPS && n > 0; i++) {
        __u32 step = n < PP_CUT_STEP ? n : PP_CUT_STEP;
        if (bpf_skb_adjust_room(skb, -(__s32)step, 0, 0))
            return -1;
        n -= step;
    }
    return n != 0;
}

/*
 * Keeps the stream whole: cuts the bytes of the segment the verdict has seen before and
 * returns how many, or -1 if they could not be cut. peer->next_seq starts at the socket's
 * copied_seq when its first segment reaches the verdict (every byte before it was read or
 * passed on already).
 */
static __always_inline int skip_seen(struct __sk_buff *skb, struct pp_tcp_peer *peer) {
    struct sk_buff___pp *k = (void *)skb;
    __u32 seq = BPF_CORE_READ((struct tcp_skb_cb___pp *)k->cb, seq);
    if (!peer->seq_known) {
        peer->next_seq = BPF_CORE_READ(k, sk, copied_seq);
        peer->seq_known = 1;
    }
    __s32 seen = (__s32)(peer->next_seq - seq);
    if (seen <= 0) {
        peer->next_seq = seq + skb->len;
        return 0;
    }
    __u32 cut = (__u32)seen < skb->len ? (__u32)seen : skb->len;
    if (cut_front(skb, cut))
        return -1;
    peer->next_seq += skb->len; /* what is left of it */
    return (int)cut;
}

SEC("sk_skb/stream_verdict")
int sockmap_verdict(struct __sk_buff *skb) {
    __u64 cookie = bpf_get_socket_cookie(skb);
    struct pp_tcp_peer *peer = bpf_map_lookup_elem(&tcp_peers, &cookie);
    if (!peer)
        return SK_PASS; /* being torn down: a redirect to a missing socket would drop bytes */

    /*
     * A segment with no payload (a FIN on its own) carries nothing to pass on: the daemon
     * passes the FIN on itself. Redirected, it would reach the psock backlog as a
     * zero-length send, which the kernel takes for a broken pipe and stops the peer's
     * psock from sending, and from keeping what the verdict leaves in it.
     */
    if (skb->len == 0)
        return SK_DROP;

    __u32 dir = peer->dir & 1;
    struct pp_tcp_conn *conn = bpf_map_lookup_elem(&tcp_conns, &peer->conn);
    if (!conn)
        return SK_PASS; /* never: the daemon's slot numbers are in range */
    __u32 id = peer->service_id;
    struct pp_tcp_stats *st = bpf_map_lookup_elem(&tcp_stats, &id);
    int seen = skip_seen(skb, peer);
    if (seen) {
        if (seen < 0) {
            conn->broken = 1; /* the daemon resets the connection */
            return SK_DROP;
        }
        if (st)
            __sync_fetch_and_add(&st->tcp_overlap_cut, seen);
        if (skb->len == 0)
            return SK_DROP; /* nothing new in it */
    }
    /* Held back, or held bytes not all copied on yet (these must not be overtaken). */
    if (conn->hold[dir] || conn->held[dir] != conn->copied[dir]) {
        __sync_fetch_and_add(&conn->held[dir], skb->len);
        return SK_PASS;
    }
    __sync_fetch_and_add(&conn->redirected[dir], skb->len);
    if (st) {
        if (dir == PP_TCP_TO_BACKEND)
            __sync_fetch_and_add(&st->tcp_bytes_to_backend, skb->len);
        else
            __sync_fetch_and_add(&st->tcp_bytes_to_client, skb->len);
    }
    return bpf_sk_redirect_hash(skb, &tcp_targets, &peer->peer_cookie, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
