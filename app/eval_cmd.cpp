// `troupe eval`: how good is a (quantized) model on *your* text? Perplexity of --model, and
// with --reference (usually the unquantized model) the per-token KL divergence
// KL(P_ref || P_model) of the next-token distributions (mean and p99), top-1 agreement, and
// the samples where the two disagree most. The reference can also be the same model with
// its KV cache stored in another element type (--kv-cache-dtype X --reference-kv-cache-dtype
// f32 without --reference): the cost of a lower-precision KV cache on that model. Unless
// --reference-kv-cache-dtype is given, the reference's cache is f32 for a --reference model
// (the float reference) and --kv-cache-dtype's otherwise (no comparison of the model with
// itself that nobody asked for).
#include <boost/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>

#include "app/commands.h"
#include "app/loaded_model.h"
#include "app/logit_compare.h"
#include "app/progress.h"
#include "app/text_data.h"
#include "config/flags.h"
#include "core/error.h"

namespace troupe::app {

namespace {

struct EvalOpts {
  std::string model, reference, data, json_path;
  int64_t max_samples = 0, max_len = 512;
  int threads = 0, worst = 5;
  quant::Options quantization;
  KvDtype kv_dtype = KvDtype::F32, reference_kv_dtype = KvDtype::F32;
  // The model to compare against: --reference, or the model itself when only the KV
  // dtypes differ (empty: no comparison).
  std::string reference_path() const {
    if (!reference.empty()) return reference;
    return kv_dtype != reference_kv_dtype ? model : std::string();
  }
};

struct SampleScore {
  size_t index = 0;
  int64_t tokens = 0;  // predicted positions
  double nll = 0, ref_nll = 0, kl = 0;
  int64_t agree = 0;
};

std::string snippet(const std::string& s, size_t n = 80) {
  std::string r = s.substr(0, n);
  for (auto& ch : r)
    if (ch == '\n' || ch == '\r' || ch == '\t') ch = ' ';
  return s.size() > n ? r + "..." : r;
}

cpu::CpuBackendOptions backend_opts(const EvalOpts& o, const quant::Options& q, KvDtype kv_dtype) {
  cpu::CpuBackendOptions bo;
  bo.num_threads = o.threads;
  bo.quantization = q;
  bo.kv_dtype = kv_dtype;
  bo.num_blocks = (o.max_len + bo.block_size - 1) / bo.block_size;
  return bo;
}

void run_eval(const EvalOpts& o) {
  LoadedModel m = load_cpu_model(o.model, backend_opts(o, o.quantization, o.kv_dtype));
  LoadedModel r;
  const std::string reference = o.reference_path();
  if (!reference.empty()) {
    r = load_cpu_model(reference, backend_opts(o, quant::Options{}, o.reference_kv_dtype));
    if (r.backend->config().vocab_size != m.backend->config().vocab_size)
      fail("{} and {} have different vocabularies ({} vs {} tokens)", o.model, reference,
           m.backend->config().vocab_size, r.backend->config().vocab_size);
  }
  const int64_t max_len = std::min(o.max_len, m.backend->config().max_position_embeddings);
  const auto texts = read_text_samples(o.data, o.max_samples);
  const int64_t V = m.backend->config().vocab_size;

  std::vector<SampleScore> scores;
  std::vector<double> token_kl, lm, lr;
  double nll = 0, ref_nll = 0, kl = 0;
  int64_t n_tok = 0, agree = 0;
  Progress progress("eval", int64_t(texts.size()));
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto ids = sample_ids(*m.tokenizer, texts[i], max_len);
    if (ids.size() < 2) continue;
    const auto lg = forward_sequence(*m.backend, ids, true);
    std::vector<float> rg;
    if (r.backend) rg = forward_sequence(*r.backend, ids, true);
    SampleScore s;
    s.index = i;
    for (size_t t = 0; t + 1 < ids.size(); ++t) {
      log_softmax(lg.data() + t * V, V, lm);
      s.nll -= lm[ids[t + 1]];
      ++s.tokens;
      if (!r.backend) continue;
      log_softmax(rg.data() + t * V, V, lr);
      s.ref_nll -= lr[ids[t + 1]];
      const PositionDiff d = compare_position(lm, lr);
      token_kl.push_back(d.kl);
      s.kl += d.kl;
      s.agree += d.top1_agree;
    }
    nll += s.nll;
    ref_nll += s.ref_nll;
    kl += s.kl;
    agree += s.agree;
    n_tok += s.tokens;
    scores.push_back(s);
    progress.update(int64_t(i + 1), fmt::format("samples, {} tokens", n_tok));
  }
  progress.finish();
  if (n_tok == 0) fail("{}: no sample has two or more tokens", o.data);

