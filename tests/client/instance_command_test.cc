#include "client/instance_command.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <boost/json/parse.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "admin/admin_api.h"
#include "catalog/catalog.h"
#include "common/metrics.h"
#include "store/sqlite_store.h"
#include "test_http_server.h"

namespace openimds::client {
namespace {

using test_support::TestHttpServer;

struct CliRun {
  int exit = -1;
  std::string out;
  std::string err;
};

// The CLI in-process against a real AdminApi (SQLite in a temp dir) served on
// a unix socket by the test server.
class InstanceCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/openimds-cli-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    store::SqliteStore::Options options;
    options.path = dir_ + "/store.db";
    options.synchronous = store::SqliteStore::Options::Synchronous::kNormal;
    auto opened = store::SqliteStore::Open(options);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    store_ = std::move(*opened);
    admin::AdminApi::Options api_options;
    api_options.render_preview = [](const model::Instance& instance, const common::Request& request,
                                    common::Response& out) {
      out.status = request.path == "/latest/meta-data/instance-id" ? 200 : 404;
      out.content_type = "text/plain";
      out.body = out.status == 200 ? instance.id : "Not Found";
      return common::Status::Ok();
    };
    follower_ = std::make_unique<feed::Follower>(feed::Follower::Options{}, *store_, catalog_,
                                                 metrics_);
    ASSERT_TRUE(follower_->Load().ok());
    follower_->Start();
    writes_ = std::make_unique<store::WriteQueue>(*store_);
    api_ = std::make_unique<admin::AdminApi>(api_options, *store_, catalog_, *writes_, *follower_,
                                             metrics_);
    socket_ = dir_ + "/admin.sock";
    server_ = TestHttpServer::Unix(
        socket_, [this](const common::Request& r, common::Response& out) { api_->Handle(r, out); });
    endpoint_ = "unix:" + socket_;
  }
  void TearDown() override {
    server_.reset();
    api_.reset();
    writes_.reset();
    follower_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  CliRun Cli(std::vector<std::string> args, const std::string& stdin_text = "",
             bool terminal = false) {
    std::istringstream in(stdin_text);
    std::ostringstream out, err;
    CliRun run;
    int exit_code = -1;
    CLI::App app{"test"};
    app.require_subcommand(1);
    InstanceCommandIo io;
    io.in = &in;
    io.out = &out;
    io.err = &err;
    io.err_is_terminal = terminal;
    RegisterInstanceCommand(app, exit_code, io);
    args.insert(args.begin(), "openimds");
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    try {
      app.parse(static_cast<int>(argv.size()), argv.data());
      run.exit = exit_code;
    } catch (const CLI::ParseError& e) {
      run.exit = ExitForParseError(app, e);
    }
    run.out = out.str();
    run.err = err.str();
    return run;
  }

  std::string WriteFile(const std::string& name, const std::string& content) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << content;
    return path;
  }

  std::string dir_;
  std::unique_ptr<store::SqliteStore> store_;
  catalog::Catalog catalog_;
  common::MetricsRegistry metrics_;
  std::unique_ptr<feed::Follower> follower_;
  std::unique_ptr<store::WriteQueue> writes_;
  std::unique_ptr<admin::AdminApi> api_;
  std::string socket_;
  std::string endpoint_;
  std::unique_ptr<TestHttpServer> server_;
};

