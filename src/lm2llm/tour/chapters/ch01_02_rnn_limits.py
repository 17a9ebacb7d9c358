"""Chapter 1.2, the limits of recurrent models, measured three ways.

(a) Vanishing gradients: how much of the last token's loss gradient reaches a token d positions back,
    in an Elman RNN, an LSTM and a Transformer (all freshly initialised, same width).
(b) Parallelism: training tokens/s (forward, backward and optimiser step) of an LSTM (PyTorch's fused
    kernel) and a Transformer with the same parameter count on the same batches, on every core (the tour
    otherwise runs quick chapters on one thread); the load average is reported with it, since other work
    on the machine distorts a parallel measurement most. Then the guide's own point, parallelism over the
    sequence: the same number of tokens per step cut into ever longer sequences (batch × length fixed).
    The Transformer handles a whole sequence in each layer at once, so its step time barely depends on how
    the tokens are cut; the LSTM must take one step per position, one after the other, so longer sequences
    mean more serial steps, each with less work to share out. Both timing claims are decided on ratios
    taken within each of `ROUNDS` interleaved rounds (both models timed at the same moment of the machine):
    a verdict needs the rounds' whole range on one side of its threshold, else it is inconclusive, so a
    burst of other work widens the range instead of flipping the verdict (it flipped between runs when
    each model was timed alone, fastest of a few steps).
(c) Long-range recall: the answer is a key token seen d positions earlier; accuracy against d for a
    trigram count model, an LSTM and a Transformer trained with the same budget. The gradient probe of (a)
    is repeated on the recall LSTM before and after that training: (a) describes a freshly initialised
    network, and training is exactly what changes it.

Why the fused LSTM still wins on this machine is said in the chapter's summary (`WHY_LSTM_WINS`).
"""

from __future__ import annotations

import copy
import os
import time
from collections import Counter, defaultdict

import numpy as np
import torch
import torch.nn.functional as F

from lm2llm.models import build_model
from lm2llm.stats import wilson_interval
from lm2llm.tour.framework import Chapter, ChapterContext, ChapterResult, Claim, T, Table
from lm2llm.tour.minitrain import steps_until
from lm2llm.tour.plots import plt

VOCAB = 64
WHY_LSTM_WINS = T(
    "Why the fused LSTM wins here: two CPU threads are already filled by one LSTM step's matrix product, so the "
    "Transformer's extra parallelism has nowhere to go, while it does more arithmetic per token (attention, a 4× "
    "wider MLP, normalisations) in many more separate kernel calls; PyTorch's fused LSTM runs the whole recurrence "
    "in one call. The guide's point is about hardware with far more parallel lanes than one step's work can fill (a "
    "GPU), where the LSTM's serial steps leave most of them idle. The length sweep measures whether those serial "
    "steps cost anything on this machine: where the LSTM's step time stays flat as the same tokens form fewer, "
    "longer sequences, two threads have no idle lanes for the sequence's parallelism to fill, and the guide's "
    "advantage cannot show here.",
    "여기서 융합 LSTM이 이기는 까닭: CPU 스레드 두 개는 LSTM 한 단계의 행렬곱만으로 이미 차므로 Transformer의 더 큰 "
    "병렬성은 쓸 곳이 없고, Transformer는 토큰당 계산(어텐션, 4배 넓은 MLP, 정규화)이 더 많으며 커널 호출도 훨씬 "
    "잦다. PyTorch의 융합 LSTM은 순환 전체를 한 번의 호출로 돈다. 가이드의 요점은 한 단계의 일로는 다 채울 수 없을 "
    "만큼 병렬 자원이 많은 하드웨어(GPU)에 관한 것으로, 거기서는 LSTM의 직렬 단계가 자원 대부분을 놀린다. 길이 "
    "실험은 그 직렬 단계가 이 컴퓨터에서 비용이 되는지를 잰다: 같은 토큰을 더 적고 긴 시퀀스로 묶어도 LSTM의 단계 "
    "시간이 그대로라면, 두 스레드에는 시퀀스의 병렬성이 채울 빈 자원이 없고 가이드가 말하는 이점은 여기서 드러날 수 "
    "없다.")


# --- (a) gradient against distance -----------------------------------------------------------------

