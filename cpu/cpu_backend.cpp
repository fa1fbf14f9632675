#include "cpu/cpu_backend.h"

#include <fmt/format.h>

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <span>

#include "core/error.h"
#include "cpu/host_tuning.h"
#include "cpu/kernels.h"
#include "quant/qmatmul.h"
#include "quant/stored.h"

namespace troupe::cpu {

namespace {

// Converts a tensor the float kernels cannot run as stored (BF16 matrices; any norm or bias
// that is not F32) into an owned F32 copy.
// Returns true if it made a copy.
bool make_f32(ModelWeights& w, TensorView& t, bool matrix) {
  if (t.empty()) return false;
  const bool ok = t.dtype == DType::F32 || (matrix && t.dtype == DType::F16);
  if (ok) return false;
  std::vector<float> buf(static_cast<size_t>(t.numel()));
  to_f32(t, buf.data());
  t.data = w.own(std::move(buf));
  t.dtype = DType::F32;
  t.nbytes = t.numel() * 4;
  return true;
}

bool is_gguf_quant(const TensorView& t) {
  return t.dtype == DType::Q8_0 || t.dtype == DType::Q4_0;
}

// The LM head's format under `o`, or nullopt to keep it as stored (float, or GGUF
// Q8_0/Q4_0 which always run natively).
std::optional<quant::QFormat> lm_head_format(const quant::Options& o) {
  using quant::LmHead;
  switch (o.lm_head) {
    case LmHead::Float: return std::nullopt;
    case LmHead::Int8: return quant::QFormat::Int8;
    case LmHead::Int4: return quant::QFormat::Int4;
    case LmHead::Auto: break;
  }
  if (o.method == quant::Method::Int8 || o.method == quant::Method::Int4) return quant::QFormat::Int8;
  return std::nullopt;
}

// False when transparent huge pages are disabled ("[never]"): the panel copy then stays on
// 4 KiB pages.
bool transparent_huge_pages_available() {
  std::FILE* f = std::fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
  if (!f) return false;
  char buf[128] = {};
  const size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
  std::fclose(f);
  return std::strstr(std::string(buf, n).c_str(), "[never]") == nullptr;
}

// x86-64's transparent huge page.
constexpr size_t kHugePage = size_t(2) << 20;

// `bytes` rounded up to whole huge pages, aligned to them, on transparent huge pages where
// THP is on (madvise, best effort); `size` gets the rounded size. nullptr when the
// allocation fails; free with std::free.
uint8_t* alloc_on_huge_pages(size_t bytes, size_t& size) {
  size = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  auto* p = static_cast<uint8_t*>(std::aligned_alloc(kHugePage, size));
  if (p && transparent_huge_pages_available()) madvise(p, size, MADV_HUGEPAGE);
  return p;
}

// Copies the float matrices that decode streams every token into one anonymous buffer, in
// MatrixLayout::Panels (cpu/kernels_panel.cpp: one sequential stream per thread, the same
// bits at every T; docs/benchmarks.md, "Float weights in panels"), on
// transparent huge pages where THP is on, in the order a step reads them. Mapped file
// pages are 4 KiB: streaming at tens of GB/s walks the page tables every 4 KiB, which costs
// 10-30% of the bandwidth on this class of machine (the 2M/4K rows of the GEMV benchmark).
// The pool packs the buffer (first touch places pages near the threads that read them). A
// group of several matrices (q/k/v, gate/up) is packed as one stacked matrix, its members'
// rows one after another (a group marked in `paired`, gate and up: their panels alternating,
// pack_panels_paired), and returned as such in `stacks` (one entry per group,
// empty for single matrices, which are repointed in place); the members of a stack keep
// their row-major views into the file. Groups start on 4 KiB boundaries. Returns the bytes
// copied (0: nothing was, the views are unchanged).
int64_t pack_weights(ModelWeights& w, const std::vector<std::vector<TensorView*>>& groups,
                     const std::vector<bool>& paired, ThreadPool& pool,
                     std::vector<TensorView>& stacks) {
  constexpr int64_t kAlign = 4096;
  auto group_rows = [](const std::vector<TensorView*>& g) {
    int64_t n = 0;
    for (const TensorView* v : g) n += v->rows();
    return n;
  };
  auto group_bytes = [&](const std::vector<TensorView*>& g) {
    const int64_t n = panel_bytes(g[0]->dtype, group_rows(g), g[0]->cols());
    return (n + kAlign - 1) / kAlign * kAlign;
  };
  int64_t total = 0;
  for (const auto& g : groups) total += group_bytes(g);
  if (total == 0) return 0;
  // Models that are a large part of RAM stay mapped: a private copy could not be paged out.
  const int64_t phys = int64_t(sysconf(_SC_PHYS_PAGES)) * int64_t(sysconf(_SC_PAGESIZE));
  if (phys > 0 && total > phys / 2) return 0;
  size_t size = 0;
  uint8_t* base = alloc_on_huge_pages(static_cast<size_t>(total), size);
  if (!base) return 0;  // keep the mapped file
  w.owners.push_back(std::shared_ptr<const void>(base, [](const void* p) { std::free(const_cast<void*>(p)); }));
  stacks.assign(groups.size(), TensorView{});
  int64_t off = 0;
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    const auto& g = groups[gi];
    TensorView packed = *g[0];
    int64_t row0 = 0, nbytes = 0;
    if (paired[gi]) pack_panels_paired(pool, *g[0], *g[1], base + off);  // all members at once
    for (TensorView* v : g) {
      if (!paired[gi]) pack_panels(pool, *v, row0, base + off);
      row0 += v->rows();
      nbytes += v->nbytes;
    }
    // The padding rows of the last panel read as zeros (the kernels never store their sums).
    const int64_t in = g[0]->cols(), es = dtype_row_bytes(g[0]->dtype, 1);
    if (row0 % kPanelRows != 0) {
      uint8_t* last = base + off + (row0 / kPanelRows) * kPanelRows * in * es;
      const int64_t used = row0 % kPanelRows;
      for (int64_t i = 0; i < in; ++i)
        std::memset(last + (i * kPanelRows + used) * es, 0, static_cast<size_t>((kPanelRows - used) * es));
    }
    packed.shape = {row0, in};
    packed.nbytes = nbytes;
    packed.data = base + off;
    packed.layout = MatrixLayout::Panels;
    if (g.size() == 1)
      *g[0] = packed;
    else
      stacks[gi] = packed;
    off += group_bytes(g);
  }
  return total;
}

// Query rows per attention tile (positions x the G heads of a KV head): enough rows that a
// KV block fetched from memory is reused many times, few enough that the tile's queries and
// running outputs (2 x rows x head_dim floats) stay in L1/L2 and a chunk makes several
// tiles for the pool to share.
constexpr int64_t kAttentionTileRows = 64;

// A decode (or short verification) tile reads one KV head's piece (head_dim elements) of
// each cached row, so a sequence's heads on different threads each take a sparse stripe of
// the same rows out of DRAM. With enough tiles to balance the pool, all KV heads of one
// tile's rows go to one thread, one after another, and the first of them fetches the rows
// whole into L2 (up to kKvPrefetchBytes of K and V): measured batch-32 decode at context
// ~130, 110M F32 weights, f16 KV, 2 threads: 42.4-44.0 -> 37.0-39.0 ms per step.
constexpr int64_t kKvPrefetchMaxRows = 8;  // query rows per tile; longer tiles reuse blocks
constexpr int64_t kKvPrefetchBytes = int64_t(512) << 10;

// Whether that first head's fetch pays depends on the host: HostTuning::kv_rows_fetch
// (cpu/host_tuning.h).

// Fetches the cached K and V rows (all heads) of positions [0, n_ctx) into L2, up to
// kKvPrefetchBytes in all. A paged block's rows are contiguous, so a block is one range;
// the last block is fetched whole (its heads' runs are each block_size rows long).
// noipa: to GCC 12's interprocedural analysis a function that only prefetches has no side
// effects, so it deleted every call to it. From e5903b7, which moved these prefetches out
// of the attention loop into this function, until session 19 the build held none of them.
[[gnu::noipa]] void prefetch_cached_rows(const uint8_t* kc, const uint8_t* vc,
                                         const int32_t* block_table, int64_t block_size,
                                         int64_t row_bytes, int64_t n_ctx) {
  n_ctx = std::min(n_ctx, kKvPrefetchBytes / (2 * row_bytes));
  for (int64_t p0 = 0, b = 0; p0 < n_ctx; p0 += block_size, ++b) {
    const int64_t off = int64_t(block_table[b]) * block_size * row_bytes;
    const int64_t bytes = block_size * row_bytes;
    for (int64_t o = 0; o < bytes; o += 64) {
      __builtin_prefetch(kc + off + o, 0, 2);
      __builtin_prefetch(vc + off + o, 0, 2);
    }
  }
}

// The linear layers of each FusedGroup, in the order of their rows in the stack.
std::span<const int> fused_members(FusedGroup g) {
  static constexpr int kQkv[] = {kLinQ, kLinK, kLinV};
  static constexpr int kGateUp[] = {kLinGate, kLinUp};
  return g == FusedGroup::Qkv ? std::span<const int>(kQkv) : std::span<const int>(kGateUp);
}

// A layer's linear layers in the order a step runs them, grouped by the input they share:
// q/k/v, o, gate/up, down (the order the weight copies on huge pages are laid out in), with
// the FusedGroup a group of several forms.
struct StepLinears {
  std::vector<int> linears;
  std::optional<FusedGroup> fused;
};
const std::array<StepLinears, 4>& linears_in_step_order() {
  static const std::array<StepLinears, 4> order{
      StepLinears{{kLinQ, kLinK, kLinV}, FusedGroup::Qkv}, StepLinears{{kLinO}, std::nullopt},
      StepLinears{{kLinGate, kLinUp}, FusedGroup::GateUp}, StepLinears{{kLinDown}, std::nullopt}};
  return order;
}

// A float matrix the backend runs without quantizing it (BF16 only as panels).
bool is_float_matrix(const TensorView& v) {
  return !v.empty() && (v.dtype == DType::F32 || v.dtype == DType::F16 || v.dtype == DType::BF16);
}

}  // namespace

