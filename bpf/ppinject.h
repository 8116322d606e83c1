/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The kernel boundary of ppinject: every struct and constant that BPF programs and
 * userspace both see. Plain C, fixed-width types, padding written out as named fields,
 * so the layout is the same for clang -target bpf and for g++ (userspace adds
 * static_asserts, and a test compares it with the BTF of the built objects).
 */
#ifndef PPINJECT_H
#define PPINJECT_H

#include <linux/types.h>

/* Service ids index the per-service counters; id 0 collects traffic of no service. */
#define PP_MAX_SERVICES 256
#define PP_NO_SERVICE 0

/* Longest service name, with its terminating NUL. */
#define PP_NAME_LEN 32

/* Maximum entries of the services LPM trie (one per address/prefix and port). */
#define PP_MAX_SERVICE_KEYS 65536

/* pp_service.header: which header a service's traffic gets. */
#define PP_HDR_V1 1  /* TCP: PROXY protocol v1 text line */
#define PP_HDR_V2 2  /* TCP and UDP: PROXY protocol v2 binary header */
#define PP_HDR_SPP 3 /* UDP: Cloudflare Simple Proxy Protocol, every datagram */

/* pp_service.udp_header: which datagrams of a v2 UDP flow carry the header. */
#define PP_UDP_FIRST 0 /* the first of each flow (udp_flows entry absent or idle) */
#define PP_UDP_EVERY 1 /* every datagram */

/* pp_service.on_error: what happens to a datagram that cannot carry its header. */
#define PP_ON_ERROR_DROP 0
#define PP_ON_ERROR_PASS 1

/* pp_service.flags */
#define PP_SVC_TRANSPARENT 0x01 /* TCP: steer with sk_lookup */
#define PP_SVC_INLINE 0x02      /* TCP: mode = "inline", the tc programs write the header */

/* Header sizes the data path inserts. */
#define PP_V2_HDR_LEN_INET 28
#define PP_V2_HDR_LEN_INET6 52
#define PP_SPP_HDR_LEN 38
#define PP_SPP_MAGIC 0x56EC

/*
 * services: LPM trie keyed by protocol, port and address. The kernel requires the
 * prefix length first and matches the bytes after it in order, so protocol and port
 * come before the address: every key spends PP_SERVICE_KEY_FIXED_BITS on them and the
 * rest on the address prefix. An exact address is simply the longest prefix, so one
 * lookup gives "exact address first, then prefix or wildcard". Port ranges are
 * expanded into one key per port. IPv4 addresses are stored IPv4-mapped (::ffff:a.b.c.d).
 */
struct pp_service_key {
    __u32 prefixlen; /* PP_SERVICE_KEY_FIXED_BITS + address prefix bits (IPv4: 96 + n) */
    __u8 protocol;   /* IPPROTO_UDP or IPPROTO_TCP */
    __u8 pad0;
    __be16 port;
    __u8 addr[16];
};
#define PP_SERVICE_KEY_FIXED_BITS 32

/*
 * udp_addresses: LPM trie of every address prefix a UDP service listens on, without
 * ports; the value is one of the services there. An IPv6 datagram whose UDP header lies
 * beyond what the TC program parses (a longer extension-header chain than it walks) has no
 * port to look up, so it is matched by address alone and refused: a client must not hide
 * a forged header behind a long chain. Same prefix rules as services (IPv4-mapped).
 */
struct pp_address_key {
    __u32 prefixlen; /* address prefix bits (IPv4: 96 + n) */
    __u8 addr[16];
};

/*
 * udp_ports: array of PP_UDP_PORT_WORDS 64-bit words, a bitmap of the ports any UDP
 * service listens on (bit port % 64 of word port / 64, host byte order). A datagram to
 * another port passes without the services lookup. The loader sets a service's bits
 * before its services entries exist and clears them after they are gone.
 */
#define PP_UDP_PORT_WORDS 1024

struct pp_service {
    __u64 flow_timeout_ns;  /* UDP: idle time after which a flow counts as new; inline TCP:
                               idle time after which a connection's state is removed */
    __u32 id;               /* 1..PP_MAX_SERVICES-1, index into counters */
    __u8 header;            /* PP_HDR_* */
    __u8 udp_header;        /* PP_UDP_* */
    __u8 on_error;          /* PP_ON_ERROR_* */
    __u8 flags;             /* PP_SVC_* */
    char name[PP_NAME_LEN]; /* the service's name, NUL-padded: for bpftool and status */
};

