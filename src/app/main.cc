// openimds: one binary for the metadata service and its tools.
#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>

#include "client/instance_command.h"
#include "app/proxy_command.h"
#include "app/redirect_command.h"
#include "app/keygen_command.h"
#include "app/serve_command.h"
#include "common/heap.h"

int main(int argc, char** argv) {
  openimds::common::SetHeapPolicy();
  try {
    CLI::App app{
        "OpenIMDS: an instance metadata service (EC2-compatible) for your own compute.\n"
        "Run `openimds serve --demo` and ask http://127.0.0.1:8169/latest/meta-data/"};
    app.require_subcommand(1);
    app.set_version_flag("--version", "openimds 0.1.0");
    app.set_config("--config", "", "Read options from a TOML/INI file.");

    openimds::app::ServeOptions serve;
    openimds::app::RegisterServeCommand(app, serve);
    int instance_exit = 0;
    openimds::client::RegisterInstanceCommand(app, instance_exit);
    openimds::app::ProxyCommandOptions proxy;
    openimds::app::RegisterProxyCommand(app, proxy);
    openimds::app::RedirectCommandOptions redirect;
    openimds::app::RegisterRedirectCommand(app, redirect);
    openimds::app::KeygenOptions keygen;
    openimds::app::RegisterKeygenCommand(app, keygen);

    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      return openimds::client::ExitForParseError(app, e);
    }
    if (serve.selected) return openimds::app::RunServe(serve);
    if (proxy.selected) return openimds::app::RunProxy(proxy);
    if (redirect.selected) return openimds::app::RunRedirect(redirect);
    if (keygen.selected) return openimds::app::RunKeygen(keygen);
    return instance_exit;
  } catch (const std::exception& e) {
    std::cerr << "openimds: " << e.what() << "\n";
    return 1;
  }
}
