#include "client/instance_command.h"

#include <sys/stat.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cstdio>
#include <deque>
#include <future>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "client/admin_client.h"

namespace openimds::client {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

// Bound to the CLI11 options; shared by the subcommand callbacks, which keep it
// alive as long as `app`.
struct State {
  InstanceCommandIo io;
  int* exit_code = nullptr;

  std::string admin = "unix:/run/openimds/admin.sock";
  std::string token_file;
  std::string ca_file;  // https admin endpoints

  std::string file;
  int64_t batch_size = 0;  // import: 0 = one all-or-nothing request
  std::string id;
  std::string path;
  std::string network;
  std::string address;
  std::string flavour;
  std::vector<std::string> render_headers;
  int64_t if_match = 0;
  int64_t limit = 0;
  bool create_only = false;

  std::istream& in() { return io.in ? *io.in : std::cin; }
  std::ostream& out() { return io.out ? *io.out : std::cout; }
  std::ostream& err() { return io.err ? *io.err : std::cerr; }
  bool err_is_terminal() {
    return io.err_is_terminal ? *io.err_is_terminal : ::isatty(STDERR_FILENO) == 1;
  }
};

void PrettyPrint(const boost::json::value& v, std::string& out, int depth) {
  const std::string indent(2 * (depth + 1), ' ');
  const std::string close_indent(2 * depth, ' ');
  if (const auto* object = v.if_object()) {
    if (object->empty()) {
      out += "{}";
      return;
    }
    out += "{\n";
    bool first = true;
    for (const auto& member : *object) {
      if (!first) out += ",\n";
      first = false;
      out += indent + boost::json::serialize(boost::json::string(member.key())) + ": ";
      PrettyPrint(member.value(), out, depth + 1);
    }
    out += "\n" + close_indent + "}";
  } else if (const auto* array = v.if_array()) {
    if (array->empty()) {
      out += "[]";
      return;
    }
    out += "[\n";
    bool first = true;
    for (const auto& element : *array) {
      if (!first) out += ",\n";
      first = false;
      out += indent;
      PrettyPrint(element, out, depth + 1);
    }
    out += "\n" + close_indent + "]";
  } else {
    out += boost::json::serialize(v);
  }
}

// The body pretty-printed if it is JSON, else as sent.
std::string Pretty(const std::string& body) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(body, ec);
  if (ec) return body;
  std::string out;
  PrettyPrint(v, out, 0);
  out += "\n";
  return out;
}

// The revision in an ETag header value ("\"7\"" -> "7").
std::string RevisionOf(const AdminReply& reply) {
  std::string etag = reply.Header("ETag").value_or("");
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') {
    etag = etag.substr(1, etag.size() - 2);
  }
  return etag;
}

bool ReadInput(State& s, const std::string& file, std::string& content) {
  if (file == "-") {
    content.assign(std::istreambuf_iterator<char>(s.in()), std::istreambuf_iterator<char>());
    return true;
  }
  std::ifstream f(file, std::ios::binary);
  if (!f) {
    s.err() << "openimds: cannot open " << file << "\n";
    return false;
  }
  content.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  if (f.bad()) {
    s.err() << "openimds: cannot read " << file << "\n";
    return false;
  }
  return true;
}

// Sends one request; returns the reply or, after printing why, nullopt with
// `exit` set.
std::optional<AdminReply> Send(State& s, std::string_view method, const std::string& target,
                               const Headers& headers, std::string_view body, int& exit,
                               const AdminClient::Progress& progress = {}) {
  AdminClient::Options options;
  options.endpoint = s.admin;
  options.token_file = s.token_file;
  options.ca_file = s.ca_file;
  auto client = AdminClient::Create(options);
  if (!client.ok()) {
    s.err() << "openimds: " << client.status().message() << "\n";
    exit = kExitUsage;
    return std::nullopt;
  }
  auto reply = client->Call(method, target, headers, body, progress);
  if (!reply.ok()) {
    s.err() << "openimds: " << reply.status().message() << "\n";
    exit = reply.status().code() == common::Code::kUnavailable ? kExitUnreachable : kExitRefused;
    return std::nullopt;
  }
  return std::move(*reply);
}

