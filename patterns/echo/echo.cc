// echo: a sample "pattern" process for pattern-launcher.
//
// Serves two stream sockets from one single-threaded epoll loop:
//   - the echo socket ("grpc"): every byte received is written back unchanged;
//   - the health socket ("health"): a minimal HTTP server answering GET /health.
//
// Sockets come from systemd-style socket activation (LISTEN_FDS, LISTEN_FDNAMES)
// when present, else are bound on 127.0.0.1:$GRPC_PORT and 127.0.0.1:$HEALTH_PORT.
// Readiness is reported with sd_notify(READY=1) when NOTIFY_SOCKET is set.
// SIGTERM/SIGINT end the process cleanly with exit status 0.
//
// Late binding (docs/late-binding.md): started by a session pool, it also
// inherits a SOCK_SEQPACKET socket named "claim" and no session. It serves
// at once (its health check passes, so the pool counts it ready); when a
// SESSION launch claims it, one JSON message on that socket gives it its
// namespace, session id, process id and config, and it answers "READY=1".
// GET /identity on the health socket says who it is now.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace {

constexpr size_t kReadChunk = 64 * 1024;
constexpr size_t kMaxHealthRequest = 8 * 1024;
constexpr int kExitUsage = 2;

[[noreturn]] void die(const std::string& msg) {
    std::fprintf(stderr, "echo: %s\n", msg.c_str());
    std::exit(kExitUsage);
}

std::string errno_text(int err) {
    return std::strerror(err);
}

// ---------------------------------------------------------------------------
// Socket setup

enum class Role { kEcho, kHealth };

struct Listener {
    int fd = -1;
    std::string origin;  // e.g. "listen-fd grpc" or "GRPC_PORT"
};

// Human-readable local address of a socket, for the startup line.
std::string describe_address(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
    char buf[INET6_ADDRSTRLEN] = {};
    switch (ss.ss_family) {
        case AF_INET: {
            auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
            inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
            return std::string(buf) + ":" + std::to_string(ntohs(sin->sin_port));
        }
        case AF_INET6: {
            auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
            inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
            return "[" + std::string(buf) + "]:" + std::to_string(ntohs(sin6->sin6_port));
        }
        case AF_UNIX: {
            auto* sa_un = reinterpret_cast<sockaddr_un*>(&ss);
            size_t path_len =
                len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
            if (path_len == 0) return "unix:(unnamed)";
            // Abstract sockets start with a NUL byte; show it as '@' like ss(8) does.
            if (sa_un->sun_path[0] == '\0')
                return "unix:@" + std::string(sa_un->sun_path + 1, path_len - 1);
            return "unix:" + std::string(sa_un->sun_path, strnlen(sa_un->sun_path, path_len));
        }
        default:
            return "family " + std::to_string(ss.ss_family);
    }
}

void set_nonblocking_cloexec(int fd) {
    // Nonblocking so a connection that vanishes between epoll and accept
    // cannot stall the loop; cloexec because we never exec anyway.
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        die("fcntl(O_NONBLOCK) on fd " + std::to_string(fd) + ": " + errno_text(errno));
    int fdflags = fcntl(fd, F_GETFD);
    if (fdflags >= 0) fcntl(fd, F_SETFD, fdflags | FD_CLOEXEC);
}

struct Sockets {
    std::optional<Listener> echo;
    std::optional<Listener> health;
    int claim = -1;  // a session pool's claim socket; -1: started with its identity
};

// Who this process serves: from the environment, or from the claim message.
struct Identity {
    std::string namespace_id;
    std::string session_id;
    std::string process_id;
    std::size_t config_keys = 0;
};

Identity identity_from_env() {
    auto env = [](const char* name) {
        const char* v = std::getenv(name);
        return std::string(v ? v : "");
    };
    return Identity{env("NAMESPACE"), env("SESSION_ID"), env("PROCESS_ID"), 0};
}