TEST_F(InstanceCommandTest, PutGetPatchListDelete) {
  const std::string file =
      WriteFile("web.json", R"({"id":"web-1","network":"n","nics":[{"mac":"02:00:00:00:00:01",)"
                            R"("private_ipv4s":["10.0.0.5"]}]})");
  CliRun put = Cli({"instance", "put", file, "--admin", endpoint_});
  ASSERT_EQ(put.exit, 0) << put.err;
  EXPECT_EQ(boost::json::parse(put.out).at("id"), "web-1");
  EXPECT_NE(put.out.find("\n  \"id\": \"web-1\""), std::string::npos) << "pretty-printed:\n"
                                                                      << put.out;
  const int64_t rev = store_->Get("web-1")->revision;
  EXPECT_EQ(put.err, "created web-1 (revision " + std::to_string(rev) + ")\n");

  // Options before the subcommand name work too.
  CliRun again = Cli({"instance", "--admin", endpoint_, "put", "--create-only", file});
  EXPECT_EQ(again.exit, 1);
  EXPECT_NE(again.err.find("failed_precondition, HTTP 412"), std::string::npos) << again.err;

  CliRun get = Cli({"instance", "get", "web-1", "--admin", endpoint_});
  ASSERT_EQ(get.exit, 0) << get.err;
  EXPECT_EQ(boost::json::parse(get.out).at("network"), "n");
  EXPECT_EQ(get.err, "revision " + std::to_string(rev) + "\n");

  CliRun stale = Cli({"instance", "patch", "web-1", "-", "--if-match", std::to_string(rev + 7),
                      "--admin", endpoint_},
                     R"({"name":"x"})");
  EXPECT_EQ(stale.exit, 1);
  CliRun patch = Cli(
      {"instance", "patch", "web-1", "-", "--if-match", std::to_string(rev), "--admin", endpoint_},
      R"({"name":"frontend","tags":{"env":"prod"}})");
  ASSERT_EQ(patch.exit, 0) << patch.err;
  EXPECT_EQ(store_->Get("web-1")->instance.name, "frontend");
  EXPECT_EQ(store_->Get("web-1")->instance.tags.at("env"), "prod");

  CliRun list =
      Cli({"instance", "list", "--network", "n", "--address", "10.0.0.5", "--admin", endpoint_});
  ASSERT_EQ(list.exit, 0) << list.err;
  auto instances = boost::json::parse(list.out).at("instances").as_array();
  ASSERT_EQ(instances.size(), 1u);
  EXPECT_EQ(instances[0].at("instance").at("id"), "web-1");
  CliRun none = Cli({"instance", "list", "--network", "other", "--admin", endpoint_});
  EXPECT_TRUE(boost::json::parse(none.out).at("instances").as_array().empty());

  CliRun del = Cli({"instance", "delete", "web-1", "--admin", endpoint_});
  ASSERT_EQ(del.exit, 0) << del.err;
  EXPECT_EQ(del.err, "deleted web-1\n");
  CliRun gone = Cli({"instance", "get", "web-1", "--admin", endpoint_});
  EXPECT_EQ(gone.exit, 1);
  EXPECT_EQ(gone.err, "openimds: no instance \"web-1\" (not_found, HTTP 404)\n");
  EXPECT_TRUE(gone.out.empty());
}

TEST_F(InstanceCommandTest, ImportShowsProgressOnATerminal) {
  std::string ndjson;
  for (int i = 0; i < 50; ++i) {
    ndjson +=
        R"({"id":"vm-)" + std::to_string(i) + R"(","name":")" + std::string(100, 'x') + "\"}\n";
  }
  const std::string file = WriteFile("fleet.ndjson", ndjson);
  CliRun quiet = Cli({"instance", "import", file, "--admin", endpoint_});
  ASSERT_EQ(quiet.exit, 0) << quiet.err;
  EXPECT_EQ(quiet.err.find("sent"), std::string::npos) << quiet.err;
  EXPECT_NE(quiet.err.find("imported 50 instances (revisions "), std::string::npos) << quiet.err;
  EXPECT_EQ(boost::json::parse(quiet.out).at("imported"), 50);
  EXPECT_EQ(catalog_.Current()->size(), 50u);

  CliRun shown = Cli({"instance", "import", "-", "--admin", endpoint_}, ndjson, /*terminal=*/true);
  ASSERT_EQ(shown.exit, 0) << shown.err;
  EXPECT_NE(shown.err.find("\rimport: sent 0.0 MiB / 0.0 MiB (100%)"), std::string::npos)
      << shown.err;

  CliRun bad =
      Cli({"instance", "import", "-", "--admin", endpoint_}, "{\"id\":\"ok\"}\n{\"id\":1}\n");
  EXPECT_EQ(bad.exit, 1);
  EXPECT_NE(bad.err.find("line 2: /id"), std::string::npos) << bad.err;
}