// Prints the server's refusal ({"error":{"code","message"}} or any body).
int PrintRefusal(State& s, const AdminReply& reply) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(reply.body, ec);
  const boost::json::object* error = nullptr;
  if (!ec && v.is_object()) {
    if (const auto* e = v.as_object().if_contains("error")) error = e->if_object();
  }
  if (error != nullptr && error->contains("message") && error->at("message").is_string()) {
    std::string code;
    if (const auto* c = error->if_contains("code"); c != nullptr && c->is_string()) {
      code = std::string(c->as_string()) + ", ";
    }
    s.err() << "openimds: " << std::string(error->at("message").as_string()) << " (" << code
            << "HTTP " << reply.status << ")\n";
  } else {
    s.err() << "openimds: HTTP " << reply.status << ": " << reply.body
            << (reply.body.empty() || reply.body.back() != '\n' ? "\n" : "");
  }
  return kExitRefused;
}

bool Succeeded(const AdminReply& reply) { return reply.status >= 200 && reply.status < 300; }

std::string InstanceTarget(const std::string& id) { return "/v1/instances/" + PercentEncode(id); }

Headers IfMatch(const State& s) {
  Headers headers;
  if (s.if_match > 0) headers.emplace_back("If-Match", "\"" + std::to_string(s.if_match) + "\"");
  return headers;
}

int RunPut(State& s) {
  std::string body;
  if (!ReadInput(s, s.file, body)) return kExitRefused;
  boost::system::error_code ec;
  boost::json::value json = boost::json::parse(body, ec);
  if (ec) {
    s.err() << "openimds: " << s.file << ": invalid JSON: " << ec.message() << "\n";
    return kExitRefused;
  }
  const boost::json::value* id = json.is_object() ? json.as_object().if_contains("id") : nullptr;
  if (id == nullptr || !id->is_string()) {
    s.err() << "openimds: " << s.file << ": needs a string \"id\" field (the instance to write)\n";
    return kExitRefused;
  }
  const std::string instance_id(id->as_string());
  Headers headers = IfMatch(s);
  headers.emplace_back("Content-Type", "application/json");
  if (s.create_only) headers.emplace_back("If-None-Match", "*");
  int exit = kExitOk;
  auto reply = Send(s, "PUT", InstanceTarget(instance_id), headers, body, exit);
  if (!reply) return exit;
  if (!Succeeded(*reply)) return PrintRefusal(s, *reply);
  s.out() << Pretty(reply->body);
  s.err() << (reply->status == 201 ? "created " : "replaced ") << instance_id << " (revision "
          << RevisionOf(*reply) << ")\n";
  return kExitOk;
}

int RunPatch(State& s) {
  std::string body;
  if (!ReadInput(s, s.file, body)) return kExitRefused;
  Headers headers = IfMatch(s);
  headers.emplace_back("Content-Type", "application/merge-patch+json");
  int exit = kExitOk;
  auto reply = Send(s, "PATCH", InstanceTarget(s.id), headers, body, exit);
  if (!reply) return exit;
  if (!Succeeded(*reply)) return PrintRefusal(s, *reply);
  s.out() << Pretty(reply->body);
  s.err() << "patched " << s.id << " (revision " << RevisionOf(*reply) << ")\n";
  return kExitOk;
}

int RunGet(State& s) {
  int exit = kExitOk;
  auto reply = Send(s, "GET", InstanceTarget(s.id), {}, {}, exit);
  if (!reply) return exit;
  if (!Succeeded(*reply)) return PrintRefusal(s, *reply);
  s.out() << Pretty(reply->body);
  s.err() << "revision " << RevisionOf(*reply) << "\n";
  return kExitOk;
}

