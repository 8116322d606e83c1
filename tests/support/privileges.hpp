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

// A kernel-level test that cannot work on the running kernel (an older one, as in
// `make vmtest`) skips with the feature's name, e.g.
// PP_SKIP_MISSING_KERNEL_FEATURE("BPF_PROG_TYPE_SK_LOOKUP (Linux 5.9)"). The VM runner accepts
// only skips that carry this prefix; any other skip fails `make vmtest`.
#define PP_SKIP_MISSING_KERNEL_FEATURE(feature) \
    GTEST_SKIP() << "kernel feature missing: " << (feature)
