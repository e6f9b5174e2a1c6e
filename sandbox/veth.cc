#include "sandbox/veth.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>

#include <cerrno>

#include "sandbox/error.h"
#include "sandbox/netlink.h"

namespace sandbox {
namespace {

// dev_valid_name() of the kernel, checked here so that a bad name is a
// ConfigError naming it instead of an EINVAL from the middle of a request.
bool valid_link_name(std::string_view name) {
    if (name.empty() || name.size() > IFNAMSIZ - 1 || name == "." || name == "..") return false;
    for (char c : name) {
        if (c == '/' || c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\0') return false;
    }
    return true;
}

void validate(const VethSpec& spec) {
    for (const std::string* name : {&spec.host_name, &spec.peer_name}) {
        if (!valid_link_name(*name)) {
            throw ConfigError("veth: '" + *name +
                              "' is not a link name (1-15 characters, no '/', ':' or space)");
        }
    }
    if (spec.netns_fd < 0) throw ConfigError("veth " + spec.host_name + ": no network namespace");
    if (spec.prefix != 31 && spec.prefix != 30) {
        throw ConfigError("veth " + spec.host_name + ": prefix must be /31 or /30, got /" +
                          std::to_string(spec.prefix));
    }
    Ipv4Network network{{spec.host_address.value & Ipv4Network{{}, spec.prefix}.mask()},
                        spec.prefix};
    const std::string pair = to_string(spec.host_address) + " and " + to_string(spec.peer_address);
    if (spec.host_address == spec.peer_address || !network.contains(spec.peer_address)) {
        throw ConfigError("veth " + spec.host_name + ": " + pair +
                          " are not two addresses of one /" + std::to_string(spec.prefix));
    }
    // A /30 keeps its first and last address for network and broadcast.
    if (spec.prefix == 30) {
        for (Ipv4Address a : {spec.host_address, spec.peer_address}) {
            if (a == network.address || a == network.last()) {
                throw ConfigError("veth " + spec.host_name + ": " + to_string(a) +
                                  " is the network or broadcast address of " + to_string(network));
            }
        }
    }
}

ifinfomsg* put_link_header(NetlinkMessage& message) {
    auto* info = message.put_family_header<ifinfomsg>();
    info->ifi_family = AF_UNSPEC;
    return info;
}

// One RTM_NEWLINK for both ends. NLM_F_CREATE|NLM_F_EXCL: a link of that
// name that exists already (a leftover, or another pattern's) is an EEXIST,
// never silently reused or changed.
void create_pair(NetlinkSocket& host, const VethSpec& spec) {
    NetlinkMessage message(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
    nlmsghdr* nlh = message.header();
    put_link_header(message);
    mnl_attr_put_strz(nlh, IFLA_IFNAME, spec.host_name.c_str());
    nlattr* linkinfo = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
    mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
    nlattr* data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
    // VETH_INFO_PEER holds a whole link description of the peer: its own
    // ifinfomsg, then its attributes (veth_newlink() parses it so).
    nlattr* peer = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
    static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)))->ifi_family =
        AF_UNSPEC;
    mnl_attr_put_strz(nlh, IFLA_IFNAME, spec.peer_name.c_str());
    // The peer is registered in the pattern's namespace from the start: it
    // never exists in ours, so it can neither collide with a host link
    // named eth0 nor be seen (or configured) by anything on the host.
    mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, static_cast<std::uint32_t>(spec.netns_fd));
    mnl_attr_nest_end(nlh, peer);
    mnl_attr_nest_end(nlh, data);
    mnl_attr_nest_end(nlh, linkinfo);
    host.request(message, "RTM_NEWLINK", spec.host_name + " (veth, peer " + spec.peer_name + ")");
}

// IFLA_INET6_ADDR_GEN_MODE = NONE before the link goes up: addrconf makes
// the link-local address when a link comes up (NETDEV_UP), so with no mode
// the end never gets one, and without any IPv6 address there is no IPv6
// path through the pair that the IPv4-only rules would have to close. The
// kernel does not apply IFLA_AF_SPEC when it creates a link, hence a change
// of the existing link. EAFNOSUPPORT: this kernel has no IPv6 at all, which
// is the outcome wanted.
void disable_ipv6_autoconf(NetlinkSocket& socket, const std::string& name) {
    NetlinkMessage message(RTM_NEWLINK, 0);
    nlmsghdr* nlh = message.header();
    put_link_header(message);
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name.c_str());
    nlattr* af_spec = mnl_attr_nest_start(nlh, IFLA_AF_SPEC);
    nlattr* inet6 = mnl_attr_nest_start(nlh, AF_INET6);
    mnl_attr_put_u8(nlh, IFLA_INET6_ADDR_GEN_MODE, IN6_ADDR_GEN_MODE_NONE);
    mnl_attr_nest_end(nlh, inet6);
    mnl_attr_nest_end(nlh, af_spec);
    try {
        socket.request(message, "RTM_NEWLINK", name + " (IPv6 addrgenmode none)");
    } catch (const SysError& e) {
        if (e.code() != EAFNOSUPPORT) throw;
    }
}

