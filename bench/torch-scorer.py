"""The micro zoo's PyTorch scorer, as models/micro/ZOO-README.md defines the scores (float32, one forward pass of
the whole sequence per step, no KV cache, prompts batched by equal length): the yardstick `npm run bench --
eval-vs-torch` times `evomerge eval` against. Prints one JSON line: per task the score and its seconds, and the
whole scoring time (after torch is imported and the weights are read).

usage: python3 bench/torch-scorer.py MODEL_DIR SUITE_DIR [--split test] [--threads 2]
Needs a python3 with torch (Debian's python3-torch, or a venv with torch); nothing in the tests uses it.
"""

import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch

DTYPES = {"F32": np.float32, "F16": np.float16}


def read_safetensors(path):
    """The format read by hand (8-byte header length, JSON header, data), as evomerge's own reader does."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        lo, hi = meta["data_offsets"]
        raw = data[lo:hi]
        if meta["dtype"] == "BF16":
            halves = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            arr = halves.view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=DTYPES[meta["dtype"]]).astype(np.float32)
        out[name] = torch.from_numpy(arr.reshape(meta["shape"]).copy())
    return out


class Llama:
    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "config.json")) as f:
            c = json.load(f)
        self.w = read_safetensors(os.path.join(model_dir, "model.safetensors"))
        self.layers = c["num_hidden_layers"]
        self.heads = c["num_attention_heads"]
        self.kv_heads = c.get("num_key_value_heads", self.heads)
        self.head_dim = c.get("head_dim") or c["hidden_size"] // self.heads
        self.eps = c["rms_norm_eps"]
        theta = c.get("rope_theta", 10000.0)
        inv = 1.0 / (theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.float32) / self.head_dim))
        pos = torch.arange(c["max_position_embeddings"], dtype=torch.float32)
        freqs = torch.outer(pos, inv)
        emb = torch.cat([freqs, freqs], dim=-1)
        self.cos, self.sin = emb.cos(), emb.sin()

    def norm(self, x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))

    @staticmethod
    def rotate_half(x):
        h = x.shape[-1] // 2
        return torch.cat([-x[..., h:], x[..., :h]], dim=-1)

    @torch.inference_mode()
    def logits(self, ids):
        w = self.w
        b, t = ids.shape
        x = w["model.embed_tokens.weight"][ids]
        cos, sin = self.cos[:t], self.sin[:t]
        mask = torch.full((t, t), float("-inf")).triu(1)
        rep = self.heads // self.kv_heads
        for i in range(self.layers):
            p = f"model.layers.{i}."
            h = self.norm(x, w[p + "input_layernorm.weight"])
            q = (h @ w[p + "self_attn.q_proj.weight"].T).view(b, t, self.heads, self.head_dim).transpose(1, 2)
            k = (h @ w[p + "self_attn.k_proj.weight"].T).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
            v = (h @ w[p + "self_attn.v_proj.weight"].T).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
            q = q * cos + self.rotate_half(q) * sin
            k = k * cos + self.rotate_half(k) * sin
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
            att = (q @ k.transpose(-1, -2)) / math.sqrt(self.head_dim) + mask
            o = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, t, -1)
            x = x + o @ w[p + "self_attn.o_proj.weight"].T
            h = self.norm(x, w[p + "post_attention_layernorm.weight"])
            g = torch.nn.functional.silu(h @ w[p + "mlp.gate_proj.weight"].T) * (h @ w[p + "mlp.up_proj.weight"].T)
            x = x + g @ w[p + "mlp.down_proj.weight"].T
        return self.norm(x, w["model.norm.weight"]) @ w["lm_head.weight"].T


def generate_em(model, items, max_new):
    by_len = {}
    for it in items:
        by_len.setdefault(len(it["prompt"].encode()), []).append(it)
    right = 0
    for group in by_len.values():
        rows = [list(it["prompt"].encode()) for it in group]
        kept = [[] for _ in group]
        done = [False] * len(group)
        for _ in range(max_new):
            live = [i for i in range(len(group)) if not done[i]]
            if not live:
                break
            ids = torch.tensor([rows[i] + kept[i] for i in live])
            nxt = model.logits(ids)[:, -1, :].argmax(-1).tolist()
            for i, tok in zip(live, nxt):
                if tok == 10:
                    done[i] = True
                else:
                    kept[i].append(tok)
        for it, k in zip(group, kept):
            right += bytes(k).decode("utf-8", errors="replace").strip() == it["answer"]
    return right / len(items)


def loglik(model, items):
    total, count = 0.0, 0
    for start in range(0, len(items), 50):
        ids = torch.tensor([list(it["text"].encode()) for it in items[start : start + 50]])
        lp = model.logits(ids)[:, :-1, :].log_softmax(-1)
        total += lp.gather(-1, ids[:, 1:, None]).sum().item()
        count += ids.shape[0] * (ids.shape[1] - 1)
    return total / count


TASKS = {"math": 4, "math_words": 4, "composite": 4, "spam": 5, "lang": None, "english": None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("evals")
    ap.add_argument("--split", default="test")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t_start = time.perf_counter()
    model = Llama(a.model)
    t0 = time.perf_counter()
    out = {"tasks": {}, "load_s": t0 - t_start}
    for task, max_new in TASKS.items():
        with open(os.path.join(a.evals, f"{task}.{a.split}.jsonl")) as f:
            items = [json.loads(line) for line in f if line.strip()]
        t = time.perf_counter()
        score = loglik(model, items) if max_new is None else generate_em(model, items, max_new)
        out["tasks"][task] = {"score": score, "n": len(items), "seconds": time.perf_counter() - t}
    out["score_s"] = time.perf_counter() - t0
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