int RunList(State& s) {
  std::string query;
  auto add = [&query](std::string_view name, const std::string& value) {
    query += query.empty() ? "?" : "&";
    query += std::string(name) + "=" + PercentEncode(value);
  };
  if (!s.network.empty()) add("network", s.network);
  if (!s.address.empty()) add("address", s.address);
  if (s.limit > 0) add("limit", std::to_string(s.limit));
  int exit = kExitOk;
  auto reply = Send(s, "GET", "/v1/instances" + query, {}, {}, exit);
  if (!reply) return exit;
  if (!Succeeded(*reply)) return PrintRefusal(s, *reply);
  s.out() << Pretty(reply->body);
  return kExitOk;
}

int RunDelete(State& s) {
  int exit = kExitOk;
  auto reply = Send(s, "DELETE", InstanceTarget(s.id), IfMatch(s), {}, exit);
  if (!reply) return exit;
  if (!Succeeded(*reply)) return PrintRefusal(s, *reply);
  s.err() << "deleted " << s.id << "\n";
  return kExitOk;
}

std::string Mebibytes(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return buf;
}

// Streams the file in batches of `s.batch_size` instances, one request (one
// all-or-nothing transaction) each, so a fleet of any size imports in bounded
// memory on both sides. Up to kInFlight batches are in flight at once, each
// on its own connection: the server parses some while it commits others, and
// commits batches that arrive together in one transaction. They are numbered
// parts of one import stream, which the server commits in order whatever
// order their bodies arrive in, so a later line still wins over an earlier
// one with the same id. A refused batch stops the import: batches before it
// stay committed, and the message says exactly what is.
// The most one import request carries: the server's default import limit
// (admin::AdminApi::Options::max_import_bytes).
constexpr size_t kMaxImportBatchBytes = 64 * 1024 * 1024;

// A name for one run's import stream: 16 random hex digits.
std::string RandomStreamName() {
  std::random_device random;
  std::string name;
  for (int i = 0; i < 4; ++i) {
    char part[5];
    std::snprintf(part, sizeof(part), "%04x", static_cast<unsigned>(random() & 0xffff));
    name += part;
  }
  return name;
}