// Picks echo and health sockets out of the inherited ones. Named fds win;
// unnamed ("unknown") ones fill the remaining roles in order: echo first.
Sockets take_listen_fds(int n, char** names) {
    Sockets out;
    std::vector<bool> used(n, false);
    auto name_of = [&](int i) -> std::string { return names && names[i] ? names[i] : "unknown"; };
    auto assign = [&](std::optional<Listener>& slot, int i) {
        used[i] = true;
        slot = Listener{SD_LISTEN_FDS_START + i, "listen-fd " + name_of(i)};
    };
    for (int i = 0; i < n; ++i) {
        if (!out.echo && name_of(i) == "grpc") {
            assign(out.echo, i);
        } else if (!out.health && name_of(i) == "health") {
            assign(out.health, i);
        } else if (out.claim < 0 && name_of(i) == "claim") {
            used[i] = true;
            out.claim = SD_LISTEN_FDS_START + i;
        }
    }
    for (int i = 0; i < n; ++i) {
        if (used[i]) continue;
        std::string name = name_of(i);
        // A socket explicitly named for something else is not ours to reuse.
        if (name != "unknown" && name != "") continue;
        if (!out.echo)
            assign(out.echo, i);
        else if (!out.health)
            assign(out.health, i);
    }
    // Close inherited fds we have no role for so they do not linger.
    for (int i = 0; i < n; ++i) {
        if (!used[i]) close(SD_LISTEN_FDS_START + i);
    }
    return out;
}

