#include "api/api_listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/server_posix.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "common/log.h"
#include "sandbox/error.h"
#include "sandbox/peer_credentials.h"

namespace launcher {

sandbox::UniqueFd bind_unix_listener(const std::filesystem::path& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string p = path.string();
    if (p.size() >= sizeof addr.sun_path) {
        throw sandbox::SysError(ENAMETOOLONG, "API socket path too long: " + p);
    }
    std::memcpy(addr.sun_path, p.c_str(), p.size() + 1);
    sandbox::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) sandbox::throw_sys_error(errno, "socket for the API");
    ::unlink(p.c_str());
    // Created 0660 from the start: never a window in which anyone may connect.
    mode_t old = ::umask(0117);
    int rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::umask(old);
    if (rc != 0) sandbox::throw_sys_error(errno, "bind the API socket", p);
    if (group* g = ::getgrnam("pattern-launcher")) {
        if (::chown(p.c_str(), 0, g->gr_gid) != 0) sandbox::throw_sys_error(errno, "chown", p);
    }
    if (::listen(fd.get(), SOMAXCONN) != 0) sandbox::throw_sys_error(errno, "listen on", p);
    return fd;
}

sandbox::UniqueFd bind_tcp_listener(const std::string& host, int port, int& bound_port) {
    sockaddr_storage storage{};
    socklen_t len = 0;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
    const std::string where = (host.find(':') != std::string::npos ? "[" + host + "]" : host) +
                              ":" + std::to_string(port);
    if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(static_cast<uint16_t>(port));
        len = sizeof *v4;
    } else if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(static_cast<uint16_t>(port));
        len = sizeof *v6;
    } else {
        throw sandbox::SysError(EINVAL, "API listen address '" + host + "' is not numeric");
    }
    sandbox::UniqueFd fd(::socket(storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) sandbox::throw_sys_error(errno, "socket for the API");
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&storage), len) != 0) {
        sandbox::throw_sys_error(errno, "bind " + where + " for the API");
    }
    if (::listen(fd.get(), SOMAXCONN) != 0 ||
        ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&storage), &len) != 0) {
        sandbox::throw_sys_error(errno, "listen on " + where);
    }
    bound_port = ntohs(storage.ss_family == AF_INET ? v4->sin_port : v6->sin6_port);
    return fd;
}

ApiListener::~ApiListener() {
    stop();
}

void ApiListener::add(sandbox::UniqueFd fd, Kind kind) {
    int flags = ::fcntl(fd.get(), F_GETFL);
    ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK);
    listeners_.emplace_back(std::move(fd), kind);
}

void ApiListener::set_tls_acceptor(
    std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor) {
    tls_acceptor_ = std::move(acceptor);
}

bool ApiListener::has(Kind kind) const {
    for (const auto& [fd, k] : listeners_) {
        if (k == kind) return true;
    }
    return false;
}

void ApiListener::serve(grpc::Server& server) {
    server_ = &server;
    for (const auto& [listener, kind] : listeners_) {
        const int fd = listener.get();
        const Kind k = kind;
        auto acceptor =
            std::make_unique<AcceptBackoff>(loop_, fd, "API socket fd " + std::to_string(fd),
                                            [this, fd, k](sandbox::UniqueFd connection) {
                                                on_connection(std::move(connection), fd, k);
                                            });
        acceptor->start();
        acceptors_.push_back(std::move(acceptor));
    }
}

void ApiListener::stop() {
    acceptors_.clear();
    server_ = nullptr;
}

void ApiListener::on_connection(sandbox::UniqueFd connection, int listener_fd, Kind kind) {
    if (kind == Kind::kTls) {
        if (!tls_acceptor_) return;  // closes it: no TLS was configured for this socket
        // gRPC owns the fd from here on; the handshake runs on its threads.
        grpc::experimental::ExternalConnectionAcceptor::NewConnectionParameters params;
        params.listener_fd = listener_fd;
        params.fd = connection.release();
        tls_acceptor_->HandleNewConnection(&params);
        return;
    }
    const int conn = connection.get();
    Connection who;
    if (kind == Kind::kUnix) {
        who.transport = "unix";
        try {
            const sandbox::PeerCredentials cred = sandbox::read_peer_credentials(conn);
            auth::UnixPeer peer;
            peer.pid = cred.pid;
            peer.uid = cred.uid;
            peer.gid = cred.gid;
            peer.groups = cred.groups;
            peer.cgroup = cred.cgroup.value_or("");
            // A peer whose cgroup cannot be read is treated as a tenant:
            // unknown is not trusted.
            peer.in_tenant_cgroup =
                !cred.cgroup || (in_tenant_cgroup_ && in_tenant_cgroup_(*cred.cgroup));
            who.peer = "pid " + std::to_string(cred.pid);
            who.unix_peer = std::move(peer);
        } catch (const std::exception& e) {
            log::warning(std::string("API connection without peer credentials: ") + e.what());
        }
    } else {
        who.transport = "tcp";
        sockaddr_storage addr{};
        socklen_t addr_len = sizeof addr;
        if (::getpeername(conn, reinterpret_cast<sockaddr*>(&addr), &addr_len) == 0) {
            char ip[INET6_ADDRSTRLEN] = {};
            int port = 0;
            if (addr.ss_family == AF_INET) {
                auto* a = reinterpret_cast<sockaddr_in*>(&addr);
                ::inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
                port = ntohs(a->sin_port);
            } else if (addr.ss_family == AF_INET6) {
                auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
                ::inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
                port = ntohs(a->sin6_port);
            }
            who.peer = std::string(ip) + ":" + std::to_string(port);
        }
    }
    {
        std::lock_guard lock(peers_mutex_);
        peers_[conn] = std::move(who);
    }
    // gRPC owns the connection from here on (and closes it).
    grpc::AddInsecureChannelFromFd(server_, connection.release());
}

std::optional<int> connection_fd_from_peer(std::string_view peer) {
    constexpr std::string_view kPrefix = "fd:";
    if (peer.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
    const std::string_view digits = peer.substr(kPrefix.size());
    int fd = -1;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), fd);
    if (ec != std::errc() || end != digits.data() + digits.size() || fd < 0) return std::nullopt;
    return fd;
}

std::optional<ApiListener::Connection> ApiListener::connection(const std::string& peer) const {
    const std::optional<int> fd = connection_fd_from_peer(peer);
    if (!fd) return std::nullopt;
    std::lock_guard lock(peers_mutex_);
    auto it = peers_.find(*fd);
    if (it == peers_.end()) return std::nullopt;
    return it->second;
}

}  // namespace launcher
