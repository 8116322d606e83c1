// Active health checks of TCP backends: every `interval` a connect (and, in mode "local",
// a PROXY v2 LOCAL header; in mode "proxy", a PROXY header with the checker's own
// addresses, for receivers that mishandle LOCAL) that must succeed within `timeout`. A
// failed check takes the backend out of rotation, a good one puts it back; each change is
// logged.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "loader/datapath.hpp"
#include "tcp/service.hpp"

namespace ppinject::tcp {

class HealthChecker {
  public:
    explicit HealthChecker(LogFn log);
    ~HealthChecker();
    HealthChecker(const HealthChecker &) = delete;
    HealthChecker &operator=(const HealthChecker &) = delete;

    // The services to check from now on (those without health_check are ignored).
    void set(std::vector<std::shared_ptr<ServiceRt>> services);

  private:
    void run();

    LogFn log_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::vector<std::shared_ptr<ServiceRt>> services_;
    std::thread thread_;
};

}  // namespace ppinject::tcp