/*
 * udp_flows: LRU hash of UDP 5-tuples seen by ingress (the protocol is always UDP).
 * Addresses IPv4-mapped like the service key.
 */
struct pp_flow_key {
    __u8 client_addr[16];
    __u8 service_addr[16];
    __be16 client_port;
    __be16 service_port;
};

struct pp_flow {
    __u64 created_ns;   /* bpf_ktime_get_coarse_ns() (CLOCK_MONOTONIC_COARSE) at (re)start */
    __u64 last_seen_ns; /* refreshed by every datagram */
    __u64 packets;      /* datagrams since the flow (re)started; racy across CPUs, a gauge */
    __u64 bytes;        /* UDP payload bytes before injection, same caveat */
    __u32 service_id;
    __u32 pad0;
};

/*
 * attachments: what a run attached, keyed by ifindex. Only userspace reads it: it lets
 * `ppinject detach` undo a run that was killed, a new run adopt what an old one left, and
 * the health check (`status --check`, /healthz) tell which services an interface serves.
 */
#define PP_ATTACHMENT_SERVICE_WORDS (PP_MAX_SERVICES / 32)
struct pp_attachment {
    __u32 ingress_prog_id;        /* 0: nothing of ours on tc ingress */
    __u32 egress_prog_id;         /* 0: nothing of ours on tc egress */
    __u32 xdp_prog_id;            /* 0: nothing of ours at XDP (attach = "xdp" injects there) */
    __u32 inline_ingress_prog_id; /* 0: no inline TCP filter on tc ingress (own priority) */
    __u32 inline_egress_prog_id;  /* 0: no inline TCP filter on tc egress */
    __u8 created_clsact;          /* 1: ppinject created the clsact qdisc and may delete it */
    __u8 xdp_mode;                /* PP_XDP_MODE_*: how xdp_prog_id is attached */
    __u8 pad0[2];
    char ifname[16]; /* IFNAMSIZ, NUL-padded */
    /* The UDP and inline TCP services that name this interface: bit id % 32 of word id / 32. */
    __u32 services[PP_ATTACHMENT_SERVICE_WORDS];
};
#define PP_MAX_ATTACHMENTS 256

/* pp_attachment.xdp_mode: native where the driver runs XDP (veth does), generic otherwise. */
#define PP_XDP_MODE_NONE 0
#define PP_XDP_MODE_NATIVE 1  /* XDP_FLAGS_DRV_MODE */
#define PP_XDP_MODE_GENERIC 2 /* XDP_FLAGS_SKB_MODE */

/*
 * counters: per-CPU array indexed by service id, one pp_counters per entry. The list
 * below is the single source of the counter names: the struct fields (which bpftool
 * prints by name), the order userspace reads them in, and the names shown by status,
 * --json and metrics. Append only: names are a stable interface.
 */
#define PP_COUNTER_LIST(X)                                                                         \
    X(seen, "packets of the service looked at by ingress")                                         \
    X(passed, "packets passed unchanged (later datagrams of a flow, no service)")                  \
    X(injected_v2, "datagrams that got a PROXY v2 header")                                         \
    X(injected_spp, "datagrams that got an SPP header")                                            \
    X(flows_new, "UDP flows started (first datagram or after idle timeout)")                       \
    X(spoof_dropped, "client datagrams already starting with a PROXY v2 signature or SPP magic")   \
    X(frag_dropped, "IP fragments of a service that needs a header")                               \
    X(malformed_dropped, "truncated or malformed packets of a service")                            \
    X(grow_failed, "datagrams the kernel could not grow or shift")                                 \
    X(mtu_dropped, "datagrams that would exceed the egress MTU with the header")                   \
    X(gso_dropped, "GSO trains that would have shared one header")                                 \
    X(error_passed, "datagrams passed bare because the service says on_error = pass")              \
    X(spp_reply_stripped, "replies whose SPP header matched and was removed")                      \
    X(spp_reply_dropped, "replies with a missing or mismatching SPP header")                       \
    X(chain_dropped, "IPv6 datagrams to a service address with the UDP header out of reach")       \
    X(inline_conns_new, "inline TCP connections whose SYN created their state")                    \
    X(inline_headers, "inline TCP headers written into a stream for the first time")               \
    X(inline_header_resent, "inline TCP headers written again: the backend had not acked them")    \
    X(inline_refused, "inline TCP SYNs dropped because the connection table is full")              \
    X(inline_no_state, "inline TCP segments dropped because no connection state knows them")       \
    X(inline_gso_dropped, "inline TCP GSO/GRO packets dropped that would have carried the header") \
    X(inline_tfo_stripped, "inline TCP SYNs whose Fast Open data or option was removed")           \
    X(inline_mss_clamped, "inline TCP SYN-ACKs whose MSS was lowered by the header's length")      \
    X(inline_rewrite_failed, "inline TCP segments dropped because a rewrite failed half-way")      \
    X(inline_closed, "inline TCP connection states removed (closed, reset or idle)")

