// The claim protocol between the launcher and a late-binding pattern
// (`late_binding: true`; docs/late-binding.md). A session pool's process is
// started with no session: its NAMESPACE is set, SESSION_ID and PROCESS_ID
// are empty, and it inherits one end of a SOCK_SEQPACKET socket pair as the
// fd named "claim" (LISTEN_FDNAMES). When a SESSION launch claims it, the
// launcher sends one message on it, a JSON object:
//
//   {"namespace": "tenant-a", "session_id": "s1",
//    "process_id": "session:s1:echo", "config": {"KEY": "value"}}
//
// and the pattern answers with one message: "READY=1" once it has taken
// that identity (the launch then answers RUNNING), or "ERROR=<why>" to
// refuse it (the launch fails with that text). No answer within the
// manifest's start_timeout, or the socket closed, fails the launch too. One
// message each way, ever: a process is claimed once.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace launcher {

struct Claim {
    std::string namespace_id;
    std::string session_id;
    std::string process_id;
    std::map<std::string, std::string> config;
};

std::string encode_claim(const Claim& claim);
// nullopt, with `problem` set, if `text` is not a claim message.
std::optional<Claim> decode_claim(std::string_view text, std::string& problem);

struct ClaimAnswer {
    bool ready = false;
    std::string error;  // !ready: the pattern's reason, or what was wrong with the answer
};

// "READY=1" (alone or as one line of several) is ready; "ERROR=<why>" is a
// refusal with its reason; anything else is a refusal saying so.
ClaimAnswer parse_claim_answer(std::string_view text);

}  // namespace launcher
