#!/usr/bin/env python3
"""Writes the binary and derived seeds of tests/fuzz/corpus/ (docs/fuzzing.md).

Seeds are small files of the real shapes: a complete tiny llama GGUF (SentencePiece and
byte-level BPE vocabularies, F32/F16/Q8_0 tensors), safetensors files as Hugging Face writes
them, tokenizer.json files trimmed from the shared TinyStories and Llama 3 tokenizers (their
structure kept, vocabularies cut to a few hundred entries), and a BPE SentencePiece .model.
The text seeds (requests, templates, WebSocket messages) are written by hand in the corpus.

  python3 tests/fuzz/make_seeds.py [--models /work/shared/models --tokenizers /work/shared/tokenizers]
"""
import argparse
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    os.makedirs(os.path.join(CORPUS, target), exist_ok=True)
    with open(os.path.join(CORPUS, target, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# ---------------------------------------------------------------- GGUF (v3, little-endian)
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)


def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gval(t, v):
    if t == STR:
        return gstr(v)
    if t == ARR:
        et, items = v
        return struct.pack("<IQ", et, len(items)) + b"".join(gval(et, x) for x in items)
    return struct.pack({U32: "<I", I32: "<i", F32: "<f", BOOL: "<?", U64: "<Q", I64: "<q", F64: "<d"}[t], v)


def q8_0(values):
    # Blocks of 32: an f16 scale and 32 int8 (ggml's Q8_0).
    out = b""
    for i in range(0, len(values), 32):
        block = values[i:i + 32]
        amax = max(abs(x) for x in block) or 1.0
        d = amax / 127
        out += struct.pack("<e", d) + b"".join(struct.pack("<b", round(x / d)) for x in block)
    return out


def gguf(kv, tensors, alignment=32):
    """kv: [(key, type, value)]; tensors: [(name, ne list, ggml_type, bytes)]."""
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv))
    for k, t, v in kv:
        head += gstr(k) + struct.pack("<I", t) + gval(t, v)
    data, offset = b"", 0
    for name, ne, gtype, raw in tensors:
        head += gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne)
        head += struct.pack("<IQ", gtype, offset)
        pad = (-len(raw)) % alignment
        data += raw + b"\0" * pad
        offset += len(raw) + pad
    head += b"\0" * ((-len(head)) % alignment)
    return head + data


def llama_tensors(vocab, dim, ff, gtype):
    def weights(n, seed):
        return [((i * 7919 + seed * 104729) % 201 - 100) / 400.0 for i in range(n)]

    def raw(n, seed, kind):
        w = weights(n, seed)
        if kind == 0:
            return struct.pack(f"<{n}f", *w)
        if kind == 1:
            return struct.pack(f"<{n}e", *w)
        return q8_0(w)

    ones = struct.pack(f"<{dim}f", *([1.0] * dim))
    mats = [("token_embd.weight", [dim, vocab]), ("blk.0.attn_q.weight", [dim, dim]),
            ("blk.0.attn_k.weight", [dim, dim]), ("blk.0.attn_v.weight", [dim, dim]),
            ("blk.0.attn_output.weight", [dim, dim]), ("blk.0.ffn_gate.weight", [dim, ff]),
            ("blk.0.ffn_up.weight", [dim, ff]), ("blk.0.ffn_down.weight", [ff, dim])]
    out = [(n, ne, gtype, raw(ne[0] * ne[1], i, {0: 0, 1: 1, 8: 2}[gtype])) for i, (n, ne) in enumerate(mats)]
    out += [("blk.0.attn_norm.weight", [dim], 0, ones), ("blk.0.ffn_norm.weight", [dim], 0, ones),
            ("output_norm.weight", [dim], 0, ones)]
    return out