def gradient_by_distance(model: torch.nn.Module, seq_len: int, batch: int = 8) -> np.ndarray:
    """‖∂L_T/∂x_t‖ for t = T, T−1, ..., 1 (index = distance T−t), averaged over a batch.

    x_t is token t's embedding as it enters the model (for an RNN it reaches the loss only through the
    hidden states h_t, h_{t+1}, ..., so this is the gradient that flowed back through the recurrence).
    """
    captured: list[torch.Tensor] = []

    def keep(_module, _inputs, output):
        output.retain_grad()
        captured.append(output)

    handle = model.tok_emb.register_forward_hook(keep)
    try:
        ids = torch.randint(0, VOCAB, (batch, seq_len))
        logits, _ = model(ids)
        F.cross_entropy(logits[:, -1], torch.randint(0, VOCAB, (batch,))).backward()
    finally:
        handle.remove()
    norms = captured[0].grad.norm(dim=-1).mean(dim=0)  # (T,)
    return norms.flip(0).numpy()


# --- (b) training throughput -----------------------------------------------------------------------

ROUNDS = 6  # interleaved timing rounds: the range of 6 values is a 1 − 2/2⁶ ≈ 97 % interval for their median
QUICK_ROUNDS = 4  # quick mode's (an 88 % range): 20 steps with the warm-ups, where the fastest-of-2 it replaced took 12


def median_interval(values: np.ndarray) -> tuple[float, float]:
    """The range of `values`: a distribution-free interval for the median they are drawn around, of coverage
    `range_coverage` (the median lies outside the range only if every value falls on one side of it)."""
    return float(values.min()), float(values.max())


def range_coverage(n: int) -> float:
    return 1 - 2 ** (1 - n)