// One unit of attention work: KV head `kv_head` of the rows [t0, t0 + n) of sequence `seq`
// (consecutive positions; a decode row is a tile of one).
struct AttentionItem {
  int32_t seq = 0, kv_head = 0;
  int64_t t0 = 0, n = 0;
  int64_t cost = 0;  // ~ query rows x positions they read
  bool fetch_rows = false;  // first of a short tile's heads on one thread: prefetch its rows
};

// Activations of one step, grown to the largest step seen (steps reuse them).
struct CpuBackend::Scratch {
  int64_t cap_tokens = 0;
  std::vector<float> x, xb, att, gate;
  std::vector<float> qkv;  // output of the stacked q/k/v matmul: [T][q|k|v]
  // Outputs that only some paths write, so they are grown where used (`grown`), not in
  // reserve: q, k and v of unstacked q/k/v; up's output, and the [T][gate|up] output of a
  // stack that is not panel pairs (at a 512-token chunk of the grown target, up and
  // [gate | up] alone would hold 96 MiB that nothing reads).
  std::vector<float> q, k, v, up, gate_up;
  std::vector<int32_t> pos;        // absolute position of each token in the step
  std::vector<int32_t> seq_of;     // index into batch.seqs of each token
  // Attention work of the step, one list per pool thread (the same for every layer).
  std::vector<std::vector<AttentionItem>> attention_bins;
  // Every sequence of the step is one short tile (decode, verification): each (sequence,
  // KV head) is one item, so the thread that attends a head can rope and cache that
  // head's rows itself (forward_layer).
  bool attention_owns_rows = false;

  void reserve(const ModelConfig& c, int64_t T) {
    if (T <= cap_tokens) return;
    cap_tokens = T;
    x.resize(T * c.hidden_size);
    xb.resize(T * std::max(c.hidden_size, c.q_dim()));
    att.resize(T * c.q_dim());
    gate.resize(T * c.intermediate_size);
    qkv.resize(T * (c.q_dim() + 2 * c.kv_dim()));
  }
  // `buf` with room for n floats (grown, never shrunk).
  static float* grown(std::vector<float>& buf, int64_t n) {
    if (static_cast<int64_t>(buf.size()) < n) buf.resize(static_cast<size_t>(n));
    return buf.data();
  }
};

CpuBackend::CpuBackend(ModelWeights weights, const CpuBackendOptions& opts)
    : CpuBackend(Checkpoint{std::move(weights), std::nullopt, {}}, opts) {}

