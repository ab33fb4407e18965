#include "van/address.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

namespace ps {

std::string InterfaceAddress(const std::string& name) {
  struct ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return "";
  std::string found;
  for (struct ifaddrs* ifa = list; ifa; ifa = ifa->ifa_next) {
    if (!ifa->ifa_addr || ifa->ifa_addr->sa_family != AF_INET || name != ifa->ifa_name) continue;
    char buf[INET_ADDRSTRLEN];
    auto* sin = reinterpret_cast<struct sockaddr_in*>(ifa->ifa_addr);
    if (inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf))) found = buf;
    break;
  }
  freeifaddrs(list);
  return found;
}

Status CheckResolves(const std::string& host) {
  struct addrinfo hints = {};
  hints.ai_family = AF_INET;
  struct addrinfo* res = nullptr;
  int err = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (res) freeaddrinfo(res);
  if (err != 0) {
    return Status::InvalidArgument("DMLC_PS_ROOT_URI=" + host +
                                   " does not resolve to an address (" + gai_strerror(err) + ")");
  }
  return Status::OK();
}

Status RouteAddress(const std::string& host, int port, std::string* addr) {
  struct addrinfo hints = {};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  struct addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res) {
    return Status::InvalidArgument("DMLC_PS_ROOT_URI=" + host + " does not resolve to an address");
  }
  // Connecting a UDP socket sends nothing; it only picks the route.
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in local = {};
  socklen_t len = sizeof(local);
  bool ok = fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) == 0 &&
            getsockname(fd, reinterpret_cast<struct sockaddr*>(&local), &len) == 0;
  if (fd >= 0) close(fd);
  freeaddrinfo(res);
  char buf[INET_ADDRSTRLEN];
  if (ok && inet_ntop(AF_INET, &local.sin_addr, buf, sizeof(buf))) {
    *addr = buf;
  } else {
    *addr = "127.0.0.1";
  }
  return Status::OK();
}

}  // namespace ps
