// A hand-written HTTP/1.1 client for the serve tests (so the bytes on the
// wire are the test's, malformed ones included), and the TF.js upload body
// of a small model. For tests only.
// Thread-safety: a Client is used by one thread.
#pragma once

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace stowage::serve::test {

// The model of spec §9: Dense(1) on 2 inputs, kernel ones, bias zero.
inline const std::string kModelJson =
    R"({"modelTopology":{"class_name":"Sequential","config":{"name":"sequential_1","layers":[)"
    R"({"class_name":"Dense","config":{"units":1,"activation":"linear","use_bias":true,)"
    R"("name":"dense_Dense1","trainable":true,"batch_input_shape":[null,2],"dtype":"float32"}}]},)"
    R"("keras_version":"tfjs-layers 4.22.0","backend":"tensor_flow.js"},"format":"layers-model",)"
    R"("generatedBy":"TensorFlow.js tfjs-layers v4.22.0","convertedBy":null,"weightsManifest":)"
    R"([{"paths":["./model.weights.bin"],"weights":[{"name":"dense_Dense1/kernel","shape":[2,1],)"
    R"("dtype":"float32"},{"name":"dense_Dense1/bias","shape":[1],"dtype":"float32"}]}],)"
    R"("userDefinedMetadata":{"labels":["a"]}})";
inline const std::string kWeights("\x00\x00\x80\x3f\x00\x00\x80\x3f\x00\x00\x00\x00", 12);
inline const std::string kBoundary = "----formdata-undici-041939371652";

inline std::string tfjs_body(const std::string& json = kModelJson,
                             const std::string& weights = kWeights) {
  return "--" + kBoundary +
         "\r\nContent-Disposition: form-data; name=\"model.json\"; filename=\"model.json\"\r\n"
         "Content-Type: application/json\r\n\r\n" +
         json + "\r\n--" + kBoundary +
         "\r\nContent-Disposition: form-data; name=\"model.weights.bin\"; "
         "filename=\"model.weights.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n" +
         weights + "\r\n--" + kBoundary + "--\r\n";
}

struct Response {
  int status = 0;
  std::map<std::string, std::string> headers;  // lowercase names
  std::string body;
  bool has(const std::string& name) const { return headers.count(name) > 0; }
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// Reads a response's status line and header fields (head: the bytes before
// the blank line) into r.
inline void read_head(const std::string& head, Response& r) {
  std::istringstream lines(head);
  std::string line;
  std::getline(lines, line);
  r.status = std::stoi(line.substr(9, 3));
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const size_t colon = line.find(':');
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    r.headers[name] = line.substr(colon + 2);
  }
}

// One TCP connection speaking HTTP/1.1 by hand.
class Client {
 public:
  // from: the loopback address to connect from ("127.0.0.2"), or "" for
  // the system's choice (127.0.0.1).
  explicit Client(uint16_t port, const char* from = "") {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    if (*from) {
      sockaddr_in local{};
      local.sin_family = AF_INET;
      REQUIRE(::inet_pton(AF_INET, from, &local.sin_addr) == 1);
      REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) == 0);
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~Client() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool connected() const { return connected_; }

  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Waits up to timeout_ms for bytes; false when none came (or the peer closed).
  bool fill(int timeout_ms = 10000) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return false;
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    in_.append(buf, static_cast<size_t>(n));
    return true;
  }

  // Reads one response; status 0 when the connection ended first.
  Response read(bool head = false, int timeout_ms = 10000) {
    Response r;
    size_t end;
    while ((end = in_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill(timeout_ms)) return r;
    }
    read_head(in_.substr(0, end), r);
    in_.erase(0, end + 4);
    if (r.status == 100) return read(head, timeout_ms);
    const size_t length =
        (head || !r.has("content-length")) ? 0 : std::stoul(r.header("content-length"));
    while (in_.size() < length) {
      if (!fill(timeout_ms)) break;
    }
    r.body = in_.substr(0, length);
    in_.erase(0, std::min(length, in_.size()));
    return r;
  }

  // True when the server closes the connection within timeout_ms.
  bool closed_by_server(int timeout_ms = 10000) {
    while (!eof_) {
      if (!fill(timeout_ms) && !eof_) return false;
    }
    return true;
  }
  bool got_bytes() const { return !in_.empty(); }

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  std::string in_;
};

inline std::string request_text(const std::string& method, const std::string& target,
                                const std::vector<std::string>& headers = {},
                                const std::string& body = {}, bool with_length = true) {
  std::string text = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  for (const std::string& h : headers) text += h + "\r\n";
  if (with_length && (!body.empty() || method == "POST" || method == "PUT")) {
    text += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  return text + "\r\n" + body;
}

inline std::string upload_headers_line() {
  return "Content-Type: multipart/form-data; boundary=" + kBoundary;
}

}  // namespace stowage::serve::test