CpuBackend::CpuBackend(Checkpoint ck, const CpuBackendOptions& opts)
    : w_(std::move(ck.weights)),
      pool_(opts.num_threads),
      quant_(opts.quantization),
      huge_page_weights_(opts.huge_page_weights),
      fuse_linears_(opts.fuse_linears),
      scratch_(std::make_unique<Scratch>()) {
  const auto& c = w_.config;
  c.validate(w_.source);
  quant::validate(quant_);
  layers_ = {opts.layer_begin, opts.layer_end > 0 ? opts.layer_end : c.num_layers};
  if (layers_.begin < 0 || layers_.begin >= layers_.end || layers_.end > c.num_layers)
    fail("{}: layer range {}:{} is not inside the model's {} layers", w_.source, layers_.begin,
         layers_.end, c.num_layers);
  prepare_weights(ck);

  kv_shape_.block_size = opts.block_size;
  if (opts.block_size <= 0) fail("KV block size must be positive, got {}", opts.block_size);
  kv_shape_.dtype = opts.kv_dtype;
  kv_shape_.bytes_per_block =
      opts.block_size * kv_bytes_per_token(opts.kv_dtype, layers_.size(), c.num_kv_heads, c.head_dim);
  kv_shape_.num_blocks = opts.num_blocks > 0 ? opts.num_blocks
                                             : opts.kv_cache_bytes / kv_shape_.bytes_per_block;
  if (kv_shape_.num_blocks < 1)
    fail("KV cache budget of {} bytes holds no block ({} bytes each)", opts.kv_cache_bytes,
         kv_shape_.bytes_per_block);
  const int64_t rows = layers_.size() * kv_shape_.num_blocks * opts.block_size * c.num_kv_heads;
  for (KvPool* p : {&k_cache_, &v_cache_}) {
    // Zeroed up front by the pool, on 2 MiB pages where THP is on: zero-filling the
    // default pool of `bench throughput` (1.2 GB, 110M model at f16) 4 KiB page by page on
    // one thread took ~3.5 s of start-up. Pages left to fault in during the steps (calloc)
    // started in 0.5 s but cost the run 14-20% of its throughput in faults.
    const size_t bytes = static_cast<size_t>(rows * c.head_dim * kv_dtype_elem_bytes(opts.kv_dtype));
    size_t size = 0;
    p->data.reset(alloc_on_huge_pages(bytes, size));
    if (!p->data) fail("KV cache: cannot allocate {} bytes", bytes);
    uint8_t* base = p->data.get();
    pool_.parallel_for(static_cast<int64_t>(size), int64_t(kHugePage), [&](int, int64_t b, int64_t e) {
      std::memset(base + b, 0, static_cast<size_t>(e - b));
    });
    if (opts.kv_dtype == KvDtype::Int8) p->scales.assign(static_cast<size_t>(rows), 0.0f);
  }
}

void* CpuBackend::kv_layer_data(KvPool& p, int64_t l) const {
  const auto& c = w_.config;
  const int64_t layer_bytes = kv_shape_.num_blocks * kv_shape_.block_size * c.kv_dim() *
                              kv_dtype_elem_bytes(kv_shape_.dtype);
  return p.data.get() + (l - layers_.begin) * layer_bytes;
}

float* CpuBackend::kv_layer_scales(KvPool& p, int64_t l) const {
  if (p.scales.empty()) return nullptr;
  const int64_t layer_rows = kv_shape_.num_blocks * kv_shape_.block_size * w_.config.num_kv_heads;
  return p.scales.data() + (l - layers_.begin) * layer_rows;
}

CpuBackend::~CpuBackend() = default;

// Decides, per matrix, float kernel or qmatmul, and builds the packed copies with the pool
// (rows in parallel).
void CpuBackend::prepare_weights(Checkpoint& ck) {
  using quant::Method;
  const Method method = quant_.method;
  if (method == Method::Awq && !ck.quant)
    fail("{}: --quantization awq needs a pre-quantized checkpoint (config.json with a "
         "quantization_config, e.g. written by `troupe quantize`); use int4 to quantize at load",
         w_.source);
  if (ck.quant && (method == Method::Int8 || method == Method::Int4))
    fail("{}: already quantized ({} {}-bit); load it with --quantization awq or none",
         w_.source, ck.quant->quant_method, ck.quant->bits);
  const std::optional<quant::QFormat> rtn =
      method == Method::Int8 ? std::optional(quant::QFormat::Int8)
      : method == Method::Int4 ? std::optional(quant::QFormat::Int4)
                               : std::nullopt;

  bool any = false;
  qlinear_.resize(w_.layers.size());
  // A stage prepares only its own layers (and the LM head only on the last stage); the
  // others stay untouched views into the mapped file.
  for (size_t l = size_t(layers_.begin); l < size_t(layers_.end); ++l) {
    auto& L = w_.layers[l];
    for (int i = 0; i < kNumLinears; ++i) {
      TensorView& v = linear_view(L, i);
      quant::QuantizedMatrix& q = qlinear_[l][static_cast<size_t>(i)];
      if (ck.quant && ck.layers[l][static_cast<size_t>(i)].format != StoredQuantLinear::Format::Float)
        q = quant::from_stored(ck.layers[l][static_cast<size_t>(i)], &pool_);
      else if (rtn)
        q = quant::quantize(v, *rtn, quant_.group_size, &pool_);
      else if (is_gguf_quant(v))
        q = quant::from_gguf(v, &pool_);  // GGUF Q8_0 / Q4_0 run natively
      else if (!(huge_page_weights_ && v.dtype == DType::BF16))  // BF16: see pack_float_weights
        converted_matrix_ = make_f32(w_, v, true) || converted_matrix_;
      any = any || !q.empty();
    }
    for (TensorView* v : {&L.attn_norm, &L.ffn_norm, &L.bq, &L.bk, &L.bv, &L.q_norm, &L.k_norm})
      make_f32(w_, *v, false);
  }
  if (!any) qlinear_.clear();
  if (fuse_linears_) fused_.resize(w_.layers.size());
  fuse_quantized();
  if (last_stage()) prepare_lm_head();
  place_quantized_weights();
  pack_float_weights();
  for (int64_t l = layers_.begin; l < layers_.end && !fused_.empty(); ++l) set_fused_bias(l);
}

