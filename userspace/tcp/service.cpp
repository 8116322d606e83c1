#include "tcp/service.hpp"

#include "config/header.hpp"

namespace ppinject::tcp {

ServiceRt::ServiceRt(const Service &svc)
    : cfg(svc),
      max_header(max_header_len(svc)),
      up(std::make_unique<std::atomic<bool>[]>(svc.backends.size())) {
    for (std::size_t i = 0; i < svc.backends.size(); i++) {
        up[i] = true;
    }
}

}  // namespace ppinject::tcp