int RunImportBatches(State& s) {
  std::ifstream file;
  std::istream* in = &s.in();
  if (s.file != "-") {
    file.open(s.file, std::ios::binary);
    if (!file) {
      s.err() << "openimds: cannot open " << s.file << "\n";
      return kExitRefused;
    }
    in = &file;
  }
  AdminClient::Options options;
  options.endpoint = s.admin;
  options.token_file = s.token_file;
  options.ca_file = s.ca_file;
  if (auto probe = AdminClient::Create(options); !probe.ok()) {
    s.err() << "openimds: " << probe.status().message() << "\n";
    return kExitUsage;
  }
  // As many as the server lets a stream send ahead of its last committed part
  // (admin::AdminApi's kMaxPartsAhead): enough to keep its parsing threads and
  // its writer busy at once.
  constexpr size_t kInFlight = 8;
  struct Batch {
    int64_t first_line = 0;
    int64_t last_line = 0;
    int64_t count = 0;
    std::future<common::Result<AdminReply>> reply;
  };
  std::deque<Batch> flight;
  const bool terminal = s.err_is_terminal();
  const Headers headers{{"Content-Type", "application/x-ndjson"}};
  int64_t committed = 0;
  int64_t revision_first = 0;
  int64_t revision_last = 0;
  int exit = kExitOk;  // the first failure's exit code
  std::string failure;  // what to say about it, printed after the in-flight batches settle

  // Waits for the oldest batch in flight and accounts for it.
  auto settle = [&]() {
    Batch batch = std::move(flight.front());
    flight.pop_front();
    common::Result<AdminReply> reply = batch.reply.get();
    const std::string lines =
        "lines " + std::to_string(batch.first_line) + ".." + std::to_string(batch.last_line);
    if (!reply.ok() || !Succeeded(*reply)) {
      if (exit != kExitOk) {
        s.err() << "openimds: " << lines << " were not imported either\n";
        return;
      }
      if (terminal && committed > 0) s.err() << "\n";
      if (!reply.ok()) {
        s.err() << "openimds: " << reply.status().message() << "\n";
        exit = reply.status().code() == common::Code::kUnavailable ? kExitUnreachable
                                                                   : kExitRefused;
      } else {
        s.err() << "openimds: the batch of " << lines << " was refused (line numbers in the "
                << "message count from " << batch.first_line << ")\n";
        exit = PrintRefusal(s, *reply);
      }
      failure = std::to_string(committed) + " instances before it are committed";
      return;
    }
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(reply->body, ec);
    if (!ec && v.is_object()) {
      const auto& o = v.as_object();
      if (const auto* first = o.if_contains("revision_first")) {
        const int64_t f = first->to_number<int64_t>(ec);
        if (!ec && (revision_first == 0 || f < revision_first)) revision_first = f;
      }
      if (const auto* last = o.if_contains("revision_last")) {
        const int64_t l = last->to_number<int64_t>(ec);
        if (!ec && l > revision_last) revision_last = l;
      }
    }
    committed += batch.count;
    if (exit != kExitOk) {
      // Sent before the refusal was known: it landed, and the user must know.
      s.err() << "openimds: " << lines << " (sent before the refusal) were committed too\n";
    } else if (terminal) {
      s.err() << "\rimport: " << committed << " instances committed" << std::flush;
    }
  };
  // The batches are numbered parts of one import stream: the server commits
  // them in order and none after a refused one, however many are in flight.
  const std::string stream = RandomStreamName();
  int64_t part = 0;
  auto launch = [&](int64_t first_line, int64_t last_line, int64_t count, std::string body) {
    auto shared = std::make_shared<const std::string>(std::move(body));
    Batch batch{first_line, last_line, count, {}};
    Headers part_headers = headers;
    part_headers.emplace_back("X-OpenIMDS-Import-Stream", stream);
    part_headers.emplace_back("X-OpenIMDS-Import-Part", std::to_string(++part));
    batch.reply = std::async(std::launch::async, [options, part_headers, shared]() {
      auto client = AdminClient::Create(options);
      if (!client.ok()) return common::Result<AdminReply>(client.status());
      return client->Call("POST", "/v1/instances:import", part_headers, *shared, {});
    });
    flight.push_back(std::move(batch));
  };

  std::string body;
  // One line at most as large as a whole request may be, read into a fixed
  // buffer: a file with no newline in sight is refused, not read into memory.
  std::vector<char> line_buffer(kMaxImportBatchBytes + 1);
  int64_t line_number = 0;
  int64_t batch_first_line = 1;
  int64_t in_batch = 0;
  while (exit == kExitOk) {
    in->getline(line_buffer.data(), static_cast<std::streamsize>(line_buffer.size()));
    const std::streamsize got = in->gcount();
    if (got == 0 && (in->eof() || in->bad())) break;
    const bool newline = !in->eof() && !in->fail();
    if (in->fail() && !in->eof() && !in->bad()) {
      exit = kExitRefused;
      failure = "line " + std::to_string(line_number + 1) + " is longer than " +
                std::to_string(kMaxImportBatchBytes) + " bytes, more than one request may carry";
      break;
    }
    ++line_number;
    const std::string_view line(line_buffer.data(),
                                static_cast<size_t>(got) - (newline ? 1 : 0));
    body.append(line);
    body.push_back('\n');
    if (body.size() > kMaxImportBatchBytes) {
      exit = kExitRefused;
      failure = "lines " + std::to_string(batch_first_line) + ".." +
                std::to_string(line_number) + " are more than " +
                std::to_string(kMaxImportBatchBytes) +
                " bytes, more than one request may carry: lower --batch-size";
      break;
    }
    if (in->eof()) in->clear(std::ios::eofbit);  // keep the last line, then stop
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    if (++in_batch < s.batch_size) continue;
    if (flight.size() >= kInFlight) settle();
    if (exit != kExitOk) break;
    launch(batch_first_line, line_number, in_batch, std::move(body));
    body.clear();
    in_batch = 0;
    batch_first_line = line_number + 1;
  }
  const bool read_failed = exit == kExitOk && in->bad();
  if (exit == kExitOk && !read_failed && in_batch > 0) {
    if (flight.size() >= kInFlight) settle();
    if (exit == kExitOk) launch(batch_first_line, line_number, in_batch, std::move(body));
  }
  while (!flight.empty()) settle();
  if (exit != kExitOk) {
    s.err() << "openimds: " << committed << " instances are committed; " << failure << "\n";
    return exit;
  }
  if (read_failed) {
    s.err() << "openimds: cannot read " << s.file << " after line " << line_number << "; "
            << committed << " instances before it are committed\n";
    return kExitRefused;
  }
  if (terminal && committed > 0) s.err() << "\n";
  boost::json::object summary;
  summary["imported"] = committed;
  summary["revision_first"] = revision_first;
  summary["revision_last"] = revision_last;
  s.out() << Pretty(boost::json::serialize(summary));
  s.err() << "imported " << committed << " instances in batches of " << s.batch_size
          << " (revisions " << revision_first << ".." << revision_last << ")\n";
  return kExitOk;
}

