#!/usr/bin/env python3
"""Independent float64 reference forward pass of a Hugging Face Qwen2 / Qwen3 (or Llama)
checkpoint, written from the transformers modeling_qwen2.py / modeling_qwen3.py definitions
and sharing no code with troupe: a plain safetensors reader (8-byte header length, JSON
header, raw little-endian bytes) and numpy.

usage: qwen_reference.py MODEL_DIR TOKEN_ID...
prints {"logits": [[...vocab...] per position]} as JSON on stdout.

Per block (pre-norm):  h = x + o_proj(attn(RMSNorm(x)));  x' = h + down(silu(gate(n)) * up(n)),
n = RMSNorm(h). Attention: q/k/v projections, + biases where the checkpoint has them (Qwen2
always does), Qwen3 RMS-normalises each head of q and k with q_norm / k_norm (weights of
head_dim) BEFORE RoPE; RoPE is rotate_half with inv_freq = theta^(-2i/head_dim) over the whole
head_dim, theta = config rope_theta; grouped-query attention repeats each kv head for
num_heads / num_kv_heads query heads; scores scaled by head_dim^-0.5 (head_dim from the
config, which may differ from hidden / heads), causal. The head is lm_head.weight unless the
config ties it to the embeddings."""
import json, struct, sys

import numpy as np

DT = {'F32': np.float32, 'F16': np.float16}


def read_safetensors(path):
    raw = open(path, 'rb').read()
    n = struct.unpack('<Q', raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    out = {}
    for k, v in hdr.items():
        if k == '__metadata__':
            continue
        if v['dtype'] not in DT:
            raise SystemExit(f'{path}: {k} has dtype {v["dtype"]} (reference reads F32/F16)')
        s, e = v['data_offsets']
        out[k] = np.frombuffer(raw[8 + n + s:8 + n + e], dtype=DT[v['dtype']]).astype(np.float64).reshape(v['shape'])
    return out


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def forward(d, ids):
    cfg = json.load(open(f'{d}/config.json'))
    W = read_safetensors(f'{d}/model.safetensors')
    mt = cfg['model_type']
    H, nh = cfg['hidden_size'], cfg['num_attention_heads']
    nkv = cfg.get('num_key_value_heads', nh)
    hd = cfg.get('head_dim') or H // nh
    eps, theta = cfg['rms_norm_eps'], cfg.get('rope_theta', 10000.0)
    qwen2_bias = mt == 'qwen2'
    qk_norm = mt == 'qwen3'
    T = len(ids)
    x = W['model.embed_tokens.weight'][ids]
    inv_freq = 1.0 / theta ** (np.arange(0, hd, 2, dtype=np.float64) / hd)
    ang = np.outer(np.arange(T, dtype=np.float64), inv_freq)
    emb = np.concatenate([ang, ang], axis=-1)
    cos, sin = np.cos(emb)[:, None, :], np.sin(emb)[:, None, :]  # [T, 1, hd]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for i in range(cfg['num_hidden_layers']):
        p = f'model.layers.{i}.'
        h = rms_norm(x, W[p + 'input_layernorm.weight'], eps)

        def proj(name):
            y = h @ W[p + f'self_attn.{name}.weight'].T
            b = W.get(p + f'self_attn.{name}.bias')
            if qwen2_bias:
                assert b is not None, f'qwen2 checkpoint without {p}self_attn.{name}.bias'
            if b is not None:
                y = y + b
            return y

        q = proj('q_proj').reshape(T, nh, hd)
        k = proj('k_proj').reshape(T, nkv, hd)
        v = proj('v_proj').reshape(T, nkv, hd)
        if qk_norm:
            q = rms_norm(q, W[p + 'self_attn.q_norm.weight'], eps)
            k = rms_norm(k, W[p + 'self_attn.k_norm.weight'], eps)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = nh // nkv
        k = np.repeat(k, rep, axis=1)  # kv head j serves query heads j*rep .. j*rep+rep-1
        v = np.repeat(v, rep, axis=1)
        s = np.einsum('thd,shd->hts', q, k) / np.sqrt(hd) + mask
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        s /= s.sum(axis=-1, keepdims=True)
        o = np.einsum('hts,shd->thd', s, v).reshape(T, nh * hd)
        x = x + o @ W[p + 'self_attn.o_proj.weight'].T
        n = rms_norm(x, W[p + 'post_attention_layernorm.weight'], eps)
        g = n @ W[p + 'mlp.gate_proj.weight'].T
        u = n @ W[p + 'mlp.up_proj.weight'].T
        x = x + ((g / (1.0 + np.exp(-g))) * u) @ W[p + 'mlp.down_proj.weight'].T
    x = rms_norm(x, W['model.norm.weight'], eps)
    head = W['model.embed_tokens.weight'] if cfg.get('tie_word_embeddings', False) else W['lm_head.weight']
    return x @ head.T


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    logits = forward(sys.argv[1], [int(t) for t in sys.argv[2:]])
    json.dump({'logits': logits.tolist()}, sys.stdout)


if __name__ == '__main__':
    main()
