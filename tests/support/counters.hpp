// The per-CPU `counters` map of a loaded BPF object, summed over CPUs and named, for packet
// tests that compare every counter of every service at once.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <utility>

struct bpf_map;

namespace pptest {

using Counts = std::map<std::string, std::uint64_t>;  // only non-zero counters
using AllCounts = std::map<std::uint32_t, Counts>;    // service id -> counters

// Counts from a list; throws std::invalid_argument for a name ppinject.h does not have.
Counts counts(std::initializer_list<std::pair<const char *, std::uint64_t>> list);
// The non-zero counters of service `id` in `counters` (a failed read is a test failure).
Counts read_counters(const bpf_map *counters, std::uint32_t id);
// Every service with a non-zero counter.
AllCounts read_all_counters(const bpf_map *counters);

}  // namespace pptest
