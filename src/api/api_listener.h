// The API's listening sockets, accepted on the event loop and handed to
// gRPC connection by connection (grpc++ 1.51 cannot adopt a listening fd).
// That is what lets the daemon serve sockets inherited from systemd without
// rebinding them, and lets it read each unix peer's credentials
// (SO_PEERCRED) for audit and, later, authorization.
#pragma once

#include <sys/socket.h>

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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
// Binds 127.0.0.1:port (0: kernel-chosen); returns the bound port too.
sandbox::UniqueFd bind_tcp_listener(int port, int& bound_port);

class ApiListener {
public:
    explicit ApiListener(EventLoop& loop) : loop_(loop) {}
    ~ApiListener();

    // Starts accepting on `fd` (made non-blocking) once serve() is called.
    void add(sandbox::UniqueFd fd);
    // Accepted connections go to `server`, which must outlive this object
    // or stop() must be called first.
    void serve(grpc::Server& server);
    // Stops accepting (the sockets stay open: systemd may own them).
    void stop();

    // Who is behind a call's peer string (ServerContext::peer()):
    // "uid 0 gid 0 pid 1234" for unix peers (SO_PEERCRED), "127.0.0.1:port"
    // for TCP ones, the peer string when it names no connection of ours.
    // Any thread.
    std::string caller(const std::string& peer) const;

private:
    void on_connection(sandbox::UniqueFd connection);

    EventLoop& loop_;
    grpc::Server* server_ = nullptr;
    std::vector<sandbox::UniqueFd> listeners_;
    std::vector<std::unique_ptr<AcceptBackoff>> acceptors_;  // one per listener, while serving
    mutable std::mutex peers_mutex_;
    std::map<int, std::string> peers_;  // connection fd -> who; overwritten on fd reuse
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
