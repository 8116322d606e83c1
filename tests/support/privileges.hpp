// Kernel-level tests need root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN). Without it they
// report SKIPPED with the reason instead of passing silently; CI runs them as root.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#define PP_REQUIRE_ROOT()                                                               \
    do {                                                                                \
        if (::geteuid() != 0) {                                                         \
            GTEST_SKIP() << "needs root (CAP_BPF, CAP_NET_ADMIN) to load BPF programs"; \
        }                                                                               \
    } while (0)
