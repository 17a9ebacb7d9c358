"""Supervised fine-tuning of a pre-trained run on instructions, fully or with LoRA, scored before and after.

`sft(SFTConfig(base=RUN, data="synthetic" | FILE, out=OUT, lora="r=8,alpha=16"))` loads the base run's
model and tokenizer, renders every conversation with the chat template, trains with the project's
`Trainer` and its `CausalLM` objective on assistant-only targets (`batches.py`), and measures exact
match on held-out prompts with greedy generation through `lm2llm.inference` before and after. The
output is an ordinary run (merged `model.safetensors`, tokenizer, `config.json`, `metrics.jsonl`), so
`lm2llm chat OUT` talks to it; a LoRA run also keeps its adapter in `OUT/adapter/` (PEFT format).

LoRA adapts linear layers only, but the chat template's special tokens never occur in pre-training text,
so their embedding rows are still untrained. A LoRA run therefore also trains those rows by default
(`lora_train_tokens="chat"`: four rows of the embedding), as PEFT's `trainable_token_indices` would.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lm2llm.data.lineage import record_lineage
from lm2llm.errors import UserError
from lm2llm.finetune.batches import ChatTokenizer, SFTBatches, encode_conversations
from lm2llm.finetune.data import load_instructions
from lm2llm.finetune.tasks import TaskRecord, make_suite, normalize_answer, qa_prompt, score_exact_match
from lm2llm.inference.engine import generate_ids
from lm2llm.inference.sampling import SamplingConfig
from lm2llm.models import family_of, load_model, save_model
from lm2llm.models.lora import (
    ADAPTER_WEIGHTS,
    LoraConfig,
    add_lora,
    merge_and_unload,
    save_adapter,
    trainable_share,
)
from lm2llm.runs import RunDir, check_out, claim_out
from lm2llm.tokenizer import load_tokenizer
from lm2llm.training import RunConfig, Trainer, TrainerConfig
from lm2llm.training.checkpoint import save_weights
from lm2llm.training.config import fine_tuning
from lm2llm.training.objectives import CausalLM
from lm2llm.training.run import RNN_DEFAULT_BLOCK

SYNTHETIC = "synthetic"
CHAT_TOKENS = "chat"
NO_TOKENS = "none"


def sft_trainer(max_steps: int = 300, lr: float = 1e-3, **knobs: Any) -> TrainerConfig:
    """SFT's trainer: the shared fine-tuning preset with 16 conversations a step, a 10-step warm-up and no
    weight decay; `knobs` set any other field."""
    return fine_tuning(max_steps, lr, **{"batch_size": 16, "warmup_steps": 10, "weight_decay": 0.0, **knobs})


@dataclass
class SFTConfig:
    base: str  # a run directory with model.safetensors, model_config.json and a BPE tokenizer
    out: str
    data: str = SYNTHETIC  # "synthetic" (the task suite) or an instruction file (JSONL or JSON array)
    lora: str | None = None  # None: full fine-tuning; else "r=8,alpha=16,dropout=0,targets=a+b"
    lora_train_tokens: str = CHAT_TOKENS  # with LoRA: whose embedding rows train too (see `lora_token_ids`)
    n_train: int = 300  # synthetic: training examples per task
    n_test: int = 20  # synthetic: held-out prompts per task; a file: held-out conversations in all
    tasks: list[str] | None = None  # synthetic: which tasks (default: all)
    skip_invalid: bool = False  # a file: skip malformed records instead of stopping
    trainer: TrainerConfig = field(default_factory=sft_trainer)
    max_new_tokens: int = 24
    score_before: bool = True  # False: skip scoring the base (a caller that already has it)
    seed: int = 0


@dataclass
class SFTResult:
    run: Path
    before: dict[str, Any]  # exact-match score of the base model on the held-out prompts ({} if not scored)
    after: dict[str, Any]
    trainable_params: int
    total_params: int
    train_seconds: float
    final_loss: float
    adapter_bytes: int | None  # size of the LoRA adapter file, when LoRA was used
    samples: list[dict[str, str]]  # a few held-out prompts with the answers before and after
    skipped_invalid: int = 0  # malformed records skipped (--skip-invalid); their reasons are in config.json


def _chat_tokenizer(tokenizer: Any, where: str) -> ChatTokenizer:
    if not callable(getattr(tokenizer, "render_chat", None)):
        raise UserError(f"the base run's {getattr(tokenizer, 'kind', '?')} tokenizer has no chat template", where=where,
                        hint="fine-tune a model trained with a BPE tokenizer (lm2llm tokenizer train)")
    return tokenizer


def chat_token_ids(tokenizer: Any) -> list[int]:
    """The chat template's role and end-of-turn tokens: what fine-tuning for chat adds to the text."""
    return list(tokenizer.chat_token_ids)


