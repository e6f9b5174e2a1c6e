// The API's listening sockets, accepted on the event loop and handed to
// gRPC connection by connection (grpc++ 1.51 cannot adopt a listening fd).
// That is what lets the daemon serve sockets inherited from systemd without
// rebinding them, read each unix peer's credentials (SO_PEERCRED,
// SO_PEERGROUPS, its cgroup) when it connects, and hand TLS connections to
// gRPC's external-connection acceptor, which runs the TLS handshake.
#pragma once

#include <grpcpp/server_builder.h>  // grpc::experimental::ExternalConnectionAcceptor
#include <sys/socket.h>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/caller_identity.h"
#include "common/accept_backoff.h"
#include "common/event_loop.h"
#include "sandbox/unique_fd.h"

namespace grpc {
class Server;
}

namespace launcher {

// Binds a unix stream socket at `path` (replacing a stale one), mode 0660,
// group `pattern-launcher` when that group exists.
sandbox::UniqueFd bind_unix_listener(const std::filesystem::path& path);
// Binds host:port (numeric host; port 0: kernel-chosen); returns the bound port too.
sandbox::UniqueFd bind_tcp_listener(const std::string& host, int port, int& bound_port);
inline sandbox::UniqueFd bind_tcp_listener(int port, int& bound_port) {
    return bind_tcp_listener("127.0.0.1", port, bound_port);
}

class ApiListener {
public:
    enum class Kind {
        kUnix,         // local callers, identified by their kernel credentials
        kInsecureTcp,  // plain TCP (api.allow_insecure_loopback): no identity but a token's
        kTls,          // mutual TLS through the external-connection acceptor
    };
    struct Connection {
        std::string transport;  // "unix", "tcp"
        std::string peer;       // "pid 12", "127.0.0.1:5555"
        std::optional<auth::UnixPeer> unix_peer;
    };
    // Whether a cgroup path (relative to the cgroup2 mount) lies in the
    // tenants' subtree.
    using TenantCgroupCheck = std::function<bool(const std::string& cgroup)>;

    explicit ApiListener(EventLoop& loop) : loop_(loop) {}
    ~ApiListener();

    // Starts accepting on `fd` (made non-blocking) once serve() is called.
    void add(sandbox::UniqueFd fd, Kind kind);
    // Where TLS connections go; must be set before serve() when a kTls
    // listener was added (it comes from the ServerBuilder, before the
    // server is built).
    void set_tls_acceptor(std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor);
    void set_tenant_cgroup_check(TenantCgroupCheck check) { in_tenant_cgroup_ = std::move(check); }
    bool has(Kind kind) const;
    // Accepted connections go to `server`, which must outlive this object
    // or stop() must be called first.
    void serve(grpc::Server& server);
    // Stops accepting (the sockets stay open: systemd may own them).
    void stop();

    // The connection behind a call's peer string (ServerContext::peer()) of
    // a unix or plain TCP connection; nullopt for any other. Any thread.
    std::optional<Connection> connection(const std::string& peer) const;

private:
    void on_connection(sandbox::UniqueFd connection, int listener_fd, Kind kind);

    EventLoop& loop_;
    grpc::Server* server_ = nullptr;
    std::vector<std::pair<sandbox::UniqueFd, Kind>> listeners_;
    std::vector<std::unique_ptr<AcceptBackoff>> acceptors_;  // one per listener, while serving
    std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> tls_acceptor_;
    TenantCgroupCheck in_tenant_cgroup_;
    mutable std::mutex peers_mutex_;
    // Connection fd -> who, read when it was accepted. An fd number is
    // reused only after gRPC closed the connection, and a new accept
    // overwrites the entry before gRPC sees the new connection.
    std::map<int, Connection> peers_;
};

// The connection fd that grpc++ 1.51 names in the peer string of a call on
// a channel added with AddInsecureChannelFromFd ("fd:7" -> 7); nullopt for
// any other peer string. Parsing a string is the only way: the fd's channel
// gets no security handshake, so its AuthContext is empty, and gRPC exposes
// no typed peer address or SO_PEERCRED credentials (grpc/grpc#15511,
// grpc/grpc#28755). The name comes from grpc_server_add_channel_from_fd in
// src/core/ext/transport/chttp2/server/chttp2_server.cc,
// `absl::StrCat("fd:", fd)`, which becomes the endpoint's peer string that
// grpc_call_get_peer() returns.
std::optional<int> connection_fd_from_peer(std::string_view peer);

}  // namespace launcher
