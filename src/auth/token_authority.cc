#include "auth/token_authority.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "common/encoding.h"

namespace openimds::auth {
namespace {

using common::Result;
using common::Status;

// 2: the AAD holds the incarnation (version 1's did not).
constexpr uint8_t kVersion = 2;
constexpr size_t kKeyBytes = 32;
constexpr size_t kEpochBytes = 4;
constexpr size_t kNonceBytes = 12;  // the GCM default IV length: no extra GHASH pass
constexpr size_t kExpiryBytes = 8;
constexpr size_t kTagBytes = 16;
constexpr size_t kHeaderBytes = 1 + kEpochBytes;  // version | epoch: also the start of the AAD
constexpr size_t kIncarnationBytes = 8;
constexpr size_t kTokenBytes = kHeaderBytes + kNonceBytes + kExpiryBytes + kTagBytes;  // 41
static_assert((kTokenBytes * 4 + 2) / 3 == TokenAuthority::kTokenChars,
              "unpadded base64 length must match the declared token length");

constexpr size_t kNonceOffset = kHeaderBytes;
constexpr size_t kExpiryOffset = kNonceOffset + kNonceBytes;
constexpr size_t kTagOffset = kExpiryOffset + kExpiryBytes;

// The cipher is fetched once per process: EVP_CIPHER_fetch takes locks and
// walks the provider store, which must not happen on every request.
const EVP_CIPHER* Aes256Gcm() {
  static EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  return cipher;
}

// One EVP_CIPHER_CTX per thread for Issue, bound to AES-256-GCM once. Later
// inits pass a null cipher, which keeps the provider context and only
// installs the key and nonce.
class ThreadCipher {
 public:
  ThreadCipher() : ctx_(EVP_CIPHER_CTX_new()) {
    if (ctx_ != nullptr && Aes256Gcm() != nullptr &&
        EVP_EncryptInit_ex2(ctx_, Aes256Gcm(), nullptr, nullptr, nullptr) == 1) {
      ready_ = true;
    }
  }
  ~ThreadCipher() { EVP_CIPHER_CTX_free(ctx_); }
  ThreadCipher(const ThreadCipher&) = delete;
  ThreadCipher& operator=(const ThreadCipher&) = delete;

  // Null when OpenSSL could not provide the cipher.
  EVP_CIPHER_CTX* get() { return ready_ ? ctx_ : nullptr; }

 private:
  EVP_CIPHER_CTX* ctx_;
  bool ready_ = false;
};

EVP_CIPHER_CTX* CipherForThisThread() {
  thread_local ThreadCipher cipher;
  return cipher.get();
}

// Verify's contexts: per thread, a few decryption contexts with their key
// already expanded, so a verification only installs the nonce. Installing
// the key costs more than the rest of Verify together (AES key schedule and
// GHASH key through the provider layers). Slots are matched on the key bytes
// themselves, never on an authority's address, so a context can never be used
// with a key other than the one it holds. Keys are ring keys, not caller
// input, so the comparison need not be constant-time.
class ThreadDecryptors {
 public:
  ThreadDecryptors() = default;
  ThreadDecryptors(const ThreadDecryptors&) = delete;
  ThreadDecryptors& operator=(const ThreadDecryptors&) = delete;
  ~ThreadDecryptors() {
    for (Slot& s : slots_) {
      EVP_CIPHER_CTX_free(s.ctx);
      OPENSSL_cleanse(s.key.data(), s.key.size());
    }
  }

  // A context holding `key` (kKeyBytes), ready for an IV-only init; null if
  // OpenSSL failed.
  EVP_CIPHER_CTX* ForKey(std::string_view key) {
    for (Slot& s : slots_) {
      if (s.keyed && std::memcmp(s.key.data(), key.data(), kKeyBytes) == 0) return s.ctx;
    }
    Slot& s = slots_[next_++ % slots_.size()];
    s.keyed = false;
    if (s.ctx == nullptr && (s.ctx = EVP_CIPHER_CTX_new()) == nullptr) return nullptr;
    const auto* key_bytes = reinterpret_cast<const uint8_t*>(key.data());
    // The cipher is bound on a slot's first use only: passing it again would
    // rebuild the provider context (an allocation) on every key change.
    if (EVP_DecryptInit_ex2(s.ctx, s.bound ? nullptr : Aes256Gcm(), key_bytes, nullptr, nullptr) !=
        1) {
      return nullptr;
    }
    s.bound = true;
    std::memcpy(s.key.data(), key.data(), kKeyBytes);
    s.keyed = true;
    return s.ctx;
  }

