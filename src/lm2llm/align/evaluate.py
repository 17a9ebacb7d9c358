"""Did alignment help? A policy against the SFT model on held-out prompts, judged two ways.

- by the **reward model**: mean held-out reward and the win rate against the SFT model's answer to the
  same prompt (a tie counts one half);
- by **exact match** with the task suite's answer: accuracy and the win rate (the policy right where SFT
  was wrong is a win, both right or both wrong a tie);
- and how far it moved: the KL(π ‖ π_SFT) per response, estimated on the policy's own samples at
  temperature 1 with k1 = Σ_t (log π − log π_SFT), which is unbiased because the tokens come from π.

Two checks of the reward model itself: `pair_hits` (which held-out pairs it ranks right, to set against a
length-only judge and per kind of rejected answer) and `on_policy_agreement` (whether it prefers the right
answer among a policy's own samples: PPO can only improve answers that far).

Answers for scoring are greedy (what `lm2llm chat --temperature 0` shows); only the KL uses samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from lm2llm.align.losses import token_logprobs
from lm2llm.align.objectives import pair_scores
from lm2llm.align.pairs import collate, encode_pair
from lm2llm.align.ppo import pad_prompts_and_responses, response_logits
from lm2llm.align.preference import PreferencePair
from lm2llm.align.reward_model import RewardModel
from lm2llm.finetune.tasks import TaskRecord, exact_match
from lm2llm.inference.engine import generate_ids
from lm2llm.inference.sampling import SamplingConfig


@dataclass
class Answers:
    texts: list[str]
    ids: torch.Tensor             # (B, P + R): left-padded prompt, right-padded answer (end-of-turn kept)
    attention: torch.Tensor       # (B, P + R)
    response_mask: torch.Tensor   # (B, R)
    ended: list[bool]             # the answer emitted end-of-turn

    @property
    def prompt_len(self) -> int:
        return self.ids.shape[1] - self.response_mask.shape[1]


def prompt_ids(tokenizer, messages: Sequence[dict]) -> list[int]:
    """A prompt rendered for generation: the conversation followed by the assistant role token."""
    return tokenizer.render_chat(list(messages), add_generation_prompt=True)[0]


@torch.no_grad()
def generate_answers(model: nn.Module, tokenizer, prompts: Sequence[Sequence[int]], sampling: SamplingConfig
                     ) -> Answers:
    """One answer per prompt through the inference engine, stopping at (and keeping) end-of-turn."""
    model.eval()
    completions = generate_ids(model, prompts, sampling, end_ids=[tokenizer.end_of_turn_id])
    ended = [c.finish_reason == "stop" for c in completions]
    responses = [c.token_ids + ([tokenizer.end_of_turn_id] if stop else []) for c, stop in zip(completions, ended,
                                                                                               strict=True)]
    ids, attention, response_mask = pad_prompts_and_responses(prompts, responses, tokenizer.pad_id)
    return Answers([tokenizer.decode(c.token_ids) for c in completions], ids, attention, response_mask, ended)


@torch.no_grad()
def kl_to_reference(policy: nn.Module, reference: nn.Module, answers: Answers) -> float:
    """Mean over responses of Σ_t log π(y_t) − log π_ref(y_t), for answers sampled from `policy` at T = 1."""
    targets = answers.ids[:, answers.prompt_len:]
    per_token = [token_logprobs(response_logits(m.eval(), answers.ids, answers.attention, answers.prompt_len, 1.0),
                                targets) for m in (policy, reference)]
    return ((per_token[0] - per_token[1]) * answers.response_mask).sum(1).mean().item()


def _win_rate(wins: torch.Tensor, ties: torch.Tensor) -> float:
    return (wins.float() + 0.5 * ties.float()).mean().item()


@torch.no_grad()
def compare_with_sft(policy: nn.Module, sft_model: nn.Module, reward_model: RewardModel, tokenizer,
                     records: Sequence[TaskRecord], *, max_new_tokens: int = 24, seed: int = 0
                     ) -> tuple[dict[str, float], list[dict[str, str]]]:
    """(figures, transcripts): reward, exact match, win rates against SFT and KL to SFT on `records`."""
    reward_model.eval()
    prompts = [prompt_ids(tokenizer, r.prompt_messages) for r in records]
    greedy = SamplingConfig(max_new_tokens=max_new_tokens, temperature=0.0)
    ours, theirs = (generate_answers(m, tokenizer, prompts, greedy) for m in (policy, sft_model))
    reward_ours, reward_theirs = (reward_model.score(a.ids, a.attention) for a in (ours, theirs))
    right_ours, right_theirs = (torch.tensor([exact_match(text, r.answer) for text, r in zip(a.texts, records,
                                                                                              strict=True)])
                                for a in (ours, theirs))
    samples = generate_answers(policy, tokenizer, prompts, SamplingConfig(max_new_tokens=max_new_tokens, seed=seed))
    figures = {
        "reward": reward_ours.mean().item(),
        "reward_sft": reward_theirs.mean().item(),
        "win_rate_reward": _win_rate(reward_ours > reward_theirs, reward_ours == reward_theirs),
        "exact_match": right_ours.float().mean().item(),
        "exact_match_sft": right_theirs.float().mean().item(),
        "win_rate_exact": _win_rate(right_ours & ~right_theirs, right_ours == right_theirs),
        "exact_wins": int((right_ours & ~right_theirs).sum()), "exact_losses": int((~right_ours & right_theirs).sum()),
        "prompts": len(records),
        "kl_to_sft": kl_to_reference(policy, sft_model, samples),
        "answer_tokens": ours.response_mask.sum(1).float().mean().item(),
        "ended_rate": sum(ours.ended) / len(records),
    }
    transcripts = [{"prompt": r.prompt, "answer": r.answer, "sft": b, "aligned": a}
                   for r, a, b in zip(records, ours.texts, theirs.texts, strict=True)]
    return figures, transcripts


@torch.no_grad()
def pair_hits(reward_model: RewardModel, tokenizer, pairs: Sequence[PreferencePair], batch_size: int = 32
              ) -> list[tuple[PreferencePair, bool]]:
    """(pair, chosen scored strictly above rejected) for each pair that fits the context (the others are left
    out, as in training)."""
    reward_model.eval()
    limit = reward_model.config.context_length
    encoded = [(pair, e) for pair in pairs
               if max(len((e := encode_pair(tokenizer, pair)).chosen_ids), len(e.rejected_ids)) <= limit]
    hits = []
    for start in range(0, len(encoded), batch_size):
        rows = encoded[start:start + batch_size]
        chosen, rejected = pair_scores(reward_model, collate([e for _, e in rows], tokenizer.pad_id))
        hits += [(pair, bool(c > r)) for (pair, _), c, r in zip(rows, chosen, rejected, strict=True)]
    return hits


@torch.no_grad()
def on_policy_agreement(policy: nn.Module, reward_model: RewardModel, tokenizer, records: Sequence[TaskRecord], *,
                        samples: int = 4, max_new_tokens: int = 24, seed: int = 0) -> dict[str, float]:
    """Does the reward model prefer a right answer to a wrong one among `policy`'s own samples (T = 1)?

    For each prompt with both right and wrong samples (exact match), the share of (right, wrong) sample
    pairs the reward model orders right-first, ties counting one half; `agreement` averages it over those
    prompts, so each prompt weighs the same (0.5: the reward model cannot tell them apart).
    """
    reward_model.eval()
    prompts = [prompt_ids(tokenizer, r.prompt_messages) for r in records for _ in range(samples)]
    answers = generate_answers(policy, tokenizer, prompts, SamplingConfig(max_new_tokens=max_new_tokens, seed=seed))
    scores = reward_model.score(answers.ids, answers.attention).view(len(records), samples)
    right = torch.tensor([exact_match(text, records[i // samples].answer) for i, text in enumerate(answers.texts)]
                         ).view(len(records), samples)
    shares = []
    for row_scores, row_right in zip(scores, right, strict=True):
        good, bad = row_scores[row_right], row_scores[~row_right]
        if len(good) and len(bad):
            diff = good[:, None] - bad[None, :]
            shares.append(((diff > 0).float() + 0.5 * (diff == 0).float()).mean().item())
    return {"agreement": sum(shares) / len(shares) if shares else float("nan"), "prompts": len(shares),
            "samples_right": right.float().mean().item(), "samples": right.numel()}
