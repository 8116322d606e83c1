// The C++ side of the kernel boundary: includes bpf/ppinject.h (the only declaration of
// the shared structs), pins their layout down at compile time and exposes the counter
// names in their stable order.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "ppinject.h"

namespace ppinject {

// Spot checks: a size changed by accident stops the build. The full check, every struct
// and field against the BTF of the built objects, is tests/bpf_layout_test.cpp.
static_assert(sizeof(pp_service_key) == 24 && offsetof(pp_service_key, addr) == 8);
static_assert(sizeof(pp_address_key) == 20 && offsetof(pp_address_key, addr) == 4);
static_assert(sizeof(pp_service) == 48 && offsetof(pp_service, name) == 16);
static_assert(sizeof(pp_attachment) == 72 && offsetof(pp_attachment, services) == 40);
static_assert(sizeof(pp_flow_key) == 36 && offsetof(pp_flow_key, client_port) == 32);
static_assert(sizeof(pp_flow) == 40 && offsetof(pp_flow, service_id) == 32);
static_assert(sizeof(pp_inline_conn) == 256 && offsetof(pp_inline_conn, hdr) == 64);
static_assert(sizeof(pp_inline_tlvs) == 148 && offsetof(pp_inline_tlvs, tlvs) == 8);

// One counter of struct pp_counters: its stable name, a help line, where it lives.
struct CounterInfo {
    std::string_view name;
    std::string_view help;
    std::size_t offset;
};

#define PP_COUNTER_INFO(field, text) CounterInfo{#field, text, offsetof(pp_counters, field)},
inline constexpr std::array kCounters = {PP_COUNTER_LIST(PP_COUNTER_INFO)};
#undef PP_COUNTER_INFO

static_assert(sizeof(pp_counters) == kCounters.size() * sizeof(std::uint64_t));

#define PP_TCP_STAT_INFO(field, text) CounterInfo{#field, text, offsetof(pp_tcp_stats, field)},
inline constexpr std::array kTcpStats = {PP_TCP_STAT_LIST(PP_TCP_STAT_INFO)};
#undef PP_TCP_STAT_INFO

static_assert(sizeof(pp_tcp_stats) == kTcpStats.size() * sizeof(std::uint64_t));
static_assert(sizeof(pp_tcp_peer) == 24 && offsetof(pp_tcp_peer, next_seq) == 20);
static_assert(sizeof(pp_tcp_conn) == 64 && offsetof(pp_tcp_conn, broken) == 56);

// Value of counter `info` in one pp_counters or pp_tcp_stats.
template <typename Counters>
std::uint64_t counter_value(const Counters &c, const CounterInfo &info) {
    std::uint64_t v;
    __builtin_memcpy(&v, reinterpret_cast<const char *>(&c) + info.offset, sizeof v);
    return v;
}

}  // namespace ppinject
