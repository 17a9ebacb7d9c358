"""Scoring a model on the synthetic tasks, both ways, and its induction heads.

The sharp view is exact match of a greedy completion (right or wrong, per example); the smooth view is the
mean log-likelihood per answer token of the right answer under the same model (Schaeffer et al. 2023:
a smooth metric can rise steadily where exact match jumps). The induction-head score (Olsson et al. 2022)
is the attention a head pays, in the second copy of a repeated random sequence, to the token after the
current token's earlier occurrence; the in-context score is the loss at late context positions minus the
loss at early ones on held-out text (negative: later tokens are predicted better thanks to the context).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lm2llm.stats import Z90
from lm2llm.tokenizer import Tokenizer


@torch.no_grad()
def greedy_completions(model: nn.Module, tokenizer: Tokenizer, prompts: Sequence[str], max_new: int,
                       stop: str = "\n", batch_size: int = 64) -> list[str]:
    """Greedy continuations of prompts (grouped by token length, so no padding; a KV cache, so each new
    token costs one position), cut at `stop`."""
    model.eval()
    encoded = [tokenizer.encode(p) for p in prompts]
    out: list[str] = [""] * len(prompts)
    by_length: dict[int, list[int]] = {}
    for i, ids in enumerate(encoded):
        by_length.setdefault(len(ids), []).append(i)
    context = model.config.context_length
    for length, indices in by_length.items():
        steps = min(max_new, context - length)
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            state = model.new_state(len(chunk), length + steps)
            new: list[torch.Tensor] = []
            ids = torch.tensor([encoded[i] for i in chunk])
            for _ in range(steps):
                logits, _ = model(ids, state=state, last_only=True)
                ids = logits[:, -1].argmax(-1, keepdim=True)
                new.append(ids)
            tokens = torch.cat(new, dim=1).tolist() if new else [[] for _ in chunk]
            for row, i in enumerate(chunk):
                out[i] = tokenizer.decode(tokens[row]).split(stop)[0]
    return out


@torch.no_grad()
def answer_logprobs(model: nn.Module, tokenizer: Tokenizer, prompts: Sequence[str], answers: Sequence[str],
                    batch_size: int = 64) -> np.ndarray:
    """Mean log-probability per token of each answer after its prompt (the smooth view)."""
    model.eval()
    scores = np.zeros(len(prompts))
    rows = [(tokenizer.encode(p), tokenizer.encode(a)) for p, a in zip(prompts, answers, strict=True)]
    by_length: dict[int, list[int]] = {}
    for i, (p, a) in enumerate(rows):
        by_length.setdefault(len(p) + len(a), []).append(i)
    for indices in by_length.values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            ids = torch.tensor([rows[i][0] + rows[i][1] for i in chunk])
            logp = F.log_softmax(model(ids[:, :-1])[0].float(), dim=-1)
            taken = logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
            for row, i in enumerate(chunk):
                n_prompt, n_answer = len(rows[i][0]), len(rows[i][1])
                scores[i] = taken[row, n_prompt - 1:n_prompt - 1 + n_answer].mean().item()
    return scores


@torch.no_grad()
def label_logprobs(model: nn.Module, tokenizer: Tokenizer, prompts: Sequence[str], labels: Sequence[str],
                   batch_size: int = 64) -> np.ndarray:
    """(prompts, labels) log-probability of each whole label as the prompt's continuation, one pass per prompt.

    The prompt runs once and fills a KV cache; its last position gives every label's first token, and the
    cache, copied once per label, carries all the labels' remaining tokens in a single short pass (instead
    of one full pass per label over prompt + label). Labels may differ in length: a shorter one is padded
    at its end, which no earlier position sees."""
    from lm2llm.models.transformer import DecoderState

    model.eval()
    label_ids = [tokenizer.encode(label) for label in labels]
    if not all(label_ids):
        raise ValueError("every label needs at least one token")
    width = max(map(len, label_ids))
    targets = torch.tensor([ids + [0] * (width - len(ids)) for ids in label_ids])  # (labels, width)
    counted = torch.tensor([[j < len(ids) for j in range(width)] for ids in label_ids])
    scores = np.zeros((len(prompts), len(labels)))
    encoded = [tokenizer.encode(p) for p in prompts]
    by_length: dict[int, list[int]] = {}
    for i, ids in enumerate(encoded):
        by_length.setdefault(len(ids), []).append(i)
    for length, indices in by_length.items():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            state = model.new_state(len(chunk), length)
            logits, _ = model(torch.tensor([encoded[i] for i in chunk]), state=state, last_only=True)
            total = F.log_softmax(logits[:, -1].float(), dim=-1)[:, targets[:, 0]]  # (chunk, labels)
            if width > 1:
                copies = DecoderState.gather([(state, [row for row in range(len(chunk)) for _ in labels])],
                                             room=width - 1)
                rest, _ = model(targets[:, :-1].repeat(len(chunk), 1), state=copies)
                taken = F.log_softmax(rest.float(), dim=-1).gather(-1, targets[:, 1:].repeat(len(chunk), 1)
                                                                   .unsqueeze(-1)).squeeze(-1)
                total += (taken * counted[:, 1:].repeat(len(chunk), 1)).sum(-1).view(len(chunk), len(labels))
            scores[chunk] = total.numpy()
    return scores


def choice_accuracy(model: nn.Module, tokenizer: Tokenizer, prompts: Sequence[str], answers: Sequence[str],
                    choices: Sequence[str]) -> np.ndarray:
    """1 where the right answer is the most likely of `choices` (all of one token length), else 0."""
    table = label_logprobs(model, tokenizer, prompts, choices)
    picked = [choices[j] for j in table.argmax(axis=1)]
    return np.array([p == a for p, a in zip(picked, answers, strict=True)], dtype=float)


@torch.no_grad()
def induction_scores(model: nn.Module, token_ids: Sequence[int], length: int = 24, rows: int = 16,
                     seed: int = 0) -> dict[str, float]:
    """Best head's induction score, and the loss on the first vs the second copy of random repeated tokens."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    pool = torch.tensor(list(token_ids))
    first = pool[torch.randint(len(pool), (rows, length), generator=gen)]
    ids = torch.cat([first, first], dim=1)
    maps = model.attention_maps(ids)  # each (rows, heads, T, T)
    query = torch.arange(length, 2 * length)
    target = query - length + 1  # the token after this token's earlier occurrence
    per_head = torch.stack([m[:, :, query, target].mean(dim=(0, 2)) for m in maps])  # (layers, heads)
    logits, _ = model(ids)
    losses = F.cross_entropy(logits[:, :-1].transpose(1, 2).float(), ids[:, 1:], reduction="none")
    return {"induction_score": float(per_head.max()), "first_copy_loss": float(losses[:, :length - 1].mean()),
            "second_copy_loss": float(losses[:, length:].mean())}


@torch.no_grad()
def in_context_score(model: nn.Module, windows: torch.Tensor, early: tuple[int, int], late: tuple[int, int]) -> float:
    """Mean loss at positions [late) minus at positions [early) over held-out windows (B, T+1)."""
    model.eval()
    logits, _ = model(windows[:, :-1])
    losses = F.cross_entropy(logits.transpose(1, 2).float(), windows[:, 1:], reduction="none")
    return float(losses[:, late[0]:late[1]].mean() - losses[:, early[0]:early[1]].mean())


def difference_interval(p1: float, n1: int, p2: float, n2: int, z: float = Z90) -> tuple[float, float]:
    """Normal-approximation interval of p1 − p2 for two independent proportions."""
    half = z * np.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    return float(p1 - p2 - half), float(p1 - p2 + half)