def lora_token_ids(spec: str, tokenizer: Any) -> list[int] | None:
    """Token ids whose embedding rows a LoRA run trains: `chat` (the chat tokens), `none`, or tokens
    (each text must encode to a single token, e.g. `<|end|>`) and ids, joined by commas."""
    if spec == NO_TOKENS:
        return None
    if spec == CHAT_TOKENS:
        return chat_token_ids(tokenizer)
    ids = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        encoded = [int(item)] if item.isdigit() else tokenizer.encode(item)
        if len(encoded) != 1 or encoded[0] >= tokenizer.vocab_size:
            raise UserError(f"{item!r} is not one token of this tokenizer", where="--lora-train-tokens",
                            hint=f"{CHAT_TOKENS}, {NO_TOKENS}, or special tokens and ids: <|end|>,<|user|>,17")
        ids.append(encoded[0])
    if not ids:
        raise UserError("no tokens listed", where="--lora-train-tokens", hint=f"{CHAT_TOKENS} or {NO_TOKENS}")
    return ids


def held_out_records(config: SFTConfig) -> tuple[list[list[dict]], list[TaskRecord], list[str]]:
    """(training conversations, held-out records, skipped records as 'file:line: why') from the synthetic
    suite or a file."""
    if config.data == SYNTHETIC:
        train, test = make_suite(config.n_train, config.n_test, config.seed, config.tasks)
        return [list(r.messages) for r in train], test, []
    loaded = load_instructions(config.data, skip_invalid=config.skip_invalid)
    conversations = loaded.conversations
    order = list(range(len(conversations)))
    random.Random(config.seed).shuffle(order)
    ending_in_reply = [i for i in order if conversations[i][-1]["role"] == "assistant"]
    n_test = min(config.n_test, len(conversations) - 1)
    held = set(ending_in_reply[:n_test])
    if not held:
        raise UserError("too few records to hold any out for scoring", where=config.data,
                        hint="give at least two conversations that end with an assistant reply")
    test = [TaskRecord("held-out", tuple(conversations[i]), conversations[i][-1]["content"], "") for i in sorted(held)]
    return [c for i, c in enumerate(conversations) if i not in held], test, loaded.skipped


@torch.no_grad()
def greedy_completions(model: nn.Module, prompts: Sequence[list[int]], end_ids: list[int], max_new_tokens: int = 24,
                       batch_size: int = 32) -> list[Any]:
    """Greedy completions of token-id prompts, stopping at `end_ids`; None for a prompt longer than the context."""
    model.eval()
    limit = getattr(model.config, "context_length", None)
    config = SamplingConfig(max_new_tokens=max_new_tokens, temperature=0.0)
    completions: list[Any] = [None] * len(prompts)
    fitting = [i for i, p in enumerate(prompts) if limit is None or len(p) < limit]  # too long: no answer
    for start in range(0, len(fitting), batch_size):
        rows = fitting[start:start + batch_size]
        for row, completion in zip(rows, generate_ids(model, [prompts[i] for i in rows], config, end_ids=end_ids),
                                   strict=True):
            completions[row] = completion
    return completions


def greedy_replies(model: nn.Module, tokenizer: ChatTokenizer, conversations: Sequence[Sequence[dict]],
                   max_new_tokens: int = 24, batch_size: int = 32) -> tuple[list[str], list[bool]]:
    """Greedy replies to each conversation (which ends with the user's turn), stopping at `<|end|>`, and
    whether each reply did end with `<|end|>` (not cut at `max_new_tokens`, nor left out as too long)."""
    prompts = [tokenizer.render_chat(list(c), add_generation_prompt=True)[0] for c in conversations]
    completions = greedy_completions(model, prompts, [tokenizer.end_of_turn_id], max_new_tokens, batch_size)
    return ([tokenizer.decode(c.token_ids) if c else "" for c in completions],
            [bool(c) and c.finish_reason == "stop" for c in completions])


def exact_match_eval(model: nn.Module, tokenizer: ChatTokenizer, records: Sequence[TaskRecord],
                     max_new_tokens: int = 24) -> tuple[dict[str, Any], list[str]]:
    """(score, predictions) of greedy answers to the held-out prompts.

    Besides exact match, the score says what share of answers ended the turn with `<|end|>` (the chat
    format is learned) and how many distinct answers there are (one answer to every prompt: the form of
    an answer is learned, not the task).
    """
    predictions, ended = greedy_replies(model, tokenizer, [r.prompt_messages for r in records], max_new_tokens)
    return {**score_exact_match(records, predictions), "ended_turn": sum(ended) / len(ended),
            "distinct_answers": len(set(map(normalize_answer, predictions)))}, predictions


