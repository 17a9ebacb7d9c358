"""nanoGPT's training of its CPU "baby GPT", re-created as the peer of our speedrun (`bench_train.py`).

The model and loop follow karpathy/nanoGPT's `model.py` and `train.py` as its README runs them on a CPU
(`config/train_shakespeare_char.py` with `--device=cpu --compile=False --eval_iters=20 --block_size=64
--batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0`),
written here in our words: pre-norm blocks with bias-free LayerNorm and linears, exact GELU, learned
positions, the head tied to the token embedding, N(0, 0.02) weights with the residual projections scaled by
1/√(2·layers); AdamW(0.9, 0.99) with weight decay 0.1 on the matrices and embeddings only; linear warm-up
over 100 iterations, then a cosine from 1e-3 to 1e-4 at 2,000; gradients clipped to 1.0; fp32 (nanoGPT runs
a CPU without autocast); each batch 12 windows of 64 characters at uniform random offsets. Its GPU setting
(`GPU_SETTING`, `config/train_shakespeare_char.py` as it stands) adds dropout (embeddings, attention weights,
residual branches), bf16 autocast, fused AdamW and `torch.compile`.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SETTING = {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "batch_size": 12, "max_iters": 2000,
           "learning_rate": 1e-3, "min_lr": 1e-4, "warmup_iters": 100, "weight_decay": 0.1, "beta2": 0.99,
           "grad_clip": 1.0, "dropout": 0.0, "device": "cpu", "dtype": "float32", "compile": False}
GPU_SETTING = {**SETTING, "n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256, "batch_size": 64,
               "dropout": 0.2, "device": "cuda", "dtype": "bfloat16", "compile": True}


class Block(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.ln_1, self.ln_2 = nn.LayerNorm(width, bias=False), nn.LayerNorm(width, bias=False)
        self.c_attn = nn.Linear(width, 3 * width, bias=False)
        self.attn_proj = nn.Linear(width, width, bias=False)
        self.c_fc = nn.Linear(width, 4 * width, bias=False)
        self.mlp_proj = nn.Linear(4 * width, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2)
                   for t in self.c_attn(self.ln_1(x)).split(C, dim=2))
        p = self.dropout if self.training else 0.0
        attended = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        x = x + F.dropout(self.attn_proj(attended.transpose(1, 2).reshape(B, T, C)), p)
        return x + F.dropout(self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)))), p)


class NanoGPT(nn.Module):
    def __init__(self, vocab_size: int, n_layer: int, n_head: int, n_embd: int, block_size: int, dropout: float):
        super().__init__()
        self.dropout = dropout
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.blocks = nn.ModuleList(Block(n_embd, n_head, dropout) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd, bias=False)
        for name, p in self.named_parameters():
            if p.ndim == 2:
                std = 0.02 / math.sqrt(2 * n_layer) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, mean=0.0, std=std)

    def forward(self, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x = F.dropout(self.wte(ids) + self.wpe(torch.arange(ids.size(1), device=ids.device)), self.dropout,
                      self.training)
        for block in self.blocks:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.T  # the tied head
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


def nanogpt_lr(it: int, s: dict) -> float:
    if it < s["warmup_iters"]:
        return s["learning_rate"] * (it + 1) / (s["warmup_iters"] + 1)
    ratio = (it - s["warmup_iters"]) / (s["max_iters"] - s["warmup_iters"])
    return s["min_lr"] + 0.5 * (1.0 + math.cos(math.pi * min(ratio, 1.0))) * (s["learning_rate"] - s["min_lr"])


@torch.no_grad()
def mean_loss(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], autocast) -> float:
    model.eval()
    device = next(model.parameters()).device
    with autocast:
        losses = [model(ids.to(device), targets.to(device)).item() for ids, targets in batches]
    model.train()
    return sum(losses) / len(losses)


def train_nanogpt(train_ids: np.ndarray, vocab_size: int, eval_batches: list[tuple[torch.Tensor, torch.Tensor]],
                  seed: int = 1337, **overrides) -> dict:
    """Train as nanoGPT does; return the time in training iterations alone (`train_s`: evaluation excluded, as
    for ours), the median iteration, and the mean loss on `eval_batches` (the windows ours are scored on)."""
    s = {**SETTING, **overrides}
    torch.manual_seed(seed)
    device = torch.device(s["device"])
    model = NanoGPT(vocab_size, s["n_layer"], s["n_head"], s["n_embd"], s["block_size"], s["dropout"]).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": s["weight_decay"]},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=s["learning_rate"], betas=(0.9, s["beta2"]), fused=device.type == "cuda")
    dtype = getattr(torch, s["dtype"])
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    step_model = torch.compile(model) if s["compile"] else model
    data = torch.from_numpy(train_ids.astype(np.int64))
    block, batch = s["block_size"], s["batch_size"]
    times = []
    for it in range(s["max_iters"]):
        t0 = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = nanogpt_lr(it, s)
        ix = torch.randint(len(data) - block, (batch,)).tolist()
        x = torch.stack([data[i:i + block] for i in ix]).to(device, non_blocking=True)
        y = torch.stack([data[i + 1:i + 1 + block] for i in ix]).to(device, non_blocking=True)
        with autocast:
            loss = step_model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), s["grad_clip"])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    steady = sorted(times)[len(times) // 2]  # the median iteration: compilation and warm-up excluded
    return {"iters": s["max_iters"], "train_s": sum(times), "ms_per_iter": 1000 * steady,
            "val_loss": mean_loss(model, eval_batches, autocast), "final_train_loss": loss.item(),
            "dtype": s["dtype"], "compile": s["compile"], "dropout": s["dropout"]}
