// Issue 12's hostile client: thousands of random but well-formed requests of
// every PatternLauncher RPC (hand-encoded protobuf, so that out-of-range
// enums, invalid UTF-8, NUL bytes, huge and empty fields and unknown fields
// reach the daemon exactly as written), garbage bytes on the API's unix
// socket and a few hundred idle connections. The daemon must answer every
// call with a status, keep its pid, and keep its descriptors and memory flat.
//
// The seed is fixed and printed; PL_HOSTILE_SEED=N replays another run, and
// PL_HOSTILE_REQUESTS=N changes how many random requests are sent.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "process_usage.h"
#include "sandbox/unique_fd.h"
#include "test_daemon.h"

namespace {

using namespace pltest;
using namespace std::chrono_literals;

constexpr std::uint64_t kDefaultSeed = 20240612;
constexpr int kDefaultRequests = 3000;
constexpr std::size_t kHuge = 3 * 1024 * 1024;  // 3 MiB: below gRPC's 4 MiB receive limit

std::uint64_t env_number(const char* name, std::uint64_t fallback) {
    const char* text = std::getenv(name);
    return text && *text ? std::strtoull(text, nullptr, 0) : fallback;
}

// ---- protobuf wire format, by hand ------------------------------------------------

struct Wire {
    std::string bytes;
    void varint(std::uint64_t v) {
        while (v >= 0x80) {
            bytes.push_back(static_cast<char>((v & 0x7f) | 0x80));
            v >>= 7;
        }
        bytes.push_back(static_cast<char>(v));
    }
    void tag(std::uint32_t field, int type) { varint((std::uint64_t{field} << 3) | type); }
    // int32 and enum values are sign-extended to 10 bytes when negative.
    void int_field(std::uint32_t field, std::int64_t v) {
        tag(field, 0);
        varint(static_cast<std::uint64_t>(v));
    }
    void bytes_field(std::uint32_t field, const std::string& v) {
        tag(field, 2);
        varint(v.size());
        bytes += v;
    }
};

std::string hex_prefix(const std::string& bytes, std::size_t max = 96) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < bytes.size() && i < max; ++i) {
        out += digits[static_cast<unsigned char>(bytes[i]) >> 4];
        out += digits[static_cast<unsigned char>(bytes[i]) & 15];
    }
    if (bytes.size() > max) out += "...(" + std::to_string(bytes.size()) + " bytes)";
    return out;
}

// ---- random hostile values ----------------------------------------------------------

class Hostile {
public:
    explicit Hostile(std::uint64_t seed) : rng_(seed) {}