// NLM_F_EXCL: the address must be new on this link.
void add_address(NetlinkSocket& socket, const std::string& name, int index, Ipv4Address address,
                 int prefix) {
    NetlinkMessage message(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
    nlmsghdr* nlh = message.header();
    auto* addr = message.put_family_header<ifaddrmsg>();
    addr->ifa_family = AF_INET;
    addr->ifa_prefixlen = static_cast<unsigned char>(prefix);
    addr->ifa_scope = RT_SCOPE_UNIVERSE;
    addr->ifa_index = static_cast<unsigned>(index);
    // IFA_LOCAL is the address; IFA_ADDRESS the same on a link that is not
    // point-to-point (what ip-address(8) sends). The kernel adds the
    // prefix route for the /31 or /30 itself.
    mnl_attr_put_u32(nlh, IFA_LOCAL, htonl(address.value));
    mnl_attr_put_u32(nlh, IFA_ADDRESS, htonl(address.value));
    socket.request(message, "RTM_NEWADDR",
                   to_string(address) + "/" + std::to_string(prefix) + " on " + name);
}

// The pattern's only route out: everything not on the /31 goes to the host
// end. The peer must be up first (a nexthop on a down link is refused).
void add_default_route(NetlinkSocket& socket, const VethSpec& spec, int peer_index) {
    NetlinkMessage message(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
    nlmsghdr* nlh = message.header();
    auto* route = message.put_family_header<rtmsg>();
    route->rtm_family = AF_INET;
    route->rtm_dst_len = 0;
    route->rtm_table = RT_TABLE_MAIN;
    route->rtm_protocol = RTPROT_STATIC;  // set by us, not learned (shown as "proto static")
    route->rtm_scope = RT_SCOPE_UNIVERSE;
    route->rtm_type = RTN_UNICAST;
    mnl_attr_put_u32(nlh, RTA_GATEWAY, htonl(spec.host_address.value));
    mnl_attr_put_u32(nlh, RTA_OIF, static_cast<std::uint32_t>(peer_index));
    socket.request(message, "RTM_NEWROUTE",
                   "default via " + to_string(spec.host_address) + " dev " + spec.peer_name +
                       " (peer of " + spec.host_name + ")");
}

void delete_link(NetlinkSocket& socket, const std::string& name) {
    NetlinkMessage message(RTM_DELLINK, 0);
    put_link_header(message);
    mnl_attr_put_strz(message.header(), IFLA_IFNAME, name.c_str());
    try {
        socket.request(message, "RTM_DELLINK", name);
    } catch (const SysError& e) {
        if (e.code() != ENODEV) throw;  // ENODEV: gone already, which is what was asked
    }
}

struct NameSearch {
    const char* name = nullptr;
};

int find_ifname(const nlattr* attr, void* data) {
    if (mnl_attr_get_type(attr) == IFLA_IFNAME && mnl_attr_validate(attr, MNL_TYPE_STRING) == 0) {
        static_cast<NameSearch*>(data)->name = mnl_attr_get_str(attr);
    }
    return MNL_CB_OK;
}

}  // namespace

void create_veth(const VethSpec& spec) {
    validate(spec);
    NetlinkSocket host = NetlinkSocket::open();
    NetlinkSocket inside = NetlinkSocket::open_in_netns(spec.netns_fd);
    create_pair(host, spec);
    try {
        disable_ipv6_autoconf(host, spec.host_name);
        disable_ipv6_autoconf(inside, spec.peer_name);
        add_address(host, spec.host_name, link_index(host, spec.host_name), spec.host_address,
                    spec.prefix);
        const int peer_index = link_index(inside, spec.peer_name);
        add_address(inside, spec.peer_name + " (peer of " + spec.host_name + ")", peer_index,
                    spec.peer_address, spec.prefix);
        set_link_up(host, spec.host_name);
        set_link_up(inside, spec.peer_name);
        set_link_up(inside, "lo");
        add_default_route(inside, spec, peer_index);
    } catch (...) {
        // Deleting one end deletes both. If even that fails, the first
        // error is the one worth reporting.
        try {
            delete_link(host, spec.host_name);
        } catch (const SysError&) {
        }
        throw;
    }
}

std::vector<std::string> list_links(std::string_view name_prefix) {
    NetlinkSocket socket = NetlinkSocket::open();
    NetlinkMessage message(RTM_GETLINK, 0);
    put_link_header(message);
    std::vector<std::string> names;
    socket.dump(message, "RTM_GETLINK dump", [&](const nlmsghdr& reply) {
        if (reply.nlmsg_type != RTM_NEWLINK) return;
        NameSearch search;
        mnl_attr_parse(&reply, sizeof(ifinfomsg), find_ifname, &search);
        if (search.name && std::string_view(search.name).starts_with(name_prefix)) {
            names.emplace_back(search.name);
        }
    });
    return names;
}

void remove_link(const std::string& name) {
    NetlinkSocket socket = NetlinkSocket::open();
    delete_link(socket, name);
}

std::string veth_host_name(std::string_view prefix, std::uint32_t index) {
    std::string name = std::string(prefix) + std::to_string(index);
    if (prefix.empty() || !valid_link_name(name)) {
        throw ConfigError("link name '" + name + "' from prefix '" + std::string(prefix) +
                          "' and index " + std::to_string(index) +
                          " is not a link name of at most " + std::to_string(IFNAMSIZ - 1) +
                          " characters");
    }
    return name;
}

}  // namespace sandbox
