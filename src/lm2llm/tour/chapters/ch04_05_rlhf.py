"""Chapter 4.5, RLHF: preference data, a reward model, PPO and DPO, starting from chapter 4.4's SFT model.

The pipeline the guide describes, at laptop scale: the GPT pre-trained in 4.3 and fine-tuned in 4.4 (all
weights) is the starting policy. Preference pairs over the same tasks (the correct, concise answer
against a wrong, rambling or run-on one) train a reward model that starts from the SFT network; then the
SFT model is aligned two ways — PPO against the reward model with a KL penalty to the SFT model, and DPO
directly on the pairs. Both aligned models answer 4.4's held-out prompts; we measure the reward, the
exact-match accuracy, the win rate against the SFT model's answer (judged by the reward model and by
exact match), and how far each moved from SFT (KL per answer). Where an effect does not appear at this
scale, the claim says so with the numbers.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from lm2llm.align.evaluate import compare_with_sft
from lm2llm.align.ppo import PPOConfig
from lm2llm.align.reward_model import load_reward_model
from lm2llm.align.stages import (
    DPOStageConfig,
    PPOStageConfig,
    PreferenceData,
    RewardStageConfig,
    pair_trainer,
    run_ppo,
    train_dpo,
    train_reward,
)
from lm2llm.errors import UserError
from lm2llm.finetune.tasks import make_suite
from lm2llm.models import load_model
from lm2llm.tokenizer import load_tokenizer
from lm2llm.tour.framework import Chapter, ChapterContext, ChapterResult, Claim, Sample, T, Table
from lm2llm.tour.plots import plt

KL_BOUND = 10.0  # nats per answer: "bounded" means the aligned model still mostly speaks like the SFT model
SETTINGS = {  # quick / full: preference pairs per task, optimiser steps per stage
    True: {"pairs": 48, "rm_steps": 24, "dpo_steps": 24, "ppo_steps": 5},
    False: {"pairs": 120, "rm_steps": 150, "dpo_steps": 150, "ppo_steps": 20},
}


def sft_run(ctx: ChapterContext) -> tuple[Path, dict]:
    """Chapter 4.4's fully fine-tuned run and that chapter's metrics (tasks, held-out size, exact match)."""
    finetuning = ctx.result_of("4.4")
    saved = finetuning.metrics.get("runs", {}).get("full", {}).get("dir") if finetuning else None
    run = ctx.chapter_dir("4.4") / saved if saved else None
    if run is None or not (run / "model.safetensors").is_file():
        raise UserError("chapter 4.4's fine-tuned model is missing", where=str(run or ctx.chapter_dir("4.4")),
                        hint="rerun it: lm2llm tour --force --only 4.4")
    return run, finetuning.metrics


def run(ctx: ChapterContext) -> ChapterResult:
    s = SETTINGS[ctx.quick]
    sft_dir, finetuning = sft_run(ctx)
    tasks, n_test = finetuning["tasks"], finetuning["settings"]["n_test"]
    root = ctx.out_dir / "runs"
    shutil.rmtree(root, ignore_errors=True)  # a forced rerun starts clean
    total, done = 5, 0

    def step() -> None:
        nonlocal done
        done += 1
        ctx.progress(done, total)

    _, test = make_suite(0, n_test, seed=0, tasks=tasks)  # 4.4's held-out prompts, never trained on anywhere
    tokenizer = load_tokenizer(sft_dir)
    sft = str(sft_dir)

    # 1. Reward model on preference pairs whose held-out prompts are never trained on.
    pairs = PreferenceData(synthetic_train=s["pairs"], synthetic_held_out=n_test, tasks=tasks, seed=0)
    rm, _ = train_reward(RewardStageConfig(sft, str(root / "rm"), pairs, pair_trainer(s["rm_steps"], 1e-3),
                                           reference_samples=32))
    step()

    # 2. PPO against the reward model, KL-penalised towards the SFT model; 3. DPO on the same pairs.
    ppo_history, _ = run_ppo(PPOStageConfig(sft, str(root / "rm"), str(root / "ppo"), pairs,
                                            max_steps=s["ppo_steps"], ppo=PPOConfig(batch_size=16, minibatch_size=8,
                                                                                lr=1e-4, max_new_tokens=12)))
    step()
    dpo, dpo_run = train_dpo(DPOStageConfig(sft, str(root / "dpo"), pairs, pair_trainer(s["dpo_steps"], 1e-4),
                                            beta=0.1))
    step()

    # 4. Both against SFT on the held-out prompts.
    sft_model, reward_model = load_model(sft_dir), load_reward_model(root / "rm")
    results, transcripts = {}, {}
    for name in ("ppo", "dpo"):
        results[name], transcripts[name] = compare_with_sft(load_model(root / name), sft_model, reward_model,
                                                            tokenizer, test, max_new_tokens=12)
        step()
    ppo, dpo_eval = results["ppo"], results["dpo"]

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    steps_axis = [h["step"] for h in ppo_history]
    left.plot(steps_axis, [h["score"] for h in ppo_history], marker="o", label="reward-model score")
    left.plot(steps_axis, [h["reward"] for h in ppo_history], marker=".", label="score − β·KL")
    left.set_xlabel("PPO step")
    left.legend()
    right.plot(steps_axis, [h["kl"] for h in ppo_history], marker="o", color="tab:red", label="KL to SFT (nats)")
    dpo_curve = [(m["step"], m["loss"]) for m in dpo_run.read_metrics() if "loss" in m and "step" in m]
    right.set_xlabel("PPO step")
    right.legend(loc="upper left")
    if dpo_curve:
        twin = right.twiny()
        twin.plot(*zip(*dpo_curve, strict=True), color="tab:green", alpha=0.6, label="DPO train loss")
        twin.set_xlabel("DPO step")
        twin.legend(loc="upper right")
    fig.tight_layout()
    curves = ctx.save_figure(fig, "rlhf_curves", T("PPO reward and KL per step; DPO loss", "PPO 단계별 보상과 KL; DPO 손실"))

    table = Table(
        T("Held-out prompts: aligned models against the SFT model", "보류 질문: 정렬한 모델 대 SFT 모델"),
        ["model", "reward", "win rate (RM)", "exact match", "win rate (EM)", "KL to SFT", "answer tokens"],
        [["SFT", round(ppo["reward_sft"], 3), 0.5, round(ppo["exact_match_sft"], 3), 0.5, 0.0, None]]
        + [[name.upper(), round(r["reward"], 3), round(r["win_rate_reward"], 3), round(r["exact_match"], 3),
            round(r["win_rate_exact"], 3), round(r["kl_to_sft"], 3), round(r["answer_tokens"], 1)]
           for name, r in results.items()],
    )
    claims = [
        Claim(T("A reward model trained on preference pairs ranks unseen pairs better than chance.",
                "선호 쌍으로 학습한 보상 모델은 처음 보는 쌍을 우연보다 잘 고른다."),
              T(f"held-out pairwise accuracy {rm['held_out_accuracy']:.2f} (before training "
                f"{rm['held_out_accuracy_before']:.2f}, chance 0.5) on {rm['held_out_pairs']} pairs "
                f"({rm['dropped_too_long']} pairs longer than the context were left out)",
                f"보류 쌍 {rm['held_out_pairs']}개 정확도 {rm['held_out_accuracy']:.2f} (문맥보다 긴 쌍 "
                f"{rm['dropped_too_long']}개는 제외; 학습 전 "
                f"{rm['held_out_accuracy_before']:.2f}, 우연 수준 0.5)"),
              rm["held_out_accuracy"] > 0.5),
        Claim(T("PPO raises the reward of held-out answers over the SFT model while the KL penalty keeps it "
                "close to SFT.", "PPO는 보류 질문 답의 보상을 SFT보다 높이고, KL 벌점이 SFT 가까이 붙잡아 둔다."),
              T(f"reward {ppo['reward']:.3f} vs SFT {ppo['reward_sft']:.3f}, win rate {ppo['win_rate_reward']:.2f}; "
                f"KL {ppo['kl_to_sft']:.2f} nats per answer (bound {KL_BOUND})",
                f"보상 {ppo['reward']:.3f} 대 SFT {ppo['reward_sft']:.3f}, 승률 {ppo['win_rate_reward']:.2f}; "
                f"답변당 KL {ppo['kl_to_sft']:.2f} nats (한도 {KL_BOUND})"),
              ppo["reward"] > ppo["reward_sft"] and ppo["kl_to_sft"] < KL_BOUND),
        Claim(T("DPO learns the preferences without a reward model: its implicit reward ranks held-out pairs "
                "correctly, and the reward model prefers its answers.",
                "DPO는 보상 모델 없이 선호를 배운다: 암묵적 보상이 보류 쌍을 맞게 고르고, 보상 모델도 그 답을 더 좋아한다."),
              T(f"implicit-reward accuracy {dpo['held_out_rewards_accuracy']:.2f}; RM win rate "
                f"{dpo_eval['win_rate_reward']:.2f}; KL {dpo_eval['kl_to_sft']:.2f}",
                f"암묵적 보상 정확도 {dpo['held_out_rewards_accuracy']:.2f}; 보상 모델 승률 "
                f"{dpo_eval['win_rate_reward']:.2f}; KL {dpo_eval['kl_to_sft']:.2f}"),
              dpo["held_out_rewards_accuracy"] > 0.5 and dpo_eval["win_rate_reward"] > 0.5),
        Claim(T("Alignment on these preferences does not cost task accuracy (exact match at least SFT's).",
                "이 선호로 정렬해도 과제 정확도(정확 일치)는 SFT 이상이다."),
              T(f"exact match SFT {ppo['exact_match_sft']:.2f}, PPO {ppo['exact_match']:.2f}, "
                f"DPO {dpo_eval['exact_match']:.2f}",
                f"정확 일치 SFT {ppo['exact_match_sft']:.2f}, PPO {ppo['exact_match']:.2f}, "
                f"DPO {dpo_eval['exact_match']:.2f}"),
              min(ppo["exact_match"], dpo_eval["exact_match"]) >= ppo["exact_match_sft"]),
    ]
    samples = [Sample(T(f"{name.upper()} vs SFT on held-out prompts", f"보류 질문에서 {name.upper()} 대 SFT"),
                      "\n".join(f"Q: {t['prompt']}\n  answer: {t['answer']} | SFT: {t['sft']} | "
                                f"{name.upper()}: {t['aligned']}" for t in transcripts[name][:4]))
               for name in ("ppo", "dpo")]
    sft_exact = ppo["exact_match_sft"]
    hacked = ppo["reward"] > ppo["reward_sft"] and ppo["exact_match"] < sft_exact  # the score rose, the answers did not
    summary = T(
        f"From 4.4's SFT model, PPO moved the held-out reward {ppo['reward_sft']:.2f} → {ppo['reward']:.2f} "
        f"(KL {ppo['kl_to_sft']:.2f}) and exact match {sft_exact:.2f} → {ppo['exact_match']:.2f}; DPO: reward "
        f"{dpo_eval['reward']:.2f}, exact match {dpo_eval['exact_match']:.2f}, win rate by the reward model "
        f"{dpo_eval['win_rate_reward']:.2f}." + (" Here PPO raised the reward-model score while fewer answers "
                                                  "were right: the reward model, not the task, was optimised." if hacked else ""),
        f"4.4의 SFT 모델에서 PPO는 보류 보상을 {ppo['reward_sft']:.2f} → {ppo['reward']:.2f}(KL "
        f"{ppo['kl_to_sft']:.2f}), 정확 일치를 {sft_exact:.2f} → {ppo['exact_match']:.2f}로 바꾸었다; DPO: 보상 "
        f"{dpo_eval['reward']:.2f}, 정확 일치 {dpo_eval['exact_match']:.2f}, 보상 모델 판정 승률 "
        f"{dpo_eval['win_rate_reward']:.2f}." + (" 여기서 PPO는 보상 모델 점수를 올렸지만 정답은 줄었다: 과제가 아니라 "
                                                  "보상 모델을 최적화한 것이다." if hacked else ""),
    )
    metrics = {"sft_run": str(sft_dir.relative_to(ctx.out_dir.parent)), "reward_model": rm, "dpo": dpo,
               "ppo_history": ppo_history, "compare": results, "settings": s, "tasks": tasks}
    return ChapterResult(summary, claims=claims, tables=[table], figures=[curves], samples=samples, metrics=metrics)


CHAPTER = Chapter("4.5", T("RLHF: reward model, PPO and DPO", "RLHF: 보상 모델, PPO, DPO"), run, needs=("4.4",))
