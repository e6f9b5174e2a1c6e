#include "api_channel.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace launcher::ctl {

namespace {

constexpr std::size_t kMaxFileBytes = 1 << 20;

[[noreturn]] void fail(const std::string& option, const std::string& path, const std::string& why) {
    throw OptionFileError(option + " " + path + ": " + why);
}

// The file's bytes, and its stat (the token's mode is checked).
std::string read_file(const std::string& option, const std::string& path, struct stat* st) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(option, path, std::string("cannot open: ") + std::strerror(errno));
    struct FdCloser {
        int fd;
        ~FdCloser() { ::close(fd); }
    } closer{fd};
    if (::fstat(fd, st) != 0)
        fail(option, path, std::string("cannot stat: ") + std::strerror(errno));
    if (S_ISDIR(st->st_mode)) fail(option, path, "is a directory");
    std::string data;
    char buf[8192];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail(option, path, std::string("cannot read: ") + std::strerror(errno));
        if (n == 0) break;
        data.append(buf, static_cast<std::size_t>(n));
        if (data.size() > kMaxFileBytes) fail(option, path, "larger than 1 MiB");
    }
    return data;
}

// PEM content that gRPC would only reject later, at the handshake, as an
// unexplained UNAVAILABLE: refused here, naming the file.
std::string read_pem(const std::string& option, const std::string& path, const char* marker,
                     const char* what) {
    std::string pem = read_option_file(option, path);
    if (pem.find(marker) == std::string::npos)
        fail(option, path, std::string("no PEM ") + what + " in it (expected '" + marker + "')");
    return pem;
}

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

}  // namespace

std::string read_option_file(const std::string& option, const std::string& path) {
    struct stat st {};
    return read_file(option, path, &st);
}

std::shared_ptr<grpc::Channel> open_channel(const ChannelOptions& o) {
    if (o.tls_ca.empty()) return grpc::CreateChannel(o.target, grpc::InsecureChannelCredentials());
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs =
        read_pem("--tls-ca", o.tls_ca, "-----BEGIN CERTIFICATE-----", "certificate");
    if (!o.tls_cert.empty()) {
        ssl.pem_cert_chain =
            read_pem("--tls-cert", o.tls_cert, "-----BEGIN CERTIFICATE-----", "certificate");
        // "PRIVATE KEY-----" covers PKCS#8, "EC PRIVATE KEY" and "RSA PRIVATE KEY".
        ssl.pem_private_key = read_pem("--tls-key", o.tls_key, "PRIVATE KEY-----", "private key");
    }
    grpc::ChannelArguments args;
    if (!o.tls_server_name.empty()) args.SetSslTargetNameOverride(o.tls_server_name);
    return grpc::CreateCustomChannel(o.target, grpc::SslCredentials(ssl), args);
}

std::string read_bearer_token(const std::string& path, std::string* warning) {
    struct stat st {};
    const std::string data = read_file("--token-file", path, &st);
    std::size_t begin = 0, end = data.size();
    while (begin < end && is_space(data[begin]))
        ++begin;
    while (end > begin && is_space(data[end - 1]))
        --end;
    if (begin == end) fail("--token-file", path, "is empty");
    const std::string token = data.substr(begin, end - begin);
    for (char c : token) {
        // gRPC refuses such metadata values; a JWT is base64url and dots.
        if (is_space(c) || static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
            fail("--token-file", path,
                 "holds more than one token (whitespace or control characters inside)");
    }
    warning->clear();
    if (S_ISREG(st.st_mode) && (st.st_mode & S_IROTH) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        *warning =
            "--token-file " + path + " is readable by every user (mode " + mode + "); chmod o-r it";
    }
    return token;
}

}  // namespace launcher::ctl