  const double ppl = std::exp(nll / double(n_tok));
  std::printf("model             %s (%s)\n", o.model.c_str(), m.backend->name().c_str());
  std::printf("data              %s (%zu samples, %lld predicted tokens)\n", o.data.c_str(), scores.size(), (long long)n_tok);
  std::printf("perplexity        %.4f\n", ppl);
  boost::json::object js{{"model", o.model},
                         {"backend", m.backend->name()},
                         {"quantization", quant::describe(o.quantization)},
                         {"kv_cache_dtype", std::string(kv_dtype_name(o.kv_dtype))},
                         {"data", o.data},
                         {"samples", scores.size()},
                         {"tokens", n_tok},
                         {"perplexity", ppl}};
  if (r.backend) {
    const double ref_ppl = std::exp(ref_nll / double(n_tok));
    const double kl_mean = kl / double(n_tok), kl_p99 = nearest_rank_percentile(token_kl, 0.99);
    const double top1 = double(agree) / double(n_tok);
    std::printf("reference         %s (%s)\n", reference.c_str(), r.backend->name().c_str());
    std::printf("ref perplexity    %.4f (ratio %.4f)\n", ref_ppl, ppl / ref_ppl);
    std::printf("KL mean           %.6f nats/token\n", kl_mean);
    std::printf("KL p99            %.6f\n", kl_p99);
    std::printf("KL max            %.6f\n", token_kl.empty() ? 0.0 : *std::max_element(token_kl.begin(), token_kl.end()));
    std::printf("top-1 agreement   %.4f\n", top1);
    std::sort(scores.begin(), scores.end(),
              [](const SampleScore& a, const SampleScore& b) { return a.kl / double(a.tokens) > b.kl / double(b.tokens); });
    boost::json::array worst;
    std::printf("worst samples (mean KL):\n");
    for (size_t k = 0; k < std::min(scores.size(), size_t(o.worst)); ++k) {
      const auto& s = scores[k];
      const double skl = s.kl / double(s.tokens), sag = double(s.agree) / double(s.tokens);
      std::printf("  #%-4zu KL %.5f  top-1 %.3f  ppl %.3f vs %.3f  \"%s\"\n", s.index, skl, sag,
                  std::exp(s.nll / double(s.tokens)), std::exp(s.ref_nll / double(s.tokens)),
                  snippet(texts[s.index]).c_str());
      worst.push_back(boost::json::object{{"index", s.index},
                                          {"tokens", s.tokens},
                                          {"kl_mean", skl},
                                          {"top1_agreement", sag},
                                          {"perplexity", std::exp(s.nll / double(s.tokens))},
                                          {"reference_perplexity", std::exp(s.ref_nll / double(s.tokens))},
                                          {"text", snippet(texts[s.index], 200)}});
    }
    js["reference"] = reference;
    js["reference_kv_cache_dtype"] = std::string(kv_dtype_name(o.reference_kv_dtype));
    js["reference_perplexity"] = ref_ppl;
    js["kl_mean"] = kl_mean;
    js["kl_p99"] = kl_p99;
    js["top1_agreement"] = top1;
    js["worst_samples"] = worst;
  }
  if (!o.json_path.empty()) {
    std::ofstream f(o.json_path);
    f << boost::json::serialize(js) << "\n";
    if (!f) fail("{}: cannot write", o.json_path);
  }
}

}  // namespace

void register_eval(CLI::App& app) {
  auto o = std::make_shared<EvalOpts>();
  auto* cmd = app.add_subcommand("eval", "Perplexity, and KL divergence / top-1 agreement against a reference model");
  auto f = std::make_shared<config::FlagSet>(cmd);
  f->require(f->option("--model", o->model, "Model to evaluate"));
  f->add_config_flags();
  f->option("--reference", o->reference, "Reference model (usually the unquantized one)");
  f->require(f->option("--data", o->data, ".jsonl (\"text\" per line) or plain text (paragraphs)"));
  f->option("--max-samples", o->max_samples, "Samples to use (0 = all)")->capture_default_str();
  f->option("--max-len", o->max_len, "Tokens per sample (longer ones are cut)")->capture_default_str()->check(CLI::Range(2, 1 << 20));
  f->option("--worst", o->worst, "Worst samples to list")->capture_default_str()->check(CLI::Range(0, 1000));
  f->option("--json", o->json_path, "Also write the results to this JSON file");
  add_threads_flag(*f, o->threads);
  add_quantization_flags(*f, o->quantization);
  add_kv_dtype_flag(*f, "--kv-cache-dtype", o->kv_dtype);
  add_kv_dtype_flag(*f, "--reference-kv-cache-dtype", o->reference_kv_dtype);
  cmd->callback([o, f] {
    if (f->finish()) return;
    if (f->cmd()->get_option("--reference-kv-cache-dtype")->count() == 0)
      o->reference_kv_dtype = o->reference.empty() ? o->kv_dtype : KvDtype::F32;
    run_eval(*o);
  });
}

}  // namespace troupe::app
