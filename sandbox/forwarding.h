// Whether the caller's network namespace forwards IPv4: without it the
// packets of a pattern reach the host end of its veth pair and stop there.
#pragma once

namespace sandbox {

// Reads /proc/sys/net/ipv4/ip_forward as the calling thread's network
// namespace sees it. Never writes it: forwarding is a host-wide policy
// (it turns every interface into a router's) that the operator enables,
// not something a launcher switches on as a side effect; the caller
// refuses egress, or warns, when this is false. SysError when the file
// cannot be read.
bool ipv4_forwarding_enabled();

}  // namespace sandbox