 private:
  struct Slot {
    EVP_CIPHER_CTX* ctx = nullptr;
    std::array<uint8_t, kKeyBytes> key{};
    bool bound = false;  // cipher set on ctx
    bool keyed = false;  // ctx holds `key`
  };
  // Rotation overlap means two or three live keys; four slots also cover
  // a process with a second ring (tests, a reload in progress).
  std::array<Slot, 4> slots_;
  unsigned next_ = 0;
};

EVP_CIPHER_CTX* DecryptorForThisThread(std::string_view key) {
  thread_local ThreadDecryptors decryptors;
  return decryptors.ForKey(key);
}

// Tokens this thread verified recently. A client sends one token with many
// requests, and running AES-GCM on it again is most of what IMDSv2 adds to
// a request. An entry answers only for the identical token text, instance id,
// incarnation and key ring (by id: a ring swap empties the cache in effect,
// so a token whose key left the ring is verified, and refused, in full); the
// expiry is checked on every use. Only successes are kept, and the token is compared
// in constant time (CRYPTO_memcmp) after the instance id, so a guest can
// only ever match its own tokens.
constexpr size_t kMaxCachedInstanceIdBytes = 128;  // the model's limit on ids
struct VerifiedToken {
  uint64_t ring_id = 0;  // 0: empty
  int64_t expiry = 0;    // Unix seconds
  int64_t incarnation = 0;
  size_t id_len = 0;
  std::array<char, kMaxCachedInstanceIdBytes> instance_id{};
  std::array<char, TokenAuthority::kTokenChars> token{};
};
struct VerifiedTokens {
  std::array<VerifiedToken, 8> entries;
  unsigned next = 0;