// Stacks each group whose members are all quantized alike, and turns the members into
// views of the stack (no second copy).
void CpuBackend::fuse_quantized() {
  if (fused_.empty() || qlinear_.empty()) return;
  for (int64_t l = layers_.begin; l < layers_.end; ++l) {
    for (int g = 0; g < kNumFusedGroups; ++g) {
      std::vector<const quant::QuantizedMatrix*> parts;
      for (int i : fused_members(FusedGroup(g)))
        if (const quant::QuantizedMatrix* q = quantized(l, i)) parts.push_back(q);
      if (parts.size() != fused_members(FusedGroup(g)).size()) continue;
      quant::QuantizedMatrix stack = quant::concat_rows(parts);
      if (stack.empty()) continue;
      cut_members(l, FusedGroup(g), stack);
      fused_[size_t(l)][size_t(g)].q = std::move(stack);
    }
  }
}

// The quantized members of group g of layer l become views of `stack` (their rows one after
// another), so they share its storage.
void CpuBackend::cut_members(int64_t l, FusedGroup g, const quant::QuantizedMatrix& stack) {
  int64_t r0 = 0;
  for (int i : fused_members(g)) {
    auto& m = qlinear_[size_t(l)][size_t(i)];
    const int64_t rows = m.rows();
    m = stack.row_slice(r0, r0 + rows);
    r0 += rows;
  }
}

// Moves the quantized matrices into one buffer on huge pages, in the order a step reads
// them (q/k/v, o, gate/up, down per layer, then the LM head), as pack_weights does for
// float ones: each was built in its own heap allocation, on 4 KiB pages, and a decode step
// streaming them then walks the page tables every 4 KiB (docs/benchmarks.md, session 24).
// One matrix at a time, so the old copies are freed as the new ones are made (a stack's
// members, views into it, are re-cut from the moved stack at once).
void CpuBackend::place_quantized_weights() {
  if (!huge_page_weights_ || !transparent_huge_pages_available()) return;
  // The matrices that own their storage, in step order; a stack stands for its members,
  // which are re-cut from it once it has moved.
  struct Owner {
    quant::QuantizedMatrix* m;
    int64_t layer = -1;  // of a stack
    FusedGroup group = FusedGroup::Qkv;
  };
  std::vector<Owner> order;
  for (int64_t l = layers_.begin; l < layers_.end && !qlinear_.empty(); ++l) {
    for (const StepLinears& set : linears_in_step_order()) {
      if (set.fused && !fused_.empty() && !fused_[size_t(l)][size_t(*set.fused)].q.empty()) {
        order.push_back({&fused_[size_t(l)][size_t(*set.fused)].q, l, *set.fused});
        continue;
      }
      for (int i : set.linears)
        if (!qlinear_[size_t(l)][size_t(i)].empty()) order.push_back({&qlinear_[size_t(l)][size_t(i)]});
    }
  }
  if (!qlm_head_.empty()) order.push_back({&qlm_head_});
  int64_t total = 0;  // storage_bytes() are whole 64-byte lines, so every copy stays aligned
  for (const Owner& o : order) total += o.m->storage_bytes();
  if (total == 0) return;
  size_t size = 0;
  uint8_t* base = alloc_on_huge_pages(static_cast<size_t>(total), size);
  if (!base) return;  // keep them where they are
  const std::shared_ptr<uint8_t[]> arena(base, [](uint8_t* p) { std::free(p); });
  int64_t off = 0;
  for (const Owner& o : order) {
    *o.m = o.m->relocated(base + off, arena);
    off += o.m->storage_bytes();
    if (o.layer >= 0) cut_members(o.layer, o.group, *o.m);
  }
}

// After pack_weights: each stacked group's matrix becomes its layer's FusedLinear.
void CpuBackend::fuse_float(const std::vector<std::vector<TensorView*>>& groups,
                            const std::vector<bool>& paired, const std::vector<TensorView>& stacks) {
  for (int64_t l = layers_.begin; l < layers_.end && !fused_.empty(); ++l) {
    auto& L = w_.layers[size_t(l)];
    for (int g = 0; g < kNumFusedGroups; ++g) {
      const auto members = fused_members(FusedGroup(g));
      const TensorView* first = &linear_view(L, members[0]);
      for (size_t gi = 0; gi < groups.size(); ++gi) {
        if (groups[gi].size() != members.size() || groups[gi][0] != first) continue;
        TensorView stack = stacks[gi];
        stack.name = fmt::format("layer {} {}", l, g == int(FusedGroup::Qkv) ? "qkv" : "gate_up");
        fused_[size_t(l)][size_t(g)].w = std::move(stack);
        fused_[size_t(l)][size_t(g)].glu_pairs = paired[gi];
      }
    }
  }
}

void CpuBackend::set_fused_bias(int64_t l) {
  FusedLinear& f = fused_[size_t(l)][size_t(FusedGroup::Qkv)];
  const auto& L = w_.layers[size_t(l)];
  if (f.empty() || (L.bq.empty() && L.bk.empty() && L.bv.empty())) return;
  for (int i : fused_members(FusedGroup::Qkv)) {
    const TensorView& b = i == kLinQ ? L.bq : i == kLinK ? L.bk : L.bv;
    const int64_t n = linear_view(L, i).rows();
    if (b.empty())
      f.bias.insert(f.bias.end(), size_t(n), 0.0f);
    else
      f.bias.insert(f.bias.end(), static_cast<const float*>(b.data), static_cast<const float*>(b.data) + n);
  }
}

const CpuBackend::FusedLinear* CpuBackend::fused_linear(int64_t layer, FusedGroup g) const {
  if (fused_.empty()) return nullptr;
  const FusedLinear& f = fused_.at(size_t(layer))[size_t(g)];
  return f.empty() ? nullptr : &f;
}

void CpuBackend::linear_fused(const FusedLinear& f, const float* x, int64_t T, float* y) {
  const float* bias = f.bias.empty() ? nullptr : f.bias.data();
  if (!f.q.empty())
    quant::qmatmul(pool_, x, T, f.q, y, bias);
  else
    matmul(pool_, x, T, f.w, y, bias);
}

void CpuBackend::prepare_lm_head() {
  make_f32(w_, w_.final_norm, false);

  if (const auto f = lm_head_format(quant_))
    qlm_head_ = quant::quantize(w_.lm_head, *f, quant_.group_size, &pool_);
  else if (is_gguf_quant(w_.lm_head))
    qlm_head_ = quant::from_gguf(w_.lm_head, &pool_);
  if (qlm_head_.empty() && !(huge_page_weights_ && w_.lm_head.dtype == DType::BF16)) {
    // (else the embedding table is read a row at a time, any dtype; a BF16 head waits for
    // pack_float_weights)
    const bool tied = w_.lm_head.data == w_.tok_embeddings.data;
    converted_matrix_ = make_f32(w_, w_.lm_head, true) || converted_matrix_;
    if (tied && w_.tok_embeddings.dtype != w_.lm_head.dtype && w_.lm_head.dtype == DType::F32)
      w_.tok_embeddings = w_.lm_head;  // share the converted copy instead of converting twice
  }
}

