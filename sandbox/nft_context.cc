#include "sandbox/nft_context.h"

#include <linux/netlink.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <new>

#include <nftables/libnftables.h>

#include "sandbox/error.h"
#include "sandbox/unique_fd.h"

namespace sandbox {
namespace {

std::string describe(const std::string& message, int line, const std::string& script_line) {
    std::string text = "nft: " + message;
    while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
        text.pop_back();
    if (line > 0) text += " (script line " + std::to_string(line) + ": " + script_line + ")";
    return text;
}

// nft_ctx_get_*_buffer() returns the text gathered since the last call and
// starts over, so each run sees only its own output.
std::string take(const char* buffer) {
    return buffer == nullptr ? std::string{} : buffer;
}

bool write_all(int fd, std::string_view text) {
    while (!text.empty()) {
        const ssize_t n = ::write(fd, text.data(), text.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        text.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

}  // namespace

NftError::NftError(std::string nft_message, int line, std::string script_line)
    : std::runtime_error(describe(nft_message, line, script_line)),
      nft_message_(std::move(nft_message)),
      line_(line),
      script_line_(std::move(script_line)) {}

NftError make_nft_error(std::string message, std::string_view script) {
    // Locations look like "<script>:12:5-20: Error: ...".
    int line = 0;
    constexpr std::string_view kMarker = "<script>:";
    if (const std::size_t at = message.find(kMarker); at != std::string::npos) {
        const char* begin = message.data() + at + kMarker.size();
        const char* end = message.data() + message.size();
        if (std::from_chars(begin, end, line).ec != std::errc{}) line = 0;
    }
    std::string script_line;
    if (line > 0) {
        std::size_t start = 0;
        for (int i = 1; i < line && start != std::string_view::npos; ++i) {
            start = script.find('\n', start);
            if (start != std::string_view::npos) ++start;
        }
        if (start == std::string_view::npos || start >= script.size()) {
            line = 0;
        } else {
            const std::size_t stop = script.find('\n', start);
            script_line = std::string(script.substr(
                start, stop == std::string_view::npos ? std::string_view::npos : stop - start));
            const std::size_t first = script_line.find_first_not_of(" \t");
            script_line.erase(0, first == std::string::npos ? script_line.size() : first);
        }
    }
    return NftError(std::move(message), line, std::move(script_line));
}

NftContext::NftContext() {
    // nft_ctx_new() calls exit() when mnl_socket_open(NETLINK_NETFILTER)
    // fails (1.0.6: netlink_init_error). Try the same socket first so a
    // missing nfnetlink or a full fd table is an exception, not an exit.
    const int probe = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
    if (probe < 0) throw_sys_error(errno, "socket", "AF_NETLINK NETLINK_NETFILTER");
    ::close(probe);
    ctx_ = nft_ctx_new(NFT_CTX_DEFAULT);
    if (ctx_ == nullptr) throw std::bad_alloc();
    if (nft_ctx_buffer_output(ctx_) != 0 || nft_ctx_buffer_error(ctx_) != 0) {
        nft_ctx_free(ctx_);
        throw std::bad_alloc();
    }
}

NftContext::~NftContext() {
    nft_ctx_free(ctx_);
}

std::string NftContext::execute(const std::string& script, bool dry_run) {
    nft_ctx_set_dry_run(ctx_, dry_run);
    const int rc = nft_run_cmd_from_buffer(ctx_, script.c_str());
    nft_ctx_set_dry_run(ctx_, false);
    std::string output = take(nft_ctx_get_output_buffer(ctx_));
    std::string errors = take(nft_ctx_get_error_buffer(ctx_));
    if (rc != 0) throw diagnose(std::move(errors), script);
    return output;
}

NftError NftContext::diagnose(std::string buffer_errors, const std::string& script) {
    if (buffer_errors.empty()) buffer_errors = "command failed (no message)";
    const UniqueFd file(::memfd_create("nft-script", MFD_CLOEXEC));
    if (!file || !write_all(file.get(), script)) return make_nft_error(buffer_errors, script);
    const std::string path = "/proc/self/fd/" + std::to_string(file.get());
    nft_ctx_set_dry_run(ctx_, true);
    const int rc = nft_run_cmd_from_filename(ctx_, path.c_str());
    nft_ctx_set_dry_run(ctx_, false);
    take(nft_ctx_get_output_buffer(ctx_));
    std::string errors = take(nft_ctx_get_error_buffer(ctx_));
    // Passed this time (the ruleset changed in between): keep the first text.
    if (rc == 0 || errors.empty()) return make_nft_error(buffer_errors, script);
    for (std::size_t at = errors.find(path); at != std::string::npos; at = errors.find(path, at))
        errors.replace(at, path.size(), "<script>");
    return make_nft_error(std::move(errors), script);
}

std::string NftContext::run(const std::string& script) {
    return execute(script, false);
}

void NftContext::check(const std::string& script) {
    execute(script, true);
}

}  // namespace sandbox