  const VerifiedToken* Find(uint64_t ring_id, std::string_view token, std::string_view id,
                            int64_t incarnation) const {
    for (const VerifiedToken& e : entries) {
      // An empty id may be a view with no storage: memcmp/memcpy are not
      // called with a null pointer, even for zero bytes (undefined).
      if (e.ring_id == ring_id && e.incarnation == incarnation && e.id_len == id.size() &&
          (id.empty() || std::memcmp(e.instance_id.data(), id.data(), id.size()) == 0) &&
          CRYPTO_memcmp(e.token.data(), token.data(), e.token.size()) == 0) {
        return &e;
      }
    }
    return nullptr;
  }
  void Add(uint64_t ring_id, std::string_view token, std::string_view id, int64_t incarnation,
           int64_t expiry) {
    if (id.size() > kMaxCachedInstanceIdBytes) return;
    VerifiedToken& e = entries[next++ % entries.size()];
    e.ring_id = ring_id;
    e.expiry = expiry;
    e.incarnation = incarnation;
    e.id_len = id.size();
    if (!id.empty()) std::memcpy(e.instance_id.data(), id.data(), id.size());
    std::memcpy(e.token.data(), token.data(), e.token.size());
  }
};

VerifiedTokens& VerifiedTokensForThisThread() {
  thread_local VerifiedTokens cache;
  return cache;
}

void PutBigEndian32(uint32_t v, uint8_t* out) {
  for (int i = 3; i >= 0; --i) {
    out[i] = static_cast<uint8_t>(v & 0xff);
    v >>= 8;
  }
}

uint32_t GetBigEndian32(const uint8_t* in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | in[i];
  return v;
}

void PutBigEndian64(int64_t value, uint8_t* out) {
  uint64_t v = static_cast<uint64_t>(value);
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<uint8_t>(v & 0xff);
    v >>= 8;
  }
}

int64_t GetBigEndian64(const uint8_t* in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | in[i];
  return static_cast<int64_t>(v);
}

int8_t UrlValue(char c) {
  if (c >= 'A' && c <= 'Z') return static_cast<int8_t>(c - 'A');
  if (c >= 'a' && c <= 'z') return static_cast<int8_t>(c - 'a' + 26);
  if (c >= '0' && c <= '9') return static_cast<int8_t>(c - '0' + 52);
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

// Decodes exactly kTokenChars of unpadded base64url into a stack buffer.
// Refuses non-alphabet characters and non-zero leftover bits: otherwise two
// distinct strings would decode to the same token and a one-character change
// to the last character could go unnoticed.
bool DecodeToken(std::string_view text, std::array<uint8_t, kTokenBytes>& out) {
  uint32_t acc = 0;
  int bits = 0;
  size_t n = 0;
  for (char c : text) {
    const int8_t v = UrlValue(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (n == out.size()) return false;
      out[n++] = static_cast<uint8_t>((acc >> bits) & 0xff);
    }
  }
  if (n != out.size()) return false;
  return bits == 0 || (acc & ((1u << bits) - 1)) == 0;
}

int64_t UnixSeconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

// Feeds the AAD (version | epoch | incarnation | instance id) into an
// initialised context. The incarnation has a fixed width, so no two
// (incarnation, id) pairs give the same bytes.
bool AddAad(EVP_CIPHER_CTX* ctx, const uint8_t* header, int64_t incarnation,
            std::string_view instance_id, bool encrypt) {
  int len = 0;
  auto update = encrypt ? EVP_EncryptUpdate : EVP_DecryptUpdate;
  if (update(ctx, nullptr, &len, header, static_cast<int>(kHeaderBytes)) != 1) return false;
  std::array<uint8_t, kIncarnationBytes> bound{};
  PutBigEndian64(incarnation, bound.data());
  if (update(ctx, nullptr, &len, bound.data(), static_cast<int>(bound.size())) != 1) return false;
  if (!instance_id.empty() &&
      update(ctx, nullptr, &len, reinterpret_cast<const uint8_t*>(instance_id.data()),
             static_cast<int>(instance_id.size())) != 1) {
    return false;
  }
  return true;
}

}  // namespace

std::string_view TokenErrorName(TokenError e) {
  switch (e) {
    case TokenError::kMalformed: return "malformed";
    case TokenError::kUnknownKey: return "unknown_key";
    case TokenError::kBadSeal: return "bad_seal";
    case TokenError::kExpired: return "expired";
  }
  return "malformed";
}

namespace {
// A replaced ring stays allocated this long: an Issue or Verify that loaded
// it just before the swap finishes in microseconds, so a minute is beyond
// any real delay (even a descheduled thread) by orders of magnitude.
constexpr std::chrono::minutes kRetireGrace{1};
}  // namespace

Result<std::unique_ptr<const TokenAuthority::Ring>> TokenAuthority::MakeRing(
    std::vector<TokenKey> keys, std::optional<uint32_t> issuing_epoch) {
  if (keys.empty()) return common::InvalidArgument("token key ring is empty");
  for (const auto& k : keys) {
    if (k.key.size() != kKeyBytes) {
      return common::InvalidArgument("token key for epoch " + std::to_string(k.epoch) +
                                     " is not 32 bytes");
    }
  }
  // Sorted by epoch whatever order app/ passed: the newest is last.
  std::sort(keys.begin(), keys.end(),
            [](const TokenKey& a, const TokenKey& b) { return a.epoch < b.epoch; });
  for (size_t i = 1; i < keys.size(); ++i) {
    if (keys[i].epoch == keys[i - 1].epoch) {
      return common::InvalidArgument("two token keys share epoch " + std::to_string(keys[i].epoch));
    }
  }
  static std::atomic<uint64_t> next_ring_id{1};
  auto ring = std::make_unique<Ring>();
  ring->id = next_ring_id.fetch_add(1, std::memory_order_relaxed);
  ring->issuing = keys.size() - 1;
  if (issuing_epoch.has_value()) {
    const auto it = std::find_if(keys.begin(), keys.end(),
                                 [&](const TokenKey& k) { return k.epoch == *issuing_epoch; });
    if (it == keys.end()) {
      return common::NotFound("issuing epoch " + std::to_string(*issuing_epoch) +
                              " is not in the token key ring");
    }
    ring->issuing = static_cast<size_t>(it - keys.begin());
  }
  ring->keys = std::move(keys);
  return std::unique_ptr<const Ring>(std::move(ring));
}

TokenAuthority::TokenAuthority(std::unique_ptr<const Ring> ring, const common::Clock& clock)
    : ring_(ring.release()), clock_(&clock) {}

TokenAuthority::TokenAuthority(TokenAuthority&& other) noexcept
    : ring_(other.ring_.exchange(nullptr)), clock_(other.clock_) {
  std::lock_guard lock(other.retire_mu_);
  retired_ = std::move(other.retired_);
  other.retired_.clear();
}

TokenAuthority::~TokenAuthority() {
  delete ring_.load();
  for (auto& [when, ring] : retired_) delete ring;
}

Result<TokenAuthority> TokenAuthority::Create(std::vector<TokenKey> keys,
                                              const common::Clock& clock) {
  auto ring = MakeRing(std::move(keys), std::nullopt);
  if (!ring.ok()) return ring.status();
  if (Aes256Gcm() == nullptr) return common::Internal("AES-256-GCM is not available");
  return TokenAuthority(std::move(*ring), clock);
}

common::Status TokenAuthority::SetKeys(std::vector<TokenKey> keys,
                                       std::optional<uint32_t> issuing_epoch) {
  auto ring = MakeRing(std::move(keys), issuing_epoch);
  if (!ring.ok()) return ring.status();
  const Ring* old = ring_.exchange(ring->release(), std::memory_order_acq_rel);
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(retire_mu_);
  std::erase_if(retired_, [&](const auto& entry) {
    if (now - entry.first < kRetireGrace) return false;
    delete entry.second;
    return true;
  });
  if (old != nullptr) retired_.emplace_back(now, old);
  return Status::Ok();
}

std::vector<uint32_t> TokenAuthority::Epochs() const {
  std::vector<uint32_t> out;
  for (const auto& k : ring_.load(std::memory_order_acquire)->keys) out.push_back(k.epoch);
  return out;
}

uint32_t TokenAuthority::IssuingEpoch() const {
  const Ring* ring = ring_.load(std::memory_order_acquire);
  return ring->keys[ring->issuing].epoch;
}

Result<std::string> TokenAuthority::Issue(std::string_view instance_id, int64_t incarnation,
                                          std::chrono::seconds ttl) const {
  EVP_CIPHER_CTX* ctx = CipherForThisThread();
  if (ctx == nullptr) return common::Internal("token cipher unavailable");
  const Ring* ring = ring_.load(std::memory_order_acquire);
  const TokenKey& key = ring->keys[ring->issuing];

  std::array<uint8_t, kTokenBytes> raw{};
  raw[0] = kVersion;
  PutBigEndian32(key.epoch, &raw[1]);
  if (RAND_bytes(&raw[kNonceOffset], static_cast<int>(kNonceBytes)) != 1) {
    return common::Internal("random nonce unavailable");
  }
  // Expiry in whole seconds: a token lives between ttl-1 and ttl seconds,
  // never longer than asked.
  std::array<uint8_t, kExpiryBytes> expiry{};
  PutBigEndian64(UnixSeconds(clock_->Now()) + ttl.count(), expiry.data());

  int len = 0;
  if (EVP_EncryptInit_ex2(ctx, nullptr, reinterpret_cast<const uint8_t*>(key.key.data()),
                          &raw[kNonceOffset], nullptr) != 1 ||
      !AddAad(ctx, raw.data(), incarnation, instance_id, /*encrypt=*/true) ||
      EVP_EncryptUpdate(ctx, &raw[kExpiryOffset], &len, expiry.data(),
                        static_cast<int>(expiry.size())) != 1 ||
      len != static_cast<int>(kExpiryBytes) ||
      EVP_EncryptFinal_ex(ctx, &raw[kExpiryOffset + kExpiryBytes], &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagBytes),
                          &raw[kTagOffset]) != 1) {
    return common::Internal("token sealing failed");
  }
  return common::Base64UrlEncode(
      std::string_view(reinterpret_cast<const char*>(raw.data()), raw.size()));
}