void CpuBackend::pack_float_weights() {
  // Matrices converted at load already live in owned buffers; copying them again would
  // hold two copies. (BF16 is not converted when this copy is on: panels run it as stored.)
  if (!huge_page_weights_ || converted_matrix_) return;
  // In the order a step reads them: q/k/v, o, gate/up, down. Members of a FusedGroup that
  // all run in float with one dtype go back to back, to be run as one stacked matrix.
  std::vector<std::vector<TensorView*>> groups;
  std::vector<bool> paired;  // gate/up whose panels alternate (matmul_glu_pairs)
  auto float_view = [&](size_t l, int i) -> TensorView* {
    const bool q = !qlinear_.empty() && !qlinear_[l][static_cast<size_t>(i)].empty();
    TensorView& v = linear_view(w_.layers[l], i);
    return !q && is_float_matrix(v) ? &v : nullptr;
  };
  for (size_t l = size_t(layers_.begin); l < size_t(layers_.end); ++l) {
    for (const StepLinears& set : linears_in_step_order()) {
      std::vector<TensorView*> views;
      for (int i : set.linears)
        if (TensorView* v = float_view(l, i)) views.push_back(v);
      // A member that runs alone in parts of its inputs (panel_input_parts) would round
      // differently inside a stack, which is summed whole: such groups stay apart.
      const bool stack = fuse_linears_ && set.fused && views.size() == set.linears.size() &&
                         std::all_of(views.begin(), views.end(), [&](const TensorView* v) {
                           return v->dtype == views[0]->dtype && v->cols() == views[0]->cols() &&
                                  panel_input_parts(v->rows(), v->cols()) == 1;
                         });
      if (stack) {
        groups.push_back(views);
        paired.push_back(set.fused == FusedGroup::GateUp && views[0]->rows() % kPanelRows == 0 &&
                         views[0]->rows() == views[1]->rows());
      } else {
        for (TensorView* v : views) {
          groups.push_back({v});
          paired.push_back(false);
        }
      }
    }
  }
  // (A tied embedding table keeps its row-major view: a token's row is read from there.)
  if (last_stage() && qlm_head_.empty() && !w_.lm_head.empty()) {
    groups.push_back({&w_.lm_head});
    paired.push_back(false);
  }
  std::vector<TensorView> stacks;
  if (pack_weights(w_, groups, paired, pool_, stacks) > 0) return fuse_float(groups, paired, stacks);
  // No copy: BF16 matrices, which only panels run as stored, become F32 row-major copies.
  for (const auto& g : groups)
    for (TensorView* v : g) converted_matrix_ = make_f32(w_, *v, true) || converted_matrix_;
}

std::string CpuBackend::name() const {
  // e.g. "cpu (2 threads, awq int4 g64, avx512-vnni, amd tuning)",
  // "cpu (2 threads, Q4_0, lm_head Q4_0, ...)"
  auto fmt_of = [](const quant::QuantizedMatrix& m) {
    std::string f(quant::qformat_name(m.format()));
    return m.format() == quant::QFormat::Int4 ? f + " g" + std::to_string(m.group()) : f;
  };
  std::string q;
  if (const quant::QuantizedMatrix* m = quantized(layers_.begin, kLinQ))
    q += (quant_.method == quant::Method::Awq ? ", awq " : ", ") + fmt_of(*m);
  if (!qlm_head_.empty()) q += ", lm_head " + fmt_of(qlm_head_);
  if (!q.empty()) q += ", " + std::string(quant::qisa_name(quant::current_qisa()));
  const std::string stage = layers_.size() == w_.config.num_layers
                                ? std::string()
                                : fmt::format(", layers {}:{}", layers_.begin, layers_.end);
  const std::string kv = kv_shape_.dtype == KvDtype::F32
                             ? std::string()
                             : fmt::format(", kv {}", kv_dtype_name(kv_shape_.dtype));
  // The host tuning (cpu/host_tuning.h) says which fetch variants the timings ran with.
  return fmt::format("cpu ({} threads{}{}{}, {} tuning)", pool_.size(), q, kv, stage,
                     host_tuning().name);
}

int64_t CpuBackend::weight_bytes_per_token() const {
  int64_t n = !last_stage() ? 0
              : w_.final_norm.nbytes + (qlm_head_.empty() ? w_.lm_head.nbytes : qlm_head_.nbytes());
  for (size_t l = size_t(layers_.begin); l < size_t(layers_.end); ++l) {
    const auto& L = w_.layers[l];
    for (const TensorView* v : {&L.attn_norm, &L.ffn_norm, &L.bq, &L.bk, &L.bv, &L.q_norm, &L.k_norm})
      n += v->empty() ? 0 : v->nbytes;
    for (int i = 0; i < kNumLinears; ++i) {
      const quant::QuantizedMatrix* q = quantized(int64_t(l), i);
      n += q ? q->nbytes() : linear_view(L, i).nbytes;
    }
  }
  return n;
}

const quant::QuantizedMatrix* CpuBackend::quantized(int64_t layer, int i) const {
  if (qlinear_.empty()) return nullptr;
  const auto& q = qlinear_.at(static_cast<size_t>(layer)).at(static_cast<size_t>(i));
  return q.empty() ? nullptr : &q;
}

const quant::QuantizedMatrix* CpuBackend::quantized_lm_head() const {
  return qlm_head_.empty() ? nullptr : &qlm_head_;
}

void CpuBackend::linear(int64_t l, int i, const float* x, int64_t T, float* y, const float* bias) {
  if (const quant::QuantizedMatrix* q = quantized(l, i))
    quant::qmatmul(pool_, x, T, *q, y, bias);
  else
    matmul(pool_, x, T, linear_view(w_.layers[static_cast<size_t>(l)], i), y, bias);
}