int RunImport(State& s) {
  if (s.batch_size > 0) return RunImportBatches(s);
  std::string body;
  if (!ReadInput(s, s.file, body)) return kExitRefused;
  const bool terminal = s.err_is_terminal();
  AdminClient::Progress progress;
  if (terminal) {
    // One request carries the whole file: the server's import is all or
    // nothing per request, so splitting it would give up that guarantee.
    progress = [&s, last_percent = -1](uint64_t sent, uint64_t total) mutable {
      const int percent = total == 0 ? 100 : static_cast<int>(sent * 100 / total);
      if (percent == last_percent) return;
      last_percent = percent;
      s.err() << "\rimport: sent " << Mebibytes(sent) << " / " << Mebibytes(total) << " ("
              << percent << "%)" << (sent == total ? ", waiting for the server to write it" : "")
              << std::flush;
    };
  }
  Headers headers{{"Content-Type", "application/x-ndjson"}};
  int exit = kExitOk;
  auto reply = Send(s, "POST", "/v1/instances:import", headers, body, exit, progress);
  if (terminal && !body.empty()) s.err() << "\n";
  if (!reply) return exit;
  if (!Succeeded(*reply)) return PrintRefusal(s, *reply);
  s.out() << Pretty(reply->body);
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(reply->body, ec);
  if (!ec && v.is_object() && v.as_object().contains("imported")) {
    const auto& o = v.as_object();
    s.err() << "imported " << boost::json::serialize(o.at("imported")) << " instances";
    if (o.contains("revision_first") && o.contains("revision_last")) {
      s.err() << " (revisions " << boost::json::serialize(o.at("revision_first")) << ".."
              << boost::json::serialize(o.at("revision_last")) << ")";
    }
    s.err() << "\n";
  }
  return kExitOk;
}

int RunRender(State& s) {
  std::string target = InstanceTarget(s.id) + "/render?path=" + PercentEncode(s.path, true);
  if (!s.flavour.empty()) target += "&flavour=" + PercentEncode(s.flavour);
  for (const auto& h : s.render_headers) target += "&header=" + PercentEncode(h);
  int exit = kExitOk;
  auto reply = Send(s, "GET", target, {}, {}, exit);
  if (!reply) return exit;
  auto rendered_status = reply->Header("X-OpenIMDS-Render-Status");
  if (!rendered_status) return PrintRefusal(s, *reply);
  // What the guest would receive: status and type on stderr, body verbatim on stdout.
  s.err() << "HTTP " << *rendered_status << " "
          << reply->Header("Content-Type").value_or("(no content type)") << "\n";
  s.out() << reply->body;
  return kExitOk;
}

