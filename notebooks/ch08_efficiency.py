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
# # 8. Efficiency: quantization and pruning · 효율: 양자화와 가지치기
#
# Quantization stores weights in fewer bits: int8 with one scale per output channel, or int4 with a scale
# and a zero point per group of 32 weights. Pruning sets weights to zero. `lm2llm.compress` implements both;
# here we measure what each costs on a random weight matrix and on a tiny GPT's output.
#
# 양자화는 가중치를 더 적은 비트로 저장합니다: 출력 채널마다 스케일 하나를 둔 int8, 또는 가중치 32개 묶음마다
# 스케일과 영점을 둔 int4. 가지치기는 가중치를 0으로 만듭니다. `lm2llm.compress`가 둘 다 구현하며, 여기서는
# 임의의 가중치 행렬과 작은 GPT의 출력에서 각각의 비용을 잽니다.

# %% tags=["parameters"]
QUICK = True  # quick mode: tiny budgets (CI runs every notebook this way) · 빠른 모드: 작은 예산

# %%
import copy

import torch

from lm2llm.compress.prune import Sparsity, magnitude
from lm2llm.compress.weight_only import round_trip, round_trip_linears
from lm2llm.models import build_model

torch.manual_seed(0)
weight = torch.randn(256, 256)
for kind in ("int8", "int4"):
    error = (round_trip(weight, kind) - weight).abs().mean() / weight.abs().mean()
    print(f"{kind}: mean relative error {error:.4f}")
pruned = magnitude(weight, Sparsity.parse("2:4"))  # 2 of every 4 weights zero · 4개 중 2개를 0으로
print(f"2:4 magnitude pruning: {(pruned == 0).float().mean():.0%} zeros, "
      f"mean relative error {(pruned - weight).abs().mean() / weight.abs().mean():.3f}")

# %% [markdown]
# What matters is the model's output, not the weights: compare the next-token distributions of a tiny GPT
# before and after int8 and int4 (KL divergence, the measure llama.cpp reports for quantized files).
#
# 중요한 것은 가중치가 아니라 모델의 출력입니다: 작은 GPT의 다음 토큰 분포를 int8, int4 전후로 비교합니다
# (KL 발산, llama.cpp가 양자화 파일에 보고하는 척도).

# %%
model = build_model("gpt", "gpt-tiny", vocab_size=256).eval()
ids = torch.randint(0, 256, (4, 32))
with torch.no_grad():
    reference = model(ids)[0].log_softmax(-1)
    kl = {}
    for kind in ("int8", "int4"):
        quantized = round_trip_linears(copy.deepcopy(model), kind)
        logp = quantized(ids)[0].log_softmax(-1)
        kl[kind] = (reference.exp() * (reference - logp)).sum(-1).mean().item()
print(kl)

# %% [markdown]
# **Exercise · 연습.** Fewer bits should cost more: check that int4's KL is larger than int8's.
#
# 비트가 적을수록 비용이 커야 합니다: int4의 KL이 int8보다 큰지 확인하세요.

# %%
assert 0 <= kl["int8"] < kl["int4"]
