/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Maps shared by every ppinject BPF object. Each object that includes this file gets
 * its own definitions; the loader makes them one by reusing the first object's map fds
 * (bpf_map__reuse_fd) before loading the next, and pins them under the pin root.
 */
#ifndef PPINJECT_MAPS_BPF_H
#define PPINJECT_MAPS_BPF_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "ppinject.h"

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(map_flags, BPF_F_NO_PREALLOC); /* required for LPM tries */
    __uint(max_entries, PP_MAX_SERVICE_KEYS);
    __type(key, struct pp_service_key);
    __type(value, struct pp_service);
} services SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __uint(max_entries, PP_MAX_SERVICE_KEYS); /* never more prefixes than service keys */
    __type(key, struct pp_address_key);
    __type(value, struct pp_service);
} udp_addresses SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, PP_MAX_SERVICES);
    __type(key, __u32);
    __type(value, struct pp_counters);
} counters SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, PP_MAX_ATTACHMENTS);
    __type(key, __u32);
    __type(value, struct pp_attachment);
} attachments SEC(".maps");

/* Counter slot of a service; never NULL for ids below PP_MAX_SERVICES. */
static __always_inline struct pp_counters *counters_of(__u32 service_id) {
    return bpf_map_lookup_elem(&counters, &service_id);
}

#endif /* PPINJECT_MAPS_BPF_H */