def interleaved_step_seconds(models: dict[str, torch.nn.Module], tokens: int, lengths: list[int],
                             rounds: int = ROUNDS) -> dict[str, dict[int, list[float]]]:
    """Seconds of each training step (forward, backward, AdamW) of each model, with `tokens` tokens per step
    cut into sequences of each length (the same token ids for every model), in `rounds` interleaved rounds.

    Every round times each (length, model) pair once, one after another, so a burst of other work on a shared
    machine falls on both models alike: it widens the spread across rounds instead of faking a difference
    between the models (a fastest-of-k per model, timed one model after the other, flipped verdicts under load).
    Each pair first takes one untimed step (first-call allocations).
    """
    batches = {n: torch.randint(0, VOCAB, (tokens // n, n + 1), generator=torch.Generator().manual_seed(n))
               for n in lengths}
    optimizers = {name: torch.optim.AdamW(model.parameters(), lr=1e-3) for name, model in models.items()}

    def step(name: str, ids: torch.Tensor) -> float:
        start = time.perf_counter()
        _, loss = models[name](ids[:, :-1], ids[:, 1:])
        optimizers[name].zero_grad(set_to_none=True)
        loss.backward()
        optimizers[name].step()
        return time.perf_counter() - start

    for n in lengths:
        for name in models:
            step(name, batches[n])
    seconds: dict[str, dict[int, list[float]]] = {name: {n: [] for n in lengths} for name in models}
    for _ in range(rounds):
        for n in lengths:
            for name in models:
                seconds[name][n].append(step(name, batches[n]))
    return seconds


def ratio_verdict(interval: tuple[float, float], threshold: float) -> bool | None:
    """True when the whole interval lies above `threshold`, False when wholly below, None when it straddles it."""
    return True if interval[0] > threshold else False if interval[1] < threshold else None


def lstm_matching(params: int, d_embed: int) -> torch.nn.Module:
    """The single-layer LSTM (fused kernel) whose parameter count is closest to `params`."""
    def count(hidden: int) -> int:
        return VOCAB * d_embed + 4 * hidden * (d_embed + hidden + 2) + hidden * VOCAB + VOCAB

    hidden = min(range(8, 2048), key=lambda h: abs(count(h) - params))
    return build_model("lstm", vocab_size=VOCAB, d_embed=d_embed, d_hidden=hidden, use_torch=True)


# --- (c) long-range recall -------------------------------------------------------------------------

def recall_gradient_ratio(model: torch.nn.Module, distance: int, batch: int = 32) -> float:
    """‖∂L/∂x_key‖ / ‖∂L/∂x_query‖ on recall sequences: how much of the answer's loss gradient reaches the
    key `distance` positions back (float64, as in (a); the model is left unchanged)."""
    probe = copy.deepcopy(model).double()
    ids, targets = recall_batch(distance, batch)
    captured: list[torch.Tensor] = []

    def keep(_module, _inputs, output):
        output.retain_grad()
        captured.append(output)

    handle = probe.tok_emb.register_forward_hook(keep)
    logits, _ = probe(ids)
    handle.remove()
    F.cross_entropy(logits[:, -1], targets[:, -1]).backward()
    norms = captured[0].grad.norm(dim=-1).mean(dim=0)
    return float(norms[0] / norms[-1])


N_KEYS, N_FILLERS = 8, 48
TEST_SAMPLES = 256  # recall questions scored at each distance
QUERY = VOCAB - 1  # keys are ids 0..7, fillers 8..55, the query marker the last id


def recall_batch(distance: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[key, filler × (distance−1), QUERY] → the model must answer the key after QUERY."""
    keys = torch.randint(0, N_KEYS, (batch, 1))
    fillers = torch.randint(N_KEYS, N_KEYS + N_FILLERS, (batch, distance - 1))
    ids = torch.cat([keys, fillers, torch.full((batch, 1), QUERY)], dim=1)
    targets = torch.full_like(ids, -100)
    targets[:, -1] = keys[:, 0]
    return ids, targets


def trigram_recall_accuracy(distances: list[int], train_batches: int, batch: int, samples: int = TEST_SAMPLES) -> dict[int, float]:
    """A trigram count model: the answer is the most frequent token after the same two-token context."""
    counts: dict[tuple[int, int], Counter] = defaultdict(Counter)
    for _ in range(train_batches):
        for d in distances:
            ids, targets = recall_batch(d, batch)
            for row, answer in zip(ids.tolist(), targets[:, -1].tolist(), strict=True):
                counts[tuple(row[-2:])][answer] += 1
    accuracy = {}
    for d in distances:
        ids, targets = recall_batch(d, samples)
        hits = [counts[tuple(row[-2:])].most_common(1)[0][0] == answer if counts[tuple(row[-2:])] else False
                for row, answer in zip(ids.tolist(), targets[:, -1].tolist(), strict=True)]
        accuracy[d] = float(np.mean(hits))
    return accuracy


@torch.no_grad()
def neural_recall_accuracy(model: torch.nn.Module, distances: list[int], samples: int = TEST_SAMPLES) -> dict[int, float]:
    accuracy = {}
    for d in distances:
        ids, targets = recall_batch(d, samples)
        logits, _ = model(ids)
        accuracy[d] = (logits[:, -1].argmax(-1) == targets[:, -1]).float().mean().item()
    return accuracy


def steps_to_recall(model: torch.nn.Module, distances: list[int], max_steps: int, batch: int,
                    check_every: int) -> int | None:
    """Train on a mix of distances until the model recalls the farthest key 90% of the time; the step, or None."""
    rng = np.random.default_rng(0)
    farthest = max(distances)
    return steps_until(model, lambda: recall_batch(int(rng.choice(distances)), batch),
                       lambda: neural_recall_accuracy(model, [farthest], samples=128)[farthest] >= 0.9,
                       max_steps, check_every)


def said(step: int | None, budget: int, lang: str = "en") -> str:
    if step is not None:
        return str(step)
    return f"not within {budget}" if lang == "en" else f"{budget}단계 안에 못 함"


# --- the chapter -----------------------------------------------------------------------------------

def run(ctx: ChapterContext) -> ChapterResult:
    torch.manual_seed(0)
    quick = ctx.quick
    seq_len = 64 if quick else 160
    width = 64

    # (a)
    models = {
        "RNN": build_model("rnn", vocab_size=VOCAB, d_embed=width, d_hidden=width),
        "LSTM": build_model("lstm", vocab_size=VOCAB, d_embed=width, d_hidden=width),
        "Transformer": build_model("gpt", vocab_size=VOCAB, d_model=width, n_head=4, n_layer=2, context_length=seq_len),
    }
    # float64: the recurrent gradients fall below float32's smallest number within ~100 tokens
    grads = {name: gradient_by_distance(m.double(), seq_len) for name, m in models.items()}
    far = seq_len - 1
    relative = {name: float(g[far] / g[0]) for name, g in grads.items()}
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for name, g in grads.items():
        ax.semilogy(np.arange(seq_len), g / g[0], label=name)
    ax.set_xlabel("distance T − t (tokens)")
    ax.set_ylabel("‖∂L_T/∂x_t‖ / ‖∂L_T/∂x_T‖")
    ax.legend()
    fig_grad = ctx.save_figure(fig, "gradient_vs_distance",
                               T("Gradient reaching a token d positions back (initialised models)",
                                 "d칸 앞 토큰까지 도달하는 기울기 (초기화 직후 모델)"))
    ctx.progress(1, 4)

    # (b)
    bench_len = 128 if quick else 256
    tokens_per_step = 8 * bench_len
    lengths = [16, bench_len] if quick else [16, 64, bench_len, 1024]  # the same tokens, 8× or 64× the serial steps
    tf_model = build_model("gpt", vocab_size=VOCAB, d_model=128, n_head=4, n_layer=2, context_length=max(lengths))
    tf_params = tf_model.num_params() - sum(p.numel() for p in tf_model.pos_emb.parameters())  # no arithmetic there
    lstm_model = lstm_matching(tf_params, d_embed=128)
    rounds = QUICK_ROUNDS if quick else ROUNDS
    with ctx.all_cores():  # a claim about parallelism is measured with every core, whatever the tour's policy
        timed = interleaved_step_seconds({"Transformer": tf_model, "LSTM": lstm_model}, tokens_per_step, lengths, rounds)
        threads = torch.get_num_threads()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")  # other work competing for the cores
    by_length = {name: {n: float(np.median(times[n])) for n in lengths} for name, times in timed.items()}
    speed = {name: tokens_per_step / times[bench_len] for name, times in by_length.items()}  # 8 × bench_len
    # per round, so both models' numbers come from the same moment of the machine
    speed_ratios = np.array(timed["LSTM"][bench_len]) / np.array(timed["Transformer"][bench_len])
    growths = {name: np.array(times[max(lengths)]) / np.array(times[min(lengths)]) for name, times in timed.items()}
    growth_ratios = growths["LSTM"] / growths["Transformer"]
    speed_ratio, speed_range = float(np.median(speed_ratios)), median_interval(speed_ratios)
    growth = {name: float(np.median(g)) for name, g in growths.items()}
    growth_ratio, growth_range = float(np.median(growth_ratios)), median_interval(growth_ratios)
    coverage = range_coverage(rounds)
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for name, times in by_length.items():
        ax.plot(lengths, [times[n] * 1e6 / tokens_per_step for n in lengths], marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(f"sequence length ({tokens_per_step} tokens per step: batch = {tokens_per_step} / length)")
    ax.set_ylabel("training µs per token")
    ax.legend()
    fig_length = ctx.save_figure(fig, "time_vs_length", T("Training time per token as the same tokens form longer "
                                                          "sequences", "같은 토큰을 더 긴 시퀀스로 묶을 때 토큰당 학습 시간"))
    ctx.progress(2, 4)

    # (c)
    distances = [1, 2, 8, 24] if quick else [1, 2, 4, 8, 16, 32, 64]
    recall_steps = ctx.steps(150 if quick else 600)
    recall_batch_size = 32
    accuracy = {"trigram": trigram_recall_accuracy(distances, recall_steps // len(distances), recall_batch_size)}
    ctx_len = max(distances) + 1
    recall_models = {
        "LSTM": build_model("lstm", vocab_size=VOCAB, d_embed=32, d_hidden=64, use_torch=True),
        "Transformer": build_model("gpt", vocab_size=VOCAB, d_model=64, n_head=4, n_layer=2, context_length=ctx_len),
    }
    learned_at: dict[str, int | None] = {}
    lstm_gradient = {"initialised": recall_gradient_ratio(recall_models["LSTM"], max(distances))}
    for name, model in recall_models.items():
        learned_at[name] = steps_to_recall(model, distances, recall_steps, recall_batch_size,
                                           check_every=10 if quick else 25)
        accuracy[name] = neural_recall_accuracy(model, distances)
        ctx.progress(3 + list(recall_models).index(name) / 2, 4)
    lstm_gradient["trained"] = recall_gradient_ratio(recall_models["LSTM"], max(distances))
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for name, acc in accuracy.items():
        ax.plot(distances, [acc[d] for d in distances], marker="o", label=name)
    ax.axhline(1 / N_KEYS, color="grey", linestyle=":", label="chance")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("distance d between the key and the question")
    ax.set_ylabel("recall accuracy")
    ax.set_ylim(0, 1.05)
    ax.legend()
    fig_recall = ctx.save_figure(fig, "recall_vs_distance",
                                 T("Recalling a token seen d positions earlier", "d칸 앞에서 본 토큰 기억해 내기"))
    ctx.progress(4, 4)

    d_max = max(distances)
    chance = 1 / N_KEYS
    trigram_far = wilson_interval(accuracy["trigram"][d_max] * TEST_SAMPLES, TEST_SAMPLES)  # the trigram's, at d_max
    claims = [
        Claim(T("Gradients vanish with distance in a recurrent network.",
                "순환 신경망에서는 거리가 멀어질수록 기울기가 소실된다."),
              T(f"gradient {far} tokens back / at the last token: RNN {relative['RNN']:.1e}, "
                f"LSTM {relative['LSTM']:.1e}, Transformer {relative['Transformer']:.2f}",
                f"{far}토큰 앞 기울기 / 마지막 토큰 기울기: RNN {relative['RNN']:.1e}, "
                f"LSTM {relative['LSTM']:.1e}, Transformer {relative['Transformer']:.2f}"),
              relative["RNN"] < 1e-3 and relative["Transformer"] > 100 * relative["RNN"]),
        Claim(T("Sequential processing limits parallelism: a Transformer trains faster than an RNN of the same size.",
                "순차 처리는 병렬화를 제한한다: 같은 크기라면 Transformer가 RNN보다 빨리 학습한다."),
              T(f"training tokens/s at {tf_params:,} vs {lstm_model.num_params():,} parameters, 8 sequences of {bench_len}: "
                f"Transformer {speed['Transformer']:,.0f}, LSTM {speed['LSTM']:,.0f}; Transformer's speed over the LSTM's "
                f"{speed_ratio:.2f}× [{speed_range[0]:.2f}, {speed_range[1]:.2f}] (median and range of {rounds} "
                f"interleaved rounds, a {coverage:.0%} interval; equal speed 1.0) on {threads} CPU thread(s), load "
                f"average {load:.1f}",
                f"매개변수 {tf_params:,}개 대 {lstm_model.num_params():,}개, 길이 {bench_len} 시퀀스 8개의 학습 토큰/초: "
                f"Transformer {speed['Transformer']:,.0f}, LSTM {speed['LSTM']:,.0f}; LSTM 대비 Transformer의 속도 "
                f"{speed_ratio:.2f}배 [{speed_range[0]:.2f}, {speed_range[1]:.2f}] (번갈아 잰 {rounds}회의 중앙값과 범위, "
                f"{coverage:.0%} 구간; 같은 속도 1.0), CPU 스레드 {threads}개, 부하 평균 {load:.1f}"),
              ratio_verdict(speed_range, 1.0), chance=1.0, interval=speed_range),
        Claim(T("Recurrence serialises over the sequence: at a fixed number of tokens per step, the LSTM's step "
                "time grows as the tokens form longer sequences, the Transformer's stays about flat.",
                "순환은 시퀀스를 따라 직렬화된다: 한 단계의 토큰 수가 같을 때 시퀀스가 길어질수록 LSTM의 단계 시간은 "
                "늘고, Transformer의 단계 시간은 거의 그대로다."),
              T(f"step time at length {max(lengths)} over length {min(lengths)} ({tokens_per_step} tokens per step): "
                f"LSTM {growth['LSTM']:.2f}×, Transformer {growth['Transformer']:.2f}×; the LSTM's growth over the "
                f"Transformer's {growth_ratio:.2f} [{growth_range[0]:.2f}, {growth_range[1]:.2f}] (median and range of "
                f"{rounds} interleaved rounds, a {coverage:.0%} interval); serial steps per layer: LSTM {max(lengths)} vs "
                f"{min(lengths)}, Transformer 1 (attention sees every position at once); holds when the whole interval "
                f"is at least 2 (the LSTM's growth at least twice the Transformer's), fails when it is wholly below 2",
                f"길이 {max(lengths)}와 {min(lengths)}의 단계 시간 비 (단계당 {tokens_per_step}토큰): LSTM "
                f"{growth['LSTM']:.2f}배, Transformer {growth['Transformer']:.2f}배; Transformer 대비 LSTM의 증가 "
                f"{growth_ratio:.2f} [{growth_range[0]:.2f}, {growth_range[1]:.2f}] (번갈아 잰 {rounds}회의 중앙값과 범위, "
                f"{coverage:.0%} 구간); 층당 직렬 단계: LSTM {max(lengths)} 대 {min(lengths)}, Transformer 1 (어텐션은 모든 "
                "위치를 한 번에 봄); 구간 전체가 2 이상(LSTM의 증가가 Transformer의 두 배 이상)이면 성립, 구간 전체가 2 "
                "미만이면 불성립"),
              ratio_verdict(growth_range, 2.0), chance=1.0, interval=growth_range),
        Claim(T("An n-gram model sees only a fixed window: it cannot recall a token beyond it.",
                "n-gram 모델은 고정된 길이의 문맥만 본다: 그 밖의 토큰은 기억하지 못한다."),
              T(f"trigram accuracy: d=1 {accuracy['trigram'][1]:.2f}, d={d_max} {accuracy['trigram'][d_max]:.2f} "
                f"[{trigram_far[0]:.2f}, {trigram_far[1]:.2f}] (chance {chance:.2f}; {TEST_SAMPLES} questions at each distance)",
                f"trigram 정확도: d=1 {accuracy['trigram'][1]:.2f}, d={d_max} {accuracy['trigram'][d_max]:.2f} "
                f"[{trigram_far[0]:.2f}, {trigram_far[1]:.2f}] (우연 수준 {chance:.2f}; 거리마다 질문 {TEST_SAMPLES}개)"),
              accuracy["trigram"][1] > 0.9 and accuracy["trigram"][d_max] < chance + 0.1, chance=chance, interval=trigram_far),
        Claim(T("Long-range dependencies are hard for recurrent models: an LSTM needs more training than a "
                "Transformer to recall a distant token.",
                "순환 모델은 장기 의존성 학습이 어렵다: 먼 토큰을 기억해 내기까지 LSTM은 Transformer보다 더 오래 학습해야 한다."),
              T(f"steps until 90% recall at d={d_max}: LSTM {said(learned_at['LSTM'], recall_steps)}, "
                f"Transformer {said(learned_at['Transformer'], recall_steps)}",
                f"d={d_max}에서 90% 기억까지 걸린 단계: LSTM {said(learned_at['LSTM'], recall_steps, 'ko')}, "
                f"Transformer {said(learned_at['Transformer'], recall_steps, 'ko')}"),
              learned_at["Transformer"] is not None
              and (learned_at["LSTM"] is None or learned_at["Transformer"] < learned_at["LSTM"])),
    ]
    trained_recall = accuracy["LSTM"][d_max]
    gradient_text = T(
        f"The gradient probe in (a) is of initialised networks. Trained on recall for up to {recall_steps} steps "
        f"(recall at d={d_max} {trained_recall:.0%}, chance {chance:.0%}), the LSTM's gradient from the answer to a key "
        f"{d_max} tokens back went from {lstm_gradient['initialised']:.1e} to {lstm_gradient['trained']:.1e} of the "
        "gradient at the question. At initialisation each forget gate is about σ(0) = 0.5, so the cell's error signal "
        "roughly halves at every step; an LSTM learns a long recall by opening the gates along the path the task needs "
        "(the constant error carousel it was designed for), so the probe at initialisation does not say how far a "
        "trained LSTM can reach.",
        f"(a)의 기울기 측정은 초기화 직후 네트워크다. 기억 과제로 최대 {recall_steps}단계 학습하자(d={d_max} 기억 "
        f"{trained_recall:.0%}, 우연 수준 {chance:.0%}) 정답에서 {d_max}토큰 앞 키까지 닿는 LSTM의 기울기가 질문 위치 "
        f"기울기의 {lstm_gradient['initialised']:.1e}배에서 {lstm_gradient['trained']:.1e}배로 바뀌었다. 초기화 직후에는 "
        "망각 게이트가 σ(0) = 0.5 안팎이라 셀의 오차 신호가 한 단계마다 절반쯤으로 줄지만, LSTM은 과제에 필요한 경로의 "
        "게이트를 열어(LSTM이 설계된 목적인 상수 오차 회전목마) 먼 기억을 배운다. 그래서 초기화 직후의 측정은 학습된 "
        "LSTM이 얼마나 멀리 닿는지 말해 주지 않는다.")
    length_table = Table(T(f"Training µs per token, {tokens_per_step} tokens per step cut into sequences of each length",
                           f"단계당 {tokens_per_step}토큰을 길이별 시퀀스로 나눴을 때 토큰당 학습 µs"),
                         ["model", *[f"length {n}" for n in lengths]],
                         [[name, *[round(times[n] * 1e6 / tokens_per_step, 2) for n in lengths]]
                          for name, times in by_length.items()])
    recall_table = Table(T("Recall accuracy by distance (training stops once the farthest key is recalled 90% of the time)",
                           "거리별 기억 정확도 (가장 먼 키를 90% 기억하면 학습을 멈춤)"), ["model", *[f"d={d}" for d in distances]],
                         [[name, *[round(acc[d], 3) for d in distances]] for name, acc in accuracy.items()])
    speed_table = Table(T("Training throughput, same data and parameter count (the Transformer counted without its position "
                          "table, which does no arithmetic)", "같은 데이터·같은 매개변수 수의 학습 처리량 (Transformer는 계산이 없는 위치 "
                          "표를 빼고 셈)"),
                        ["model", "parameters", "tokens/s"],
                        [["Transformer", tf_params, round(speed["Transformer"])],
                         ["LSTM (fused)", lstm_model.num_params(), round(speed["LSTM"])]])
    pace = (f"{speed_ratio:.1f}× faster than" if speed_ratio >= 1 else f"at {speed_ratio:.1f}× the speed of",
            f"{speed_ratio:.1f}배 빨리" if speed_ratio >= 1 else f"{1 / speed_ratio:.1f}배 느리게")
    summary = T(
        f"Over {far} tokens the RNN keeps {relative['RNN']:.0e} of its gradient, the Transformer {relative['Transformer']:.2f}; "
        f"the Transformer trains {pace[0]} an LSTM of equal size and recalls a key {d_max} tokens back "
        f"with {accuracy['Transformer'][d_max]:.0%} accuracy (LSTM {accuracy['LSTM'][d_max]:.0%}, trigram {accuracy['trigram'][d_max]:.0%}).",
        f"{far}토큰을 거슬러 오르면 RNN의 기울기는 {relative['RNN']:.0e}배로, Transformer는 {relative['Transformer']:.2f}배로 줄어든다. "
        f"Transformer는 같은 크기의 LSTM보다 {pace[1]} 학습하고, {d_max}토큰 앞의 키를 "
        f"{accuracy['Transformer'][d_max]:.0%} 정확도로 기억한다(LSTM {accuracy['LSTM'][d_max]:.0%}, trigram {accuracy['trigram'][d_max]:.0%}).",
    )
    summary = T(" ".join(t.en for t in (summary, WHY_LSTM_WINS, gradient_text)),
                " ".join(t.ko for t in (summary, WHY_LSTM_WINS, gradient_text)))
    metrics = {"gradient_ratio_far_over_near": relative, "train_tokens_per_s": speed, "speed_ratio": speed_ratio, "threads": threads,
               "speed_ratio_range": speed_range, "timing_rounds": rounds, "timing_range_coverage": coverage,
               "step_seconds_by_length": by_length, "step_time_growth": growth,
               "growth_ratio": growth_ratio, "growth_ratio_range": growth_range,
               "step_seconds_per_round": {name: {str(n): v for n, v in times.items()} for name, times in timed.items()},
               "recall_lstm_gradient_key_over_query": lstm_gradient,
               "load_average": load,
               "recall_accuracy": {k: {str(d): v for d, v in acc.items()} for k, acc in accuracy.items()},
               "steps_to_90pct_recall": learned_at,
               "seq_len": seq_len, "recall_steps": recall_steps}
    return ChapterResult(summary, claims=claims, tables=[speed_table, length_table, recall_table],
                         figures=[fig_grad, fig_length, fig_recall], metrics=metrics)


CHAPTER = Chapter("1.2", T("The limits of RNNs, measured", "RNN의 한계, 직접 재 보기"), run, rechecks=True,
                  recheck_double=True, timed=True)
