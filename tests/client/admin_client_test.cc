#include "client/admin_client.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include "test_http_server.h"

namespace openimds::client {
namespace {

using test_support::TestHttpServer;

class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/openimds-client-test-XXXXXX";
    path_ = mkdtemp(pattern) ? pattern : "";
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct EndpointCase {
  std::string text;
  bool ok;
  AdminEndpoint::Kind kind = AdminEndpoint::Kind::kUnix;
  std::string socket_path = "";
  std::string host = "";
  uint16_t port = 0;
};

TEST(AdminEndpoint, Parse) {
  using K = AdminEndpoint::Kind;
  const EndpointCase cases[] = {
      {"unix:/run/openimds/admin.sock", true, K::kUnix, "/run/openimds/admin.sock"},
      {"unix:./admin.sock", true, K::kUnix, "./admin.sock"},
      {"/tmp/a.sock", true, K::kUnix, "/tmp/a.sock"},
      {"http://127.0.0.1:8170", true, K::kTcp, "", "127.0.0.1", 8170},
      {"http://127.0.0.1:8170/", true, K::kTcp, "", "127.0.0.1", 8170},
      {"http://[::1]:8170", true, K::kTcp, "", "::1", 8170},
      {"http://localhost", true, K::kTcp, "", "localhost", 80},
      {"127.0.0.1:9000", true, K::kTcp, "", "127.0.0.1", 9000},
      {"[::1]:1", true, K::kTcp, "", "::1", 1},
      {"unix:", false},
      {"unix:/" + std::string(200, 'x'), false},
      {"https://127.0.0.1:8170", true, K::kTcp, "", "127.0.0.1", 8170},
      {"https://admin.example", true, K::kTcp, "", "admin.example", 443},
      {"https://", false},
      {"http://127.0.0.1:8170/v1", false},
      {"http://127.0.0.1:0", false},
      {"http://127.0.0.1:65536", false},
      {"http://127.0.0.1:80x", false},
      {"http://::1:8170", false},
      {"http://[::1", false},
      {"http://[::1]x", false},
      {"http://:8170", false},
      {"127.0.0.1", false},
      {"", false},
  };
  for (const auto& c : cases) {
    auto parsed = AdminEndpoint::Parse(c.text);
    ASSERT_EQ(parsed.ok(), c.ok) << c.text << ": " << parsed.status().ToString();
    if (!c.ok) {
      EXPECT_EQ(parsed.status().code(), common::Code::kInvalidArgument) << c.text;
      continue;
    }
    EXPECT_EQ(parsed->kind, c.kind) << c.text;
    EXPECT_EQ(parsed->socket_path, c.socket_path) << c.text;
    EXPECT_EQ(parsed->host, c.host) << c.text;
    EXPECT_EQ(parsed->port, c.port) << c.text;
    EXPECT_EQ(parsed->text, c.text);
  }
}

std::string WriteFile(const std::string& path, const std::string& content, mode_t mode) {
  std::ofstream(path) << content;
  chmod(path.c_str(), mode);
  return path;
}

TEST(AdminClient, CreateReportsTokenAndEndpointErrors) {
  TempDir dir;
  AdminClient::Options options;
  options.endpoint = "ftp://x";
  EXPECT_EQ(AdminClient::Create(options).status().code(), common::Code::kInvalidArgument);
  options.endpoint = "http://127.0.0.1:1";
  options.token_file = WriteFile(dir.path() + "/t", "tok", 0644);
  EXPECT_EQ(AdminClient::Create(options).status().code(), common::Code::kPermissionDenied);
}

TEST(AdminClient, CannotReachAMissingSocket) {
  TempDir dir;
  AdminClient::Options options;
  options.endpoint = "unix:" + dir.path() + "/admin.sock";
  auto client = AdminClient::Create(options);
  ASSERT_TRUE(client.ok());
  auto reply = client->Call("GET", "/healthz", {}, {});
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), common::Code::kUnavailable);
  EXPECT_EQ(reply.status().message(),
            "cannot reach admin API at unix:" + dir.path() +
                "/admin.sock: No such file or directory (is `openimds serve` running?)");
}

TEST(AdminClient, CannotReachAClosedPort) {
  uint16_t port = 0;
  {
    // A port that was just free and is not listening.
    boost::asio::io_context ioc;
    boost::asio::ip::tcp::acceptor a(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }
  AdminClient::Options options;
  options.endpoint = "http://127.0.0.1:" + std::to_string(port);
  auto client = AdminClient::Create(options);
  ASSERT_TRUE(client.ok());
  auto reply = client->Call("GET", "/healthz", {}, {});
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), common::Code::kUnavailable);
  EXPECT_NE(reply.status().message().find("Connection refused"), std::string::npos)
      << reply.status().message();
}

struct Recorded {
  std::mutex mu;
  std::string method, target, authorization, content_type, body, host;
};

