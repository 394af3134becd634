#include "core/tls.h"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "core/loop.h"
#include "core/tcp.h"
#include "core/timer.h"
#include "gtest/gtest.h"

namespace wirepool::core {
namespace {

namespace fs = std::filesystem;

// A CA and a server certificate for 127.0.0.1 / localhost, made with the openssl CLI (as the
// integration tests do) in a fresh directory per test binary.
class Certs {
 public:
  Certs() {
    char tmpl[] = "/tmp/wp-tls-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    std::string d = dir_;
    std::string cmd =
        "cd " + d +
        " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2"
        " -subj /CN=wp-test-ca -keyout ca.key -out ca.crt"
        " && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
        " -subj /CN=127.0.0.1 -keyout server.key -out server.csr"
        " && printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > ext"
        " && openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2"
        " -extfile ext -out server.crt"
        " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2"
        " -subj /CN=other-ca -keyout other.key -out other.crt"
        " && chmod 600 *.key) >/dev/null 2>&1";
    ok_ = std::system(("(" + cmd).c_str()) == 0;
  }
  ~Certs() { fs::remove_all(dir_); }
  bool ok() const { return ok_; }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

 private:
  std::string dir_;
  bool ok_ = false;
};

const Certs& TestCerts() {
  // Made on first use and removed at exit, so that no run leaves its directory behind.
  static Certs* certs = nullptr;
  if (certs == nullptr) {
    certs = new Certs;
    std::atexit([] { delete certs; });
  }
  return *certs;
}

TlsConfig ServerConfig() {
  TlsConfig c;
  c.mode = TlsMode::kPrefer;
  c.cert_file = TestCerts().Path("server.crt");
  c.key_file = TestCerts().Path("server.key");
  return c;
}

TlsConfig ClientConfig(TlsMode mode, const std::string& ca, const std::string& name) {
  TlsConfig c;
  c.mode = mode;
  c.ca_file = TestCerts().Path(ca);
  c.server_name = name;
  return c;
}

// Echoes what it reads, upper-cased, once TLS is up.
class Side : public TcpStreamHandler {
 public:
  void OnConnected(TcpStream& s, const absl::Status&) override {
    s.StartReading();
    start_status = s.StartTls(context);
  }
  void OnTlsReady(TcpStream& s) override {
    ready = true;
    describe = s.tls_session()->Describe();
    if (!greeting.empty()) {
      s.Write(greeting);
      s.Flush();
    }
    OnReadable(s);
  }
  void OnReadable(TcpStream& s) override {
    auto view = s.input().view();
    received.append(reinterpret_cast<const char*>(view.data()), view.size());
    s.input().Consume(view.size());
  }
  void OnStreamClosed(TcpStream&, const absl::Status& why) override { closed = why; }

  TlsContextPtr context;
  absl::Status start_status;
  std::string greeting;
  bool ready = false;
  std::string describe;
  std::string received;
  absl::Status closed = absl::OkStatus();
};

struct Pair {
  EventLoop loop;
  Side server_side;
  Side client_side;
  std::unique_ptr<TcpStream> accepted;
  std::unique_ptr<TcpStream> client;
  std::unique_ptr<TcpListener> listener;