#define PP_COUNTER_FIELD(name, help) __u64 name;
struct pp_counters {
    PP_COUNTER_LIST(PP_COUNTER_FIELD)
};
#undef PP_COUNTER_FIELD

/*
 * inline_conns: hash of inline TCP connections, keyed by pp_flow_key (client and dialled
 * address and port, as ingress sees them before any DNAT). Never LRU: a live connection's
 * state is never evicted for a new one; a full table refuses new SYNs (inline_refused).
 * Created by the client's SYN, removed by a sweep (a timer, every PP_INLINE_SWEEP_NS) once
 * both FINs or a reset were seen (PP_INLINE_CLOSE_NS after the last segment) or after the
 * service's idle time without a segment.
 *
 * Sequence spaces: the header takes the backend's sequence numbers isn+1 .. isn+hdr_len,
 * so every client byte is hdr_len further on the backend's side than on the client's.
 */
#define PP_INLINE_HDR_MAX 192            /* longest header an inline connection carries */
#define PP_INLINE_CLOSE_NS 3000000000ULL /* state kept after the close: retransmissions */
#define PP_INLINE_SWEEP_NS 2000000000ULL /* how often expired states are looked for */
#define PP_MAX_INLINE_CONNS_DEFAULT 65536

/*
 * pp_inline_conn.flags, set by ingress only, and .flags_backend, set by egress only (one
 * byte each: the two programs run on different CPUs at once, and a read-modify-write of a
 * shared byte would lose the other's bit). The bits are distinct: flags | flags_backend.
 */
#define PP_INLINE_HDR_SENT 0x01      /* flags: the header went out at least once */
#define PP_INLINE_HDR_ACKED 0x02     /* flags_backend: the backend acknowledged all of it */
#define PP_INLINE_FIN_CLIENT 0x04    /* flags: the client sent its FIN */
#define PP_INLINE_FIN_BACKEND 0x08   /* flags_backend */
#define PP_INLINE_RESET_CLIENT 0x10  /* flags: the client sent a reset */
#define PP_INLINE_RESET_BACKEND 0x20 /* flags_backend */

struct pp_inline_conn {
    __u64 created_ns;   /* bpf_ktime_get_coarse_ns() at the SYN */
    __u64 last_seen_ns; /* refreshed by every segment, both ways */
    __u64 packets_in;   /* client -> backend segments; racy across CPUs, a gauge */
    __u64 packets_out;  /* backend -> client segments, same caveat */
    __u64 bytes_in;     /* client payload bytes (retransmissions too), same caveat */
    __u64 bytes_out;    /* backend payload bytes, same caveat */
    __u32 isn;          /* the client's initial sequence number, host order */
    __u32 service_id;
    __u16 hdr_len;               /* bytes of hdr[] the backend gets in front of the stream */
    __u8 flags;                  /* PP_INLINE_*, set by ingress */
    __u8 flags_backend;          /* PP_INLINE_*, set by egress */
    __u32 idle_timeout_ms;       /* the service's idle_timeout when the SYN came */
    __u8 hdr[PP_INLINE_HDR_MAX]; /* the header, built once at the SYN: resent identical */
};

/*
 * inline_tlvs: array by service id: the TLVs an inline v2 service's header carries behind
 * the addresses, built by the loader with the relay's header code, with the UNIQUE_ID and
 * CRC32C values zero. The SYN's program copies them, fills a random UNIQUE_ID and computes
 * the CRC32C over the whole header. len 0: no TLVs.
 */
#define PP_INLINE_TLV_MAX (PP_INLINE_HDR_MAX - PP_V2_HDR_LEN_INET6)
#define PP_INLINE_NO_TLV 0xFFFF

