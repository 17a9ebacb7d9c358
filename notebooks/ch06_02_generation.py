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
# # 6.2 Generation · 텍스트 생성
#
# A language model gives a distribution over the next token; decoding picks one. Temperature sharpens or
# flattens the distribution, top-k keeps the k likeliest tokens, top-p (nucleus) the smallest set reaching
# probability p. A KV cache keeps earlier keys and values so each new token costs one step, not a rerun.
#
# 언어 모델은 다음 토큰의 분포를 주고, 디코딩은 그중 하나를 고릅니다. 온도는 분포를 뾰족하게 또는 평평하게
# 만들고, top-k는 가장 그럴듯한 k개를, top-p(nucleus)는 확률 합이 p에 닿는 가장 작은 집합을 남깁니다. KV 캐시는
# 앞의 키와 값을 보관해 새 토큰마다 전체를 다시 계산하지 않고 한 단계만 계산하게 합니다.

# %% tags=["parameters"]
QUICK = True  # quick mode: tiny budgets (CI runs every notebook this way) · 빠른 모드: 작은 예산

# %%
import torch

from lm2llm.inference.sampling import apply_temperature, top_k_filter, top_p_filter

logits = torch.tensor([3.0, 2.0, 1.0, 0.5, 0.0, -1.0])
for t in (0.5, 1.0, 2.0):
    print(f"temperature {t}:", apply_temperature(logits, t).softmax(-1).numpy().round(3))
print("top-k 2:", top_k_filter(logits, 2).softmax(-1).numpy().round(3))
print("top-p 0.9:", top_p_filter(logits, 0.9).softmax(-1).numpy().round(3))

# %% [markdown]
# The KV cache, measured on a small GPT: the time to produce one more token after a long context, with and
# without the cache.
#
# 작은 GPT에서 KV 캐시를 잽니다: 긴 문맥 뒤에 토큰 하나를 더 만드는 시간, 캐시가 있을 때와 없을 때.

# %%
from lm2llm.inference.speed import token_latency_ms
from lm2llm.models import build_model

torch.manual_seed(0)
model = build_model("gpt", vocab_size=256, d_model=128, n_head=4, n_layer=2, context_length=512).eval()
context = 256 if QUICK else 512
with torch.no_grad():
    cached, full = (token_latency_ms(model, context, cached=c) for c in (True, False))
print(f"next token after {context}: {cached:.2f} ms with the cache, {full:.2f} ms recomputing everything")

# %% [markdown]
# **Exercise · 연습.** Check that top-p 0.9 keeps exactly the tokens whose sorted cumulative probability is
# needed to reach 0.9, and that the cache is faster.
#
# top-p 0.9가 정렬한 누적 확률이 0.9에 닿는 데 필요한 토큰만 남기는지, 그리고 캐시가 더 빠른지 확인하세요.

# %%
probs = logits.softmax(-1)
needed = int((probs.cumsum(-1) < 0.9).sum()) + 1  # logits are already sorted · 이미 정렬되어 있음
kept = int(torch.isfinite(top_p_filter(logits, 0.9)).sum())
print(needed, kept)
assert kept == needed and cached < full