void CpuBackend::check_batch(const StepBatch& batch) const {
  const auto& c = w_.config;
  for (const auto& s : batch.seqs) {
    if (s.tokens.empty()) fail("step: sequence {} has no tokens", s.seq_id);
    const int64_t end = int64_t(s.start_pos) + int64_t(s.tokens.size());
    if (s.start_pos < 0 || end > c.max_position_embeddings)
      fail("step: sequence {} spans positions [{}, {}) beyond the model's {} positions",
           s.seq_id, s.start_pos, end, c.max_position_embeddings);
    const int64_t need = (end + kv_shape_.block_size - 1) / kv_shape_.block_size;
    if (int64_t(s.block_table.size()) < need)
      fail("step: sequence {} needs {} KV blocks, block table has {}", s.seq_id, need,
           s.block_table.size());
    for (int64_t b = 0; b < need; ++b)
      if (s.block_table[b] < 0 || s.block_table[b] >= kv_shape_.num_blocks)
        fail("step: sequence {} uses KV block {} outside the pool of {}", s.seq_id,
             s.block_table[b], kv_shape_.num_blocks);
    for (int32_t t : s.tokens)
      if (t < 0 || t >= c.vocab_size)
        fail("step: sequence {} has token id {} outside the vocabulary of {}", s.seq_id, t,
             c.vocab_size);
    for (int32_t r : s.logit_rows)
      if (r < 0 || r >= int32_t(s.tokens.size()))
        fail("step: sequence {} asks logits for row {} of {}", s.seq_id, r, s.tokens.size());
  }
}

void CpuBackend::run_step(const StepBatch& batch, StepOutput& out) {
  if (!first_stage() || !last_stage())
    fail("run_step on a pipeline stage (layers {}:{}); use run_stage", layers_.begin, layers_.end);
  std::vector<float> none;
  run_stage(batch, none, out);
}

void CpuBackend::run_stage(const StepBatch& batch, std::vector<float>& hidden, StepOutput& out) {
  check_batch(batch);
  const auto& c = w_.config;
  const int64_t T = batch.num_tokens();
  const int64_t H = c.hidden_size;
  Scratch& s = *scratch_;
  s.reserve(c, T);
  s.pos.resize(T);
  s.seq_of.resize(T);
  if (!first_stage() && int64_t(hidden.size()) != T * H)
    fail("step: stage {}:{} got {} hidden values for {} tokens of width {}", layers_.begin,
         layers_.end, hidden.size(), T, H);

  int64_t t = 0;
  for (size_t i = 0; i < batch.seqs.size(); ++i) {
    const auto& sq = batch.seqs[i];
    for (size_t j = 0; j < sq.tokens.size(); ++j, ++t) {
      s.pos[t] = sq.start_pos + int32_t(j);
      s.seq_of[t] = int32_t(i);
      if (first_stage()) embedding_row(w_.tok_embeddings, sq.tokens[j], s.x.data() + t * H);
    }
  }
  if (!first_stage()) std::copy_n(hidden.data(), T * H, s.x.data());
  plan_attention(batch, s);

  for (int64_t l = layers_.begin; l < layers_.end; ++l) forward_layer(l, batch, s);
  if (!last_stage()) {
    hidden.assign(s.x.begin(), s.x.begin() + T * H);
    out.vocab_size = c.vocab_size;
    out.logits.clear();
    return;
  }
  hidden.clear();

  // Final norm + LM head only on the rows whose logits were asked for.
  const int64_t R = batch.num_logit_rows();
  out.vocab_size = c.vocab_size;
  out.logits.resize(static_cast<size_t>(R * c.vocab_size));
  if (R == 0) return;
  int64_t r = 0, base = 0;
  for (const auto& sq : batch.seqs) {
    for (int32_t row : sq.logit_rows) {
      rmsnorm(s.x.data() + (base + row) * H, static_cast<const float*>(w_.final_norm.data),
              s.xb.data() + r * H, H, c.rms_norm_eps);
      ++r;
    }
    base += int64_t(sq.tokens.size());
  }
  if (!qlm_head_.empty())
    quant::qmatmul(pool_, s.xb.data(), R, qlm_head_, out.logits.data());
  else
    matmul(pool_, s.xb.data(), R, w_.lm_head, out.logits.data());
}

// Splits the step's causal attention into (sequence, KV head, tile of consecutive positions)
// items and deals them to the pool threads longest first (causal tiles late in a long
// prompt cost many times the early ones; a static split by count would leave one thread
// idle); with enough short tiles, all KV heads of a short tile go to one thread. Which rows
// share a tile, and which thread runs it, does not change any row's result
// (attention_causal_tile).
void CpuBackend::plan_attention(const StepBatch& batch, Scratch& s) {
  const auto& c = w_.config;
  const int64_t G = c.num_heads / c.num_kv_heads;
  const int64_t tile = std::max<int64_t>(1, kAttentionTileRows / G);
  std::vector<AttentionItem> items;
  int64_t t0 = 0;
  s.attention_owns_rows = true;
  for (size_t i = 0; i < batch.seqs.size(); ++i) {
    const auto& sq = batch.seqs[i];
    const int64_t n_tok = int64_t(sq.tokens.size());
    if (n_tok > std::min(tile, kKvPrefetchMaxRows)) s.attention_owns_rows = false;
    for (int64_t j = 0; j < n_tok; j += tile) {
      const int64_t n = std::min(tile, n_tok - j);
      const int64_t cost = n * (int64_t(sq.start_pos) + j + (n + 1) / 2);
      for (int64_t h = 0; h < c.num_kv_heads; ++h)
        items.push_back({int32_t(i), int32_t(h), t0 + j, n, cost});
    }
    t0 += n_tok;
  }
  std::stable_sort(items.begin(), items.end(),
                   [](const AttentionItem& a, const AttentionItem& b) { return a.cost > b.cost; });
  const size_t nt = static_cast<size_t>(pool_.size());
  s.attention_bins.resize(nt);
  for (auto& b : s.attention_bins) b.clear();
  std::vector<int64_t> load(nt, 0);
  // The KV heads of one tile tie in cost, so the stable sort keeps them adjacent, in head
  // order. Short tiles (decode, verification) are dealt as one unit where there are enough
  // of them to balance the pool (see kKvPrefetchBytes). Where there are not (a few
  // sequences' decode or verification steps), a short tile's heads are dealt in one run of
  // adjacent heads per thread: a thread then reads one contiguous piece of each cached block
  // (its heads' runs of rows, kv_head_row), not every other head's. Measured in session 28
  // (docs/benchmarks.md), when a block held token rows of all heads and alternate heads
  // meant every other 64-256-byte piece of each row: dealt head by head, alternately,
  // batch-1 decode at context ~930 ran 7-16% slower on 110M Q4_0 and 8-10% on F16, and
  // 4-8% on 1B Q4_0 at 2000.
  // Longer tiles, whose heads may each cost as much as all the short ones, are dealt head
  // by head.
  const auto is_short = [](const AttentionItem& it) { return it.n <= kKvPrefetchMaxRows; };
  const size_t units = static_cast<size_t>(std::count_if(items.begin(), items.end(), is_short)) /
                       static_cast<size_t>(std::max<int64_t>(1, c.num_kv_heads));
  const bool whole_tiles = units >= 4 * nt;
  for (size_t i = 0; i < items.size();) {
    size_t j = i + 1;  // [i, j): a short tile's heads, or one head of a longer tile
    if (is_short(items[i]))
      while (j < items.size() && items[j].seq == items[i].seq && items[j].t0 == items[i].t0) ++j;
    const size_t run = whole_tiles ? j - i : (j - i + nt - 1) / nt;  // heads per thread
    while (i < j) {
      const size_t end = std::min(j, i + run);
      // A whole tile's first head fetches the rows for all of them.
      items[i].fetch_rows = whole_tiles && is_short(items[i]);
      const size_t b = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
      for (; i < end; ++i) {
        load[b] += items[i].cost + 1;
        s.attention_bins[b].push_back(items[i]);
      }
    }
  }
}