def llama_kv(n_vocab, dim, ff):
    return [("general.architecture", STR, "llama"), ("general.alignment", U32, 32),
            ("llama.context_length", U32, 64), ("llama.embedding_length", U32, dim),
            ("llama.block_count", U32, 1), ("llama.feed_forward_length", U32, ff),
            ("llama.attention.head_count", U32, 2), ("llama.attention.head_count_kv", U32, 2),
            ("llama.attention.layer_norm_rms_epsilon", F32, 1e-5), ("llama.rope.freq_base", F32, 10000.0),
            ("llama.vocab_size", U32, n_vocab)]


def spm_pieces():
    words = ["\u2581Once", "\u2581upon", "\u2581a", "\u2581time", "\u2581caf", "\u2581sat", "\u2581", "e", "a", "t",
             "i", "m", "n", "o", "s", "\u2581t", "\u2581u", "\u2581O", "On", "ce", "up", "on", "ti", "me"]
    pieces = [("<unk>", 0.0, 2), ("<s>", 0.0, 3), ("</s>", 0.0, 3)]
    pieces += [(f"<0x{b:02X}>", 0.0, 6) for b in range(256)]
    pieces += [(w, -float(i), 1) for i, w in enumerate(words)]
    return pieces


def gguf_seeds():
    pieces = spm_pieces()
    spm_kv = [("tokenizer.ggml.model", STR, "llama"), ("tokenizer.ggml.tokens", ARR, (STR, [p[0] for p in pieces])),
              ("tokenizer.ggml.scores", ARR, (F32, [p[1] for p in pieces])),
              ("tokenizer.ggml.token_type", ARR, (I32, [p[2] for p in pieces])),
              ("tokenizer.ggml.bos_token_id", U32, 1), ("tokenizer.ggml.eos_token_id", U32, 2),
              ("tokenizer.ggml.unknown_token_id", U32, 0), ("tokenizer.ggml.add_bos_token", BOOL, True),
              ("tokenizer.chat_template", STR,
               "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}</s>{% endfor %}")]
    n = len(pieces)
    # Q8_0 blocks are 32 wide (dim 32); the F32 seed keeps the vocabulary without byte pieces.
    write("gguf", "llama_spm_q8_0.gguf", gguf(llama_kv(n, 32, 32) + spm_kv, llama_tensors(n, 32, 32, 8)))
    small = [p for p in pieces if p[2] != 6]
    small_kv = [("tokenizer.ggml.tokens", ARR, (STR, [p[0] for p in small])),
                ("tokenizer.ggml.scores", ARR, (F32, [p[1] for p in small])),
                ("tokenizer.ggml.token_type", ARR, (I32, [p[2] for p in small]))]
    small_kv += [kv for kv in spm_kv if kv[0] not in {k for k, _, _ in small_kv}]
    f32 = gguf(llama_kv(len(small), 8, 16) + small_kv, llama_tensors(len(small), 8, 16, 0))
    write("gguf", "llama_spm_f32.gguf", f32)
    write("gguf", "truncated_header.gguf", f32[:700])

    byte_tokens = [chr(c) for c in range(33, 127)] + ["\u0120", "\u0120a", "\u0120t", "he", "\u0120the"]
    bpe_kv = [("tokenizer.ggml.model", STR, "gpt2"), ("tokenizer.ggml.pre", STR, "llama-bpe"),
              ("tokenizer.ggml.tokens", ARR, (STR, byte_tokens + ["<|begin_of_text|>", "<|eot_id|>"])),
              ("tokenizer.ggml.token_type", ARR, (I32, [1] * len(byte_tokens) + [3, 3])),
              ("tokenizer.ggml.merges", ARR, (STR, ["\u0120 a", "\u0120 t", "h e", "\u0120t he"])),
              ("tokenizer.ggml.bos_token_id", U32, len(byte_tokens)),
              ("tokenizer.ggml.eos_token_id", U32, len(byte_tokens) + 1)]
    nb = len(byte_tokens) + 2
    write("gguf", "llama_bpe_f16.gguf", gguf(llama_kv(nb, 8, 16) + bpe_kv, llama_tensors(nb, 8, 16, 1)))


