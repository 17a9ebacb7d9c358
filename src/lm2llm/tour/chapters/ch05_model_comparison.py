"""Chapter 5, comparing the major LLMs: what can be counted, and what was never published.

Models with a published architecture (PaLM, LLaMA 2, SOLAR, Mistral) are counted on the meta device;
the others (GPT-3.5, GPT-4, Gemini, HyperCLOVA X) are listed with what their makers made public, marked
as unpublished rather than filled in with guesses.
"""

from __future__ import annotations

from lm2llm.models.accounting import param_report
from lm2llm.models.presets import CATALOG, PRESETS
from lm2llm.tour.framework import Chapter, ChapterContext, ChapterResult, T, Table, demonstration

COUNTED = ["palm-540b", "llama2-7b", "llama2-13b", "llama2-70b", "mistral-7b", "solar-10.7b", "llama3-8b"]


def kv_cache_bytes_per_token(config: dict, kv_heads: int | None = None) -> int:
    """bf16 keys and values kept per generated token, all layers: where GQA/MQA pay off at inference."""
    return 2 * config["n_layer"] * (kv_heads or config["n_kv_head"]) * config["head_dim"] * 2


def run(ctx: ChapterContext) -> ChapterResult:
    reports = {name: param_report(name) for name in COUNTED}
    ctx.progress(1, 1)
    rows = []
    for name, r in reports.items():
        c = r.config
        attention = "MQA" if c["n_kv_head"] == 1 else ("GQA" if c["n_kv_head"] < c["n_head"] else "MHA")
        rows.append([name, PRESETS[name].year, f"{r.total:,}", r.stated_params, c["n_layer"], c["d_model"],
                     f"{attention} ({c['n_head']}/{c['n_kv_head']})", c["context_length"],
                     f"{kv_cache_bytes_per_token(c) / 1024:,.0f}", "yes"])
    for entry in CATALOG:
        rows.append([entry.name, entry.year, "not published", "; ".join(entry.unconfirmed) or "—", "—", "—", "—", "—", "—",
                     "no"])
    table = Table(T("Major LLMs: counted where the architecture is published", "주요 LLM: 구조가 공개된 모델은 직접 센 값"),
                  ["model", "year", "parameters", "stated", "layers", "width", "attention (heads/kv)", "context",
                   "KV cache KiB/token (bf16)", "architecture published"], rows)
    facts = Table(T("What is public about the unpublished models", "구조가 공개되지 않은 모델에 대해 알려진 것"),
                  ["model", "maker", "public", "unconfirmed"],
                  [[e.name, e.maker, " · ".join(e.public_facts), " · ".join(e.unconfirmed) or "—"] for e in CATALOG])

    palm, solar, mistral = reports["palm-540b"], reports["solar-10.7b"], reports["mistral-7b"]
    llama70 = reports["llama2-70b"]
    depth_ratio = solar.non_embedding / mistral.non_embedding
    gqa_saving = 1 - kv_cache_bytes_per_token(llama70.config) / kv_cache_bytes_per_token(
        llama70.config, kv_heads=llama70.config["n_head"])
    claims = [
        demonstration(T("PaLM has 540B parameters.", "PaLM의 매개변수는 540B개다."),
              T(f"counted from the published configuration: {palm.total:,}", f"공개된 구성에서 센 값: {palm.total:,}"),
              abs(palm.total / 540e9 - 1) < 0.01),
        demonstration(T("LLaMA 2 reaches its results with a comparatively small size.",
                "LLaMA 2는 비교적 작은 크기로 성능을 낸다."),
              T(f"the largest LLaMA 2 has {llama70.total / palm.total:.1%} of PaLM's parameters",
                f"가장 큰 LLaMA 2도 PaLM 매개변수의 {llama70.total / palm.total:.1%}"),
              llama70.total < palm.total / 5),
        demonstration(T("SOLAR 10.7B is a depth-up-scaled 7B model: the same layers, stacked deeper.",
                "SOLAR 10.7B는 7B 모델의 층을 더 깊게 쌓은(depth up-scaling) 모델이다."),
              T(f"{solar.config['n_layer']} layers of Mistral-7B's shape ({mistral.config['n_layer']}); "
                f"non-embedding parameters {depth_ratio:.3f}× Mistral-7B's; total {solar.total:,}",
                f"Mistral-7B와 같은 모양의 층 {solar.config['n_layer']}개({mistral.config['n_layer']}개 대비); "
                f"임베딩 외 매개변수 {depth_ratio:.3f}배; 전체 {solar.total:,}"),
              abs(depth_ratio - solar.config["n_layer"] / mistral.config["n_layer"]) < 0.01),
    ]
    summary = T(
        f"{len(COUNTED)} models counted from their published configurations (PaLM {palm.total / 1e9:.1f}B, "
        f"LLaMA-2-70B {llama70.total / 1e9:.1f}B, SOLAR {solar.total / 1e9:.1f}B); {len(CATALOG)} listed as unpublished. "
        f"Grouped-query attention cuts LLaMA-2-70B's KV cache by {gqa_saving:.0%}.",
        f"공개된 구성에서 {len(COUNTED)}개 모델을 셌다(PaLM {palm.total / 1e9:.1f}B, LLaMA-2-70B {llama70.total / 1e9:.1f}B, "
        f"SOLAR {solar.total / 1e9:.1f}B). {len(CATALOG)}개는 구조 비공개로 표시했다. "
        f"GQA는 LLaMA-2-70B의 KV 캐시를 {gqa_saving:.0%} 줄인다.",
    )
    metrics = {"counted": {n: r.total for n, r in reports.items()}, "unpublished": [e.name for e in CATALOG],
               "gqa_kv_saving_llama2_70b": gqa_saving}
    return ChapterResult(summary, claims=claims, tables=[table, facts], metrics=metrics)


CHAPTER = Chapter("5", T("Comparing the major LLMs", "주요 LLM 비교"), run)
