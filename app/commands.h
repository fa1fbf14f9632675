#pragma once
// Each `troupe <command>` registers its CLI11 subcommand here; main.cpp just dispatches.
#include <CLI/CLI.hpp>

namespace troupe::app {

void register_generate(CLI::App& app);
void register_tokenize(CLI::App& app);
void register_synth(CLI::App& app);
void register_bench(CLI::App& app);
void register_quantize(CLI::App& app);
void register_eval(CLI::App& app);
void register_serve(CLI::App& app);
void register_worker(CLI::App& app);
// Subcommands of `troupe bench`.
void register_bench_throughput(CLI::App& bench);
void register_bench_serve(CLI::App& bench);
void register_bench_stack(CLI::App& bench);
void register_bench_peak(CLI::App& bench);

}  // namespace troupe::app
