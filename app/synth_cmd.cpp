// `troupe synth`: random-weight models of real shapes for speed work (no downloads).
#include <cstdio>
#include <memory>

#include "app/commands.h"
#include "model/synth.h"

namespace troupe::app {

void register_synth(CLI::App& app) {
  auto o = std::make_shared<SynthOptions>();
  auto* cmd = app.add_subcommand("synth", "Write a random-weight model of a real shape");
  cmd->add_option("--shape", o->shape, "Shape")->required()->check(CLI::IsMember(synth_shape_names()));
  cmd->add_option("--out", o->out, "Output directory (hf) or .gguf path / directory (gguf)")->required();
  cmd->add_option("--format", o->format, "hf | gguf")->check(CLI::IsMember({"hf", "gguf"}))->capture_default_str();
  cmd->add_option("--dtype", o->dtype, "f32 | f16 | bf16 | q8_0 | q4_0 (quantized: gguf only)")
      ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0", "q4_0"}))->capture_default_str();
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer directory or .model file (default: the shape's)");
  cmd->add_option("--seed", o->seed, "Seed (same seed, same bytes)")->capture_default_str();
  cmd->add_option("--context", o->context, "Positions the model declares (default: the shape's)")
      ->check(CLI::Range(int64_t(16), int64_t(1) << 20));
  cmd->callback([o] {
    const std::string path = synth_model(*o);
    std::printf("%s\n", path.c_str());
  });
}

}  // namespace troupe::app