    int below(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
    bool chance(double p) { return std::bernoulli_distribution(p)(rng_); }
    std::uint64_t u64() { return rng_(); }

    std::string bytes(std::size_t n) {
        std::string s(n, '\0');
        for (auto& c : s)
            c = static_cast<char>(below(256));
        return s;
    }

    // Empty, plausible, path-like, unicode, invalid UTF-8, NUL, long, huge.
    std::string text() {
        static const std::vector<std::string> fixed = {
            "",
            "a",
            "sleeper",
            "../x",
            "..",
            ".",
            "/",
            "/etc/passwd",
            "a/../../b",
            "x/..",
            "shared:sleeper",
            "ns:a:sleeper",
            "ns:..:sleeper",
            "session:s:ns",
            "-rf",
            " ",
            std::string("a\0b", 3),
            std::string(1, '\0'),
            "\n",
            "a\nb: forged",
            "%s%n%x",
            "\xc3\xb1",
            "\xe5\x90\x8d\xe5\x89\x8d",
            "\xf0\x9f\x92\xa3",
            "\xe2\x80\xae",
            "\xef\xbb\xbf",
            "e\xcc\x81",  // valid unicode: combining accent
            "\xff\xfe",
            "\xc0\xaf",
            "\xed\xa0\x80",
            "\xe2\x82",
            "\x80",
            "\xf4\x90\x80\x80",  // invalid UTF-8
        };
        switch (below(10)) {
            case 0:
            case 1:
            case 2:
                return fixed[static_cast<std::size_t>(below(static_cast<int>(fixed.size())))];
            case 3: {
                std::string s;
                for (int i = 0, n = 1 + below(24); i < n; ++i)
                    s += "abcxyz0189-_."[below(13)];
                return s;
            }
            case 4: {  // any bytes, or control characters that are valid UTF-8
                std::string s = bytes(static_cast<std::size_t>(below(300)));
                if (chance(0.5)) {
                    for (auto& c : s)
                        c = static_cast<char>(c & 0x7f);
                }
                return s;
            }
            case 5:
                return std::string(static_cast<std::size_t>(60 + below(10)), 'a');
            case 6:
                return std::string(static_cast<std::size_t>(1000 + below(100000)), 'n');
            case 7:
                if (chance(0.05)) return std::string(kHuge, 'h');
                return fixed[static_cast<std::size_t>(below(static_cast<int>(fixed.size())))] +
                       bytes(static_cast<std::size_t>(below(8)));
            default:
                return "";
        }
    }

    // An enum number: in range, just outside, or any int32.
    std::int64_t enum_value(int max) {
        switch (below(6)) {
            case 0:
                return INT32_MIN;
            case 1:
                return INT32_MAX;
            case 2:
                return -1;
            case 3:
                return static_cast<std::int32_t>(u64());
            case 4:
                return max + 1 + below(5);
            default:
                return below(max + 1);
        }
    }

    std::int64_t grace() {
        switch (below(8)) {
            case 0:
                return INT64_MIN;
            case 1:
                return INT64_MAX;
            case 2:
                return -1;
            case 3:
                return 86401;
            case 4:
                return static_cast<std::int64_t>(u64());
            case 5:
                return INT64_MAX / 1000 + 1;  // overflows a conversion to milliseconds
            default:
                return 0;
        }
    }

    // Fields the proto does not know: proto3 keeps them and must not choke.
    void unknown_fields(Wire& w) {
        for (int i = 0, n = below(4); i < n; ++i) {
            const std::uint32_t field = 30 + static_cast<std::uint32_t>(u64() % ((1u << 29) - 31));
            switch (below(4)) {
                case 0:
                    w.int_field(field, static_cast<std::int64_t>(u64()));
                    break;
                case 1:
                    w.tag(field, 1);
                    w.bytes += bytes(8);
                    break;
                case 2:
                    w.bytes_field(field, bytes(static_cast<std::size_t>(below(64))));
                    break;
                default:
                    w.tag(field, 5);
                    w.bytes += bytes(4);
                    break;
            }
        }
    }

private:
    std::mt19937_64 rng_;
};

// ---- one random request ------------------------------------------------------------

struct Request {
    std::string method;  // "/prism.launcher.PatternLauncher/X"
    std::string what;    // a short description for a failure message
    std::string bytes;
};

// The only pattern the daemon knows; a request may be valid and start it,
// with namespaces and sessions from a small set so that few keys exist.
const char* kPattern = "sleeper";

Request launch_request(Hostile& h, const std::vector<std::string>& config_keys) {
    Wire w;
    std::string what = "LaunchPattern";
    const bool plausible = h.chance(0.5);
    const std::string pattern = plausible ? kPattern : h.text();
    w.bytes_field(1, pattern);
    const std::int64_t isolation = plausible && h.chance(0.6) ? 1 + h.below(3) : h.enum_value(3);
    w.int_field(2, isolation);
    const std::string ns = plausible && h.chance(0.6) ? (h.chance(0.5) ? "a" : "b") : h.text();
    w.bytes_field(3, ns);
    const std::string session = plausible && h.chance(0.6) ? "s1" : h.text();
    w.bytes_field(4, session);
    int entries = 0;
    switch (h.below(10)) {
        case 0:
            entries = h.chance(0.1) ? 10000 : 65;
            break;
        case 1:
        case 2:
            entries = 1 + h.below(5);
            break;
        default:
            break;
    }
    bool huge_value = false;
    for (int i = 0; i < entries; ++i) {
        Wire entry;
        entry.bytes_field(1, h.chance(0.8) ? "K" + std::to_string(i)
                                           : config_keys[static_cast<std::size_t>(
                                                 h.below(static_cast<int>(config_keys.size())))]);
        std::string value = entries <= 5 ? h.text() : "v";
        if (entries <= 5 && h.chance(0.02)) {
            value = std::string(kHuge, 'v');
            huge_value = true;
        }
        entry.bytes_field(2, value);
        w.bytes_field(5, entry.bytes);
    }
    const std::int64_t grace = h.chance(0.5) ? 0 : h.grace();
    w.int_field(6, grace);
    h.unknown_fields(w);
    what += " pattern_size=" + std::to_string(pattern.size()) +
            " isolation=" + std::to_string(isolation) + " ns_size=" + std::to_string(ns.size()) +
            " session_size=" + std::to_string(session.size()) +
            " config_entries=" + std::to_string(entries) + (huge_value ? " (3 MiB value)" : "") +
            " grace=" + std::to_string(grace);
    return {"/prism.launcher.PatternLauncher/LaunchPattern", what, w.bytes};
}

Request random_request(Hostile& h, const std::vector<std::string>& known_ids) {
    static const std::vector<std::string> config_keys = {"GRPC_PORT",
                                                         "PATH",
                                                         "LD_PRELOAD",
                                                         "",
                                                         "1BAD",
                                                         "BAD-NAME",
                                                         std::string("N\0UL", 4),
                                                         std::string(200, 'K'),
                                                         "\xff",
                                                         "HOME",
                                                         "MISBEHAVE_MODE",
                                                         "PATTERN_ID"};
    Wire w;
    switch (h.below(7)) {
        case 0:
        case 1:
            return launch_request(h, config_keys);
        case 2: {
            w.bytes_field(1, h.text());
            w.bytes_field(2, h.text());
            const std::int64_t state = h.enum_value(6);
            w.int_field(3, state);
            h.unknown_fields(w);
            return {"/prism.launcher.PatternLauncher/ListPatterns",
                    "ListPatterns state=" + std::to_string(state), w.bytes};
        }
        case 3: {
            // A real key only with a short grace: a long one is a legitimate wait.
            const bool real = !known_ids.empty() && h.chance(0.1);
            const std::string id = real ? known_ids[static_cast<std::size_t>(
                                              h.below(static_cast<int>(known_ids.size())))]
                                        : h.text();
            const std::int64_t grace = real ? h.below(2) : h.grace();
            w.bytes_field(1, id);
            w.int_field(2, grace);
            w.int_field(3, static_cast<std::int64_t>(h.u64() % 3));
            h.unknown_fields(w);
            return {"/prism.launcher.PatternLauncher/TerminatePattern",
                    "TerminatePattern id_size=" + std::to_string(id.size()) +
                        " grace=" + std::to_string(grace),
                    w.bytes};
        }
        case 4:
            w.int_field(1, static_cast<std::int64_t>(h.u64()));  // a bool of 64 random bits
            h.unknown_fields(w);
            return {"/prism.launcher.PatternLauncher/Health", "Health", w.bytes};
        case 5: {
            const std::string id = h.text();
            w.bytes_field(1, id);
            h.unknown_fields(w);
            return {"/prism.launcher.PatternLauncher/GetProcessStatus",
                    "GetProcessStatus id_size=" + std::to_string(id.size()), w.bytes};
        }
        default:
            if (h.chance(0.3)) {  // Reload re-reads the manifests: fewer of them
                h.unknown_fields(w);
                return {"/prism.launcher.PatternLauncher/Reload", "Reload", w.bytes};
            }
            // Not protobuf at all, or a truncated message: the server's parse fails.
            w.bytes = h.chance(0.5) ? h.bytes(static_cast<std::size_t>(1 + h.below(64)))
                                    : std::string(
                                          "\x0a\x7f"
                                          "abc",
                                          5);
            return {h.chance(0.5) ? "/prism.launcher.PatternLauncher/LaunchPattern"
                                  : "/prism.launcher.PatternLauncher/GetProcessStatus",
                    "malformed protobuf", w.bytes};
    }
}

// ---- sending ---------------------------------------------------------------------

std::shared_ptr<grpc::Channel> own_channel(const std::string& socket) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 100);
    return grpc::CreateCustomChannel("unix:" + socket, grpc::InsecureChannelCredentials(), args);
}

