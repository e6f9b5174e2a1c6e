#include "sandbox/netlink.h"

#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <time.h>

#include <cerrno>
#include <optional>
#include <string>
#include <utility>

#include "sandbox/error.h"
#include "sandbox/netns.h"

namespace sandbox {
namespace {

std::size_t buffer_size() {
    return static_cast<std::size_t>(MNL_SOCKET_BUFFER_SIZE);
}

struct CallbackState {
    const NetlinkSocket::ReplyHandler* on_reply;
    std::string kernel_message;  // NLMSGERR_ATTR_MSG of an extended ack
};

int on_message(const nlmsghdr* nlh, void* data) {
    auto* state = static_cast<CallbackState*>(data);
    if (state->on_reply && *state->on_reply) (*state->on_reply)(*nlh);
    return MNL_CB_OK;
}

int on_extack_attribute(const nlattr* attr, void* data) {
    if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG &&
        mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0) {
        static_cast<CallbackState*>(data)->kernel_message = mnl_attr_get_str(attr);
    }
    return MNL_CB_OK;
}

// libmnl's own NLMSG_ERROR handling, plus the kernel's reason from an
// extended ack (NETLINK_EXT_ACK, 4.12), which says which attribute was
// wrong where errno alone says only EINVAL.
int on_error(const nlmsghdr* nlh, void* data) {
    if (mnl_nlmsg_get_payload_len(nlh) < sizeof(nlmsgerr)) {
        errno = EBADMSG;
        return MNL_CB_ERROR;
    }
    const auto* error = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
    if (error->error == 0) return MNL_CB_STOP;  // the ack
    if (nlh->nlmsg_flags & NLM_F_ACK_TLVS) {
        // The TLVs follow the echoed request, which NETLINK_CAP_ACK cuts to
        // its header (NLM_F_CAPPED).
        std::size_t offset = sizeof(nlmsgerr);
        if (!(nlh->nlmsg_flags & NLM_F_CAPPED) && error->msg.nlmsg_len > sizeof(nlmsghdr))
            offset += error->msg.nlmsg_len - sizeof(nlmsghdr);
        const std::size_t length = mnl_nlmsg_get_payload_len(nlh);
        if (offset < length) {
            mnl_attr_parse_payload(static_cast<const char*>(mnl_nlmsg_get_payload(nlh)) + offset,
                                   length - offset, on_extack_attribute, data);
        }
    }
    errno = -error->error;
    return MNL_CB_ERROR;
}

std::string describe(std::string_view operation, std::string_view object) {
    std::string what(operation);
    if (!object.empty()) what.append(" ").append(object);
    return what;
}

}  // namespace

NetlinkMessage::NetlinkMessage(std::uint16_t type, std::uint16_t flags)
    : buffer_(buffer_size(), '\0') {
    header_ = mnl_nlmsg_put_header(buffer_.data());
    header_->nlmsg_type = type;
    header_->nlmsg_flags = static_cast<std::uint16_t>(NLM_F_REQUEST | flags);
}

void* NetlinkMessage::put_extra_header(std::size_t size) {
    return mnl_nlmsg_put_extra_header(header_, size);
}

NetlinkSocket::NetlinkSocket(mnl_socket* socket) noexcept
    : socket_(socket), port_id_(mnl_socket_get_portid(socket)) {
    // Any start will do; distinct values only help reading strace output.
    sequence_ = static_cast<std::uint32_t>(::time(nullptr));
}

NetlinkSocket::NetlinkSocket(NetlinkSocket&& other) noexcept
    : socket_(std::exchange(other.socket_, nullptr)),
      port_id_(other.port_id_),
      sequence_(other.sequence_) {}

NetlinkSocket& NetlinkSocket::operator=(NetlinkSocket&& other) noexcept {
    if (this != &other) {
        if (socket_) mnl_socket_close(socket_);
        socket_ = std::exchange(other.socket_, nullptr);
        port_id_ = other.port_id_;
        sequence_ = other.sequence_;
    }
    return *this;
}

NetlinkSocket::~NetlinkSocket() {
    if (socket_) mnl_socket_close(socket_);
}

