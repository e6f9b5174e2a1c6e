#include "api/api_listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <grpcpp/server.h>
#include <grpcpp/server_posix.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "sandbox/error.h"

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

sandbox::UniqueFd bind_tcp_listener(int port, int& bound_port) {
    sandbox::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) sandbox::throw_sys_error(errno, "socket for the API");
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    socklen_t len = sizeof addr;
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        sandbox::throw_sys_error(errno, "bind 127.0.0.1:" + std::to_string(port) + " for the API");
    }
    if (::listen(fd.get(), SOMAXCONN) != 0 ||
        ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        sandbox::throw_sys_error(errno, "listen on 127.0.0.1:" + std::to_string(port));
    }
    bound_port = ntohs(addr.sin_port);
    return fd;
}

ApiListener::~ApiListener() {
    stop();
}

void ApiListener::add(sandbox::UniqueFd fd) {
    int flags = ::fcntl(fd.get(), F_GETFL);
    ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK);
    listeners_.push_back(std::move(fd));
}

void ApiListener::serve(grpc::Server& server) {
    server_ = &server;
    for (const auto& listener : listeners_) {
        const int fd = listener.get();
        auto acceptor = std::make_unique<AcceptBackoff>(
            loop_, fd, "API socket fd " + std::to_string(fd),
            [this](sandbox::UniqueFd connection) { on_connection(std::move(connection)); });
        acceptor->start();
        acceptors_.push_back(std::move(acceptor));
    }
}

void ApiListener::stop() {
    acceptors_.clear();
    server_ = nullptr;
}

void ApiListener::on_connection(sandbox::UniqueFd connection) {
    const int conn = connection.get();
    std::string who;
    ucred cred{};
    socklen_t len = sizeof cred;
    sockaddr_in addr{};
    socklen_t addr_len = sizeof addr;
    if (::getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.pid > 0) {
        who = "uid " + std::to_string(cred.uid) + " gid " + std::to_string(cred.gid) + " pid " +
              std::to_string(cred.pid);
    } else if (::getpeername(conn, reinterpret_cast<sockaddr*>(&addr), &addr_len) == 0 &&
               addr.sin_family == AF_INET) {
        char ip[INET_ADDRSTRLEN] = {};
        ::inet_ntop(AF_INET, &addr.sin_addr, ip, sizeof ip);
        who = std::string(ip) + ":" + std::to_string(ntohs(addr.sin_port));
    }
    {
        std::lock_guard lock(peers_mutex_);
        peers_[conn] = who.empty() ? "unknown peer" : who;
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

std::string ApiListener::caller(const std::string& peer) const {
    const std::optional<int> fd = connection_fd_from_peer(peer);
    if (!fd) return peer;
    std::lock_guard lock(peers_mutex_);
    auto it = peers_.find(*fd);
    return it == peers_.end() ? peer : it->second;
}

}  // namespace launcher