struct Outcome {
    bool answered = false;  // the callback ran before our own watchdog
    grpc::Status status;
    std::string response;
};

// On a completion queue of its own that this thread drains, not with the
// callback API: the callback runs on a gRPC thread, and handing its result
// over through gRPC's own (uninstrumented) locks looks like a race to TSan.
Outcome call(grpc::GenericStub& stub, const Request& request, std::chrono::seconds deadline) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + deadline);
    grpc::Slice slice(request.bytes);
    grpc::ByteBuffer in(&slice, 1), out;
    grpc::CompletionQueue cq;
    std::unique_ptr<grpc::GenericClientAsyncResponseReader> rpc =
        stub.PrepareUnaryCall(&ctx, request.method, in, &cq);
    rpc->StartCall();
    Outcome outcome;
    rpc->Finish(&out, &outcome.status, &outcome);
    void* tag = nullptr;
    bool ok = false;
    // The deadline ends the call; this only guards against a client that hangs.
    const auto watchdog = std::chrono::system_clock::now() + deadline + 10s;
    if (cq.AsyncNext(&tag, &ok, watchdog) != grpc::CompletionQueue::GOT_EVENT) {
        ctx.TryCancel();
        cq.Next(&tag, &ok);
        outcome.status = grpc::Status();
        cq.Shutdown();
        while (cq.Next(&tag, &ok)) {
        }
        return outcome;
    }
    cq.Shutdown();
    while (cq.Next(&tag, &ok)) {
    }
    outcome.answered = true;
    std::vector<grpc::Slice> slices;
    if (outcome.status.ok() && out.Dump(&slices).ok()) {
        for (const auto& s : slices)
            outcome.response.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    return outcome;
}

