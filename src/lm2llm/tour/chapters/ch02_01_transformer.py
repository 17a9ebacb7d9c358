"""Chapter 2.1, the Transformer: why it needs positional encodings, and what its attention looks at.

1. Self-attention alone is order-blind: permuting the tokens only permutes its outputs (measured).
2. RoPE makes a query–key score depend only on their distance (measured).
3. Ablation: the same small decoder trained on the same English + Korean characters with the same budget,
   with no positions, learned, sinusoidal and rotary positions.
4. Attention heat maps of the trained model on an English and a Korean sentence.
"""

from __future__ import annotations

import numpy as np
import torch

from lm2llm.data import load_documents
from lm2llm.models import build_model
from lm2llm.models.attention import Attention, apply_rope
from lm2llm.models.positions import POSITIONAL_KINDS, rope_cos_sin
from lm2llm.tokenizer import CharTokenizer
from lm2llm.tour.framework import Chapter, ChapterContext, ChapterResult, Claim, T, Table
from lm2llm.tour.minitrain import train_briefly
from lm2llm.tour.plots import plt

SENTENCES = {"en": "The function returns a list.", "ko": "함수는 목록을 돌려준다."}


def bilingual_ids(chars_per_language: int) -> tuple[CharTokenizer, torch.Tensor]:
    """English Python docs and Korean law text, cut to equal character budgets and interleaved by paragraph."""
    english = "\n\n".join(load_documents("python-docs", limit=40))[:chars_per_language]
    korean = "\n\n".join(load_documents("korean-law", limit=4))[:chars_per_language]
    paragraphs = [p for pair in zip(english.split("\n\n"), korean.split("\n\n"), strict=False) for p in pair]
    text = "\n\n".join(paragraphs)
    tokenizer = CharTokenizer.train([text, *SENTENCES.values()], min_count=3)
    return tokenizer, torch.tensor(tokenizer.encode(text), dtype=torch.long)


def order_blindness_gap() -> float:
    """Largest difference between attention(permuted x) and permuted attention(x), without positions or mask."""
    torch.manual_seed(0)
    attn = Attention(32, 4, 4, 8, bias=True).eval()
    x = torch.randn(1, 10, 32)
    perm = torch.randperm(10)
    with torch.no_grad():
        return (attn(x[:, perm], allowed=None) - attn(x, allowed=None)[:, perm]).abs().max().item()


def rope_shift_gap(head_dim: int = 16) -> float:
    """RoPE: the score of a query at m and a key at n equals the score at m+s and n+s (largest difference)."""
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 1, head_dim), torch.randn(1, 1, 1, head_dim)

    def score(m: int, n: int) -> float:
        cos_m, sin_m = rope_cos_sin(torch.tensor([[m]]), head_dim)
        cos_n, sin_n = rope_cos_sin(torch.tensor([[n]]), head_dim)
        return (apply_rope(q, cos_m, sin_m) * apply_rope(k, cos_n, sin_n)).sum().item()

    return max(abs(score(m, n) - score(m + s, n + s)) for m, n in ((5, 2), (9, 0), (3, 3)) for s in (1, 17, 100))


def window_sampler(ids: torch.Tensor, context: int, batch: int, seed: int):
    generator = torch.Generator().manual_seed(seed)

    def next_batch() -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.randint(0, len(ids) - context - 1, (batch,), generator=generator)
        rows = torch.stack([ids[s:s + context + 1] for s in starts.tolist()])
        return rows[:, :-1], rows[:, 1:]

    return next_batch


