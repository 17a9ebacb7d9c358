"""Chapter 4.5, RLHF: preference data, a reward model, PPO and DPO, starting from chapter 4.4's SFT model.

The pipeline the guide describes, at laptop scale: the GPT pre-trained in 4.3 and fine-tuned in 4.4 (all
weights) is the starting policy. Preference pairs over the same tasks (the correct, concise answer
against a wrong, rambling or run-on one) train a reward model that starts from the SFT network; then the
SFT model is aligned two ways — PPO against the reward model with a KL penalty to the SFT model, and DPO
directly on the pairs. Both aligned models answer 4.4's held-out prompts; we measure the reward, the
exact-match accuracy, the win rate against the SFT model's answer (judged by the reward model and by
exact match), and how far each moved from SFT (KL per answer). Where an effect does not appear at this
scale, the claim says so with the numbers.

Every rate carries its 95 % Wilson interval and a verdict needs the interval clear of its comparison. Two
checks keep the reward model honest: a length-only judge (the pairs' rejected answers are often longer, so
"prefer the shorter answer" already ranks many pairs right), with the reward model's accuracy per kind of
rejected answer; and whether it prefers a right answer to a wrong one among the SFT model's own samples.
PPO climbs whatever the reward model rewards, so that on-policy agreement is the condition for PPO to make
answers better; where the reward rises while exact match falls, the chapter reports reward hacking, not ✓.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from lm2llm.align.evaluate import compare_with_sft, on_policy_agreement, pair_hits
from lm2llm.align.ppo import PPOConfig
from lm2llm.align.preference import PreferencePair
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
from lm2llm.finetune.tasks import guess_chance, make_suite
from lm2llm.models import load_model
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
)
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


HALF = (0.5, 0.5)  # chance of a pairwise judgement, as an interval for `compare_intervals`
ON_POLICY_SAMPLES = 4  # answers sampled per held-out prompt to check the reward model on the policy's own text


def longer_share(pairs: list[PreferencePair]) -> float:
    """Share of pairs whose chosen answer has more characters (ties count one half)."""
    return sum((len(p.chosen) > len(p.rejected)) + 0.5 * (len(p.chosen) == len(p.rejected)) for p in pairs) / len(pairs)


def rate(successes: float, trials: int) -> str:
    if not trials:
        return "n/a"
    low, high = wilson_interval(successes, trials)
    return f"{successes / trials:.2f} [{low:.2f}, {high:.2f}]"


def exact_match_fell(r: dict) -> tuple[bool, bool]:
    """(fewer right answers than SFT, and significantly so): among prompts where exactly one of the two is
    right, the aligned model's share of them has its interval wholly below one half."""
    changed = r["exact_wins"] + r["exact_losses"]
    return (r["exact_losses"] > r["exact_wins"],
            changed > 0 and compare_intervals(wilson_interval(r["exact_wins"], changed), HALF) is False)


def align(method: str, sft: str, root: Path, pairs: PreferenceData, s: dict) -> tuple:
    """One way to align the SFT model, written under `root`: "rlhf" trains the reward model and then runs PPO
    against it, KL-penalised towards the SFT model ((reward model metrics, PPO history)); "dpo" trains DPO on
    the same pairs (its metrics)."""
    if method == "dpo":
        return train_dpo(DPOStageConfig(sft, str(root / "dpo"), pairs, pair_trainer(s["dpo_steps"], 1e-4), beta=0.1))[0]
    rm, _ = train_reward(RewardStageConfig(sft, str(root / "rm"), pairs, pair_trainer(s["rm_steps"], 1e-3),
                                           reference_samples=32))
    history, _ = run_ppo(PPOStageConfig(sft, str(root / "rm"), str(root / "ppo"), pairs, max_steps=s["ppo_steps"],
                                        ppo=PPOConfig(batch_size=16, minibatch_size=8, lr=1e-4, max_new_tokens=12)))
    return rm, history