// A status the daemon may answer with. DEADLINE_EXCEEDED is a hang;
// UNAVAILABLE is a dropped connection unless it is the launcher's own
// "process ... is terminating / was terminated" answer to a launch.
bool acceptable(const Request& request, const grpc::Status& s) {
    switch (s.error_code()) {
        case grpc::StatusCode::OK:
        case grpc::StatusCode::INVALID_ARGUMENT:
        case grpc::StatusCode::NOT_FOUND:
        case grpc::StatusCode::PERMISSION_DENIED:
        case grpc::StatusCode::FAILED_PRECONDITION:
        case grpc::StatusCode::RESOURCE_EXHAUSTED:
            return true;
        // A request that does not parse (malformed, or invalid UTF-8 in a
        // proto3 string) never reaches the service: gRPC's callback API
        // (1.51, server_callback_handlers.h) answers UNIMPLEMENTED with no
        // message, other versions INTERNAL.
        case grpc::StatusCode::UNIMPLEMENTED:
            return s.error_message().empty();
        case grpc::StatusCode::INTERNAL:
            return true;
        case grpc::StatusCode::UNAVAILABLE:
            return request.method.ends_with("/LaunchPattern") &&
                   s.error_message().starts_with("process ");
        default:
            return false;
    }
}

// LaunchResponse.process_id (field 1) of an OK answer.
std::string process_id_of(const std::string& response) {
    if (response.size() < 2 || response[0] != '\x0a') return {};
    const auto len = static_cast<unsigned char>(response[1]);
    if (len >= 0x80 || response.size() < 2u + len) return {};
    return response.substr(2, len);
}

struct RunResult {
    std::vector<std::string> failures;
    std::set<std::string> launched;  // process ids of launches answered OK
    std::map<int, int> codes;        // status code -> count
};

// `count` random requests from `threads` threads, each on its own connection.
RunResult run_random(const std::string& socket, std::uint64_t seed, int count, int threads) {
    RunResult result;
    std::mutex mutex;
    std::vector<std::string> known_ids = {"shared:sleeper", "ns:a:sleeper", "ns:b:sleeper"};
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            Hostile h(seed + static_cast<std::uint64_t>(t));
            auto channel = own_channel(socket);
            grpc::GenericStub stub(channel);
            for (int i = t; i < count; i += threads) {
                Request request = random_request(h, known_ids);
                Outcome outcome = call(stub, request, 10s);
                std::lock_guard lock(mutex);
                if (!outcome.answered || !acceptable(request, outcome.status)) {
                    result.failures.push_back(
                        request.what + " bytes=" + hex_prefix(request.bytes) + " -> " +
                        (outcome.answered
                             ? "status " + std::to_string(outcome.status.error_code()) + " '" +
                                   outcome.status.error_message() + "'"
                             : std::string("no answer at all")));
                    continue;
                }
                ++result.codes[outcome.status.error_code()];
                if (outcome.status.ok() && request.method.ends_with("/LaunchPattern")) {
                    result.launched.insert(process_id_of(outcome.response));
                }
            }
        });
    }
    for (auto& w : workers)
        w.join();
    return result;
}

// ---- raw bytes on the API socket ---------------------------------------------------------

constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";  // RFC 9113 §3.4, 24 bytes

sandbox::UniqueFd connect_raw(const std::string& path) {
    sandbox::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    if (!fd || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ADD_FAILURE() << "connect " << path << ": " << std::strerror(errno);
        return {};
    }
    return fd;
}

void send_all(int fd, const std::string& bytes) {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
        ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) return;  // the daemon closed on us: that is an answer too
        sent += static_cast<std::size_t>(n);
    }
}

// True once the daemon has closed its end (EOF or reset) within `within`.
bool closed_by_peer(int fd, std::chrono::milliseconds within) {
    const auto deadline = std::chrono::steady_clock::now() + within;
    char buf[4096];
    while (std::chrono::steady_clock::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) return true;  // whatever it wrote first (SETTINGS, GOAWAY) is read and dropped
    }
    return false;
}

// An HTTP/2 frame header (RFC 9113 §4.1) and payload.
std::string frame(std::uint32_t length, std::uint8_t type, std::uint8_t flags, std::uint32_t stream,
                  const std::string& payload) {
    std::string f;
    f += static_cast<char>(length >> 16);
    f += static_cast<char>(length >> 8);
    f += static_cast<char>(length);
    f += static_cast<char>(type);
    f += static_cast<char>(flags);
    f += static_cast<char>(stream >> 24);
    f += static_cast<char>(stream >> 16);
    f += static_cast<char>(stream >> 8);
    f += static_cast<char>(stream);
    return f + payload;
}

// ---- the fixture ----------------------------------------------------------------------

class HostileClientTest : public ::testing::Test {
protected:
    void SetUp() override {
        seed_ = env_number("PL_HOSTILE_SEED", kDefaultSeed);
        std::cout << "[ seed     ] PL_HOSTILE_SEED=" << seed_ << std::endl;
        RecordProperty("seed", std::to_string(seed_));
        d_.add_pattern(kPattern, misbehave_manifest("sleep"));
        // A fixed mmap threshold (glibc's dynamic one climbs to 32 MiB after
        // the first large free): every block of 128 KiB or more, such as a
        // 3 MiB request, is mapped on its own and unmapped when freed, so
        // VmRSS shows what the daemon keeps, not what glibc's arenas cache.
        d_.add_env("GLIBC_TUNABLES=glibc.malloc.mmap_threshold=131072");
        d_.start();
        pid_ = d_.pid();
    }

    // Still the same process, and its API still answers.
    void expect_alive_and_healthy() {
        EXPECT_TRUE(process_alive(pid_)) << "the daemon died; its log:\n" << tail_of_log();
        EXPECT_EQ(d_.pid(), pid_);
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + 10s);
        pb::HealthRequest req;
        pb::HealthResponse resp;
        grpc::Status s = d_.connect()->Health(&ctx, req, &resp);
        EXPECT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
    }

    std::string tail_of_log() {
        std::string log = d_.log();
        return log.size() > 4000 ? log.substr(log.size() - 4000) : log;
    }

    std::uint64_t seed_ = 0;
    TestDaemon d_;
    pid_t pid_ = -1;
};

void report(const RunResult& r) {
    std::cout << "[ statuses ]";
    for (const auto& [code, n] : r.codes)
        std::cout << " code" << code << "=" << n;
    std::cout << "; launched " << r.launched.size() << " key(s)" << std::endl;
    for (std::size_t i = 0; i < r.failures.size() && i < 10; ++i)
        ADD_FAILURE() << r.failures[i];
    EXPECT_TRUE(r.failures.empty()) << r.failures.size() << " call(s) without an acceptable status";
}