common::Status TokenAuthority::Verify(std::string_view token, std::string_view instance_id,
                                      int64_t incarnation, TokenError* why) const {
  auto refuse = [why](TokenError e) {
    if (why != nullptr) *why = e;
    // A literal message keeps the refusal allocation-free (SSO-sized).
    return Status(common::Code::kUnauthenticated, std::string(TokenErrorName(e)));
  };
  // Length first: nothing longer than a token is ever decoded.
  if (token.size() != kTokenChars) return refuse(TokenError::kMalformed);
  const Ring* ring = ring_.load(std::memory_order_acquire);
  VerifiedTokens& verified = VerifiedTokensForThisThread();
  if (const VerifiedToken* hit = verified.Find(ring->id, token, instance_id, incarnation)) {
    if (UnixSeconds(clock_->Now()) >= hit->expiry) return refuse(TokenError::kExpired);
    return Status::Ok();
  }
  std::array<uint8_t, kTokenBytes> raw;
  if (!DecodeToken(token, raw) || raw[0] != kVersion) return refuse(TokenError::kMalformed);

  const uint32_t epoch = GetBigEndian32(&raw[1]);
  const TokenKey* key = nullptr;
  for (const auto& k : ring->keys) {
    if (k.epoch == epoch) key = &k;
  }
  if (key == nullptr) return refuse(TokenError::kUnknownKey);

  EVP_CIPHER_CTX* ctx = DecryptorForThisThread(key->key);
  if (ctx == nullptr) return refuse(TokenError::kBadSeal);
  std::array<uint8_t, kExpiryBytes> expiry{};
  int len = 0;
  // The tag comparison inside EVP_DecryptFinal_ex is constant-time
  // (CRYPTO_memcmp); nothing here branches on secret bytes before it.
  if (EVP_DecryptInit_ex2(ctx, nullptr, nullptr, &raw[kNonceOffset], nullptr) != 1 ||
      !AddAad(ctx, raw.data(), incarnation, instance_id, /*encrypt=*/false) ||
      EVP_DecryptUpdate(ctx, expiry.data(), &len, &raw[kExpiryOffset],
                        static_cast<int>(kExpiryBytes)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagBytes),
                          &raw[kTagOffset]) != 1 ||
      EVP_DecryptFinal_ex(ctx, expiry.data() + len, &len) != 1) {
    return refuse(TokenError::kBadSeal);
  }
  const int64_t expires = GetBigEndian64(expiry.data());
  if (UnixSeconds(clock_->Now()) >= expires) return refuse(TokenError::kExpired);
  verified.Add(ring->id, token, instance_id, incarnation, expires);
  return Status::Ok();
}

