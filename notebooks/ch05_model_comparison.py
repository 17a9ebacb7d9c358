# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 5. Comparing the major LLMs · 주요 LLM 비교
#
# Some makers publish their architecture (LLaMA 2, Mistral, SOLAR, PaLM): those we can count. Others
# (GPT-4, Gemini, HyperCLOVA X) did not: the catalog lists only what their makers said.
#
# 구조를 공개한 모델(LLaMA 2, Mistral, SOLAR, PaLM)은 직접 셀 수 있습니다. 공개하지 않은 모델(GPT-4,
# Gemini, HyperCLOVA X)은 만든 곳이 밝힌 내용만 목록에 적습니다.

# %% tags=["parameters"]
QUICK = True  # quick mode: tiny budgets (CI runs every notebook this way) · 빠른 모드: 작은 예산

# %%
from lm2llm.models.accounting import param_report
from lm2llm.models.presets import CATALOG

published = ["llama2-7b", "mistral-7b", "solar-10.7b"] + ([] if QUICK else ["llama2-70b", "palm-540b"])
reports = {name: param_report(name) for name in published}
for name, report in reports.items():
    config = report.config
    print(f"{name:12s} {report.total / 1e9:6.2f} B · layers {config['n_layer']} · d_model {config['d_model']} · "
          f"heads {config['n_head']}/{config.get('n_kv_head', config['n_head'])} (query/key-value)")
for entry in CATALOG:
    print(f"{entry.name:14s} {entry.maker:10s} architecture published: {entry.architecture_published}")

# %% [markdown]
# **Exercise · 연습.** Mistral 7B uses grouped-query attention (8 key-value heads for 32 query heads), so
# its KV cache per token is 4× smaller than LLaMA 2 7B's. Compute both from the configs:
# 2 (K and V) · layers · kv_heads · head_dim · 2 bytes (fp16).
#
# Mistral 7B는 GQA(쿼리 헤드 32개에 키-값 헤드 8개)를 써서 토큰당 KV 캐시가 LLaMA 2 7B의 4분의 1입니다.
# 구성에서 둘 다 계산하세요: 2(K와 V) · 층 수 · kv 헤드 수 · 헤드 차원 · 2바이트(fp16).

# %%
def kv_bytes_per_token(config: dict) -> int:
    head_dim = config["d_model"] // config["n_head"]
    return 2 * config["n_layer"] * config.get("n_kv_head", config["n_head"]) * head_dim * 2


llama, mistral = (kv_bytes_per_token(reports[n].config) for n in ("llama2-7b", "mistral-7b"))
print(f"LLaMA 2 7B {llama / 1024:.0f} KiB/token · Mistral 7B {mistral / 1024:.0f} KiB/token")
assert llama == 4 * mistral
