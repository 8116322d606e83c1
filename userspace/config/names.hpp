// Each enum of the configuration named once: the word the file, `check` and `status` use
// and, where the kernel has one, the constant a BPF map holds. The parser (its allowed
// values and their order in errors), to_string, the loader and the pinned-map inspector all
// read these tables, so a name cannot drift between them.
#pragma once

#include <netinet/in.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string_view>

#include "config/config.hpp"
#include "ppinject.h"

namespace ppinject {

// One value of enum E and its name.
template <typename E>
struct EnumName {
    E value;
    std::string_view name;
};

// One value of enum E, its name and the constant the kernel side stores for it.
template <typename E>
struct KernelEnumName {
    E value;
    std::string_view name;
    std::uint8_t kernel;
};

// The services key's protocol byte.
inline constexpr std::array kProtocolNames = {
    KernelEnumName<Protocol>{Protocol::udp, "udp", IPPROTO_UDP},
    KernelEnumName<Protocol>{Protocol::tcp, "tcp", IPPROTO_TCP},
};
// pp_service.header.
inline constexpr std::array kHeaderModeNames = {
    KernelEnumName<HeaderMode>{HeaderMode::v1, "v1", PP_HDR_V1},
    KernelEnumName<HeaderMode>{HeaderMode::v2, "v2", PP_HDR_V2},
    KernelEnumName<HeaderMode>{HeaderMode::spp, "spp", PP_HDR_SPP},
};
// pp_service.udp_header.
inline constexpr std::array kUdpHeaderPolicyNames = {
    KernelEnumName<UdpHeaderPolicy>{UdpHeaderPolicy::first, "first", PP_UDP_FIRST},
    KernelEnumName<UdpHeaderPolicy>{UdpHeaderPolicy::every, "every", PP_UDP_EVERY},
};
// pp_service.on_error.
inline constexpr std::array kOnErrorNames = {
    KernelEnumName<OnError>{OnError::drop, "drop", PP_ON_ERROR_DROP},
    KernelEnumName<OnError>{OnError::pass, "pass", PP_ON_ERROR_PASS},
};
// Userspace only: the loader picks the program and the hook; the maps never hold it.
inline constexpr std::array kAttachHookNames = {
    EnumName<AttachHook>{AttachHook::tc, "tc"},
    EnumName<AttachHook>{AttachHook::xdp, "xdp"},
};
// Userspace only: the kernel sees an inline service as pp_service.flags & PP_SVC_INLINE.
inline constexpr std::array kTcpModeNames = {
    EnumName<TcpMode>{TcpMode::relay, "relay"},
    EnumName<TcpMode>{TcpMode::inline_, "inline"},
};
// Userspace only: the acceptor relays, the kernel never sees the mode.
inline constexpr std::array kRelayModeNames = {
    EnumName<RelayMode>{RelayMode::sockmap, "sockmap"},
    EnumName<RelayMode>{RelayMode::splice, "splice"},
    EnumName<RelayMode>{RelayMode::copy, "copy"},
};
// Userspace only: health checks run in the daemon.
inline constexpr std::array kHealthModeNames = {
    EnumName<HealthMode>{HealthMode::local, "local"},
    EnumName<HealthMode>{HealthMode::proxy, "proxy"},
};

// The entry of `value` in its table; every value of an enum has one, so a miss is a table
// that lost a line.
template <typename Entry, std::size_t N>
constexpr const Entry &entry_of(const std::array<Entry, N> &table, decltype(Entry::value) value) {
    for (const auto &e : table) {
        if (e.value == value) {
            return e;
        }
    }
    throw std::logic_error("enum value missing from its names table");
}

// The name of `value`.
template <typename Entry, std::size_t N>
constexpr std::string_view name_of(const std::array<Entry, N> &table,
                                   decltype(Entry::value) value) {
    return entry_of(table, value).name;
}

// The value called `name`, or nullopt when the table has no such name.
template <typename Entry, std::size_t N>
constexpr std::optional<decltype(Entry::value)> value_named(const std::array<Entry, N> &table,
                                                            std::string_view name) {
    for (const auto &e : table) {
        if (e.name == name) {
            return e.value;
        }
    }
    return std::nullopt;
}

// The kernel constant of `value`.
template <typename E, std::size_t N>
constexpr std::uint8_t kernel_of(const std::array<KernelEnumName<E>, N> &table, E value) {
    return entry_of(table, value).kernel;
}

// The name of kernel constant `kernel`, or nullopt for a constant the table lacks (a map
// written by hand or by another version).
template <typename E, std::size_t N>
constexpr std::optional<std::string_view> name_of_kernel(
    const std::array<KernelEnumName<E>, N> &table, std::uint8_t kernel) {
    for (const auto &e : table) {
        if (e.kernel == kernel) {
            return e.name;
        }
    }
    return std::nullopt;
}

}  // namespace ppinject