Result<std::string> TokenAuthority::NewKeyMaterial() {
  std::string key(kKeyBytes, '\0');
  if (RAND_bytes(reinterpret_cast<uint8_t*>(key.data()), static_cast<int>(key.size())) != 1) {
    return common::Internal("random key material unavailable");
  }
  return key;
}

TokenEpochWindow TokenEpochsAt(std::chrono::system_clock::time_point now,
                               const TokenKeySchedule& schedule) {
  const int64_t period = std::max<int64_t>(1, schedule.period.count());
  const int64_t t = std::max<int64_t>(0, UnixSeconds(now));
  const auto epoch_at = [period](int64_t seconds) {
    return static_cast<uint32_t>(std::max<int64_t>(0, seconds) / period);
  };
  TokenEpochWindow w;
  w.issuing = epoch_at(t);
  w.last = w.issuing + 1;
  const uint32_t oldest = epoch_at(t - schedule.max_token_ttl.count());
  w.first = oldest > 0 ? oldest - 1 : 0;
  return w;
}

std::string TokenKeySecretName(const TokenKeySchedule& schedule, uint32_t epoch) {
  return "imds_token_key/" + std::to_string(schedule.period.count()) + "/" + std::to_string(epoch);
}

common::Status RefreshTokenKeys(TokenAuthority& authority,
                                std::chrono::system_clock::time_point now,
                                const TokenKeySchedule& schedule,
                                const SecretGetOrCreate& get_or_create) {
  const TokenEpochWindow w = TokenEpochsAt(now, schedule);
  std::vector<TokenKey> keys;
  keys.reserve(w.last - w.first + 1);
  for (uint32_t epoch = w.first; epoch <= w.last; ++epoch) {
    auto candidate = TokenAuthority::NewKeyMaterial();
    if (!candidate.ok()) return candidate.status();
    auto stored = get_or_create(TokenKeySecretName(schedule, epoch), *candidate);
    OPENSSL_cleanse(candidate->data(), candidate->size());
    if (!stored.ok()) return stored.status();
    if (stored->size() != kKeyBytes) {
      return common::Internal("stored token key " + TokenKeySecretName(schedule, epoch) +
                              " is not 32 bytes");
    }
    keys.push_back(TokenKey{epoch, std::move(*stored)});
  }
  return authority.SetKeys(std::move(keys), w.issuing);
}

}  // namespace openimds::auth