NetlinkSocket NetlinkSocket::open() {
    // mnl_socket_open2 (libmnl 1.0.4) takes socket flags: close-on-exec, so
    // that a pattern spawned meanwhile does not inherit a route socket.
    mnl_socket* socket = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
    if (!socket) throw_sys_error(errno, "open rtnetlink socket");
    if (mnl_socket_bind(socket, 0, MNL_SOCKET_AUTOPID) < 0) {
        const int err = errno;
        mnl_socket_close(socket);
        throw_sys_error(err, "bind rtnetlink socket");
    }
    // Extended acks (4.12) add the kernel's reason to errors; capped acks
    // (4.3) leave the request out of them. Both only improve the error
    // text, so a refusal is ignored.
    int on = 1;
    mnl_socket_setsockopt(socket, NETLINK_EXT_ACK, &on, sizeof on);
    mnl_socket_setsockopt(socket, NETLINK_CAP_ACK, &on, sizeof on);
    return NetlinkSocket(socket);
}

NetlinkSocket NetlinkSocket::open_in_netns(int netns_fd) {
    std::optional<NetlinkSocket> opened;
    run_in_network_namespace(netns_fd, [&] { opened.emplace(open()); });
    return std::move(*opened);
}

void NetlinkSocket::request(NetlinkMessage& message, std::string_view operation,
                            std::string_view object, const ReplyHandler& on_reply) {
    message.header()->nlmsg_flags |= NLM_F_ACK;
    exchange(message, operation, object, on_reply);
}

void NetlinkSocket::dump(NetlinkMessage& message, std::string_view operation,
                         const ReplyHandler& on_reply) {
    // A dump ends with NLMSG_DONE; NLM_F_ACK would add nothing.
    message.header()->nlmsg_flags |= NLM_F_DUMP;
    exchange(message, operation, {}, on_reply);
}

void NetlinkSocket::exchange(NetlinkMessage& message, std::string_view operation,
                             std::string_view object, const ReplyHandler& on_reply) {
    nlmsghdr* nlh = message.header();
    const std::uint32_t sequence = ++sequence_;
    nlh->nlmsg_seq = sequence;
    if (mnl_socket_sendto(socket_, nlh, nlh->nlmsg_len) < 0) {
        throw_sys_error(errno, "send " + describe(operation, object));
    }
    std::vector<char> buffer(buffer_size());
    CallbackState state{&on_reply, {}};
    // Indexed by control message type: NLMSG_NOOP (1) stays a no-op,
    // NLMSG_DONE (3) is beyond the array and keeps libmnl's handling.
    mnl_cb_t control[NLMSG_ERROR + 1] = {};
    control[NLMSG_ERROR] = on_error;
    for (;;) {
        ssize_t n = mnl_socket_recvfrom(socket_, buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw_sys_error(errno, "receive " + describe(operation, object));
        // MNL_CB_ERROR with errno from an NLMSG_ERROR (or ESRCH/EPROTO for a
        // message that is not the answer to this request), MNL_CB_STOP on
        // the ack or NLMSG_DONE, MNL_CB_OK while more is to come.
        int rc = mnl_cb_run2(buffer.data(), static_cast<std::size_t>(n), sequence, port_id_,
                             on_message, &state, control, NLMSG_ERROR + 1);
        if (rc == MNL_CB_ERROR) {
            const int err = errno;
            std::string what = describe(operation, object);
            if (!state.kernel_message.empty()) what += " (" + state.kernel_message + ")";
            throw_sys_error(err, what);
        }
        if (rc == MNL_CB_STOP) return;
    }
}

int link_index(NetlinkSocket& socket, std::string_view name) {
    const std::string ifname(name);
    NetlinkMessage message(RTM_GETLINK, 0);
    auto* info = message.put_family_header<ifinfomsg>();
    info->ifi_family = AF_UNSPEC;
    mnl_attr_put_strz(message.header(), IFLA_IFNAME, ifname.c_str());
    int index = 0;
    socket.request(message, "RTM_GETLINK", ifname, [&](const nlmsghdr& reply) {
        if (reply.nlmsg_type != RTM_NEWLINK) return;
        index = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(&reply))->ifi_index;
    });
    if (index <= 0) throw_sys_error(ENODEV, "RTM_GETLINK", ifname);
    return index;
}

void set_link_up(NetlinkSocket& socket, std::string_view name) {
    const std::string ifname(name);
    // Without NLM_F_CREATE an RTM_NEWLINK changes the link it names.
    NetlinkMessage message(RTM_NEWLINK, 0);
    auto* info = message.put_family_header<ifinfomsg>();
    info->ifi_family = AF_UNSPEC;
    info->ifi_change = IFF_UP;
    info->ifi_flags = IFF_UP;
    mnl_attr_put_strz(message.header(), IFLA_IFNAME, ifname.c_str());
    socket.request(message, "RTM_NEWLINK", ifname + " (set up)");
}

}  // namespace sandbox
