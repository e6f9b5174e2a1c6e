// patternctl's way to the API: which channel (unix socket or TCP, TLS or
// not) and which bearer token, from the command line's files.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <stdexcept>
#include <string>

namespace launcher::ctl {

// A file named by an option cannot be used: unreadable, empty, not PEM.
// patternctl exits 2 (the command line is wrong), the message names the
// option and the path.
class OptionFileError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct ChannelOptions {
    std::string target;           // a gRPC target: "unix:/path" or "host:port"
    std::string tls_ca;           // PEM roots; non-empty: TLS, which the other tls_* refine
    std::string tls_cert;         // PEM chain presented to the server (mutual TLS)
    std::string tls_key;          // its PEM private key
    std::string tls_server_name;  // the name the server's certificate must carry instead
};

// Reads `path` whole (at most 1 MiB: these are certificates, keys, tokens).
// Throws OptionFileError "<option> <path>: <why>".
std::string read_option_file(const std::string& option, const std::string& path);

// The channel for `o`: insecure without tls_ca, else grpc::SslCredentials
// with the CA, the client key and chain, and the target-name override.
// Throws OptionFileError for a file that is unreadable or holds no PEM.
std::shared_ptr<grpc::Channel> open_channel(const ChannelOptions& o);

// The JWT in `path`, whitespace around it trimmed. Throws OptionFileError
// when it is unreadable, empty or more than one word. Sets *warning (else
// leaves it empty) when others may read the file.
std::string read_bearer_token(const std::string& path, std::string* warning);

}  // namespace launcher::ctl
