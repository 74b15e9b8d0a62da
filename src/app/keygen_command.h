#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace openimds::app {

// `openimds keygen`: a signing key and self-signed certificate for the EC2
// instance identity document, for labs and tests. Production operators bring
// their own (any RSA key of 2048+ bits with its certificate; optionally a
// separate pkcs7 key, e.g. DSA as AWS uses).
//
// Writes into DIR (created if needed, mode 0700):
//   identity.key  RSA-2048 private key, PKCS#8 PEM, mode 0600
//   identity.crt  self-signed X.509 certificate, PEM, mode 0644
//   pkcs7.key, pkcs7.crt  (with --pkcs7-dsa) a DSA-2048 pair for "pkcs7"
// `openimds serve --identity-keys DIR` reads exactly these names.
struct KeygenOptions {
  std::string out_dir;
  int days = 3650;
  std::string common_name = "OpenIMDS instance identity";
  bool pkcs7_dsa = false;  // also create pkcs7.key/pkcs7.crt (DSA), as EC2's pkcs7 is
  bool force = false;      // replace existing files
  bool selected = false;   // set when the subcommand was given
};

void RegisterKeygenCommand(CLI::App& app, KeygenOptions& options);

// Returns the process exit code: 0, 1 (generation or I/O failed; the message
// names the file), 2 (bad arguments, or files exist without --force).
int RunKeygen(const KeygenOptions& options);

}  // namespace openimds::app
