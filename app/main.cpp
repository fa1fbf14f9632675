// `troupe`: the command-line entry point. Every failure the user can cause (bad flag, bad
// model file, bad prompt) is a troupe::Error printed as one line, exit code 1.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>

#include "app/commands.h"
#include "core/error.h"

int main(int argc, char** argv) {
  // Logs go to stderr: stdout carries results (`generate --json`, `tokenize --json`, ...).
  spdlog::set_default_logger(spdlog::stderr_color_mt("troupe"));
  CLI::App app{"troupe - an actor-based LLM inference runtime"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "troupe 0.1.0");
  // Before or after the command (`troupe serve ... --log-level debug`): fallthrough hands
  // options a command does not know to this top level. Applied as parsing reaches it, so
  // before any command runs.
  app.fallthrough();
  app.add_option_function<std::string>(
         "--log-level", [](const std::string& level) { spdlog::set_level(spdlog::level::from_str(level)); },
         "Log verbosity on stderr: trace, debug, info (default), warn, error, critical or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}))
      ->envname("TROUPE_LOG_LEVEL")
      ->trigger_on_parse();
  troupe::app::register_generate(app);
  troupe::app::register_tokenize(app);
  troupe::app::register_synth(app);
  troupe::app::register_bench(app);
  troupe::app::register_quantize(app);
  troupe::app::register_eval(app);
  troupe::app::register_serve(app);
  troupe::app::register_worker(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const troupe::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "internal error: %s\n", e.what());
    return 2;
  }
  return 0;
}