# ---------------------------------------------------------------- safetensors
def safetensors(tensors, metadata=None):
    header, data = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((-len(h)) % 8)
    return struct.pack("<Q", len(h)) + h + data


def safetensors_seeds():
    write("safetensors", "two_tensors.safetensors", safetensors(
        [("model.embed_tokens.weight", "F32", [4, 2], struct.pack("<8f", *range(8))),
         ("model.norm.weight", "F16", [2], struct.pack("<2e", 1.0, 1.0))], {"format": "pt"}))
    write("safetensors", "mixed_dtypes.safetensors", safetensors(
        [("a", "BF16", [2, 2], b"\x80\x3f" * 4), ("b", "I64", [1], struct.pack("<q", 7)),
         ("c", "I8", [3], b"\x01\x02\x03"), ("empty", "F32", [0, 4], b"")]))
    write("safetensors", "header_only.safetensors", safetensors([]))


# ---------------------------------------------------------------- tokenizer.json
def trimmed_tokenizer(path, keep_ids):
    with open(path, encoding="utf-8") as f:
        tj = json.load(f)
    vocab = {t: i for t, i in tj["model"]["vocab"].items() if i < keep_ids}
    merges = []
    for m in tj["model"]["merges"]:
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        if a in vocab and b in vocab and a + b in vocab:
            merges.append(m)
    tj["model"]["vocab"] = vocab
    tj["model"]["merges"] = merges
    added = [t for t in tj.get("added_tokens", []) if t["id"] < keep_ids]
    # Keep a few of the high special ids (renumbered past the kept vocabulary).
    for k, t in enumerate([t for t in tj.get("added_tokens", []) if t["id"] >= keep_ids][:4]):
        t = dict(t, id=keep_ids + k)
        vocab[t["content"]] = t["id"]
        added.append(t)
    tj["added_tokens"] = added
    if isinstance(tj.get("post_processor"), dict):
        tj["post_processor"] = None
    return json.dumps(tj, ensure_ascii=False, separators=(",", ":"))


def tokenizer_json_seeds(models, tokenizers):
    write("tokenizer_json", "tinystories_trimmed.json",
          trimmed_tokenizer(os.path.join(models, "tinystories-656k", "tokenizer.json"), 400))
    write("tokenizer_json", "llama3_trimmed.json",
          trimmed_tokenizer(os.path.join(tokenizers, "llama3", "tokenizer.json"), 600))


# ---------------------------------------------------------------- SentencePiece .model
def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def field(num, wire, payload):
    key = varint((num << 3) | wire)
    if wire == 0:
        return key + varint(payload)
    if wire == 5:
        return key + struct.pack("<f", payload)
    return key + varint(len(payload)) + payload


def spm_model(byte_fallback):
    pieces = spm_pieces() if byte_fallback else [p for p in spm_pieces() if p[2] != 6]
    out = b""
    for text, score, typ in pieces:
        out += field(1, 2, field(1, 2, text.encode()) + field(2, 5, score) + field(3, 0, typ))
    trainer = field(3, 0, 2) + field(4, 0, len(pieces)) + field(35, 0, int(byte_fallback))
    trainer += field(40, 0, 0) + field(41, 0, 1) + field(42, 0, 2) + field(43, 0, (1 << 64) - 1)
    out += field(2, 2, trainer)
    out += field(3, 2, field(1, 2, b"identity") + field(3, 0, 1) + field(4, 0, 0) + field(5, 0, 1))
    return out


def sentencepiece_seeds():
    write("sentencepiece", "bpe_byte_fallback.model", spm_model(True))
    write("sentencepiece", "bpe_no_bytes.model", spm_model(False))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=os.environ.get("TROUPE_MODELS", "/work/shared/models"))
    ap.add_argument("--tokenizers", default=None)
    a = ap.parse_args()
    gguf_seeds()
    safetensors_seeds()
    tokenizer_json_seeds(a.models, a.tokenizers or os.path.join(a.models, "..", "tokenizers"))
    sentencepiece_seeds()