@torch.no_grad()
def mean_loss(model: torch.nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    return float(np.mean([model(x, y)[1].item() for x, y in batches]))


def train_variant(kind: str, vocab_size: int, train_ids: torch.Tensor, val_batches: list, context: int, batch: int,
                  steps: int) -> tuple[list[float], float, torch.nn.Module]:
    """The ablation's decoder with `kind` positions, trained `steps` steps: (training losses, validation loss,
    model). Every variant starts from the same seed, so they share the initial weights of all they have in common."""
    torch.manual_seed(0)
    model = build_model("gpt", vocab_size=vocab_size, context_length=context, n_layer=2, d_model=64, n_head=4,
                        positional=kind)
    curve = train_briefly(model, window_sampler(train_ids, context, batch, seed=0), steps, lr=3e-3)
    return curve, mean_loss(model, val_batches), model


def run(ctx: ChapterContext) -> ChapterResult:
    quick = ctx.quick
    # quick: smaller batches but more steps (the same model); at 80 steps of 32 the gap between positions
    # and none was 0.01 nats, at 140 steps of 12 it is ~0.1 for less compute
    context = 32
    batch, steps = (12, ctx.steps(140)) if quick else (32, ctx.steps(400))
    tokenizer, ids = bilingual_ids(12_000 if quick else 60_000)
    split = int(0.9 * len(ids))
    train_ids, val_ids = ids[:split], ids[split:]
    val_next = window_sampler(val_ids, context, 32, seed=123)  # 32 windows a batch, whatever the training batch
    val_batches = [val_next() for _ in range(8 if quick else 16)]

    # the four variants are independent: in full mode they train two at a time, one per core (`ctx.in_parallel`)
    trained = ctx.in_parallel(train_variant, [(kind, tokenizer.vocab_size, train_ids, val_batches, context, batch, steps)
                                              for kind in POSITIONAL_KINDS])
    curves = {kind: curve for kind, (curve, _, _) in zip(POSITIONAL_KINDS, trained, strict=True)}
    losses = {kind: loss for kind, (_, loss, _) in zip(POSITIONAL_KINDS, trained, strict=True)}
    models = {kind: model for kind, (_, _, model) in zip(POSITIONAL_KINDS, trained, strict=True)}
    ctx.progress(len(POSITIONAL_KINDS), len(POSITIONAL_KINDS) + 1)

    fig, ax = plt.subplots(figsize=(6, 3.4))
    window = max(1, steps // 15)
    for kind, curve in curves.items():
        smooth = np.convolve(curve, np.ones(window) / window, mode="valid")
        ax.plot(np.arange(len(smooth)) + window, smooth, label=f"{kind} (val {losses[kind]:.3f})")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (nats/char)")
    ax.legend()
    fig_ablation = ctx.save_figure(fig, "pe_ablation", T("Positional-encoding ablation: same data, same budget",
                                                          "위치 인코딩 비교: 같은 데이터, 같은 학습량"))

    best_kind = min((k for k in POSITIONAL_KINDS if k != "none"), key=losses.get)
    heat_model = models[best_kind]
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, (lang, sentence) in zip(axes, SENTENCES.items(), strict=True):
        sentence_ids = torch.tensor([tokenizer.encode(sentence)])
        weights = heat_model.attention_maps(sentence_ids)[-1][0].mean(0).numpy()  # last layer, mean over heads
        ax.imshow(weights, cmap="viridis")
        labels = [ch if ch != " " else "␣" for ch in sentence]
        ax.set_xticks(range(len(labels)), labels, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_title(f"{lang}: query (row) → key (column)")
    fig_heat = ctx.save_figure(fig, "attention_heatmaps",
                               T(f"Last-layer attention, mean over heads ({best_kind} positions)",
                                 f"마지막 층 어텐션, 헤드 평균 ({best_kind} 위치 인코딩)"))
    ctx.progress(len(POSITIONAL_KINDS) + 1, len(POSITIONAL_KINDS) + 1)

    blind_gap, rope_gap = order_blindness_gap(), rope_shift_gap()
    with_positions = min(losses[k] for k in POSITIONAL_KINDS if k != "none")
    claims = [
        Claim(T("Self-attention by itself ignores word order, so the Transformer needs positional encodings.",
                "Self-Attention 자체는 단어 순서를 보지 못하므로 Transformer에는 위치 인코딩이 필요하다."),
              T(f"shuffling the input shuffles the output the same way: largest difference {blind_gap:.1e}",
                f"입력을 섞으면 출력도 똑같이 섞일 뿐이다: 최대 차이 {blind_gap:.1e}"),
              blind_gap < 1e-5),
        Claim(T("Adding position information lowers the loss of the same model on the same data and budget.",
                "위치 정보를 더하면 같은 데이터·같은 학습량에서 같은 모델의 손실이 낮아진다."),
              T(f"validation loss: none {losses['none']:.3f}, best with positions ({best_kind}) {with_positions:.3f}",
                f"검증 손실: 없음 {losses['none']:.3f}, 위치 정보가 있는 최선({best_kind}) {with_positions:.3f}"),
              with_positions < losses["none"]),
        Claim(T("Rotary embeddings encode relative position: a query–key score depends only on their distance.",
                "회전 위치 임베딩은 상대 위치를 담는다: 쿼리–키 점수는 둘의 거리에만 달려 있다."),
              T(f"shifting both positions changes the score by at most {rope_gap:.1e}",
                f"두 위치를 함께 옮겨도 점수 변화는 최대 {rope_gap:.1e}"),
              rope_gap < 1e-4),
    ]
    table = Table(T("Validation loss by positional encoding", "위치 인코딩별 검증 손실"),
                  ["positional encoding", "parameters", "validation loss (nats/char)"],
                  [[k, models[k].num_params(), round(losses[k], 4)] for k in POSITIONAL_KINDS])
    summary = T(
        f"Without positions the model reaches {losses['none']:.3f} nats/char; with {best_kind} positions "
        f"{with_positions:.3f} after {steps} steps on English and Korean text ({tokenizer.vocab_size} characters).",
        f"위치 정보 없이 {losses['none']:.3f} nats/글자, {best_kind} 위치 인코딩으로 {with_positions:.3f} "
        f"(영어·한국어 글 {steps}단계 학습, 글자 {tokenizer.vocab_size}종).",
    )
    metrics = {"val_loss": losses, "steps": steps, "vocab_size": tokenizer.vocab_size,
               "order_blindness_gap": blind_gap, "rope_shift_gap": rope_gap}
    return ChapterResult(summary, claims=claims, tables=[table], figures=[fig_ablation, fig_heat], metrics=metrics)


CHAPTER = Chapter("2.1", T("The Transformer: attention and positions", "Transformer: 어텐션과 위치 정보"), run,
                  rechecks=True, recheck_double=True)