void check_listening_stream(const Listener& l) {
    if (sd_is_socket(l.fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0)
        die("fd " + std::to_string(l.fd) + " (" + l.origin + ") is not a listening stream socket");
}

// Returns the number of sockets passed via LISTEN_FDS for this process (0 if
// none, or if they were meant for another process per LISTEN_PID).
int collect_activated(Sockets& out) {
    char** names = nullptr;
    // unset_environment=1: the variables describe *our* fds and must not leak
    // into anything we might start.
    int n = sd_listen_fds_with_names(1, &names);
    if (n < 0) die("sd_listen_fds_with_names: " + errno_text(-n));
    if (n > 0) out = take_listen_fds(n, names);
    if (names) {
        for (char** p = names; *p; ++p)
            free(*p);
        free(names);
    }
    return n;
}

uint16_t parse_port(const char* var, const char* text) {
    std::string_view sv(text);
    unsigned value = 0;
    auto [ptr, ec] = std::from_chars(sv.data(), sv.data() + sv.size(), value);
    if (sv.empty() || ec != std::errc() || ptr != sv.data() + sv.size() || value > 65535)
        die(std::string(var) + "=" + text + " is not a port number (0-65535)");
    return static_cast<uint16_t>(value);
}

// Binds 127.0.0.1:$var if the variable is set; port 0 picks a free port,
// which the startup line then reports.
std::optional<Listener> bind_from_env(const char* var) {
    const char* text = std::getenv(var);
    if (!text) return std::nullopt;
    uint16_t port = parse_port(var, text);

    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die(std::string("socket: ") + errno_text(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
        die("bind 127.0.0.1:" + std::to_string(port) + " (" + var + "): " + errno_text(errno));
    if (listen(fd, SOMAXCONN) != 0) die(std::string("listen: ") + errno_text(errno));
    return Listener{fd, var};
}

Sockets setup_sockets() {
    Sockets s;
    bool activation_requested = std::getenv("LISTEN_FDS") != nullptr;
    const char* listen_pid = std::getenv("LISTEN_PID");
    std::string listen_pid_text = listen_pid ? listen_pid : "unset";
    int activated = activation_requested ? collect_activated(s) : 0;

    if (!s.echo) s.echo = bind_from_env("GRPC_PORT");
    if (!s.health) s.health = bind_from_env("HEALTH_PORT");

    if (!s.echo) {
        std::string why = "no echo socket: ";
        if (activation_requested && activated == 0)
            why += "LISTEN_FDS is set but not for this process (LISTEN_PID=" + listen_pid_text +
                   ", pid=" + std::to_string(getpid()) + ") and GRPC_PORT is not set";
        else if (activation_requested)
            why += "no usable fd among LISTEN_FDS and GRPC_PORT is not set";
        else
            why += "neither LISTEN_FDS nor GRPC_PORT is set";
        die(why);
    }
    for (auto* l : {&s.echo, &s.health}) {
        if (!*l) continue;
        check_listening_stream(**l);
        set_nonblocking_cloexec((*l)->fd);
    }
    return s;
}

// ---------------------------------------------------------------------------
// Connections

struct Conn {
    int fd = -1;
    Role role = Role::kEcho;
    std::string in;      // health: request bytes so far
    std::string out;     // bytes accepted but not yet written
    size_t out_off = 0;  // how much of `out` is already written
    bool close_after_write = false;
};

std::string http_response(int code, std::string_view reason, std::string_view body) {
    std::string r = "HTTP/1.1 " + std::to_string(code) + " " + std::string(reason) + "\r\n";
    r += "Content-Type: text/plain\r\n";
    r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    r += "Connection: close\r\n\r\n";
    r += body;
    return r;
}

// Builds the reply for a complete request head (everything before the blank line).
std::string health_reply(std::string_view head) {
    std::string_view line = head.substr(0, head.find_first_of("\r\n"));
    // Request line: METHOD SP TARGET SP VERSION. Query strings are ignored.
    size_t sp1 = line.find(' ');
    std::string_view method = line.substr(0, sp1);
    std::string_view target;
    if (sp1 != std::string_view::npos) {
        target = line.substr(sp1 + 1);
        target = target.substr(0, target.find(' '));
        target = target.substr(0, target.find('?'));
    }
    if (method == "GET" && target == "/health") return http_response(200, "OK", "ok\n");
    return http_response(404, "Not Found", "not found\n");
}

std::string identity_reply(const Identity& id) {
    return http_response(200, "OK",
                         "namespace=" + id.namespace_id + "\nsession_id=" + id.session_id +
                             "\nprocess_id=" + id.process_id +
                             "\nconfig_keys=" + std::to_string(id.config_keys) + "\n");
}

// Position just past the blank line ending an HTTP head, if present. Bare LF
// line endings are accepted too; some hand-written probes use them.
std::optional<size_t> head_end(const std::string& buf) {
    size_t crlf = buf.find("\r\n\r\n");
    size_t lf = buf.find("\n\n");
    if (crlf == std::string::npos && lf == std::string::npos) return std::nullopt;
    if (lf == std::string::npos || (crlf != std::string::npos && crlf < lf)) return crlf + 4;
    return lf + 2;
}

class Server {
public:
    Server(Sockets sockets, int sigfd)
        : sockets_(std::move(sockets)), sigfd_(sigfd), identity_(identity_from_env()) {}
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    void setup();
    int run();

private:
    void watch(int fd, uint32_t events, bool add);
    void on_listener(int fd, Role role);
    void on_conn(Conn& c, uint32_t events);
    void read_echo(Conn& c);
    void read_health(Conn& c);
    // Writes pending output; returns false if the connection was closed.
    bool flush(Conn& c);
    void update_interest(Conn& c);
    void close_conn(int fd);
    void pause_listeners();
    void resume_listeners();
    void on_claim();

    Sockets sockets_;
    int sigfd_;
    Identity identity_;
    int epfd_ = -1;
    bool listeners_paused_ = false;
    std::unordered_map<int, std::unique_ptr<Conn>> conns_;
};

Server::~Server() {
    for (auto& [fd, c] : conns_)
        close(fd);
    if (sockets_.echo) close(sockets_.echo->fd);
    if (sockets_.health) close(sockets_.health->fd);
    if (sockets_.claim >= 0) close(sockets_.claim);
    if (epfd_ >= 0) close(epfd_);
}

void Server::watch(int fd, uint32_t events, bool add) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    if (epoll_ctl(epfd_, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev) != 0)
        die("epoll_ctl: " + errno_text(errno));
}

void Server::setup() {
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) die("epoll_create1: " + errno_text(errno));
    watch(sigfd_, EPOLLIN, true);
    watch(sockets_.echo->fd, EPOLLIN, true);
    if (sockets_.health) watch(sockets_.health->fd, EPOLLIN, true);
    if (sockets_.claim >= 0) watch(sockets_.claim, EPOLLIN, true);
}

// The claim: one message, one answer, then the socket is closed. A message
// that is not a claim is refused with ERROR=, and the process exits: the
// launcher fails that launch and the pool starts another one.
void Server::on_claim() {
    std::string buf(64 * 1024, '\0');
    ssize_t n = recv(sockets_.claim, buf.data(), buf.size(), 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (n <= 0)
        die(n == 0 ? "the launcher closed the claim socket" : "claim: " + errno_text(errno));
    buf.resize(static_cast<size_t>(n));
    const nlohmann::json j = nlohmann::json::parse(buf, nullptr, false);
    std::string error;
    if (j.is_discarded() || !j.is_object() ||
        !j.value("session_id", nlohmann::json()).is_string() ||
        !j.value("namespace", nlohmann::json()).is_string() ||
        !j.value("process_id", nlohmann::json()).is_string() ||
        !j.value("config", nlohmann::json()).is_object()) {
        error = "ERROR=echo: not a claim message";
    } else if (j["namespace"].get<std::string>() != identity_.namespace_id) {
        // The pool is per tenant: a claim for another one is a launcher bug.
        error = "ERROR=echo: started for namespace '" + identity_.namespace_id + "'";
    }
    if (!error.empty()) {
        send(sockets_.claim, error.data(), error.size(), MSG_NOSIGNAL);
        die(error.substr(6));
    }
    identity_.session_id = j["session_id"].get<std::string>();
    identity_.process_id = j["process_id"].get<std::string>();
    identity_.config_keys = j["config"].size();
    static constexpr std::string_view kReady = "READY=1";
    if (send(sockets_.claim, kReady.data(), kReady.size(), MSG_NOSIGNAL) < 0)
        die("claim answer: " + errno_text(errno));
    epoll_ctl(epfd_, EPOLL_CTL_DEL, sockets_.claim, nullptr);
    close(sockets_.claim);
    sockets_.claim = -1;
    std::fprintf(stderr, "echo: claimed as %s\n", identity_.process_id.c_str());
}

// Out of fds or memory: stop accepting until a connection closes, otherwise
// the level-triggered listener would spin the loop at 100% CPU.
void Server::pause_listeners() {
    if (listeners_paused_) return;
    listeners_paused_ = true;
    watch(sockets_.echo->fd, 0, false);
    if (sockets_.health) watch(sockets_.health->fd, 0, false);
}

void Server::resume_listeners() {
    if (!listeners_paused_) return;
    listeners_paused_ = false;
    watch(sockets_.echo->fd, EPOLLIN, false);
    if (sockets_.health) watch(sockets_.health->fd, EPOLLIN, false);
}

void Server::on_listener(int fd, Role role) {
    for (;;) {
        int cfd = accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                pause_listeners();
            return;  // EAGAIN: drained the backlog
        }
        auto c = std::make_unique<Conn>();
        c->fd = cfd;
        c->role = role;
        conns_.emplace(cfd, std::move(c));
        watch(cfd, EPOLLIN, true);
    }
}

void Server::close_conn(int fd) {
    epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
    close(fd);
    conns_.erase(fd);
    resume_listeners();
}

bool Server::flush(Conn& c) {
    while (c.out_off < c.out.size()) {
        ssize_t n = send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
            close_conn(c.fd);
            return false;
        }
        c.out_off += static_cast<size_t>(n);
    }
    c.out.clear();
    c.out_off = 0;
    if (c.close_after_write) {
        close_conn(c.fd);
        return false;
    }
    return true;
}

