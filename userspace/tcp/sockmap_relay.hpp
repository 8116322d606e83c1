// The relay of `relay = "sockmap"`: both sockets join the sockmap, and the sk_skb verdict
// (sockmap_verdict in bpf/tcp.bpf.c) redirects each segment's bytes to the other socket in
// the kernel. The daemon only watches: it passes a FIN on once every byte before it is
// through, holds back a sender whose bytes pile up for a slow reader, and copies on what
// the verdict held back meanwhile (pp_tcp_conn in bpf/ppinject.h).
#pragma once

#include <cstdint>
#include <memory>

#include "loader/datapath.hpp"
#include "tcp/relay.hpp"

namespace ppinject::tcp {

class SockmapRelay final : public Relay {
  public:
    // Connection slot `slot` of tcp_conns is this relay's while it lives.
    SockmapRelay(RelayHost &host, const Datapath::TcpMaps &maps, std::uint32_t slot)
        : host_(host), maps_(maps), slot_(slot) {}
    // Takes the sockets out of tcp_peers (the verdict then passes their bytes) before the
    // worker closes them.
    ~SockmapRelay() override;
    SockmapRelay(const SockmapRelay &) = delete;
    SockmapRelay &operator=(const SockmapRelay &) = delete;

    enum class Join {
        joined,           // from now on the kernel moves the bytes
        not_established,  // the sockmap takes only established sockets: relay otherwise
        failed,           // logged; the connection must end
    };
    // Puts both sockets of `c` into the sockmap.
    Join join(Conn &c);

    Step start(Conn &c) override;
    Step on_event(Conn &c, int side, std::uint32_t events) override;
    bool ticks() const override { return true; }
    Step tick(Conn &c) override;
    bool moved_unseen(Conn &c) override;

  private:
    pp_tcp_conn &kconn() const { return maps_.conns[slot_]; }
    std::uint64_t redirected(int side) const;
    std::uint64_t held(int side) const;
    std::uint64_t moved(int side) const { return redirected(side) + held(side); }
    std::uint64_t delivered(const Conn &c, int side) const;
    std::uint64_t forwarded(int side) const;
    bool owes(int side) const;
    std::uint64_t backlog(const Conn &c, int side) const;
    Step try_pass_fin(Conn &c, int side);
    void watch_backlog(Conn &c, int side);
    void copy_held(Conn &c, int side);
    void arm(const Conn &c);

    RelayHost &host_;
    const Datapath::TcpMaps &maps_;
    std::uint32_t slot_;
    bool joined_ = false;
    std::uint64_t cookie_[2] = {0, 0};
    std::uint64_t base_written_[2] = {0, 0};  // written_bytes() of each when joined
    bool fin_[2] = {false, false};            // side i sent FIN
    bool shut_[2] = {false, false};           // write side of i shut down by us
    bool hold_[2] = {false, false};           // side i is held back (pp_tcp_conn.hold)
    bool copying_[2] = {false, false};        // side i's held bytes are being copied on
    std::uint64_t taken_[2] = {0, 0};         // held bytes of i read by the daemon so far
    std::uint64_t clear_[2] = {0, 0};         // redirected(i) when all of it was delivered
    std::uint64_t checked_[2] = {0, 0};       // redirected(i) at the last precise check
    std::uint64_t seen_[2] = {0, 0};          // moved(i) at the last tick
    std::uint64_t scanned_[2] = {0, 0};       // moved(i) at the last idle scan
    // Held bytes of side i on their way to the other: buf_[i][head_[i], + pending_[i]).
    RelayBuffer buf_[2];
    std::size_t pending_[2] = {0, 0}, head_[2] = {0, 0};
};

}  // namespace ppinject::tcp
