// Walking a BPF map from userspace, the one way: BPF_MAP_GET_NEXT_KEY from no key, then
// from the last one. A key deleted meanwhile ends nothing: the kernel then starts over
// at the first key of the map, so callers must tolerate seeing an entry twice.
#pragma once

#include <bpf/bpf.h>

namespace ppinject {

// Calls f(key) for every key of the map behind `fd`.
template <typename Key, typename F>
void for_each_key(int fd, F &&f) {
    Key key{}, next{};
    Key *prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        f(next);
        key = next;
        prev = &key;
    }
}

// Calls f(key, value) for every entry of the map behind `fd` (entries gone before their
// value is read are skipped).
template <typename Key, typename Value, typename F>
void for_each_entry(int fd, F &&f) {
    for_each_key<Key>(fd, [&](const Key &key) {
        Value value{};
        if (bpf_map_lookup_elem(fd, &key, &value) == 0) {
            f(key, value);
        }
    });
}

}  // namespace ppinject