// silu_mul pieces of a multi-row step: a multiple of every vector width, so that each piece
// but a row's last is whole vectors (8 KiB of output each).
constexpr int64_t kSiluPiece = 2048;

void CpuBackend::forward_layer(int64_t l, const StepBatch& batch, Scratch& s) {
  const auto& c = w_.config;
  const auto& L = w_.layers[l];
  const int64_t T = batch.num_tokens();
  const int64_t H = c.hidden_size, QD = c.q_dim(), KVD = c.kv_dim(), HD = c.head_dim;
  const int64_t I = c.intermediate_size;
  const auto f32 = [](const TensorView& v) { return static_cast<const float*>(v.data); };

  // --- attention ---
  for (int64_t t = 0; t < T; ++t)
    rmsnorm(s.x.data() + t * H, f32(L.attn_norm), s.xb.data() + t * H, H, c.rms_norm_eps);
  observe(l, LinearInput::Qkv, s.xb.data(), T, H);
  // Token t's q row is q + t * q_stride, its k and v rows k / v + t * kv_stride.
  float *q, *k, *v;
  int64_t q_stride = QD, kv_stride = KVD;
  if (const FusedLinear* f = fused_linear(l, FusedGroup::Qkv)) {
    // One dispatch; q, k and v are then read in place from each token's row [q | k | v].
    linear_fused(*f, s.xb.data(), T, s.qkv.data());
    q = s.qkv.data(), k = q + QD, v = k + KVD;
    q_stride = kv_stride = QD + 2 * KVD;
  } else {
    q = Scratch::grown(s.q, T * QD), k = Scratch::grown(s.k, T * KVD), v = Scratch::grown(s.v, T * KVD);
    linear(l, kLinQ, s.xb.data(), T, q, L.bq.empty() ? nullptr : f32(L.bq));
    linear(l, kLinK, s.xb.data(), T, k, L.bk.empty() ? nullptr : f32(L.bk));
    linear(l, kLinV, s.xb.data(), T, v, L.bv.empty() ? nullptr : f32(L.bv));
  }

  const int64_t bs = kv_shape_.block_size;
  const KvDtype kvt = kv_shape_.dtype;
  const int64_t row_bytes = KVD * kv_dtype_elem_bytes(kvt);  // one token of one layer
  const int64_t head_bytes = HD * kv_dtype_elem_bytes(kvt);
  uint8_t* kc = static_cast<uint8_t*>(kv_layer_data(k_cache_, l));
  uint8_t* vc = static_cast<uint8_t*>(kv_layer_data(v_cache_, l));
  float* ks = kv_layer_scales(k_cache_, l);
  float* vs = kv_layer_scales(v_cache_, l);
  const int64_t NKV = c.num_kv_heads, G = c.num_heads / NKV;
  // KV heads [h0, h1) of token t (and their G query heads each): the Qwen3 per-head norms,
  // RoPE, then k and v into the cache. Every head's values are the same whichever heads a
  // call takes (all three work head by head).
  const auto prepare_heads = [&](int64_t t, int64_t h0, int64_t h1) {
    float* qt = q + t * q_stride + h0 * G * HD;
    float* kt = k + t * kv_stride + h0 * HD;
    if (c.qk_norm) {  // Qwen3: per-head RMSNorm before RoPE
      for (int64_t h = 0; h < (h1 - h0) * G; ++h)
        rmsnorm(qt + h * HD, f32(L.q_norm), qt + h * HD, HD, c.rms_norm_eps);
      for (int64_t h = 0; h < h1 - h0; ++h)
        rmsnorm(kt + h * HD, f32(L.k_norm), kt + h * HD, HD, c.rms_norm_eps);
    }
    rope(qt, (h1 - h0) * G, HD, s.pos[t], c.rope_theta, c.rope_style);
    rope(kt, h1 - h0, HD, s.pos[t], c.rope_theta, c.rope_style);
    const auto& sq = batch.seqs[s.seq_of[t]];
    // Each head's row into its run of the block: head h is h * bs rows after head 0.
    const int64_t r = kv_head_row(sq.block_table[s.pos[t] / bs], s.pos[t] % bs, h0, bs, NKV);
    kv_store_row(kvt, kt, h1 - h0, HD, kc + r * head_bytes, ks ? ks + r : nullptr, bs);
    kv_store_row(kvt, v + t * kv_stride + h0 * HD, h1 - h0, HD, vc + r * head_bytes,
                 vs ? vs + r : nullptr, bs);
  };
  // With attention_owns_rows, the attending thread prepares its heads' rows (below): the
  // q, k and v values it reads then stay in its own core's cache, and a batch's rows are
  // prepared in parallel. Otherwise this thread prepares all rows first: a prompt chunk
  // longer than one tile has later tiles that read its earlier tiles' rows, and a
  // longer tile's heads are dealt one by one, so each would rebuild the RoPE table of
  // every row (GetRopeTable keeps one position's).
  if (!s.attention_owns_rows)
    for (int64_t t = 0; t < T; ++t) prepare_heads(t, 0, NKV);

  // Causal attention: token t of a sequence sees positions [0, pos[t]] of that sequence.
  const float scale = 1.0f / std::sqrt(float(HD));
  pool_.parallel_for(int64_t(s.attention_bins.size()), 1, [&](int, int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const std::vector<AttentionItem>& bin = s.attention_bins[size_t(b)];
      // The bin's runs of adjacent heads of one tile, each prepared row by row (one RoPE
      // table per row: GetRopeTable keeps the last position's).
      for (size_t i = 0; s.attention_owns_rows && i < bin.size();) {
        size_t j = i + 1;
        while (j < bin.size() && bin[j].seq == bin[i].seq && bin[j].t0 == bin[i].t0 &&
               bin[j].kv_head == bin[j - 1].kv_head + 1)
          ++j;
        for (int64_t t = bin[i].t0; t < bin[i].t0 + bin[i].n; ++t)
          prepare_heads(t, bin[i].kv_head, bin[j - 1].kv_head + 1);
        i = j;
      }
      for (const AttentionItem& it : bin) {
        const auto& sq = batch.seqs[size_t(it.seq)];
        if (it.fetch_rows && host_tuning().kv_rows_fetch)
          prefetch_cached_rows(kc, vc, sq.block_table.data(), bs, row_bytes, s.pos[it.t0 + it.n - 1] + 1);
        PagedKv kv{kc, vc, sq.block_table.data(), bs, NKV, HD, kvt, ks, vs};
        attention_causal_tile(q + it.t0 * q_stride, q_stride, it.kv_head, c.num_heads, kv,
                              s.pos[it.t0], it.n, scale, s.att.data() + it.t0 * QD, QD);
      }
    }
  });
  observe(l, LinearInput::O, s.att.data(), T, QD);
  linear(l, kLinO, s.att.data(), T, s.xb.data());
  add_inplace(s.x.data(), s.xb.data(), T * H);

  // --- SwiGLU feed-forward ---
  for (int64_t t = 0; t < T; ++t)
    rmsnorm(s.x.data() + t * H, f32(L.ffn_norm), s.xb.data() + t * H, H, c.rms_norm_eps);
  observe(l, LinearInput::GateUp, s.xb.data(), T, H);
  const quant::QuantizedMatrix* qgate = quantized(l, kLinGate);
  const quant::QuantizedMatrix* qup = quantized(l, kLinUp);
  const quant::QuantizedMatrix* qdown = quantized(l, kLinDown);
  if (qgate && qup && qdown && !observer_ && quant::qmatmul_glu_fits(*qgate, *qup, *qdown)) {
    // The feed-forward in one call: gate and up outputs stay in each thread's cache, and
    // down's input is quantized from there (the same bits as below; stacked or not, gate
    // and up are separate matrices here, views of the stack when fused). The observer
    // needs down's input written out.
    quant::qmatmul_glu(pool_, s.xb.data(), T, *qgate, *qup, silu_mul_to, *qdown, s.xb.data());
    add_inplace(s.x.data(), s.xb.data(), T * H);
    return;
  }
  const FusedLinear* fused_gate_up = fused_linear(l, FusedGroup::GateUp);
  float* act = s.gate.data();  // silu(gate) * up, [T, I]: down_proj's input
  if (fused_gate_up && fused_gate_up->glu_pairs) {
    // Float gate/up in panel pairs: SiLU in the thread that summed each pair (one dispatch).
    matmul_glu_pairs(pool_, s.xb.data(), T, fused_gate_up->w, act);
    observe(l, LinearInput::Down, act, T, I);
    linear(l, kLinDown, act, T, s.xb.data());
    add_inplace(s.x.data(), s.xb.data(), T * H);
    return;
  }
  // Token t's gate and up rows.
  const int64_t row_stride = fused_gate_up ? 2 * I : I;
  float* gate = fused_gate_up ? Scratch::grown(s.gate_up, T * 2 * I) : s.gate.data();
  float* up = fused_gate_up ? gate + I : Scratch::grown(s.up, T * I);
  if (fused_gate_up)  // one dispatch into rows [gate | up]
    linear_fused(*fused_gate_up, s.xb.data(), T, gate);
  else {
    linear(l, kLinGate, s.xb.data(), T, gate);
    linear(l, kLinUp, s.xb.data(), T, up);
  }

  if (T == 1) {
    act = gate;  // in place: s.gate, or the front of s.gate_up
    silu_mul(act, up, I);
  } else {
    // Several rows (a verification or prefill step): split over the pool (on one thread
    // this grew with every row: 5 rows x 16384 on the grown speculative target, issue 19)
    // and written to s.gate. Pieces start at multiples of kSiluPiece within a row, so each
    // row's vector/tail split, and with it every value, is the one silu_mul gives the row
    // on its own.
    const int64_t per_row = (I + kSiluPiece - 1) / kSiluPiece;
    pool_.parallel_for(T * per_row, 1, [&](int, int64_t b, int64_t e) {
      for (int64_t j = b; j < e; ++j) {
        const int64_t t = j / per_row, c = j % per_row * kSiluPiece;
        silu_mul_to(act + t * I + c, gate + t * row_stride + c, up + t * row_stride + c,
                    std::min(kSiluPiece, I - c));
      }
    });
  }
  observe(l, LinearInput::Down, act, T, I);
  linear(l, kLinDown, act, T, s.xb.data());
  add_inplace(s.x.data(), s.xb.data(), T * H);
}

void CpuBackend::copy_block(int32_t src, int32_t dst) {
  if (src < 0 || dst < 0 || src >= kv_shape_.num_blocks || dst >= kv_shape_.num_blocks)
    fail("copy_block: block {} -> {} outside the pool of {}", src, dst, kv_shape_.num_blocks);
  const auto& c = w_.config;
  // A block of one layer: its bytes, and with Int8 its rows' scales (a copy is exact).
  const int64_t blk_bytes = kv_shape_.block_size * c.kv_dim() * kv_dtype_elem_bytes(kv_shape_.dtype);
  const int64_t blk_rows = kv_shape_.block_size * c.num_kv_heads;
  for (int64_t l = layers_.begin; l < layers_.end; ++l)
    for (KvPool* p : {&k_cache_, &v_cache_}) {
      uint8_t* data = static_cast<uint8_t*>(kv_layer_data(*p, l));
      std::copy_n(data + src * blk_bytes, blk_bytes, data + dst * blk_bytes);
      if (float* sc = kv_layer_scales(*p, l)) std::copy_n(sc + src * blk_rows, blk_rows, sc + dst * blk_rows);
    }
}

}  // namespace troupe::cpu