// The 10,000-entry, 3 MiB and 5 MiB requests, whatever the seed drew, from
// `threads` connections at once. None of them is valid.
void send_huge(const std::string& socket, int threads) {
    Wire many;
    many.bytes_field(1, kPattern);
    many.int_field(2, 2);
    many.bytes_field(3, "a");
    for (int i = 0; i < 10000; ++i) {
        Wire entry;
        entry.bytes_field(1, "K" + std::to_string(i));
        entry.bytes_field(2, std::string("v\0", 2));
        many.bytes_field(5, entry.bytes);
    }
    Wire huge;
    huge.bytes_field(1, kPattern);
    huge.int_field(2, 1);
    Wire entry;
    entry.bytes_field(1, "BIG");
    entry.bytes_field(2, std::string(kHuge, '\0'));
    huge.bytes_field(5, entry.bytes);
    Wire over;  // past the 4 MiB receive limit: RESOURCE_EXHAUSTED
    over.bytes_field(1, std::string(5 * 1024 * 1024, 'o'));
    const std::string launch = "/prism.launcher.PatternLauncher/LaunchPattern";
    const std::vector<Request> requests = {
        {launch, "10,000 config entries", many.bytes},
        {launch, "a 3 MiB config value of NUL bytes", huge.bytes},
        {launch, "a 5 MiB pattern_name", over.bytes}};
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&] {
            auto channel = own_channel(socket);
            grpc::GenericStub stub(channel);
            for (const Request& r : requests) {
                Outcome o = call(stub, r, 10s);
                EXPECT_TRUE(o.answered && acceptable(r, o.status))
                    << r.what << " -> " << o.status.error_code() << " " << o.status.error_message();
                EXPECT_FALSE(o.status.ok()) << r.what << " was accepted";
            }
        });
    }
    for (auto& w : workers)
        w.join();
}

TEST_F(HostileClientTest, RandomRequestsEachGetAStatusAndLeakNothing) {
    const int count = static_cast<int>(env_number("PL_HOSTILE_REQUESTS", kDefaultRequests));
    std::set<std::string> launched;  // every key a launch was answered OK for
    // Force-terminates every key, so that a measurement counts no pattern's
    // pidfd, cgroup or pipe: what remains is the API's own.
    auto terminate_all = [&] {
        const pb::ListPatternsResponse keys = d_.list();
        for (const pb::PatternInfo& p : keys.patterns()) {
            EXPECT_TRUE(launched.count(p.process_id()))
                << "key " << p.process_id() << " exists, but no launch was answered OK for it";
            pb::TerminateResponse r;
            grpc::Status s = d_.terminate(p.process_id(), &r, 0, true);
            EXPECT_TRUE(s.ok() || s.error_code() == grpc::StatusCode::NOT_FOUND)
                << p.process_id() << ": " << s.error_message();
        }
    };

    // Warm-up: the same mix, and the huge requests from as many connections
    // as the run uses, so that gRPC's threads and connections and the
    // allocator's arenas exist before the baseline is taken.
    RunResult warm = run_random(d_.socket(), seed_ ^ 0x5eed, std::max(count / 10, 50), 4);
    report(warm);
    send_huge(d_.socket(), 4);
    launched.insert(warm.launched.begin(), warm.launched.end());
    terminate_all();
    // The workers' connections are closed; the fixture's own channel stays.
    const int fds_before = settle_fds(pid_, 0, 500ms);
    const auto kinds_before = fd_kinds(pid_);
    const long rss_before = rss_kib(pid_);

    RunResult run = run_random(d_.socket(), seed_, count, 4);
    report(run);
    send_huge(d_.socket(), 4);
    launched.insert(run.launched.begin(), run.launched.end());
    expect_alive_and_healthy();
    // No key but those a valid launch created (checked by terminate_all).
    terminate_all();

    // Descriptors: back to the baseline once our connections are closed and
    // the keys terminated. ±5 leaves room for what gRPC opens lazily (an
    // eventfd or epoll set of a new pool thread) and a connection still
    // being torn down; one leaked descriptor per request would be hundreds.
    const int fds_after = settle_fds(pid_, fds_before + 5);
    EXPECT_LE(fds_after, fds_before + 5)
        << "fds before " << fds_before << ":" << describe_fds(kinds_before) << "\nafter "
        << fds_after << ":" << describe_fds(fd_kinds(pid_));
    // Memory: < 20 MiB above the warm-up's. With the fixed mmap threshold
    // (SetUp) a run of 1,000 to 10,000 requests moved VmRSS by -2..+8 MiB
    // here; without it glibc's arenas kept 16..70 MiB of freed 3 MiB blocks,
    // growing with the number of them, which would hide a leak. Keeping 7 of
    // the ~50 3 MiB requests of a run, or ~7 KiB per request, exceeds it.
    const long rss_after = rss_kib(pid_);
    std::cout << "[ usage    ] fds " << fds_before << " -> " << fds_after << ", VmRSS "
              << rss_before << " -> " << rss_after << " KiB" << std::endl;
    expect_rss_growth_below(rss_before, rss_after, 20 * 1024, "random requests");
}

