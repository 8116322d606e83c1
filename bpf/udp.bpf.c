// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * UDP data path: TC (clsact) programs on the client-facing interfaces.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "maps.bpf.h"

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 65536); /* udp_max_flows; the loader sets it before load */
    __type(key, struct pp_flow_key);
    __type(value, struct pp_flow);
} udp_flows SEC(".maps");

SEC("tc")
int udp_ingress(struct __sk_buff *skb) {
    struct pp_counters *c = counters_of(PP_NO_SERVICE);

    (void)skb;
    if (c)
        c->passed++;
    return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