  void Run(TlsContextPtr server_ctx, TlsContextPtr client_ctx) {
    server_side.context = std::move(server_ctx);
    client_side.context = std::move(client_ctx);
    listener = std::make_unique<TcpListener>(loop.get(), [this](int fd) {
      accepted = std::make_unique<TcpStream>(loop.get(), server_side);
      ASSERT_TRUE(accepted->Adopt(fd).ok());
      accepted->StartReading();
      server_side.start_status = accepted->StartTls(server_side.context);
    });
    auto addr = ResolveAddress("127.0.0.1", 0);
    ASSERT_TRUE(addr.ok());
    ASSERT_TRUE(listener->Listen(*addr).ok());
    auto target = ResolveAddress("127.0.0.1", listener->BoundPort());
    client = std::make_unique<TcpStream>(loop.get(), client_side);
    ASSERT_TRUE(client->Connect(*target).ok());
    bool expired = false;
    Timer guard(loop.get(), [&] { expired = true; });
    guard.Start(absl::Seconds(5));
    while (!expired) {
      uv_run(loop.get(), UV_RUN_ONCE);
      bool settled = (client_side.received.size() >= client_side_expect &&
                      server_side.received.size() >= server_side_expect && client_side.ready &&
                      server_side.ready) ||
                     !client_side.closed.ok() || !server_side.closed.ok();
      if (settled) {
        break;
      }
    }
    guard.Stop();
    listener->Close();
    if (accepted) {
      accepted->Close();
    }
    client->Close();
    uv_run(loop.get(), UV_RUN_NOWAIT);
  }
  size_t client_side_expect = 0;
  size_t server_side_expect = 0;
};

TEST(TlsTest, ModesParseByTheirLibpqNames) {
  EXPECT_EQ(ParseTlsMode("verify-full"), TlsMode::kVerifyFull);
  EXPECT_EQ(ParseTlsMode("disable"), TlsMode::kDisable);
  EXPECT_FALSE(ParseTlsMode("verify_full").has_value());
  EXPECT_EQ(TlsModeName(TlsMode::kRequire), "require");
}

TEST(TlsTest, VerifiedConnectionCarriesBytesBothWays) {
  ASSERT_TRUE(TestCerts().ok());
  auto server_ctx = TlsContext::NewServer(ServerConfig());
  ASSERT_TRUE(server_ctx.ok()) << server_ctx.status();
  EXPECT_EQ((*server_ctx)->server_end_point().size(), 32u);  // SHA-256 of an ECDSA-SHA256 cert
  auto client_ctx =
      TlsContext::NewClient(ClientConfig(TlsMode::kVerifyFull, "ca.crt", "127.0.0.1"));
  ASSERT_TRUE(client_ctx.ok()) << client_ctx.status();

  Pair p;
  p.server_side.greeting = std::string(100000, 's');  // more than one TLS record
  p.client_side.greeting = "hello from the client";
  p.client_side_expect = 100000;
  p.server_side_expect = p.client_side.greeting.size();
  p.Run(*server_ctx, *client_ctx);
  EXPECT_TRUE(p.server_side.start_status.ok()) << p.server_side.start_status;
  EXPECT_TRUE(p.client_side.start_status.ok()) << p.client_side.start_status;
  EXPECT_TRUE(p.client_side.closed.ok()) << p.client_side.closed;
  EXPECT_TRUE(p.server_side.ready);
  EXPECT_TRUE(p.client_side.ready);
  EXPECT_EQ(p.client_side.received, std::string(100000, 's'));
  EXPECT_EQ(p.server_side.received, "hello from the client");
  EXPECT_NE(p.client_side.describe.find("TLSv1.3"), std::string::npos) << p.client_side.describe;
}

TEST(TlsTest, VerifyFullRefusesAServerCertificateForAnotherName) {
  ASSERT_TRUE(TestCerts().ok());
  auto server_ctx = TlsContext::NewServer(ServerConfig());
  ASSERT_TRUE(server_ctx.ok());
  auto client_ctx =
      TlsContext::NewClient(ClientConfig(TlsMode::kVerifyFull, "ca.crt", "db.example.com"));
  ASSERT_TRUE(client_ctx.ok());
  Pair p;
  p.Run(*server_ctx, *client_ctx);
  EXPECT_FALSE(p.client_side.ready);
  EXPECT_NE(p.client_side.closed.message().find("certificate verify failed"), std::string::npos)
      << p.client_side.closed;
}

TEST(TlsTest, VerifyCaRefusesAServerSignedByAnotherCa) {
  ASSERT_TRUE(TestCerts().ok());
  auto server_ctx = TlsContext::NewServer(ServerConfig());
  ASSERT_TRUE(server_ctx.ok());
  auto client_ctx = TlsContext::NewClient(ClientConfig(TlsMode::kVerifyCa, "other.crt", ""));
  ASSERT_TRUE(client_ctx.ok());
  Pair p;
  p.Run(*server_ctx, *client_ctx);
  EXPECT_FALSE(p.client_side.ready);
  EXPECT_NE(p.client_side.closed.message().find("unable to get local issuer certificate"),
            std::string::npos)
      << p.client_side.closed;
}

TEST(TlsTest, RequireEncryptsWithoutCheckingTheServer) {
  ASSERT_TRUE(TestCerts().ok());
  auto server_ctx = TlsContext::NewServer(ServerConfig());
  auto client_ctx = TlsContext::NewClient(ClientConfig(TlsMode::kRequire, "other.crt", ""));
  ASSERT_TRUE(server_ctx.ok() && client_ctx.ok());
  Pair p;
  p.client_side.greeting = "x";
  p.server_side_expect = 1;
  p.Run(*server_ctx, *client_ctx);
  EXPECT_TRUE(p.client_side.ready);
  EXPECT_EQ(p.server_side.received, "x");
}

TEST(TlsTest, ServerVerifyCaRefusesAClientWithoutCertificate) {
  ASSERT_TRUE(TestCerts().ok());
  TlsConfig config = ServerConfig();
  config.mode = TlsMode::kVerifyCa;
  config.ca_file = TestCerts().Path("ca.crt");
  auto server_ctx = TlsContext::NewServer(config);
  ASSERT_TRUE(server_ctx.ok()) << server_ctx.status();
  auto client_ctx = TlsContext::NewClient(ClientConfig(TlsMode::kRequire, "ca.crt", ""));
  Pair p;
  p.Run(*server_ctx, *client_ctx);
  EXPECT_FALSE(p.server_side.ready);
  EXPECT_FALSE(p.server_side.closed.ok());
}

TEST(TlsTest, KeyFileReadableByOthersIsRefused) {
  ASSERT_TRUE(TestCerts().ok());
  std::string copy = TestCerts().Path("loose.key");
  fs::copy_file(TestCerts().Path("server.key"), copy, fs::copy_options::overwrite_existing);
  chmod(copy.c_str(), 0644);
  TlsConfig config = ServerConfig();
  config.key_file = copy;
  auto ctx = TlsContext::NewServer(config);
  ASSERT_FALSE(ctx.ok());
  EXPECT_NE(ctx.status().message().find("chmod 600"), std::string::npos) << ctx.status();
  chmod(copy.c_str(), 0600);
  EXPECT_TRUE(TlsContext::NewServer(config).ok());
}

TEST(TlsTest, BadSettingsAreExplained) {
  ASSERT_TRUE(TestCerts().ok());
  TlsConfig config = ServerConfig();
  config.min_version = "1.1";
  EXPECT_NE(TlsContext::NewServer(config).status().message().find("1.2 or 1.3"), std::string::npos);
  config = ServerConfig();
  config.key_file = TestCerts().Path("other.key");
  EXPECT_NE(TlsContext::NewServer(config).status().message().find("does not match"),
            std::string::npos);
  config = ServerConfig();
  config.mode = TlsMode::kVerifyFull;
  EXPECT_NE(TlsContext::NewServer(config).status().message().find("ca_file is required"),
            std::string::npos);
}

}  // namespace
}  // namespace wirepool::core