TEST_F(InstanceCommandTest, ImportInBatchesStreamsAndStopsAtARefusedBatch) {
  std::string ndjson;
  for (int i = 0; i < 45; ++i) ndjson += R"({"id":"b-)" + std::to_string(i) + "\"}\n";
  ndjson += "\n";  // blank lines do not count
  const std::string file = WriteFile("batches.ndjson", ndjson);
  CliRun ok = Cli({"instance", "import", file, "--batch-size", "20", "--admin", endpoint_},
                  "", /*terminal=*/true);
  ASSERT_EQ(ok.exit, 0) << ok.err;
  EXPECT_NE(ok.err.find("\rimport: 20 instances committed"), std::string::npos) << ok.err;
  EXPECT_NE(ok.err.find("\rimport: 45 instances committed"), std::string::npos) << ok.err;
  EXPECT_NE(ok.err.find("imported 45 instances in batches of 20"), std::string::npos) << ok.err;
  EXPECT_EQ(boost::json::parse(ok.out).at("imported"), 45);
  EXPECT_EQ(catalog_.Current()->size(), 45u);

  // Line 25 is bad: the first batch (lines 1..20) stays, the second is
  // refused whole, the third is never sent.
  std::string bad;
  for (int i = 0; i < 50; ++i) {
    bad += i == 24 ? std::string("{\"id\":7}\n") : R"({"id":"c-)" + std::to_string(i) + "\"}\n";
  }
  CliRun refused = Cli({"instance", "import", "-", "--batch-size", "20", "--admin", endpoint_}, bad);
  EXPECT_EQ(refused.exit, 1);
  EXPECT_NE(refused.err.find("the batch of lines 21..40 was refused"), std::string::npos)
      << refused.err;
  EXPECT_NE(refused.err.find("line 5: /id"), std::string::npos) << refused.err;
  // Two batches are in flight at once: lines 41..50 may have been sent before
  // the refusal was known. The message says which, and the store agrees.
  const bool third_sent = refused.err.find("lines 41..50 (sent before the refusal) were "
                                           "committed too") != std::string::npos;
  EXPECT_NE(refused.err.find(std::to_string(third_sent ? 30 : 20) + " instances are committed"),
            std::string::npos)
      << refused.err;
  EXPECT_EQ(catalog_.Current()->size(), third_sent ? 75u : 65u);
  EXPECT_NE(catalog_.Current()->FindById("c-19"), nullptr);
  EXPECT_EQ(catalog_.Current()->FindById("c-20"), nullptr);
  EXPECT_EQ(catalog_.Current()->FindById("c-39"), nullptr);
  EXPECT_EQ(catalog_.Current()->FindById("c-49") != nullptr, third_sent);
}

TEST_F(InstanceCommandTest, ImportInBatchesRefusesALineNoRequestCouldCarry) {
  // A file with no end of line in sight: the client stops at the size one
  // request may have instead of reading it all into memory.
  std::string endless = "{\"id\":\"ok\"}\n";
  endless.append(64 * 1024 * 1024 + 10, 'x');
  CliRun r = Cli({"instance", "import", "-", "--batch-size", "20", "--admin", endpoint_}, endless);
  EXPECT_EQ(r.exit, 1);
  EXPECT_NE(r.err.find("line 2 is longer than 67108864 bytes"), std::string::npos) << r.err.substr(0, 300);
  EXPECT_NE(r.err.find("0 instances are committed"), std::string::npos) << r.err.substr(0, 300);
  EXPECT_EQ(catalog_.Current()->size(), 0u);
}

