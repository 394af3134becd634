#include "codecs/postgres/scram.h"

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/crypto.h"
#include "gtest/gtest.h"

namespace wirepool::codec::postgres {
namespace {

// RFC 7677 section 3.
constexpr char kRfcPassword[] = "pencil";
constexpr char kRfcClientNonce[] = "rOprNGfwEbeRWgbNEkqO";
constexpr char kRfcServerNonce[] = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
constexpr char kRfcSalt[] = "W22ZaJ0SNY7soEsUEjb6gQ==";
constexpr char kRfcClientFirst[] = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
constexpr char kRfcServerFirst[] =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr char kRfcClientFinal[] =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr char kRfcServerFinal[] = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

// Deterministic "randomness": a counter, different per generator seed.
RandomFn CountingRandom(uint8_t seed) {
  auto counter = std::make_shared<uint8_t>(seed);
  return [counter](uint8_t* out, size_t len) {
    for (size_t i = 0; i < len; ++i) {
      out[i] = (*counter)++;
    }
  };
}

crypto::ScramKeys RfcKeys() {
  return crypto::DeriveScramKeys(kRfcPassword, *crypto::Base64Decode(kRfcSalt), 4096);
}

class ScramTest : public ::testing::Test {
 protected:
  // Keys derived once: PBKDF2 is the slow part.
  static void SetUpTestSuite() {
    keys_ = new crypto::ScramKeys(crypto::DeriveScramKeys("secret pw", "0123456789abcdef", 4096));
  }
  static void TearDownTestSuite() {
    delete keys_;
    keys_ = nullptr;
  }

  // A server that has answered a valid client-first-message from `client`.
  static std::unique_ptr<ScramServer> ServerAfterFirst(ScramClient& client) {
    auto server = std::make_unique<ScramServer>(keys_, CountingRandom(100));
    EXPECT_TRUE(server->OnClientFirst(client.ClientFirst()).ok());
    return server;
  }

