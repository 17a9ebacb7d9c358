"""Chapter 4.4, fine-tuning: teach the pre-trained GPT of chapter 4.3 to answer in the chat format.

The base is the GPT that chapter 4.3 pre-trained on python-docs mixed with Q&A pages about the synthetic
tasks; it has never seen the chat template nor the `<|end|>` token. `lm2llm.finetune.sft` fine-tunes it
on the task suite's instructions (loss on the assistant's tokens only) with the same data and the same
steps: once with every weight, and with LoRA adapters. A last run fine-tunes a freshly initialised GPT
of the same shape (the same steps, the same data) to measure what pre-training contributed. Every model
answers the same held-out prompts greedily; exact match scores them, with its 95 % Wilson interval and the
chance level of a guess among the answers a prompt offers (one of its three cities, one order of its words).

A fair "before": the base read the tasks as "Q: … / A: …" pages, never in the chat template, so scoring it in
the template measures the template, not what it knows. It is scored in the page form it saw (`qa_page_eval`),
and that is the score fine-tuning must beat; its score in the chat template is shown next to it. A claim
whose scores sit at the floor (intervals reaching down to chance) is inconclusive, not ✓ or ✗.

Full fine-tuning, and the control from an untrained GPT, use the optimizer chapter 4.3 pre-trained the base with:
Muon on the hidden matrices in full mode, AdamW in quick mode. A model pre-trained with Muon fine-tunes best with
Muon (Liu et al. 2025, "Muon is Scalable for LLM Training"), and here the difference decides whether the chapter
shows anything at the half-budget re-check: after 200 steps AdamW (lr 5e-4 to 3e-3) left the held-out answer
loss at 0.98–1.08 and exact match at 7.5–11.5 %, the floor, where Muon reached 0.57 and 38.5 % (at 400 steps:
AdamW 0.54 and 33.5 %, Muon 0.24 and 63 %). LoRA keeps AdamW (Muon orthogonalises whole weight matrices, and the
adapters' low-rank factors are left to AdamW), so "LoRA comes close" compares each method as it is trained.

The chat tokens (`<|user|>`, `<|assistant|>`, `<|end|>`) never occur in pre-training text, so their
embedding rows were never trained. Full fine-tuning trains them; adapters on the linear layers cannot.
So LoRA runs twice: as `lm2llm sft --lora` does by default, with those few rows trainable too (PEFT's
`trainable_token_indices`), and with adapters alone; the chapter counts the chat tokens in the
pre-training text next to both results. Next to exact match it counts the answers that end the turn
with `<|end|>` and the distinct answers: they tell learning the chat format apart from learning the task.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from lm2llm.data.shards import TokenShards
from lm2llm.errors import UserError
from lm2llm.finetune.sft import (
    NO_TOKENS,
    SFTConfig,
    SFTResult,
    chat_token_ids,
    qa_page_eval,
    sft,
    sft_trainer,
)
from lm2llm.finetune.tasks import guess_chance, make_suite
from lm2llm.models import load_model, save_model
from lm2llm.models.factory import model_from_config
from lm2llm.runs import RunDir
from lm2llm.stats import wilson_interval
from lm2llm.tokenizer import load_tokenizer
from lm2llm.tour.framework import (
    Chapter,
    ChapterContext,
    ChapterResult,
    Claim,
    Sample,
    T,
    Table,
    compare_intervals,
    demonstration,
)
from lm2llm.tour.plots import plt

LORA_SPEC = "r=8,alpha=16"
CLOSE_ENOUGH = 0.10  # LoRA counts as matching full fine-tuning within 10 accuracy points
SETTINGS = {  # quick / full: examples and held-out prompts per task, optimiser steps per run
    True: {"tasks": ["facts"], "n_train": 200, "n_test": 20, "steps": 80},
    # full: with Muon, 150 steps (the half-budget re-check) already lift full fine-tuning off the floor (25 %
    # exact match, from an untrained GPT 7.5 %) and 200 reach 38.5 %; 300 keep the chapter and its re-check
    # inside 90 s
    False: {"tasks": ["facts", "reverse_words", "korean_to_digits", "unit_conversion"], "n_train": 400,
            "n_test": 50, "steps": 300},
}


def pretrained_base(ctx: ChapterContext) -> Path:
    """Chapter 4.3's GPT run directory, checked; its held-out reserve must cover this chapter's test prompts."""
    pretraining = ctx.result_of("4.3")
    saved = pretraining.metrics.get("runs", {}).get("GPT") if pretraining else None  # older results saved none
    base = ctx.chapter_dir("4.3") / saved if saved else None
    if base is None or not (base / "model.safetensors").is_file():
        raise UserError("chapter 4.3's pre-trained GPT is missing", where=str(base or ctx.chapter_dir("4.3")),
                        hint="rerun it: lm2llm tour --force --only 4.3")
    if SETTINGS[ctx.quick]["n_test"] > pretraining.metrics["corpus"]["qa_reserve"]:
        raise UserError("held-out prompts could overlap the pre-training text", where="4.4 n_test")
    return base


def base_optimizer(ctx: ChapterContext) -> str:
    """The optimizer chapter 4.3 pre-trained its GPT with (older results recorded none: AdamW)."""
    return ctx.result_of("4.3").metrics.get("stats", {}).get("GPT", {}).get("optimizer", "adamw")


def chat_tokens_in_pretraining(ctx: ChapterContext, base: Path) -> int:
    """How often the chat template's special tokens occur in chapter 4.3's pre-training shards."""
    tokenizer = load_tokenizer(base)
    shards = TokenShards(ctx.chapter_dir("4.3") / ctx.result_of("4.3").metrics["data"])
    return int(sum(np.isin(tokens, chat_token_ids(tokenizer)).sum() for tokens in shards.arrays.values()))


def untrained_copy(base: Path, out: Path) -> Path:
    """A freshly initialised model of the base's shape, saved with the base's tokenizer (the control run)."""
    torch.manual_seed(0)
    save_model(model_from_config(load_model(base).config), out)
    load_tokenizer(base).save(out)
    return out


def interval(score: dict) -> tuple[float, float]:
    """The 95 % Wilson interval of an exact-match score."""
    return wilson_interval(score["accuracy"] * score["n"], score["n"])


def span(score: dict) -> str:
    low, high = interval(score)
    return f"[{low:.0%}, {high:.0%}]"


def fmt(score: dict) -> str:
    return f"{score['accuracy']:.1%} {span(score)}"


def run(ctx: ChapterContext) -> ChapterResult:
    s = ctx.steps_in(SETTINGS[ctx.quick])
    base = pretrained_base(ctx)
    _, held_out = make_suite(0, s["n_test"], seed=0, tasks=s["tasks"])  # the prompts `sft` holds out
    base_qa, base_qa_answers = qa_page_eval(load_model(base), load_tokenizer(base), held_out, 12)
    chance = guess_chance(s["tasks"])
    runs = ctx.out_dir / "runs"
    shutil.rmtree(runs, ignore_errors=True)  # a forced rerun starts clean
    common = {"tasks": s["tasks"], "n_train": s["n_train"], "n_test": s["n_test"], "max_new_tokens": 12, "seed": 0}
    results: dict[str, SFTResult] = {}
    once = {"score_before": False}  # the base is scored by the first run; the others start from the same weights
    # full fine-tuning (and its control from scratch) uses the optimizer 4.3 pre-trained the base with: Muon in full
    # mode (see the module docstring); LoRA's adapters are not whole weight matrices, so LoRA keeps AdamW
    optimizer = base_optimizer(ctx)
    plan = [("full", base, 3e-3, {}, optimizer),
            ("scratch", untrained_copy(base, runs / "untrained"), 3e-3, once, optimizer),
            ("lora", base, 1e-2, {"lora": LORA_SPEC, **once}, "adamw"),
            ("lora_no_tokens", base, 1e-2, {"lora": LORA_SPEC, "lora_train_tokens": NO_TOKENS, **once}, "adamw")]
    # the four runs are independent: in full mode they train two at a time, one per core (`ctx.in_parallel`), the
    # two Muon runs (a step costs about 1.35 of AdamW's) first
    # full mode trains in bf16 autocast where the CPU computes it natively (fp32 master weights; at the 4.3 GPT's
    # width 128 a step costs about 0.75 of fp32's); quick mode's one task stays in fp32
    dtype = "float32" if ctx.quick else "auto"
    optimizers = {name: optim for name, *_, optim in plan}
    configs = [SFTConfig(base=str(start), out=str(runs / name),
                         trainer=sft_trainer(s["steps"], lr, dtype=dtype, optimizer=optim),
                         **common, **options) for name, start, lr, options, optim in plan]
    results.update(zip((name for name, *_ in plan), ctx.in_parallel(sft, [(config,) for config in configs]), strict=True))
    ctx.progress(1, 1)
    full, lora, scratch = results["full"], results["lora"], results["scratch"]
    lora_alone = results["lora_no_tokens"]
    held_out_curve = {name: [m["val_loss"] for m in RunDir(runs / name).read_metrics() if "val_loss" in m]
                      for name in results}  # the answers' loss on held-out conversations, every quarter of the steps
    held_out_loss = {name: curve[-1] for name, curve in held_out_curve.items()}
    before, after = full.before["accuracy"], full.after["accuracy"]

    task_names = list(full.after["per_task"])
    fig, ax = plt.subplots(figsize=(7, 3))
    bars = (("base, Q&A page form", base_qa), ("base, chat template", full.before), ("full SFT", full.after), ("LoRA + chat token rows", lora.after),
            ("LoRA alone", lora_alone.after), ("SFT from scratch", scratch.after))
    width = 0.8 / len(bars)
    for offset, (label, score) in enumerate(bars):
        xs = [i + (offset - (len(bars) - 1) / 2) * width for i in range(len(task_names))]
        ax.bar(xs, [score["per_task"][t] for t in task_names], width, label=label)
    ax.set_xticks(range(len(task_names)), task_names, rotation=20, fontsize=8)
    ax.axhline(chance, color="grey", linestyle="--", linewidth=0.8, label="chance (guess among offered answers)")
    ax.set_ylabel("exact match")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    figure = ctx.save_figure(fig, "exact_match", T("Exact match on held-out prompts, per task",
                                                   "과제별 학습에 쓰지 않은 프롬프트 정확 일치율"))

    model_bytes = (runs / "full" / "model.safetensors").stat().st_size
    unseen = chat_tokens_in_pretraining(ctx, base)
    share = lora.trainable_params / lora.total_params
    token_params = lora.trainable_params - lora_alone.trainable_params  # the chat tokens' embedding rows
    n = full.after["n"]
    lora_curve = held_out_curve["lora"]
    lora_ends, alone_ends, full_ends = (r.after["ended_turn"] for r in (lora, lora_alone, full))
    lora_kinds, alone_kinds, full_kinds = (r.after["distinct_answers"] for r in (lora, lora_alone, full))
    table = Table(
        T("Fine-tuning runs (same data, same steps)", "미세조정 실행 (같은 데이터, 같은 스텝)"),
        ["run", "trainable params", "trainable share", "optimizer", "train s", "held-out loss", "exact match",
         "95 % interval", "ends turn", "distinct answers", "saved (KB)"],
        [["base, Q&A page form (no training)", 0, "—", "—", "—", "—", round(base_qa["accuracy"], 3), span(base_qa), "—",
          f"{base_qa['distinct_answers']} / {base_qa['n']}", "—"],
         ["base, chat template (no training)", 0, "—", "—", "—", "—", round(full.before["accuracy"], 3), span(full.before),
          round(full.before["ended_turn"], 3), f"{full.before['distinct_answers']} / {full.before['n']}", "—"]]
        + [[name, r.trainable_params, round(r.trainable_params / r.total_params, 4), optimizers[key],
            round(r.train_seconds, 1),
          round(held_out_loss[key], 3), round(r.after["accuracy"], 3), span(r.after),
          round(r.after["ended_turn"], 3),
          f"{r.after['distinct_answers']} / {r.after['n']}",
          round((r.adapter_bytes if r.adapter_bytes is not None else model_bytes) / 1024, 1)]
         for key, name, r in (("full", "full (pre-trained base)", full),
                              ("lora", f"LoRA {LORA_SPEC} + chat token rows (pre-trained base)", lora),
                              ("lora_no_tokens", f"LoRA {LORA_SPEC} alone (pre-trained base)", lora_alone),
                              ("scratch", "full (untrained base)", scratch))],
    )
    qa_answers = dict(zip((r.prompt for r in held_out), base_qa_answers, strict=True))
    transcript = "\n\n".join(f"user: {x['prompt']}\nbase (Q&A page form): {qa_answers[x['prompt']]!r}\n"
                             f"base (chat template): {x['before']!r}\nSFT: {x['after']!r}\n"
                             f"LoRA SFT: {y['after']!r}\n(expected {x['answer']!r})"
                             for x, y in zip(full.samples[:4], lora.samples, strict=False))  # the same prompts
    floor = {name: interval(score)[0] <= chance
             for name, score in (("base", base_qa), ("full", full.after), ("lora", lora.after),
                                 ("scratch", scratch.after))}
    floor_note = T(f" Chance (a guess among the answers a prompt offers) is {chance:.1%}; brackets are 95 % "
                   f"intervals; a score whose interval reaches chance is at the floor.",
                   f" 우연 수준(프롬프트에 나온 답 중 하나를 찍기)은 {chance:.1%}; 괄호는 95 % 구간이며, 구간이 "
                   f"우연 수준에 닿는 점수는 바닥에 있다.")
    sft_verdict = (None if floor["full"] and floor["base"]
                   else compare_intervals(interval(full.after), interval(base_qa)))
    loss_better = held_out_loss["full"] < held_out_loss["scratch"]
    pretraining_verdict = (None if floor["full"] and floor["scratch"]
                           else loss_better and compare_intervals(interval(full.after), interval(scratch.after))
                           is not False)
    lora_gap = after - lora.after["accuracy"]
    if floor["full"]:
        lora_verdict = None  # nothing above chance to come close to
    elif compare_intervals(interval(full.after), interval(lora.after)) and lora_gap > CLOSE_ENOUGH:
        lora_verdict = False
    else:
        lora_verdict = None if floor["lora"] else True
    claims = [
        Claim(T("Supervised fine-tuning on instructions makes a pre-trained model answer prompts it never saw "
                "better than it did before, asked in the form it knows.",
                "지시 데이터로 지도 미세조정하면 사전학습한 모델이 본 적 없는 프롬프트에, 익숙한 형식으로 물었던 "
                "학습 전보다 더 잘 답한다."),
              T(f"exact match on {n} held-out prompts: base asked as a Q&A page (the form of its pre-training "
                f"text) {fmt(base_qa)}, base in the chat template it never saw {fmt(full.before)}, after SFT "
                f"{fmt(full.after)}.{floor_note.en}",
                f"학습에 쓰지 않은 프롬프트 {n}개 정확 일치율: 사전학습 텍스트의 형식(Q&A 페이지)으로 물은 기반 모델 "
                f"{fmt(base_qa)}, 본 적 없는 채팅 템플릿으로 물은 기반 모델 {fmt(full.before)}, SFT 후 "
                f"{fmt(full.after)}.{floor_note.ko}"),
              sft_verdict, chance=chance, interval=interval(full.after)),
        Claim(T("Fine-tuning builds on pre-training: the same fine-tuning from an untrained model does worse "
                "(higher loss on held-out answers, no better exact match).",
                "미세조정은 사전학습 위에 쌓인다: 학습하지 않은 모델에서 같은 미세조정을 하면 결과가 더 나쁘다 "
                "(학습에 쓰지 않은 답변의 손실이 더 높고, 정확 일치도 낫지 않다)."),
              T(f"after {s['steps']} steps, held-out answer loss: pre-trained base {held_out_loss['full']:.3f}, "
                f"untrained base {held_out_loss['scratch']:.3f} nats/token; exact match {fmt(full.after)} vs "
                f"{fmt(scratch.after)}"
                + (" (both at the floor: inconclusive)" if floor["full"] and floor["scratch"] else "")
                + floor_note.en,
                f"{s['steps']}스텝 후 학습에 쓰지 않은 답변의 손실: 사전학습 모델 {held_out_loss['full']:.3f}, 학습 안 한 "
                f"모델 {held_out_loss['scratch']:.3f} nats/토큰; 정확 일치율 {fmt(full.after)} 대 {fmt(scratch.after)}"
                + (" (둘 다 바닥: 판정 보류)" if floor["full"] and floor["scratch"] else "") + floor_note.ko),
              pretraining_verdict, chance=chance, interval=interval(full.after)),
        demonstration(T("LoRA trains only a small share of the parameters and saves a small adapter.",
                        "LoRA는 매개변수의 작은 일부만 학습하고 작은 어댑터만 저장한다."),
                      T(f"{share:.1%} of parameters trainable (rank {LORA_SPEC} sets it); adapter "
                        f"{lora.adapter_bytes / 1024:.0f} KB vs model {model_bytes / 1024:.0f} KB",
                        f"학습 매개변수 {share:.1%} (랭크 {LORA_SPEC}가 정함); 어댑터 {lora.adapter_bytes / 1024:.0f} KB "
                        f"대 모델 {model_bytes / 1024:.0f} KB"),
                      share < 0.25 and lora.adapter_bytes < model_bytes / 2),
        Claim(T("With the same steps, LoRA comes close to full fine-tuning.",
                "같은 스텝이면 LoRA가 전체 미세조정에 가까운 성능을 낸다."),
              T(f"exact match: LoRA {fmt(lora.after)} vs full {fmt(full.after)} (close = within "
                f"{CLOSE_ENOUGH:.0%}, or intervals overlapping, above the floor; inconclusive while full fine-tuning "
                f"itself is at the floor); held-out answer loss "
                f"{held_out_loss['lora']:.3f} vs {held_out_loss['full']:.3f}. The chat tokens occur {unseen} times "
                f"in the pre-training text, so LoRA also trains their embedding rows ({token_params} parameters); "
                f"adapters alone reach {fmt(lora_alone.after)} (held-out answer loss "
                f"{held_out_loss['lora_no_tokens']:.3f}); LoRA's held-out answer loss over the last quarter of the steps: "
                f"{lora_curve[-2]:.3f} → {lora_curve[-1]:.3f}. Answers that end the turn: LoRA {lora_ends:.0%}, alone "
                f"{alone_ends:.0%}, full {full_ends:.0%}; distinct answers to the {n} prompts: LoRA {lora_kinds}, "
                f"alone {alone_kinds}, full {full_kinds} (few distinct answers to many prompts: the form of an answer is "
                f"learned, not yet finding it in the prompt).{floor_note.en}",
                f"정확 일치율: LoRA {fmt(lora.after)} 대 전체 {fmt(full.after)} (가깝다 = {CLOSE_ENOUGH:.0%}p "
                f"이내 또는 구간이 겹치고 바닥보다 위; 전체 미세조정 자체가 바닥이면 판정 보류); 학습에 쓰지 않은 답변의 손실 "
                f"{held_out_loss['lora']:.3f} 대 {held_out_loss['full']:.3f}. 채팅 토큰은 사전학습 텍스트에 {unseen}번 "
                f"나오므로 LoRA는 그 임베딩 행({token_params}개 매개변수)도 학습한다; 어댑터만으로는 "
                f"{fmt(lora_alone.after)} (학습에 쓰지 않은 답변의 손실 {held_out_loss['lora_no_tokens']:.3f}); 마지막 "
                f"1/4 스텝 동안 LoRA의 학습에 쓰지 않은 답변의 손실: "
                f"{lora_curve[-2]:.3f} → {lora_curve[-1]:.3f}. 차례를 끝내는 답: LoRA {lora_ends:.0%}, "
                f"어댑터만 {alone_ends:.0%}, 전체 {full_ends:.0%}; 프롬프트 {n}개에 대한 서로 다른 답의 수: LoRA "
                f"{lora_kinds}, 어댑터만 {alone_kinds}, 전체 {full_kinds} (많은 프롬프트에 답이 몇 가지뿐 = 답의 형식은 "
                f"배웠지만 프롬프트에서 답을 찾는 법은 아직 못 배움).{floor_note.ko}"),
              lora_verdict, chance=chance, interval=interval(lora.after)),
    ]
    summary = T(
        f"4.3's GPT fine-tuned for {s['steps']} steps on {', '.join(task_names)}: exact match {base_qa['accuracy']:.0%} "
        f"for the base asked in its Q&A page form ({before:.0%} in the chat template it never saw) → {after:.0%} "
        f"(full, {optimizer} as in pre-training), {lora.after['accuracy']:.0%} (LoRA with the chat tokens' rows, {share:.0%} of weights trained; "
        f"{lora_alone.after['accuracy']:.0%} without them); the same fine-tuning of an untrained GPT reaches "
        f"{scratch.after['accuracy']:.0%}; chance {chance:.0%}."
        + (f" Quick mode is small (one task, {s['steps']} steps, {n} prompts): its verdicts are mostly at the floor."
           if ctx.quick else ""),
        f"4.3의 GPT를 과제 {', '.join(task_names)}로 {s['steps']}스텝 미세조정: 정확 일치율은 Q&A 페이지 형식으로 물은 "
        f"기반 모델 {base_qa['accuracy']:.0%}(본 적 없는 채팅 템플릿으로는 {before:.0%}) → {after:.0%}(전체, 사전학습과 같은 "
        f"{optimizer}), "
        f"{lora.after['accuracy']:.0%}(채팅 토큰 행을 함께 학습한 LoRA, 가중치 {share:.0%}만 학습; 그 행 없이는 "
        f"{lora_alone.after['accuracy']:.0%}); 학습하지 않은 GPT에 같은 미세조정을 하면 {scratch.after['accuracy']:.0%}; "
        f"우연 수준 {chance:.0%}."
        + (f" 빠른 모드는 작다(과제 하나, {s['steps']}스텝, 프롬프트 {n}개): 판정 대부분이 바닥에 있다." if ctx.quick else ""),
    )
    return ChapterResult(
        summary, claims=claims, tables=[table], figures=[figure],
        samples=[Sample(T("Chat before and after fine-tuning (held-out prompts, greedy)",
                          "미세조정 전후 대화 (학습에 쓰지 않은 프롬프트, greedy)"), transcript)],
        metrics={"base": str(base.relative_to(ctx.out_dir.parent)), "before": full.before, "before_qa_page": base_qa,
                 "chance": chance,
                 "runs": {name: {"dir": f"runs/{name}", "after": r.after, "seconds": r.train_seconds,
                                 "final_loss": r.final_loss, "held_out_loss": held_out_loss[name], "trainable": r.trainable_params, "total": r.total_params,
                                 "adapter_bytes": r.adapter_bytes} for name, r in results.items()},
                 "model_bytes": model_bytes, "chat_tokens_in_pretraining": unseen, "chat_token_params": token_params,
                 "settings": s, "optimizers": optimizers,
                 "tasks": task_names},
    )


CHAPTER = Chapter("4.4", T("Fine-tuning", "미세조정"), run, needs=("4.3",), rechecks=True)