TEST_F(InstanceCommandTest, RenderPrintsWhatTheGuestGets) {
  ASSERT_EQ(Cli({"instance", "put", "-", "--admin", endpoint_}, R"({"id":"vm-1"})").exit, 0);
  CliRun r =
      Cli({"instance", "render", "vm-1", "/latest/meta-data/instance-id", "--admin", endpoint_});
  ASSERT_EQ(r.exit, 0) << r.err;
  EXPECT_EQ(r.out, "vm-1");
  EXPECT_EQ(r.err, "HTTP 200 text/plain\n");
  CliRun missing =
      Cli({"instance", "render", "vm-1", "/nope", "--flavour", "ec2", "--admin", endpoint_});
  EXPECT_EQ(missing.exit, 0);  // the guest's 404 is a successful preview
  EXPECT_EQ(missing.err, "HTTP 404 text/plain\n");
  CliRun absent = Cli({"instance", "render", "vm-9", "/latest/", "--admin", endpoint_});
  EXPECT_EQ(absent.exit, 1);
}

TEST_F(InstanceCommandTest, ExitCodes) {
  const std::string missing_socket = "unix:" + dir_ + "/absent.sock";
  CliRun unreachable = Cli({"instance", "get", "x", "--admin", missing_socket});
  EXPECT_EQ(unreachable.exit, 3);
  EXPECT_EQ(unreachable.err, "openimds: cannot reach admin API at " + missing_socket +
                                 ": No such file or directory (is `openimds serve` running?)\n");

  EXPECT_EQ(Cli({"instance", "put", "--admin", endpoint_}).exit, 2);         // no FILE
  EXPECT_EQ(Cli({"instance", "put", dir_ + "/nope.json"}).exit, 2);          // no such file
  EXPECT_EQ(Cli({"instance", "get", "x", "--admin", "ftp://h"}).exit, 2);    // endpoint
  EXPECT_EQ(Cli({"instance", "delete", "x", "--if-match", "abc"}).exit, 2);  // not a number
  EXPECT_EQ(Cli({"instance", "put", "-", "--if-match", "3", "--create-only"}).exit, 2);
  EXPECT_EQ(Cli({"instance"}).exit, 2);  // no subcommand

  const std::string token = WriteFile("token", "tok\n");
  chmod(token.c_str(), 0644);
  CliRun open_token = Cli({"instance", "get", "x", "--admin", endpoint_, "--token-file", token});
  EXPECT_EQ(open_token.exit, 2);
  EXPECT_NE(open_token.err.find("chmod 600"), std::string::npos) << open_token.err;

  CliRun bad_json = Cli({"instance", "put", "-", "--admin", endpoint_}, "{nope");
  EXPECT_EQ(bad_json.exit, 1);
  EXPECT_NE(bad_json.err.find("invalid JSON"), std::string::npos);
}

TEST_F(InstanceCommandTest, AdminEndpointFromEnvironment) {
  ASSERT_EQ(setenv("OPENIMDS_ADMIN", endpoint_.c_str(), 1), 0);
  CliRun list = Cli({"instance", "list"});
  unsetenv("OPENIMDS_ADMIN");
  EXPECT_EQ(list.exit, 0) << list.err;
  EXPECT_TRUE(boost::json::parse(list.out).at("instances").is_array());
}

TEST_F(InstanceCommandTest, HelpHasAnExamplePerSubcommand) {
  for (const char* sub : {"put", "patch", "get", "list", "delete", "import", "render"}) {
    CLI::App app{"test"};
    int exit_code = 0;
    RegisterInstanceCommand(app, exit_code);
    const std::string help = app.get_subcommand("instance")->get_subcommand(sub)->help();
    const size_t example = help.find("Example:\n");
    ASSERT_NE(example, std::string::npos) << help;
    EXPECT_NE(help.find("openimds instance " + std::string(sub), example), std::string::npos)
        << help;
  }
}

}  // namespace
}  // namespace openimds::client