TestHttpServer::HandlerFn Recorder(Recorded& rec) {
  return [&rec](const common::Request& request, common::Response& out) {
    std::lock_guard<std::mutex> lock(rec.mu);
    rec.method = std::string(request.method);
    rec.target = std::string(request.target);
    rec.authorization = std::string(request.Header("Authorization").value_or(""));
    rec.content_type = std::string(request.Header("Content-Type").value_or(""));
    rec.host = std::string(request.Header("Host").value_or(""));
    rec.body = std::string(request.body);
    out.status = 207;
    out.content_type = "application/json";
    out.body = R"({"echo":)" + std::to_string(request.body.size()) + "}";
    out.AddHeader("ETag", "\"42\"");
  };
}

TEST(AdminClient, RoundTripOverUnixSocketWithChunkedUploadProgress) {
  TempDir dir;
  Recorded rec;
  auto server = TestHttpServer::Unix(dir.path() + "/admin.sock", Recorder(rec));
  AdminClient::Options options;
  options.endpoint = "unix:" + dir.path() + "/admin.sock";
  options.chunk_bytes = 1000;
  auto client = AdminClient::Create(options);
  ASSERT_TRUE(client.ok()) << client.status().ToString();

  std::string body;
  for (int i = 0; i < 2500; ++i) body += static_cast<char>('a' + i % 26);
  std::vector<std::pair<uint64_t, uint64_t>> progress;
  auto reply =
      client->Call("POST", "/v1/instances:import", {{"Content-Type", "application/x-ndjson"}}, body,
                   [&](uint64_t sent, uint64_t total) { progress.emplace_back(sent, total); });
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(reply->status, 207);
  EXPECT_EQ(reply->body, R"({"echo":2500})");
  EXPECT_EQ(reply->Header("etag"), "\"42\"");
  EXPECT_EQ(reply->Header("Content-Type"), "application/json");
  EXPECT_FALSE(reply->Header("X-Absent"));

  std::lock_guard<std::mutex> lock(rec.mu);
  EXPECT_EQ(rec.method, "POST");
  EXPECT_EQ(rec.target, "/v1/instances:import");
  EXPECT_EQ(rec.content_type, "application/x-ndjson");
  EXPECT_EQ(rec.body, body);
  EXPECT_EQ(rec.authorization, "");  // no token file, no header
  const std::vector<std::pair<uint64_t, uint64_t>> expected = {
      {1000, 2500}, {2000, 2500}, {2500, 2500}};
  EXPECT_EQ(progress, expected);
}

TEST(AdminClient, RoundTripOverTcpWithBearerToken) {
  TempDir dir;
  Recorded rec;
  auto server = TestHttpServer::Tcp(Recorder(rec));
  AdminClient::Options options;
  options.endpoint = "http://127.0.0.1:" + std::to_string(server->port());
  options.token_file = WriteFile(dir.path() + "/token", "tok-123-0123456789abcdef\n", 0600);
  auto client = AdminClient::Create(options);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  auto reply = client->Call("GET", "/v1/instances?network=a%20b", {}, {});
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(reply->status, 207);
  std::lock_guard<std::mutex> lock(rec.mu);
  EXPECT_EQ(rec.method, "GET");
  EXPECT_EQ(rec.target, "/v1/instances?network=a%20b");
  EXPECT_EQ(rec.authorization, "Bearer tok-123-0123456789abcdef");
  EXPECT_EQ(rec.host, "127.0.0.1:" + std::to_string(server->port()));
  EXPECT_EQ(rec.body, "");
}

TEST(AdminClient, ServerThatNeverAnswersTimesOut) {
  TempDir dir;
  const std::string path = dir.path() + "/silent.sock";
  // Listening, but nobody accepts or answers: the connect succeeds (backlog)
  // and the read must give up after io_timeout.
  boost::asio::io_context ioc;
  boost::asio::local::stream_protocol::acceptor acceptor(
      ioc, boost::asio::local::stream_protocol::endpoint(path));
  AdminClient::Options options;
  options.endpoint = "unix:" + path;
  options.io_timeout = std::chrono::milliseconds(200);
  auto client = AdminClient::Create(options);
  ASSERT_TRUE(client.ok());
  auto reply = client->Call("GET", "/healthz", {}, {});
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), common::Code::kInternal);
  EXPECT_NE(reply.status().message().find("no response"), std::string::npos)
      << reply.status().message();
}

TEST(PercentEncode, Table) {
  struct Case {
    std::string in;
    bool keep_slash;
    std::string out;
  };
  const Case cases[] = {
      {"i-0123.a_b~", false, "i-0123.a_b~"},
      {"a:b", false, "a%3Ab"},
      {"/latest/meta-data/?x=1", true, "/latest/meta-data/%3Fx%3D1"},
      {"/latest", false, "%2Flatest"},
      {"Metadata-Flavor: Google", false, "Metadata-Flavor%3A%20Google"},
      {"\xC3\xA9", false, "%C3%A9"},
  };
  for (const auto& c : cases) EXPECT_EQ(PercentEncode(c.in, c.keep_slash), c.out) << c.in;
}

}  // namespace
}  // namespace openimds::client
