// A small rtnetlink (NETLINK_ROUTE) client over libmnl: one request at a
// time, each acknowledged, kernel errors turned into SysError naming the
// operation and the object ("RTM_NEWLINK plk3: File exists (errno 17)").
//
// A netlink socket talks to the network namespace it was created in, for
// its whole life, whatever namespace the thread using it is in later. That
// is what open_in_netns() relies on: the calling thread never changes
// namespace, so nothing else running on it (or in other threads) is
// surprised by a different view of the network.
#pragma once

#include <linux/netlink.h>

#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

struct mnl_socket;

namespace sandbox {

// One request message being built, in a buffer of MNL_SOCKET_BUFFER_SIZE
// (libmnl's advice: a page, at most 8 KiB). Use libmnl's mnl_attr_put*()
// and mnl_attr_nest_*() on header() to add attributes.
class NetlinkMessage {
public:
    // `type` is RTM_*; NLM_F_REQUEST is always added to `flags`.
    NetlinkMessage(std::uint16_t type, std::uint16_t flags);
    nlmsghdr* header() noexcept { return header_; }
    // The family header (ifinfomsg, ifaddrmsg, rtmsg), zeroed, right after
    // the netlink header. Call once, before any attribute.
    template <typename T>
    T* put_family_header() {
        return static_cast<T*>(put_extra_header(sizeof(T)));
    }

private:
    void* put_extra_header(std::size_t size);
    std::vector<char> buffer_;
    nlmsghdr* header_ = nullptr;
};

class NetlinkSocket {
public:
    // Called for each reply message other than the final ack/NLMSG_DONE.
    using ReplyHandler = std::function<void(const nlmsghdr&)>;

    // A socket in the calling thread's network namespace.
    static NetlinkSocket open();
    // A socket in the network namespace `netns_fd` refers to, created on a
    // short-lived thread that joined it (setns(CLONE_NEWNET)); the calling
    // thread stays where it is. Needs CAP_SYS_ADMIN over that namespace.
    static NetlinkSocket open_in_netns(int netns_fd);

    NetlinkSocket(NetlinkSocket&& other) noexcept;
    NetlinkSocket& operator=(NetlinkSocket&& other) noexcept;
    NetlinkSocket(const NetlinkSocket&) = delete;
    NetlinkSocket& operator=(const NetlinkSocket&) = delete;
    ~NetlinkSocket();

    // Sends `message` with NLM_F_ACK and a fresh sequence number and waits
    // for the kernel's answer: replies go to `on_reply` (a non-dump
    // RTM_GET* answers with one), then the ack. An NLMSG_ERROR becomes
    // SysError("<operation> <object>: <strerror> (errno N)").
    void request(NetlinkMessage& message, std::string_view operation, std::string_view object,
                 const ReplyHandler& on_reply = {});
    // Sends `message` (an RTM_GET*) with NLM_F_DUMP and passes every reply
    // message to `on_reply` until NLMSG_DONE.
    void dump(NetlinkMessage& message, std::string_view operation, const ReplyHandler& on_reply);

private:
    explicit NetlinkSocket(mnl_socket* socket) noexcept;
    void exchange(NetlinkMessage& message, std::string_view operation, std::string_view object,
                  const ReplyHandler& on_reply);

    mnl_socket* socket_ = nullptr;
    std::uint32_t port_id_ = 0;
    std::uint32_t sequence_ = 0;
};

// The index of link `name` in the socket's namespace (RTM_GETLINK);
// SysError (ENODEV) when there is none.
int link_index(NetlinkSocket& socket, std::string_view name);

// Sets IFF_UP on link `name`, which must exist.
void set_link_up(NetlinkSocket& socket, std::string_view name);

}  // namespace sandbox