def qa_page_eval(model: nn.Module, tokenizer: Any, records: Sequence[TaskRecord],
                 max_new_tokens: int = 24) -> tuple[dict[str, Any], list[str]]:
    """(score, predictions) of a base model asked in the Q&A-page form it was pre-trained on ("Q: …\nA:"),
    its answer read up to the end of that line: the fair "before" of fine-tuning for a base that never saw
    the chat template."""
    # as a page starts in the pre-training stream: after the previous document's end-of-text
    prompts = [[tokenizer.eos_id, *tokenizer.encode(qa_prompt(r.prompt))] for r in records]
    # a token of nothing but line breaks ends the answer's line (one like ".\n" is kept: its "." is part of the answer)
    line_ends = [i for i in range(tokenizer.vocab_size) if "\n" in (text := tokenizer.decode([i])) and not text.strip()]
    completions = greedy_completions(model, prompts, [tokenizer.eos_id, *line_ends], max_new_tokens)
    predictions = [tokenizer.decode(c.token_ids).split("\n")[0] if c else "" for c in completions]
    return {**score_exact_match(records, predictions),
            "distinct_answers": len(set(map(normalize_answer, predictions)))}, predictions


def sft(config: SFTConfig, *, force: bool = False) -> SFTResult:
    """Fine-tune `config.base` into `config.out`; see the module docstring. `force` replaces an earlier
    SFT run there (see `lm2llm.runs.check_out`)."""
    base, out = Path(config.base), Path(config.out)
    if config.n_test < 1:
        raise UserError("at least one held-out prompt is needed to score the model", where="n_test")
    inputs = [base, config.data]
    check_out(out, "sft", force=force, inputs=inputs)
    lora = LoraConfig.from_spec(config.lora) if config.lora is not None else None  # fail before any work
    model = load_model(base, device=config.trainer.device)
    tokenizer = _chat_tokenizer(load_tokenizer(base), str(base))
    if model.config.vocab_size < tokenizer.vocab_size:
        raise UserError(f"the model has {model.config.vocab_size} token ids but the tokenizer {tokenizer.vocab_size}",
                        where=str(base))
    if lora is not None:
        lora = dataclasses.replace(lora, trainable_tokens=lora_token_ids(config.lora_train_tokens, tokenizer))
    elif config.lora_train_tokens != CHAT_TOKENS:
        raise UserError("trainable token rows are a LoRA option", where="--lora-train-tokens",
                        hint="add --lora (full fine-tuning trains every embedding row already)")
    train_conversations, test, skipped = held_out_records(config)
    context = getattr(model.config, "context_length", None) or RNN_DEFAULT_BLOCK
    encoded = encode_conversations(tokenizer, train_conversations, context)
    eval_encoded = encode_conversations(tokenizer, [list(r.messages) for r in test], context)

    torch.manual_seed(config.seed)
    before, before_answers = (exact_match_eval(model, tokenizer, test, config.max_new_tokens)
                              if config.score_before else ({}, [""] * len(test)))
    if lora is not None:
        add_lora(model, lora)
    trainable, total = trainable_share(model)
    data = SFTBatches(encoded, batch_size=config.trainer.batch_size, pad_id=tokenizer.pad_id, seed=config.seed,
                      eval_examples=eval_encoded.examples)
    # the record states the base's real family, where its tokenizer came from and the real data
    recipe = RunConfig(model=family_of(model), data=config.data, tokenizer=str(base), out=str(out),
                       seed=config.seed, sample_tokens=0, trainer=config.trainer)
    run = RunDir(claim_out(out, "sft", force=force, inputs=inputs))
    run.write_config({"stage": "sft", "base": str(base), "train": recipe.to_dict(),
                      "sft": {k: v for k, v in dataclasses.asdict(config).items() if k != "trainer"},
                      "lora": dataclasses.asdict(lora) if lora else None,
                      "examples": {"train": len(encoded.examples), "truncated": encoded.truncated,
                                   "dropped": len(encoded.dropped), "held_out": len(test),
                                   "skipped_invalid": len(skipped)},
                      "skipped_invalid": skipped[:100],
                      "params": {"trainable": trainable, "total": total}})
    record_lineage(run.path, [config.data], parents=[base])
    if before:
        run.log_metrics({"event": "exact_match_before", **before})
    trainer = Trainer(model, CausalLM(), data, config.trainer, run=run, write_weights=save_weights)
    start = time.perf_counter()
    result = trainer.fit()
    train_seconds = time.perf_counter() - start

    after, after_answers = exact_match_eval(model, tokenizer, test, config.max_new_tokens)
    run.log_metrics({"event": "exact_match_after", **after})
    adapter_bytes = None
    if lora is not None:
        adapter_bytes = (save_adapter(model, out / "adapter") / ADAPTER_WEIGHTS).stat().st_size
        merge_and_unload(model)
    save_model(model, out)
    tokenizer.save(out)
    samples = [{"task": r.task, "prompt": r.prompt_messages[-1]["content"], "answer": r.answer,
                "before": b, "after": a}
               for r, b, a in list(zip(test, before_answers, after_answers, strict=True))[:: max(1, len(test) // 6)]]
    return SFTResult(out, before, after, trainable, total, train_seconds,
                     result.losses[-1][1] if result.losses else float("nan"), adapter_bytes, samples, len(skipped))