struct pp_inline_tlvs {
    __u16 len;          /* bytes of tlvs[], at most PP_INLINE_TLV_MAX */
    __u16 unique_id_at; /* offset in tlvs[] of the 16-byte UNIQUE_ID value, or PP_INLINE_NO_TLV */
    __u16 crc32c_at;    /* offset in tlvs[] of the 4-byte CRC32C value, or PP_INLINE_NO_TLV */
    __u16 pad0;
    __u8 tlvs[PP_INLINE_TLV_MAX];
};

/*
 * TCP. tcp_listen: sockmap of the daemon's listening sockets for transparent services,
 * slot PP_TCP_LISTEN_SLOT(id, ipv6); the sk_lookup program hands new connections for a
 * service's addresses and ports to them. tcp_socks: sockhash of spliced sockets keyed by
 * socket cookie; tcp_peers: for each of them, the cookie of the socket its bytes go to.
 */
#define PP_TCP_LISTEN_SLOT(id, ipv6) ((id)*2 + ((ipv6) ? 1 : 0))
#define PP_TCP_LISTEN_SLOTS (PP_MAX_SERVICES * 2)
#define PP_MAX_TCP_SOCKS 131072 /* two per spliced connection */
#define PP_MAX_TCP_CONNS 65536  /* spliced connections at once, all workers together */

struct pp_tcp_peer {
    __u64 peer_cookie; /* where this socket's bytes are redirected */
    __u32 conn;        /* the connection's slot in tcp_conns */
    __u32 service_id;
    __u8 dir;       /* PP_TCP_TO_BACKEND: this is the client's socket */
    __u8 seq_known; /* set by the verdict, whose next_seq is valid from then on */
    __u8 pad0[2];
    __u32 next_seq; /* TCP sequence number of the first byte the verdict has not seen */
};
#define PP_TCP_TO_BACKEND 0
#define PP_TCP_TO_CLIENT 1

/*
 * tcp_conns: array of spliced connections, memory-mapped by the daemon; each field is
 * indexed by direction (PP_TCP_TO_*). The verdict counts the bytes it redirects; the daemon
 * compares them with what reached the other socket to pass a FIN on only after every byte
 * before it, and to hold back a fast sender whose bytes pile up in the kernel for a slow
 * reader: while `hold` is set, and until the daemon has copied on every byte held so far,
 * the verdict leaves the bytes in the sender's own socket (SK_PASS), where they count
 * against its receive buffer, so TCP flow control stops the sender. (Taking the socket out
 * of the map instead would race with the kernel's verdict loop, which drops the segments
 * it meets while the program is being detached.)
 */
struct pp_tcp_conn {
    __u64 redirected[2]; /* by the verdict, to the peer */
    __u64 held[2];       /* by the verdict, left in the sender's socket */
    __u64 copied[2];     /* by the daemon, held bytes written to the peer */
    __u32 hold[2];       /* set by the daemon */
    __u32 broken;        /* set by the verdict: bytes could not be passed on once; reset */
    __u32 pad0;
};

/*
 * tcp_stats: array indexed by service id, memory-mapped by the daemon, which updates it
 * with atomic adds; the sockmap verdict program adds the bytes it redirects. Shown by
 * status, --json and metrics next to the per-CPU counters, under these names.
 */
#define PP_TCP_STAT_LIST(X)                                                                     \
    X(tcp_accepted, "TCP connections accepted")                                                 \
    X(tcp_active, "TCP connections open now (a gauge)")                                         \
    X(tcp_backend_failed, "backend connects that failed or timed out (the next one was tried)") \
    X(tcp_no_backend, "connections reset because no backend could be reached")                  \
    X(tcp_header_bytes, "PROXY header bytes written to backends")                               \
    X(tcp_bytes_to_backend, "payload bytes relayed from clients to backends")                   \
    X(tcp_bytes_to_client, "payload bytes relayed from backends to clients")                    \
    X(tcp_resets, "resets propagated from one side to the other")                               \
    X(tcp_idle_closed, "connections closed after the idle timeout")                             \
    X(tcp_bytes_held, "sockmap bytes a slow reader held back, which the daemon copied on")      \
    X(tcp_overlap_cut, "sockmap bytes a retransmission brought again, cut so they pass once")   \
    X(tcp_refused, "connections reset because the daemon holds as many as it can")              \
    X(tcp_relay_failed, "connections reset because no pipe could take their bytes (descriptors)")

#define PP_TCP_STAT_FIELD(name, help) __u64 name;
struct pp_tcp_stats {
    PP_TCP_STAT_LIST(PP_TCP_STAT_FIELD)
};
#undef PP_TCP_STAT_FIELD

#endif /* PPINJECT_H */
