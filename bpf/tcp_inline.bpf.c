// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Inline TCP: tc programs on the client-facing interfaces write the PROXY header into the
 * client's byte stream and shift sequence numbers for the rest of the connection.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "maps.bpf.h"

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, PP_MAX_INLINE_CONNS_DEFAULT); /* inline_max_conns; set before load */
    __type(key, struct pp_flow_key);
    __type(value, struct pp_inline_conn);
} inline_conns SEC(".maps");

char LICENSE[] SEC("license") = "Dual BSD/GPL";
