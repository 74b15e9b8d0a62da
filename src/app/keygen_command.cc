#include "app/keygen_command.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "auth/document_signer.h"
#include "common/result.h"

namespace openimds::app {
namespace {

// Writes `text` to `path` with `mode`, refusing to replace an existing file
// unless `force`. The key never exists with wider permissions, not even for
// a moment: the file is created with its final mode.
common::Status WriteFile(const std::filesystem::path& path, const std::string& text, mode_t mode,
                         bool force) {
  const int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (force ? O_TRUNC : O_EXCL);
  const int fd = ::open(path.c_str(), flags, mode);
  if (fd < 0) {
    if (errno == EEXIST) {
      return common::FailedPrecondition(path.string() + " exists (use --force to replace it)");
    }
    return common::Internal("cannot write " + path.string() + ": " + std::strerror(errno));
  }
  bool ok = ::fchmod(fd, mode) == 0;  // an existing file keeps its mode otherwise
  size_t done = 0;
  while (ok && done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  if (!ok) return common::Internal("cannot write " + path.string() + ": " + std::strerror(saved));
  return common::Status::Ok();
}

}  // namespace

void RegisterKeygenCommand(CLI::App& app, KeygenOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "keygen", "Create an identity-document signing key and self-signed certificate (labs).");
  cmd->add_option("--out", o.out_dir, "Directory for identity.key/identity.crt (created).")
      ->required();
  cmd->add_option("--days", o.days, "Certificate lifetime in days.")->capture_default_str();
  cmd->add_option("--subject-cn", o.common_name, "Certificate subject common name.")
      ->capture_default_str();
  cmd->add_flag("--pkcs7-dsa", o.pkcs7_dsa,
                "Also create pkcs7.key/pkcs7.crt, a DSA-2048 pair for the pkcs7 form (as EC2).");
  cmd->add_flag("--force", o.force, "Replace existing files.");
  cmd->footer(
      "\nThen: openimds serve --identity-keys DIR ...\n"
      "Guests verify with AWS's commands, using DIR/identity.crt as the certificate:\n"
      "  openssl x509 -pubkey -noout -in identity.crt > key\n"
      "  openssl dgst -sha256 -verify key -signature signature document\n"
      "  openssl smime -verify -in pkcs7 -inform PEM -content document "
      "-certfile identity.crt -noverify\n");
  cmd->callback([&o] { o.selected = true; });
}

int RunKeygen(const KeygenOptions& o) {
  const std::filesystem::path dir(o.out_dir);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    std::cerr << "openimds keygen: cannot create " << dir << ": " << ec.message() << "\n";
    return 1;
  }
  if (!o.force) {
    for (const char* name : {"identity.key", "identity.crt", "pkcs7.key", "pkcs7.crt"}) {
      if (std::filesystem::exists(dir / name)) {
        std::cerr << "openimds keygen: " << (dir / name).string()
                  << " exists (use --force to replace it)\n";
        return 2;
      }
    }
  }
  struct Pair {
    auth::SigningIdentityOptions::Algorithm algorithm;
    const char* key;
    const char* cert;
  };
  std::vector<Pair> pairs = {
      {auth::SigningIdentityOptions::Algorithm::kRsa, "identity.key", "identity.crt"}};
  if (o.pkcs7_dsa) {
    pairs.push_back({auth::SigningIdentityOptions::Algorithm::kDsa, "pkcs7.key", "pkcs7.crt"});
  }
  for (const Pair& p : pairs) {
    auth::SigningIdentityOptions options;
    options.algorithm = p.algorithm;
    options.days = o.days;
    options.common_name = o.common_name;
    auto id = auth::GenerateSigningIdentity(options);
    if (!id.ok()) {
      std::cerr << "openimds keygen: " << id.status().message() << "\n";
      return id.status().code() == common::Code::kInvalidArgument ? 2 : 1;
    }
    for (const auto& [name, text, mode] :
         {std::tuple{p.key, &id->key_pem, mode_t{0600}},
          std::tuple{p.cert, &id->certificate_pem, mode_t{0644}}}) {
      if (common::Status s = WriteFile(dir / name, *text, mode, o.force); !s.ok()) {
        std::cerr << "openimds keygen: " << s.message() << "\n";
        return s.code() == common::Code::kFailedPrecondition ? 2 : 1;
      }
    }
    std::cout << "wrote " << (dir / p.key).string() << " (0600) and " << (dir / p.cert).string()
              << "\n";
  }
  return 0;
}

}  // namespace openimds::app