// A revision as printed by put/get/patch (the ETag without quotes), or a limit.
CLI::Validator PositiveInteger(const char* what) {
  return CLI::Validator(
      [what](std::string& value) -> std::string {
        const bool digits = !value.empty() && value.size() <= 18 &&
                            value.find_first_not_of("0123456789") == std::string::npos;
        if (!digits || std::stoll(value) == 0) {
          return std::string("expected ") + what + ", got \"" + value + "\"";
        }
        return {};
      },
      "N");
}

CLI::Validator FileOrStdin() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        if (value == "-") return {};
        struct stat st {};
        if (::stat(value.c_str(), &st) != 0) return "no such file: " + value;
        if (S_ISDIR(st.st_mode)) return value + " is a directory";
        return {};
      },
      "FILE|-");
}

constexpr const char* kRevisionWhat = "a revision number as printed by put/get (e.g. 7)";

}  // namespace

void RegisterInstanceCommand(CLI::App& app, int& exit_code, InstanceCommandIo io) {
  auto state = std::make_shared<State>();
  state->io = io;
  state->exit_code = &exit_code;

  CLI::App* instance = app.add_subcommand(
      "instance", "Manage instance records through the admin API of a running `openimds serve`.");
  instance->require_subcommand(1);
  instance
      ->add_option("--admin", state->admin,
                   "Admin API endpoint: unix:/path/to/admin.sock, or http://HOST:PORT or "
                   "https://HOST:PORT for a TCP admin listener (then also --token-file).")
      ->envname("OPENIMDS_ADMIN")
      ->capture_default_str();
  instance
      ->add_option("--token-file", state->token_file,
                   "File holding the admin bearer token (mode 0600; needed for TCP).")
      ->envname("OPENIMDS_ADMIN_TOKEN_FILE");
  instance
      ->add_option("--ca-file", state->ca_file,
                   "https://: PEM file of the certificate authorities to trust for the admin "
                   "API's certificate (default: the system's).")
      ->envname("OPENIMDS_ADMIN_CA_FILE");
  instance->footer(
      "Instances are JSON records (schema: docs/instance.md), keyed by \"id\".\n"
      "Each write answers with the instance's new revision; pass it back with\n"
      "--if-match to write only if nobody changed the instance since.\n"
      "Exit codes: 0 ok, 1 refused by the server (message on stderr), 2 usage error,\n"
      "3 cannot reach the admin API.\n\n"
      "Examples:\n"
      "  openimds instance put web-1.json\n"
      "  openimds instance get i-0123456789abcdef0\n"
      "  openimds instance --admin http://127.0.0.1:8170 --token-file /etc/openimds/admin.token "
      "list\n");

  auto run = [state](int (*fn)(State&)) { return [state, fn] { *state->exit_code = fn(*state); }; };
  auto add = [&](const char* name, const char* description, const char* example) {
    CLI::App* sub = instance->add_subcommand(name, description);
    sub->fallthrough();  // --admin / --token-file may follow the subcommand name
    sub->footer(std::string("Example:\n") + example +
                "\n\nEvery subcommand also takes --admin ENDPOINT and --token-file FILE\n"
                "(see `openimds instance --help`).\n");
    return sub;
  };

  CLI::App* put =
      add("put", "Create or replace an instance from a JSON file (\"-\": stdin).",
          "  openimds instance put web-1.json\n"
          "  openimds instance put --if-match 7 web-1.json   # only if still at revision 7\n"
          "  openimds instance put --create-only - < web-1.json");
  put->add_option("FILE", state->file, "Instance JSON; its \"id\" names the instance.")
      ->required()
      ->check(FileOrStdin());
  auto* put_if_match = put->add_option("--if-match", state->if_match,
                                       "Write only if the instance is at this revision.")
                           ->check(PositiveInteger(kRevisionWhat));
  put->add_flag("--create-only", state->create_only, "Fail if the instance already exists.")
      ->excludes(put_if_match);
  put->callback(run(RunPut));

  CLI::App* patch =
      add("patch", "Change some fields of an instance with a JSON merge patch (RFC 7396).",
          "  echo '{\"tags\":{\"env\":\"prod\"},\"user_data\":null}' | openimds instance patch "
          "web-1 -\n"
          "  (a null deletes a field, objects merge, arrays and other values replace)");
  patch->add_option("ID", state->id, "Instance id.")->required();
  patch->add_option("FILE", state->file, "Merge patch JSON.")->required()->check(FileOrStdin());
  patch->add_option("--if-match", state->if_match, "Patch only if at this revision.")
      ->check(PositiveInteger(kRevisionWhat));
  patch->callback(run(RunPatch));

  CLI::App* get = add("get", "Print one instance (its revision goes to stderr).",
                      "  openimds instance get web-1");
  get->add_option("ID", state->id, "Instance id.")->required();
  get->callback(run(RunGet));

  CLI::App* list = add("list", "List instances with their revisions.",
                       "  openimds instance list --network tenant-a\n"
                       "  openimds instance list --network tenant-a --address 10.0.0.5");
  list->add_option("--network", state->network, "Only instances in this network.");
  list->add_option("--address", state->address, "Only the instance answering from this IP.");
  list->add_option("--limit", state->limit, "At most this many.")
      ->check(PositiveInteger("a positive number"));
  list->callback(run(RunList));

  CLI::App* del = add("delete", "Delete an instance; its guests get 404 at once.",
                      "  openimds instance delete web-1\n"
                      "  openimds instance delete --if-match 9 web-1");
  del->add_option("ID", state->id, "Instance id.")->required();
  del->add_option("--if-match", state->if_match, "Delete only if at this revision.")
      ->check(PositiveInteger(kRevisionWhat));
  del->callback(run(RunDelete));

  CLI::App* import =
      add("import", "Bulk-load instances from NDJSON (one JSON instance per line), all or nothing.",
          "  openimds instance import fleet.ndjson\n"
          "  jq -c '.[]' fleet.json | openimds instance import -\n"
          "  openimds instance import --batch-size 5000 million.ndjson\n"
          "  (without --batch-size any bad line aborts the whole import; the error names "
          "the line)");
  import->add_option("FILE", state->file, "NDJSON file, or - for stdin.")
      ->required()
      ->check(FileOrStdin());
  import->add_option("--batch-size", state->batch_size,
                     "Stream the file in batches of N instances, each its own all-or-nothing "
                     "transaction (for fleets larger than one request; a refused batch stops "
                     "the import, earlier batches stay). 0: the whole file at once.")
      ->check(CLI::NonNegativeNumber);
  import->callback(run(RunImport));

  CLI::App* render =
      add("render", "Show exactly what the instance's guest gets for a metadata PATH.",
          "  openimds instance render web-1 /latest/meta-data/instance-id\n"
          "  openimds instance render web-1 /latest/dynamic/instance-identity/document\n"
          "  (status and content type on stderr, body on stdout)");
  render->add_option("ID", state->id, "Instance id.")->required();
  render->add_option("PATH", state->path, "Path a guest would request, e.g. /latest/meta-data/.")
      ->required();
  render->add_option("--flavour", state->flavour,
                     "Flavour name, e.g. ec2 (optional: the path selects the flavour, as for "
                     "a guest).");
  render->add_option("--header", state->render_headers,
                     "Extra request header \"Name: value\" a guest would send (repeatable).");
  render->callback(run(RunRender));
}

int ExitForParseError(CLI::App& app, const CLI::ParseError& error) {
  const int code = app.exit(error);
  return code == static_cast<int>(CLI::ExitCodes::Success) ? kExitOk : kExitUsage;
}

}  // namespace openimds::client
