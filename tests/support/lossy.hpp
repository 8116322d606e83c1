// The test-only lossy link (tests/bpf/lossy.bpf.c) on one hook of an interface inside a
// namespace: drops the first N packets that carry a PROXY header, drops a random share of
// TCP packets, or duplicates every TCP packet, as set(); what it did is in stats(). The
// destructor removes its filter (and the clsact qdisc if it created it), also when the
// test failed.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "lossy.h"
#include "support/netns.hpp"

struct lossy_bpf;

namespace pptest {

class LossyLink {
  public:
    enum class Hook { ingress, egress };
    // Loads the program and attaches it on `hook` of `ifname` in `ns`, doing nothing until
    // set(). Throws std::runtime_error naming the step that failed.
    LossyLink(const Netns &ns, const std::string &ifname, Hook hook);
    ~LossyLink();
    LossyLink(const LossyLink &) = delete;
    LossyLink &operator=(const LossyLink &) = delete;

    void set(const lossy_conf &conf);
    // lossy_stats[i] (LOSSY_* in lossy.h).
    std::uint64_t stat(unsigned i) const;
    // "tcp 12, headers seen 2, ..." for failure messages.
    std::string describe() const;

  private:
    void remove();
    const Netns &ns_;
    std::string ifname_;
    Hook hook_;
    int ifindex_ = 0;
    bool created_qdisc_ = false;
    bool attached_ = false;
    lossy_bpf *skel_ = nullptr;
};

}  // namespace pptest