TEST_F(HostileClientTest, GarbageOnTheSocketIsRefusedAndClosed) {
    Hostile h(seed_);
    const int fds_before = fd_count(pid_);
    const long rss_before = rss_kib(pid_);
    // A valid SETTINGS frame, then an ACK, so the junk after it is parsed as frames.
    const std::string settings = frame(0, 4, 0, 0, "");
    for (int i = 0; i < 300; ++i) {
        std::string bytes, what;
        bool half_close = true;
        switch (i % 6) {
            case 0:
                what = "not HTTP/2: an HTTP/1.1 request";
                bytes = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
                half_close = false;  // a wrong preface must be refused on its own
                break;
            case 1:
                what = "not HTTP/2: random bytes";
                bytes = h.bytes(static_cast<std::size_t>(24 + h.below(64 * 1024)));
                bytes[0] = 'X';  // never a prefix of the preface
                half_close = false;
                break;
            case 2:
                what = "a truncated preface";
                bytes = std::string(kPreface, static_cast<std::size_t>(1 + h.below(23)));
                break;
            case 3:
                what = "the preface, then random bytes";
                bytes = std::string(kPreface, 24) +
                        h.bytes(static_cast<std::size_t>(1 + h.below(4096)));
                break;
            case 4:
                what = "the preface, SETTINGS, then HEADERS with garbage HPACK";
                bytes =
                    std::string(kPreface, 24) + settings + frame(64, 1, 0x4 | 0x1, 1, h.bytes(64));
                break;
            default:
                what = "the preface, SETTINGS, then a frame of 16 MiB announced and cut short";
                bytes =
                    std::string(kPreface, 24) + settings + frame(0xffffff, 0, 0, 1, h.bytes(100));
                break;
        }
        sandbox::UniqueFd fd = connect_raw(d_.socket());
        ASSERT_TRUE(fd);
        send_all(fd.get(), bytes);
        if (half_close) ::shutdown(fd.get(), SHUT_WR);
        EXPECT_TRUE(closed_by_peer(fd.get(), 5s))
            << what << " (" << hex_prefix(bytes) << "): the daemon kept the connection open";
        if (::testing::Test::HasFailure()) break;  // one case, not 300 copies of it
    }
    expect_alive_and_healthy();
    const int fds_after = settle_fds(pid_, fds_before + 5);
    EXPECT_LE(fds_after, fds_before + 5) << "fds before " << fds_before << ", after " << fds_after;
    // No request is parsed here: the same bound as above, with far less
    // expected (64 KiB of junk per connection at most).
    expect_rss_growth_below(rss_before, rss_kib(pid_), 20 * 1024, "garbage");
}

TEST_F(HostileClientTest, IdleConnectionsAreHeldThenReleased) {
    constexpr int kIdle = 300;
    const int fds_before = fd_count(pid_);
    const long rss_before = rss_kib(pid_);
    std::vector<sandbox::UniqueFd> idle;
    for (int i = 0; i < kIdle; ++i) {
        sandbox::UniqueFd fd = connect_raw(d_.socket());
        ASSERT_TRUE(fd);
        // Half of them finish the HTTP/2 handshake and then say nothing more.
        if (i % 2) send_all(fd.get(), std::string(kPreface, 24) + frame(0, 4, 0, 0, ""));
        idle.push_back(std::move(fd));
    }
    // The daemon holds one descriptor for each (this proves that the count
    // below can see a leak), and still answers while they are open.
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    int held = fd_count(pid_);
    while (held < fds_before + kIdle - 5 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(20ms);
        held = fd_count(pid_);
    }
    EXPECT_GE(held, fds_before + kIdle - 5) << "the daemon did not accept the idle connections";
    expect_alive_and_healthy();
    idle.clear();
    const int fds_after = settle_fds(pid_, fds_before + 5);
    EXPECT_LE(fds_after, fds_before + 5)
        << "fds before " << fds_before << ", with " << kIdle << " idle connections " << held
        << ", after closing them " << fds_after;
    expect_rss_growth_below(rss_before, rss_kib(pid_), 20 * 1024, "idle connections");
    expect_alive_and_healthy();
    std::cout << "[ usage    ] fds " << fds_before << " -> " << held << " -> " << fds_after
              << std::endl;
}

}  // namespace
