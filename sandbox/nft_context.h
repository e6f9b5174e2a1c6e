// One libnftables context: scripts in nft's own language, each run as ONE
// transaction (the whole buffer is a single netlink batch: it applies
// entirely or not at all), output and errors captured instead of printed.
//
// Network namespace: libnftables opens its netlink socket in nft_ctx_new()
// (nftables 1.0.6, src/libnftables.c: nft_ctx_new -> nft_mnl_socket_open)
// and keeps it for the context's life. So a context talks to the netns of
// the thread that CONSTRUCTED it, whatever netns the thread that later calls
// run() is in; verified by tests/integration/egress_firewall_test.cc
// (NftContextTest.StaysInTheNamespaceItWasCreatedIn). To manage the rules
// of another netns, construct the context on a thread that setns(2)'d there;
// the object may then be used from any thread (one at a time: an nft_ctx is
// not thread-safe).
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

struct nft_ctx;

namespace sandbox {

// nft refused a script (syntax, evaluation or the kernel). what() is
// "nft: <nft's message>" plus the offending script line when nft named one.
class NftError : public std::runtime_error {
public:
    NftError(std::string nft_message, int line, std::string script_line);
    // nft's error text as it printed it (may span several lines).
    const std::string& nft_message() const noexcept { return nft_message_; }
    // 1-based line of the script nft pointed at; 0 when it named none.
    int line() const noexcept { return line_; }
    const std::string& script_line() const noexcept { return script_line_; }

private:
    std::string nft_message_;
    int line_;
    std::string script_line_;
};

class NftContext {
public:
    // Throws SysError when no netfilter netlink socket can be opened here
    // (checked first: libnftables 1.0.6 would exit(3) the process instead).
    NftContext();
    ~NftContext();
    NftContext(const NftContext&) = delete;
    NftContext& operator=(const NftContext&) = delete;

    // Runs `script` as one transaction; returns what nft printed (listings).
    std::string run(const std::string& script);
    // Like `nft -c`: parses, evaluates and has the kernel validate the
    // batch, then aborts it. Nothing changes. Throws NftError if refused.
    //
    // On a refusal, the script is checked once more (a dry run) from a
    // memfd: nft 1.0.6 reports a buffer's errors without their line and
    // echoes the buffer's FIRST line whatever line was wrong, while a file's
    // errors carry "file:line:columns". Only for the message: nothing runs.
    void check(const std::string& script);

private:
    std::string execute(const std::string& script, bool dry_run);
    NftError diagnose(std::string buffer_errors, const std::string& script);
    nft_ctx* ctx_;
};

// Builds the NftError for nft's error text `message` about `script`, whose
// locations name the script "<script>" ("<script>:12:5-20: Error: ...").
// Exposed for tests.
NftError make_nft_error(std::string message, std::string_view script);

}  // namespace sandbox