// While output is pending we stop reading: that is the backpressure that keeps
// a fast sender with a slow reader from growing our buffer without bound.
void Server::update_interest(Conn& c) {
    bool pending = c.out_off < c.out.size();
    uint32_t events = pending ? EPOLLOUT : (c.close_after_write ? 0u : EPOLLIN);
    watch(c.fd, events, false);
}

void Server::read_echo(Conn& c) {
    char buf[kReadChunk];
    ssize_t n = recv(c.fd, buf, sizeof(buf), 0);
    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) return;
        close_conn(c.fd);
        return;
    }
    if (n == 0) {
        // Peer finished sending (maybe only half-closed): everything has
        // already been echoed since we never read while output is pending.
        close_conn(c.fd);
        return;
    }
    c.out.assign(buf, static_cast<size_t>(n));
    c.out_off = 0;
    if (flush(c)) update_interest(c);
}

void Server::read_health(Conn& c) {
    char buf[4096];
    ssize_t n = recv(c.fd, buf, sizeof(buf), 0);
    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) return;
        close_conn(c.fd);
        return;
    }
    if (n == 0) {  // gave up before finishing the request
        close_conn(c.fd);
        return;
    }
    c.in.append(buf, static_cast<size_t>(n));
    std::optional<size_t> end = head_end(c.in);
    if (end && *end <= kMaxHealthRequest) {
        const std::string_view head = std::string_view(c.in).substr(0, *end);
        c.out = head.starts_with("GET /identity ") ? identity_reply(identity_) : health_reply(head);
    } else if (c.in.size() > kMaxHealthRequest) {
        c.out = http_response(431, "Request Header Fields Too Large", "request too large\n");
    } else {
        return;  // need more bytes
    }
    c.in.clear();
    c.out_off = 0;
    c.close_after_write = true;
    if (flush(c)) update_interest(c);
}