def run(ctx: ChapterContext) -> ChapterResult:
    s = ctx.steps_in(SETTINGS[ctx.quick])
    sft_dir, finetuning = sft_run(ctx)
    tasks, n_test = finetuning["tasks"], finetuning["settings"]["n_test"]
    root = ctx.out_dir / "runs"
    shutil.rmtree(root, ignore_errors=True)  # a forced rerun starts clean
    total, done = 4, 0

    def step() -> None:
        nonlocal done
        done += 1
        ctx.progress(done, total)

    _, test = make_suite(0, n_test, seed=0, tasks=tasks)  # 4.4's held-out prompts, never trained on anywhere
    tokenizer = load_tokenizer(sft_dir)
    sft = str(sft_dir)

    # 1. Reward model on preference pairs whose held-out prompts are never trained on, then 2. PPO against it;
    # 3. DPO on the same pairs needs no reward model: in full mode the two chains run side by side, one per core.
    pairs = PreferenceData(synthetic_train=s["pairs"], synthetic_held_out=n_test, tasks=tasks, seed=0)
    (rm, ppo_history), dpo = ctx.in_parallel(align, [("rlhf", sft, root, pairs, s), ("dpo", sft, root, pairs, s)])
    dpo_run = RunDir(root / "dpo")
    step()

    # 4. Both against SFT on the held-out prompts.
    sft_model, reward_model = load_model(sft_dir), load_reward_model(root / "rm")
    results, transcripts = {}, {}
    for name in ("ppo", "dpo"):
        results[name], transcripts[name] = compare_with_sft(load_model(root / name), sft_model, reward_model,
                                                            tokenizer, test, max_new_tokens=12)
        step()
    ppo, dpo_eval = results["ppo"], results["dpo"]

    # 5. The reward model against a length-only judge, per kind of rejected answer, and on SFT's own samples.
    train_pairs, held_pairs = pairs.load()
    hits = pair_hits(reward_model, tokenizer, held_pairs)
    judged = [pair for pair, _ in hits]
    prefer_longer = longer_share(train_pairs) > 0.5  # the judge's one parameter, set on the training pairs
    n_pairs, rm_right = len(hits), sum(hit for _, hit in hits)
    length_right = n_pairs * (longer_share(judged) if prefer_longer else 1 - longer_share(judged))
    rm_interval, length_interval = wilson_interval(rm_right, n_pairs), wilson_interval(length_right, n_pairs)
    kinds = sorted({pair.kind for pair in judged})
    per_kind = {kind: (sum(hit for pair, hit in hits if pair.kind == kind), sum(pair.kind == kind for pair in judged))
                for kind in kinds}
    agreement = on_policy_agreement(sft_model, reward_model, tokenizer, test, samples=ON_POLICY_SAMPLES,
                                    max_new_tokens=12)
    agree_interval = wilson_interval(agreement["agreement"] * agreement["prompts"], agreement["prompts"])
    step()

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
    judge = "shorter" if not prefer_longer else "longer"
    kinds_en = ", ".join(f"{kind} {rate(*per_kind[kind])}" for kind in kinds)
    n = ppo["prompts"]
    em_chance = guess_chance(tasks)  # a guess among the answers a prompt offers (4.4's chance level)
    sft_em_interval = wilson_interval(ppo["exact_match_sft"] * n, n)
    sft_at_floor = sft_em_interval[0] <= em_chance

    def fmt_em(value: float) -> str:
        return rate(value * n, n)
    reward_up = {name: compare_intervals(wilson_interval(r["win_rate_reward"] * n, n), HALF)
                 for name, r in results.items()}
    fell = {name: exact_match_fell(r) for name, r in results.items()}

    def em_text(name: str, lang: str) -> str:
        r = results[name]
        if lang == "ko":
            return (f"정확 일치 SFT {r['exact_match_sft']:.2f} → {r['exact_match']:.2f} (한쪽만 맞힌 프롬프트 중 "
                    f"{name.upper()}가 맞힌 것 {r['exact_wins']}개, SFT가 맞힌 것 {r['exact_losses']}개)")
        return (f"exact match SFT {r['exact_match_sft']:.2f} → {r['exact_match']:.2f} ({name.upper()} right where SFT "
                f"was wrong on {r['exact_wins']} prompts, wrong where SFT was right on {r['exact_losses']})")

    def aligned_verdict(name: str, preference_up: bool | None) -> bool | None:
        """✓ only if the preference measure rose and exact match did not fall; ✗ if either moved the wrong way
        significantly (or KL left its bound); otherwise inconclusive."""
        if results[name]["kl_to_sft"] >= KL_BOUND or preference_up is False or fell[name][1]:
            return False
        return True if preference_up and not fell[name][0] else None

    hacked = {name: (results[name]["reward"] > results[name]["reward_sft"] and fell[name][0]) for name in results}
    hack_note = {name: (T(" Reward hacking, measured: the reward rose while significantly fewer answers were right.",
                          " 보상 해킹이 측정되었다: 보상은 올랐지만 정답은 유의하게 줄었다.") if fell[name][1] else
                        T(" The reward rose while fewer answers were right: the pattern of reward hacking, within the "
                          "noise of this many prompts.",
                          " 보상은 올랐지만 정답은 줄었다: 보상 해킹의 모양이지만, 이 정도 프롬프트 수에서는 잡음 범위 안이다."))
                 if hacked[name] else T("", "") for name in results}
    dpo_pairs = dpo.get("held_out_pairs", n_pairs)
    dpo_interval = wilson_interval(dpo["held_out_rewards_accuracy"] * dpo_pairs, dpo_pairs)
    dpo_up = compare_intervals(dpo_interval, HALF)
    dpo_up = None if dpo_up is None or reward_up["dpo"] is None else dpo_up and reward_up["dpo"]
    claims = [
        Claim(T("A reward model trained on preference pairs ranks unseen pairs better than chance.",
                "선호 쌍으로 학습한 보상 모델은 처음 보는 쌍을 우연보다 잘 고른다."),
              T(f"held-out pairwise accuracy {rate(rm_right, n_pairs)} (before training "
                f"{rm['held_out_accuracy_before']:.2f}, chance 0.5) on {n_pairs} pairs "
                f"({rm['dropped_too_long']} pairs longer than the context were left out)",
                f"학습에 쓰지 않은 쌍 {n_pairs}개 정확도 {rate(rm_right, n_pairs)} (문맥보다 긴 쌍 "
                f"{rm['dropped_too_long']}개는 제외; 학습 전 {rm['held_out_accuracy_before']:.2f}, 우연 수준 0.5)"),
              compare_intervals(rm_interval, HALF), chance=0.5, interval=rm_interval),
        Claim(T("The reward model learns more than a surface cue: it ranks unseen pairs better than a judge that "
                "reads only the answers' length.",
                "보상 모델은 겉모습 이상을 배운다: 답의 길이만 보는 판정자보다 처음 보는 쌍을 잘 고른다."),
              T(f"reward model {rate(rm_right, n_pairs)} vs \"prefer the {judge} answer\" (the direction that fits the "
                f"training pairs) {rate(length_right, n_pairs)}; \"prefer the longer answer\" scores "
                f"{longer_share(judged):.2f}. Reward model per kind of rejected answer: {kinds_en} (a wrong answer "
                f"is about as long as the right one, so there length cannot help). Before training it already scored "
                f"{rm['held_out_accuracy_before']:.2f}: the SFT network's features carry length and form.",
                f"보상 모델 {rate(rm_right, n_pairs)} 대 \"{'짧은' if judge == 'shorter' else '긴'} 답을 고르기\"(학습 쌍에 "
                f"맞는 방향) {rate(length_right, n_pairs)}; \"긴 답을 고르기\"는 {longer_share(judged):.2f}. 거부된 답의 "
                f"종류별 보상 모델 정확도: {kinds_en} (틀린 답은 맞는 답과 길이가 비슷해 길이가 도움이 안 된다). 학습 "
                f"전에도 이미 {rm['held_out_accuracy_before']:.2f}였다: SFT 신경망의 특징에 길이와 형식이 담겨 있다."),
              compare_intervals(rm_interval, length_interval), chance=0.5, interval=rm_interval),
        Claim(T("PPO makes held-out answers better: the reward model prefers them to the SFT model's, the KL penalty "
                "keeps the policy close to SFT, and they are not less often right.",
                "PPO는 학습에 쓰지 않은 질문의 답을 낫게 만든다: 보상 모델이 SFT의 답보다 선호하고, KL 벌점이 정책을 "
                "SFT 가까이 붙잡아 두며, 정답도 줄지 않는다."),
              T(f"reward {ppo['reward']:.3f} vs SFT {ppo['reward_sft']:.3f}, win rate by the reward model "
                f"{rate(ppo['win_rate_reward'] * n, n)}; KL {ppo['kl_to_sft']:.2f} nats per answer (bound "
                f"{KL_BOUND}); {em_text('ppo', 'en')}.{hack_note['ppo'].en}",
                f"보상 {ppo['reward']:.3f} 대 SFT {ppo['reward_sft']:.3f}, 보상 모델 판정 승률 "
                f"{rate(ppo['win_rate_reward'] * n, n)}; 답변당 KL {ppo['kl_to_sft']:.2f} nats (한도 {KL_BOUND}); "
                f"{em_text('ppo', 'ko')}.{hack_note['ppo'].ko}"),
              aligned_verdict("ppo", reward_up["ppo"]), chance=0.5,
              interval=wilson_interval(ppo["win_rate_reward"] * n, n)),
        Claim(T("DPO learns the preferences without a reward model: its implicit reward ranks held-out pairs "
                "correctly, the reward model prefers its answers, and they are not less often right.",
                "DPO는 보상 모델 없이 선호를 배운다: 암묵적 보상이 학습에 쓰지 않은 쌍을 맞게 고르고, 보상 모델도 그 답을 "
                "더 좋아하며, 정답도 줄지 않는다."),
              T(f"implicit-reward accuracy {rate(dpo['held_out_rewards_accuracy'] * dpo_pairs, dpo_pairs)}; reward-model "
                f"win rate {rate(dpo_eval['win_rate_reward'] * n, n)}; KL {dpo_eval['kl_to_sft']:.2f}; "
                f"{em_text('dpo', 'en')}.{hack_note['dpo'].en}",
                f"암묵적 보상 정확도 {rate(dpo['held_out_rewards_accuracy'] * dpo_pairs, dpo_pairs)}; 보상 모델 판정 승률 "
                f"{rate(dpo_eval['win_rate_reward'] * n, n)}; KL {dpo_eval['kl_to_sft']:.2f}; "
                f"{em_text('dpo', 'ko')}.{hack_note['dpo'].ko}"),
              aligned_verdict("dpo", dpo_up), chance=0.5, interval=dpo_interval),
        Claim(T("Alignment on these preferences does not cost task accuracy (exact match at least SFT's).",
                "이 선호로 정렬해도 과제 정확도(정확 일치)는 SFT 이상이다."),
              T(f"PPO: {em_text('ppo', 'en')}; DPO: {em_text('dpo', 'en')}. A drop counts when, among the prompts "
                f"only one model gets right, the aligned model's share has its 95 % interval below one half."
                + (f" SFT's exact match {fmt_em(ppo['exact_match_sft'])} is at the floor (chance {em_chance:.2f}): "
                   "there is nothing to lose, so inconclusive." if sft_at_floor else ""),
                f"PPO: {em_text('ppo', 'ko')}; DPO: {em_text('dpo', 'ko')}. 한쪽만 맞힌 프롬프트 중 정렬한 모델의 몫이 "
                f"95 % 구간째 절반 아래일 때 감소로 본다."
                + (f" SFT의 정확 일치 {fmt_em(ppo['exact_match_sft'])}가 바닥(우연 수준 {em_chance:.2f})이라 잃을 것이 "
                   "없으므로 판정 보류." if sft_at_floor else "")),
              None if sft_at_floor else False if fell["ppo"][1] or fell["dpo"][1]
              else (True if not (fell["ppo"][0] or fell["dpo"][0]) else None)),
        Claim(T("The condition for PPO to improve answers holds: among the SFT model's own sampled answers, the "
                "reward model prefers a right one to a wrong one.",
                "PPO가 답을 낫게 만들 조건이 성립한다: SFT 모델이 직접 샘플링한 답들 중 보상 모델이 틀린 답보다 맞는 답을 "
                "선호한다."),
              T(f"agreement {rate(agreement['agreement'] * agreement['prompts'], agreement['prompts'])} over the "
                f"{agreement['prompts']} held-out prompts where SFT's {ON_POLICY_SAMPLES} samples (T = 1) were both "
                f"right and wrong ({agreement['samples_right']:.0%} of {agreement['samples']} samples right; chance 0.5)",
                f"SFT의 샘플 {ON_POLICY_SAMPLES}개(T = 1)에 맞는 답과 틀린 답이 섞인 프롬프트 {agreement['prompts']}개에서 "
                f"일치율 {rate(agreement['agreement'] * agreement['prompts'], agreement['prompts'])} (샘플 "
                f"{agreement['samples']}개 중 {agreement['samples_right']:.0%}가 정답; 우연 수준 0.5)"),
              compare_intervals(agree_interval, HALF) if agreement["prompts"] else None, chance=0.5,
              interval=agree_interval),
    ]
    samples = [Sample(T(f"{name.upper()} vs SFT on held-out prompts", f"보류 질문에서 {name.upper()} 대 SFT"),
                      "\n".join(f"Q: {t['prompt']}\n  answer: {t['answer']} | SFT: {t['sft']} | "
                                f"{name.upper()}: {t['aligned']}" for t in transcripts[name][:4]))
               for name in ("ppo", "dpo")]
    sft_exact = ppo["exact_match_sft"]
    wrong = per_kind.get("wrong", (0, 0))
    agreed = compare_intervals(agree_interval, HALF) if agreement["prompts"] else None
    agree_text = rate(agreement["agreement"] * agreement["prompts"], agreement["prompts"])
    why = T(
        f" Why the reward can rise while answers get worse: PPO optimises the reward model, not correctness. The "
        f"reward model learned from pairs where two of three rejected answers differ in length and form (rambling, "
        f"running on), so it ranks held-out pairs at {rate(rm_right, n_pairs)} while a length-only judge reaches "
        f"{rate(length_right, n_pairs)}, and where the rejected answer is merely wrong it scores "
        f"{rate(*wrong) if wrong[1] else 'n/a'}. The guide's statement (optimising a learned reward makes answers "
        f"better) holds as far as the reward model prefers right answers among the policy's own samples; measured on "
        f"SFT's samples, that agreement is {agree_text} over {agreement['prompts']} prompts (0.5: it cannot tell)"
        + (": no prompt had both right and wrong samples, so the condition could not be measured."
           if not agreement["prompts"] else
           {True: ", so PPO had a signal towards right answers.",
            False: ", below chance: PPO is pushed towards wrong answers.",
            None: ", not clear of chance: PPO has no reliable signal towards right answers, and exact match drifts "
                  "with whatever else the reward model likes."}[agreed])
        + (" Quick mode is small (few pairs and steps): most intervals are wide." if ctx.quick else ""),
        f" 보상이 오르는데 답이 나빠질 수 있는 이유: PPO는 정답이 아니라 보상 모델을 최적화한다. 보상 모델이 배운 쌍은 "
        f"거부된 답 셋 중 둘이 길이와 형식(장황함, 끝없이 이어짐)으로 다르므로, 학습에 쓰지 않은 쌍에서 보상 모델이 "
        f"{rate(rm_right, n_pairs)}일 때 길이만 보는 판정자도 {rate(length_right, n_pairs)}에 이르고, 거부된 답이 "
        f"그저 틀린 경우에는 {rate(*wrong) if wrong[1] else '해당 없음'}이다. 가이드의 말(학습한 보상을 최적화하면 답이 "
        f"나아진다)은 보상 모델이 정책 자신의 샘플 중 맞는 답을 선호하는 만큼만 성립한다; SFT의 샘플에서 잰 그 일치율은 "
        f"프롬프트 {agreement['prompts']}개에서 {agree_text}이다 (0.5: 구별 못 함)"
        + (": 맞는 답과 틀린 답이 섞인 프롬프트가 없어 조건을 잴 수 없었다." if not agreement["prompts"] else
           {True: ". 그래서 PPO에는 정답 쪽으로 가는 신호가 있었다.",
            False: ". 우연보다 낮다: PPO는 틀린 답 쪽으로 밀린다.",
            None: ". 우연과 구별되지 않는다: PPO에는 정답 쪽으로 가는 믿을 만한 신호가 없고, 정확 일치는 보상 모델이 "
                  "좋아하는 다른 무엇을 따라 흔들린다."}[agreed])
        + (" 빠른 모드는 작다(쌍과 스텝이 적음): 구간 대부분이 넓다." if ctx.quick else ""),
    )
    summary = T(
        f"From 4.4's SFT model, PPO moved the held-out reward {ppo['reward_sft']:.2f} → {ppo['reward']:.2f} "
        f"(KL {ppo['kl_to_sft']:.2f}) and exact match {sft_exact:.2f} → {ppo['exact_match']:.2f}; DPO: reward "
        f"{dpo_eval['reward']:.2f}, exact match {dpo_eval['exact_match']:.2f}, win rate by the reward model "
        f"{dpo_eval['win_rate_reward']:.2f}." + hack_note["ppo"].en + why.en,
        f"4.4의 SFT 모델에서 PPO는 학습에 쓰지 않은 질문의 보상을 {ppo['reward_sft']:.2f} → {ppo['reward']:.2f}(KL "
        f"{ppo['kl_to_sft']:.2f}), 정확 일치를 {sft_exact:.2f} → {ppo['exact_match']:.2f}로 바꾸었다; DPO: 보상 "
        f"{dpo_eval['reward']:.2f}, 정확 일치 {dpo_eval['exact_match']:.2f}, 보상 모델 판정 승률 "
        f"{dpo_eval['win_rate_reward']:.2f}." + hack_note["ppo"].ko + why.ko,
    )
    metrics = {"sft_run": str(sft_dir.relative_to(ctx.out_dir.parent)), "reward_model": rm, "dpo": dpo,
               "ppo_history": ppo_history, "compare": results, "settings": s, "tasks": tasks,
               "length_judge": {"prefers": judge, "accuracy": length_right / n_pairs, "longer_preferred": longer_share(judged)},
               "reward_model_per_kind": {kind: {"right": k, "pairs": m} for kind, (k, m) in per_kind.items()},
               "on_policy_agreement": agreement, "reward_hacking": hacked}
    return ChapterResult(summary, claims=claims, tables=[table], figures=[curves], samples=samples, metrics=metrics)


CHAPTER = Chapter("4.5", T("RLHF: reward model, PPO and DPO", "RLHF: 보상 모델, PPO, DPO"), run, needs=("4.4",),
                  rechecks=True)
