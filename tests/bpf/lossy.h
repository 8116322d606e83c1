/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The test-only lossy link (lossy.bpf.c): what the tests write into its lossy_conf map and
 * read from its lossy_stats map. Shared by the program and tests/support/lossy.*; not part
 * of the product (bpf/ppinject.h is).
 */
#ifndef PPTEST_LOSSY_H
#define PPTEST_LOSSY_H

#include <linux/types.h>

/* lossy_conf[0]: what the link does to the TCP packets that pass it. All zero: nothing. */
struct lossy_conf {
    __u32 drop_headers;   /* drop the first N packets whose payload starts with a PROXY
                             v1 ("PROXY ") or v2 signature; later ones pass */
    __u32 drop_per_mille; /* drop this many of every 1000 TCP packets, at random */
    __u32 duplicate;      /* 1: every TCP packet is sent twice (the copy right after) */
    __u32 pad;
};

/* lossy_stats[i]: counts since load (array of __u64). */
#define LOSSY_TCP 0              /* TCP packets seen (copies excluded) */
#define LOSSY_HEADERS_SEEN 1     /* packets whose payload starts with a PROXY signature */
#define LOSSY_HEADERS_DROPPED 2  /* of those, dropped by drop_headers */
#define LOSSY_RANDOM_DROPPED 3   /* dropped by drop_per_mille */
#define LOSSY_DUPLICATED 4       /* copies sent */
#define LOSSY_DUPLICATE_FAILED 5 /* bpf_clone_redirect refused a copy */
#define LOSSY_STATS 6

/* skb->mark of a copy in flight: its second pass through the program lets it go. */
#define LOSSY_COPY_MARK 0x10557e57

#endif