  static crypto::ScramKeys* keys_;
};

crypto::ScramKeys* ScramTest::keys_ = nullptr;

TEST_F(ScramTest, Rfc7677ServerSide) {
  const crypto::ScramKeys keys = RfcKeys();
  ScramServer server(&keys, CountingRandom(0));
  server.SetNonceForTest(kRfcServerNonce);
  absl::StatusOr<std::string> server_first = server.OnClientFirst(kRfcClientFirst);
  ASSERT_TRUE(server_first.ok()) << server_first.status();
  EXPECT_EQ(*server_first, kRfcServerFirst);
  absl::StatusOr<std::string> server_final = server.OnClientFinal(kRfcClientFinal);
  ASSERT_TRUE(server_final.ok()) << server_final.status();
  EXPECT_EQ(*server_final, kRfcServerFinal);
  EXPECT_TRUE(server.authenticated());
}

TEST_F(ScramTest, Rfc7677ClientSide) {
  ScramClient client(kRfcPassword, CountingRandom(0), "user");
  client.SetNonceForTest(kRfcClientNonce);
  EXPECT_EQ(client.ClientFirst(), kRfcClientFirst);
  absl::StatusOr<std::string> client_final = client.OnServerFirst(kRfcServerFirst);
  ASSERT_TRUE(client_final.ok()) << client_final.status();
  EXPECT_EQ(*client_final, kRfcClientFinal);
  EXPECT_TRUE(client.OnServerFinal(kRfcServerFinal).ok());
}

TEST_F(ScramTest, ClientFirstUsesInjectedRandomness) {
  ScramClient client("pw", CountingRandom(0));
  std::string raw;
  for (int i = 0; i < 24; ++i) {
    raw.push_back(static_cast<char>(i));
  }
  const std::string expected = "n,,n=,r=" + crypto::Base64Encode(raw);
  EXPECT_EQ(client.ClientFirst(), expected);
  EXPECT_EQ(client.ClientFirst(), expected);  // stable on repeat
  EXPECT_EQ(expected.size(), 8u + 32u);
}

TEST_F(ScramTest, ClientEscapesUserName) {
  ScramClient client("pw", CountingRandom(0), "a=b,c");
  EXPECT_TRUE(absl::StartsWith(client.ClientFirst(), "n,,n=a=3Db=2Cc,r="));
}

TEST_F(ScramTest, ClientAndServerAgreeWithRightPassword) {
  ScramClient client("secret pw", CountingRandom(1));
  ScramServer server(keys_, CountingRandom(2));
  absl::StatusOr<std::string> server_first = server.OnClientFirst(client.ClientFirst());
  ASSERT_TRUE(server_first.ok()) << server_first.status();
  absl::StatusOr<std::string> client_final = client.OnServerFirst(*server_first);
  ASSERT_TRUE(client_final.ok()) << client_final.status();
  absl::StatusOr<std::string> server_final = server.OnClientFinal(*client_final);
  ASSERT_TRUE(server_final.ok()) << server_final.status();
  EXPECT_TRUE(server.authenticated());
  EXPECT_TRUE(client.OnServerFinal(*server_final).ok());
}

TEST_F(ScramTest, WrongPasswordIsPermissionDenied) {
  ScramClient client("wrong pw", CountingRandom(1));
  ScramServer server(keys_, CountingRandom(2));
  absl::StatusOr<std::string> server_first = server.OnClientFirst(client.ClientFirst());
  ASSERT_TRUE(server_first.ok());
  absl::StatusOr<std::string> client_final = client.OnServerFirst(*server_first);
  ASSERT_TRUE(client_final.ok());
  absl::StatusOr<std::string> server_final = server.OnClientFinal(*client_final);
  EXPECT_EQ(server_final.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_FALSE(server.authenticated());
  // The exchange is over: nothing more is accepted.
  EXPECT_FALSE(server.OnClientFinal(*client_final).ok());
}

TEST_F(ScramTest, UnknownUserRunsTheExchangeAndFails) {
  ScramClient client("any", CountingRandom(1));
  ScramServer server(nullptr, CountingRandom(2), "nobody");
  absl::StatusOr<std::string> server_first = server.OnClientFirst(client.ClientFirst());
  ASSERT_TRUE(server_first.ok()) << server_first.status();
  EXPECT_TRUE(absl::StrContains(*server_first, ",i=4096"));
  absl::StatusOr<std::string> client_final = client.OnServerFirst(*server_first);
  ASSERT_TRUE(client_final.ok()) << client_final.status();
  absl::StatusOr<std::string> server_final = server.OnClientFinal(*client_final);
  EXPECT_EQ(server_final.status().code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(ScramTest, UnknownUserMockSaltIsStablePerUser) {
  auto salt_of = [](std::string_view user) {
    ScramServer server(nullptr, CountingRandom(0), user);
    absl::StatusOr<std::string> first = server.OnClientFirst("n,,n=,r=abc");
    EXPECT_TRUE(first.ok());
    const size_t s = first->find(",s=");
    return first->substr(s, first->find(",i=") - s);
  };
  EXPECT_EQ(salt_of("nobody"), salt_of("nobody"));
  EXPECT_NE(salt_of("nobody"), salt_of("somebody"));
  // Invalid keys are treated as an unknown user.
  crypto::ScramKeys invalid;
  ScramServer server(&invalid, CountingRandom(0));
  ASSERT_TRUE(server.OnClientFirst("n,,n=,r=abc").ok());
}

// Builds a client-final-message by hand from the primitives, for a gs2 header ScramClient never
// sends itself.
std::string HandMadeClientFinal(std::string_view password, std::string_view gs2_header,
                                std::string_view client_first_bare, std::string_view server_first) {
  const std::string nonce(server_first.substr(2, server_first.find(",s=") - 2));
  const size_t s = server_first.find(",s=") + 3;
  const std::string salt =
      *crypto::Base64Decode(server_first.substr(s, server_first.find(",i=") - s));
  const int iterations = std::stoi(std::string(server_first.substr(server_first.find(",i=") + 3)));
  const std::string salted = crypto::Pbkdf2Sha256(password, salt, iterations, 32);
  const std::string client_key = crypto::HmacSha256(salted, "Client Key");
  const std::string without_proof =
      absl::StrCat("c=", crypto::Base64Encode(gs2_header), ",r=", nonce);
  const std::string auth = absl::StrCat(std::string(client_first_bare), ",",
                                        std::string(server_first), ",", without_proof);
  const std::string signature = crypto::HmacSha256(crypto::Sha256(client_key), auth);
  std::string proof(32, '\0');
  for (size_t i = 0; i < proof.size(); ++i) {
    proof[i] = static_cast<char>(client_key[i] ^ signature[i]);
  }
  return absl::StrCat(without_proof, ",p=", crypto::Base64Encode(proof));
}

TEST_F(ScramTest, ServerAcceptsYFlagWithMatchingBinding) {
  ScramServer server(keys_, CountingRandom(2));
  absl::StatusOr<std::string> server_first = server.OnClientFirst("y,,n=,r=clientnonce");
  ASSERT_TRUE(server_first.ok()) << server_first.status();
  const std::string client_final =
      HandMadeClientFinal("secret pw", "y,,", "n=,r=clientnonce", *server_first);
  EXPECT_TRUE(absl::StartsWith(client_final, "c=eSws,"));
  absl::StatusOr<std::string> server_final = server.OnClientFinal(client_final);
  ASSERT_TRUE(server_final.ok()) << server_final.status();
  EXPECT_TRUE(server.authenticated());

  // The same client-final echoing "n,," (biws) after "y,,": a binding mismatch.
  ScramServer server2(keys_, CountingRandom(2));
  ASSERT_TRUE(server2.OnClientFirst("y,,n=,r=clientnonce").ok());
  const std::string mismatched =
      HandMadeClientFinal("secret pw", "n,,", "n=,r=clientnonce", *server_first);
  EXPECT_EQ(server2.OnClientFinal(mismatched).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ScramTest, HandMadeClientFinalMatchesScramClient) {
  // Cross-check of the helper above against the class under test.
  ScramClient client("secret pw", CountingRandom(1));
  ScramServer server(keys_, CountingRandom(2));
  const std::string first = client.ClientFirst();
  const std::string server_first = *server.OnClientFirst(first);
  EXPECT_EQ(*client.OnServerFirst(server_first),
            HandMadeClientFinal("secret pw", "n,,", first.substr(3), server_first));
}

TEST_F(ScramTest, ServerRejectsChannelBindingDemand) {
  ScramServer server(keys_, CountingRandom(2));
  absl::StatusOr<std::string> result = server.OnClientFirst("p=tls-server-end-point,,n=,r=abc");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ScramTest, ServerRejectsMalformedClientFirst) {
  const std::vector<std::string> bad = {
      "",
      "n",
      "n,",
      "n,,",
      "x,,n=,r=abc",
      "nn,,n=,r=abc",
      "n,a=admin,n=,r=abc",   // authzid not supported
      "n,,r=abc",             // missing n=
      "n,,n=",                // missing r=
      "n,,n=,r=",             // empty nonce
      "n,,n=,r=ab c",         // nonce not printable
      "n,,n=,r=ab\x01",       // nonce not printable
      "n,,m=ext,n=,r=abc",    // mandatory extension
      "n,,n=bad=name,r=abc",  // bad saslname escape
      "n,,n=,r=abc,",         // trailing comma
      "n,,n=,,r=abc",         // empty attribute
      "n,,n=,r=abc,=x",       // attribute without a name
      "n,,n=,1=abc",          // non-letter name
      "n,,n=,rr=abc",         // two-letter name
      std::string("n,,n=,r=a\0b", 11),
      std::string(5000, 'a'),
      "n,,n=,r=" + std::string(kMaxScramMessageLength, 'a'),
  };
  for (const std::string& message : bad) {
    ScramServer server(keys_, CountingRandom(2));
    absl::StatusOr<std::string> result = server.OnClientFirst(message);
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << message;
  }
}

TEST_F(ScramTest, ServerIgnoresUserNameAndAcceptsExtensions) {
  ScramServer server(keys_, CountingRandom(2));
  EXPECT_TRUE(server.OnClientFirst("n,,n=someone=2Celse,r=abc,x=ext").ok());
}

TEST_F(ScramTest, ServerRejectsMalformedClientFinal) {
  ScramClient client("secret pw", CountingRandom(1));
  // Build a server-first the client accepts so we know the combined nonce.
  ScramServer server_for_nonce(keys_, CountingRandom(100));
  const std::string server_first = *server_for_nonce.OnClientFirst(client.ClientFirst());
  const std::string nonce = server_first.substr(2, server_first.find(",s=") - 2);
  const std::string proof = "p=" + crypto::Base64Encode(std::string(32, 'x'));
  const std::vector<std::string> bad = {
      "",
      "c=biws",
      "c=biws,r=" + nonce,
      "r=" + nonce + ",c=biws," + proof,
      "c=biws,r=" + nonce + "," + proof + ",x=1",  // proof not last
      "c=biws," + proof + ",r=" + nonce,
      "c=b!ws,r=" + nonce + "," + proof,  // bad base64
      "c=eSws,r=" + nonce + "," + proof,  // binding says y,, but client sent n,,
      "c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws,r=" + nonce + "," + proof,
      "c=biws,r=" + nonce + "X," + proof,  // wrong nonce
      "c=biws,r=," + proof,
      "c=biws,r=" + nonce + ",p=",     // empty proof
      "c=biws,r=" + nonce + ",p=abc",  // bad base64
      "c=biws,r=" + nonce + ",p=" + crypto::Base64Encode("short"),
      "c=biws,r=" + nonce + ",p=" + crypto::Base64Encode(std::string(64, 'x')),
      "c=biws,r=" + nonce + ",p=" + crypto::Base64Encode(std::string(32, 'x')) + ",",
      "c=biws,r=" + nonce + ",x=1,p=1," + proof,
      std::string(kMaxScramMessageLength + 1, 'c'),
  };
  for (const std::string& message : bad) {
    std::unique_ptr<ScramServer> server = ServerAfterFirst(client);
    absl::StatusOr<std::string> result = server->OnClientFinal(message);
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << message;
  }
  // Well-formed but wrong proof: permission denied, not a parse error.
  std::unique_ptr<ScramServer> server = ServerAfterFirst(client);
  EXPECT_EQ(server->OnClientFinal("c=biws,r=" + nonce + "," + proof).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(ScramTest, EveryTruncationAndByteChangeOfClientFinalFails) {
  ScramClient client("secret pw", CountingRandom(1));
  ScramServer nonce_server(keys_, CountingRandom(100));
  absl::StatusOr<std::string> client_final =
      client.OnServerFirst(*nonce_server.OnClientFirst(client.ClientFirst()));
  ASSERT_TRUE(client_final.ok());
  ASSERT_TRUE(ServerAfterFirst(client)->OnClientFinal(*client_final).ok());
  for (size_t len = 0; len < client_final->size(); ++len) {
    std::unique_ptr<ScramServer> server = ServerAfterFirst(client);
    EXPECT_FALSE(server->OnClientFinal(client_final->substr(0, len)).ok()) << len;
  }
  for (size_t i = 0; i < client_final->size(); ++i) {
    for (char replacement : {'A', '=', ',', '\0', '\xff'}) {
      std::string mutated = *client_final;
      if (mutated[i] == replacement) {
        continue;
      }
      mutated[i] = replacement;
      std::unique_ptr<ScramServer> server = ServerAfterFirst(client);
      EXPECT_FALSE(server->OnClientFinal(mutated).ok()) << i << " " << mutated;
    }
  }
}

TEST_F(ScramTest, ServerRejectsOutOfOrderCalls) {
  ScramServer server(keys_, CountingRandom(2));
  EXPECT_EQ(server.OnClientFinal("c=biws,r=abc,p=abcd").status().code(),
            absl::StatusCode::kFailedPrecondition);
  ScramServer server2(keys_, CountingRandom(2));
  ASSERT_TRUE(server2.OnClientFirst("n,,n=,r=abc").ok());
  EXPECT_EQ(server2.OnClientFirst("n,,n=,r=abc").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// A client that has sent its first message (nonce fixed to "cnonce").
std::unique_ptr<ScramClient> StartedClient() {
  auto client = std::make_unique<ScramClient>("pw", CountingRandom(0));
  client->SetNonceForTest("cnonce");
  client->ClientFirst();
  return client;
}

TEST_F(ScramTest, ClientRejectsMalformedServerFirst) {
  const std::string salt = crypto::Base64Encode("saltsalt");
  const std::vector<std::string> bad = {
      "",
      "r=cnonceX",
      "r=cnonceX,s=" + salt,
      "r=cnonceX,s=" + salt + ",i=",
      "r=cnonce,s=" + salt + ",i=1",  // server added nothing
      "r=other,s=" + salt + ",i=1",   // does not start with ours
      "r=cnonc,s=" + salt + ",i=1",
      "r=,s=" + salt + ",i=1",
      "r=cnonce x,s=" + salt + ",i=1",
      "r=cnonceX,s=,i=1",      // empty salt
      "r=cnonceX,s=!!!!,i=1",  // bad base64
      "r=cnonceX,s=" + salt + ",i=0",
      "r=cnonceX,s=" + salt + ",i=-1",
      "r=cnonceX,s=" + salt + ",i=+5",
      "r=cnonceX,s=" + salt + ",i=4a",
      "r=cnonceX,s=" + salt + ",i=10000001",
      "r=cnonceX,s=" + salt + ",i=99999999999999999999",
      "r=cnonceX,i=1,s=" + salt,  // wrong order
      "m=ext,r=cnonceX,s=" + salt + ",i=1",
      "r=cnonceX,s=" + salt + ",i=1,",
      "r=cnonceX,,s=" + salt + ",i=1",
      std::string(kMaxScramMessageLength + 1, 'r'),
  };
  for (const std::string& message : bad) {
    std::unique_ptr<ScramClient> client = StartedClient();
    absl::StatusOr<std::string> result = client->OnServerFirst(message);
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << message;
  }
  std::unique_ptr<ScramClient> client = StartedClient();
  EXPECT_TRUE(client->OnServerFirst("r=cnonceX,s=" + salt + ",i=1,x=ext").ok());
}

TEST_F(ScramTest, ClientTruncatedServerFirstNeverCrashes) {
  const std::string message =
      std::string("r=cnonceSERVER,s=") + crypto::Base64Encode("salty") + ",i=16";
  for (size_t len = 0; len <= message.size(); ++len) {
    std::unique_ptr<ScramClient> client = StartedClient();
    absl::StatusOr<std::string> result = client->OnServerFirst(message.substr(0, len));
    // Only "i=1" and "i=16" are complete messages.
    EXPECT_EQ(result.ok(), len >= message.size() - 1) << len;
  }
}

TEST_F(ScramTest, ClientChecksServerFinal) {
  auto run_to_final = [](ScramClient& client) {
    ScramServer server(keys_, CountingRandom(2));
    absl::StatusOr<std::string> client_final =
        client.OnServerFirst(*server.OnClientFirst(client.ClientFirst()));
    EXPECT_TRUE(client_final.ok());
    absl::StatusOr<std::string> server_final = server.OnClientFinal(*client_final);
    EXPECT_TRUE(server_final.ok());
    return *server_final;
  };
  {
    ScramClient client("secret pw", CountingRandom(1));
    const std::string server_final = run_to_final(client);
    std::string forged = server_final;
    forged[2] = forged[2] == 'A' ? 'B' : 'A';
    EXPECT_EQ(client.OnServerFinal(forged).code(), absl::StatusCode::kPermissionDenied);
    EXPECT_FALSE(client.OnServerFinal(server_final).ok());  // failed for good
  }
  {
    ScramClient client("secret pw", CountingRandom(1));
    run_to_final(client);
    absl::Status status = client.OnServerFinal("e=invalid-proof");
    EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
    EXPECT_TRUE(absl::StrContains(status.message(), "invalid-proof"));
  }
  const std::vector<std::string> bad = {
      "", "v=", "v=abc", "v=!!!!", "x=abc", "v", "=v", ",", std::string(5000, 'v'),
  };
  for (const std::string& message : bad) {
    ScramClient client("secret pw", CountingRandom(1));
    run_to_final(client);
    EXPECT_EQ(client.OnServerFinal(message).code(), absl::StatusCode::kInvalidArgument) << message;
  }
  {
    ScramClient client("secret pw", CountingRandom(1));
    const std::string server_final = run_to_final(client);
    EXPECT_TRUE(client.OnServerFinal(server_final + ",x=ext").ok());
  }
}

TEST_F(ScramTest, ClientRejectsOutOfOrderCalls) {
  ScramClient client("pw", CountingRandom(0));
  EXPECT_EQ(client.OnServerFirst("r=a,s=c2FsdA==,i=1").status().code(),
            absl::StatusCode::kFailedPrecondition);
  ScramClient client2("pw", CountingRandom(0));
  client2.ClientFirst();
  EXPECT_EQ(client2.OnServerFinal("v=abcd").code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(ScramTest, RandomMessagesNeverCrash) {
  // Messages over the characters SCRAM syntax cares about, so that many get deep into parsing.
  static constexpr char kAlphabet[] = "nypmacrsive=,,,biwsAB+/0129\x01\xff";
  std::mt19937 rng(12345);
  auto random_message = [&rng]() {
    std::string m;
    const size_t len = rng() % 48;
    for (size_t i = 0; i < len; ++i) {
      m.push_back(kAlphabet[rng() % (sizeof(kAlphabet) - 1)]);
    }
    return m;
  };
  for (int i = 0; i < 3000; ++i) {
    const std::string m = random_message();
    ScramServer server(keys_, CountingRandom(2));
    if (server.OnClientFirst(m).ok()) {
      EXPECT_FALSE(server.OnClientFinal(random_message()).ok());
    }
    ScramServer server2(keys_, CountingRandom(2));
    ASSERT_TRUE(server2.OnClientFirst("n,,n=,r=abc").ok());
    EXPECT_FALSE(server2.OnClientFinal(m).ok());
    std::unique_ptr<ScramClient> client = StartedClient();
    // Random server-first messages are rejected before PBKDF2 unless they start with our nonce.
    EXPECT_FALSE(client->OnServerFirst(m).ok());
  }
}

}  // namespace
}  // namespace wirepool::codec::postgres
