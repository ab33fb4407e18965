// Address discovery: which address of this host the other nodes of the job can reach it at.
#ifndef PS_VAN_ADDRESS_H_
#define PS_VAN_ADDRESS_H_

#include <string>

#include "ps/status.h"

namespace ps {

// The IPv4 address of interface "name" (DMLC_INTERFACE), or "" if it has none.
std::string InterfaceAddress(const std::string& name);

// The local address on the route to host:port (the scheduler): the one the scheduler can reach
// this node at. "host" may be a name or an address. Sends nothing.
Status RouteAddress(const std::string& host, int port, std::string* addr);

// OK when "host" (DMLC_PS_ROOT_URI) resolves to an IPv4 address, else an error naming it.
Status CheckResolves(const std::string& host);

}  // namespace ps
#endif  // PS_VAN_ADDRESS_H_