void Server::on_conn(Conn& c, uint32_t events) {
    // With output pending we only write, even on HUP/ERR (which epoll reports
    // regardless of interest): send then fails and the connection is closed.
    if (c.out_off < c.out.size()) {
        if (flush(c)) update_interest(c);
        return;
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        // recv reports EOF or the pending error, so it handles HUP/ERR too.
        if (c.role == Role::kEcho)
            read_echo(c);
        else
            read_health(c);
    }
}

int Server::run() {
    epoll_event events[64];
    for (;;) {
        int n = epoll_wait(epfd_, events, 64, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait: " + errno_text(errno));
        }
        for (int i = 0; i < n; ++i) {
            int fd = events[i].data.fd;
            if (fd == sigfd_) {
                signalfd_siginfo si{};
                if (read(sigfd_, &si, sizeof(si)) == sizeof(si))
                    std::fprintf(stderr, "echo: got %s, exiting\n", strsignal(si.ssi_signo));
                return 0;
            }
            if (fd == sockets_.claim) {
                on_claim();
            } else if (fd == sockets_.echo->fd) {
                on_listener(fd, Role::kEcho);
            } else if (sockets_.health && fd == sockets_.health->fd) {
                on_listener(fd, Role::kHealth);
            } else if (auto it = conns_.find(fd); it != conns_.end()) {
                on_conn(*it->second, events[i].events);
            }
        }
    }
}

// ---------------------------------------------------------------------------

// SIGTERM/SIGINT become readable events so shutdown happens between requests,
// never in the middle of one; SIGPIPE is ignored as a second line behind
// MSG_NOSIGNAL.
int setup_signals() {
    signal(SIGPIPE, SIG_IGN);
    // An ignored signal is discarded before it could reach the signalfd, and
    // ignored dispositions survive exec: undo any our parent left behind.
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    if (sigprocmask(SIG_BLOCK, &mask, nullptr) != 0) die("sigprocmask: " + errno_text(errno));
    int fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) die("signalfd: " + errno_text(errno));
    return fd;
}

void notify_ready() {
    if (!std::getenv("NOTIFY_SOCKET")) return;
    int r = sd_notify(0, "READY=1\nSTATUS=echo serving");
    if (r < 0) std::fprintf(stderr, "echo: sd_notify failed: %s\n", errno_text(-r).c_str());
}

}  // namespace

int main() {
    // Signals first: a SIGTERM that arrives during setup must still mean a
    // clean exit, not death by the default action.
    int sigfd = setup_signals();
    Sockets sockets = setup_sockets();

    std::string line = "echo: serving echo on " + describe_address(sockets.echo->fd) + " (" +
                       sockets.echo->origin + ")";
    if (sockets.health)
        line += ", health on " + describe_address(sockets.health->fd) + " (" +
                sockets.health->origin + ")";
    else
        line += ", no health socket";
    std::fprintf(stderr, "%s\n", line.c_str());

    Server server(std::move(sockets), sigfd);
    server.setup();
    notify_ready();
    int rc = server.run();
    close(sigfd);
    return rc;
}
