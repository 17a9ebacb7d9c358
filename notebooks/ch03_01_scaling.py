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
# # 3.1 Scaling · 스케일링
#
# How big are the GPTs really? `param_report` builds each published configuration on PyTorch's meta device
# (no memory is used) and counts its parameters, then derives the training compute 6·N·D and
# Chinchilla's compute-optimal number of tokens (about 20 per parameter).
#
# GPT들은 실제로 얼마나 클까요? `param_report`는 공개된 구성을 PyTorch의 meta 장치(메모리를 쓰지 않음)에
# 만들어 파라미터를 세고, 학습 연산량 6·N·D와 Chinchilla의 연산 최적 토큰 수(파라미터당 약 20개)를 구합니다.

# %% tags=["parameters"]
QUICK = True  # quick mode: tiny budgets (CI runs every notebook this way) · 빠른 모드: 작은 예산

# %%
from lm2llm.models.accounting import param_report

for name in ["gpt-1", "gpt2-small", "gpt2-xl"] if QUICK else ["gpt-1", "gpt2-small", "gpt2-medium",
                                                                           "gpt2-large", "gpt2-xl", "gpt3-1.3b", "gpt3-175b"]:
    report = param_report(name)
    print(f"{name:12s} {report.total / 1e6:10,.1f} M parameters (stated: {report.stated_params}) · "
          f"Chinchilla tokens {report.chinchilla_tokens:.2e} · 6ND {report.train_flops_6nd:.2e} FLOPs")

# %% [markdown]
# **Exercise · 연습.** GPT-3 175B was trained on about 300 billion tokens. Compute 6·N·D yourself and
# compare it with the report's figure for those tokens (≈ 3.1·10²³ FLOPs in the paper).
#
# GPT-3 175B는 약 3,000억 토큰으로 학습했습니다. 6·N·D를 직접 계산해 그 토큰 수로 만든 보고서 값과
# 비교하세요 (논문 값 ≈ 3.1·10²³ FLOPs).

# %%
gpt3 = param_report("gpt3-175b", tokens=300e9)
mine = 6 * gpt3.total * 300e9
print(f"{mine:.3e} vs {gpt3.train_flops_6nd:.3e}")
assert abs(mine / gpt3.train_flops_6nd - 1) < 1e-9 and 2.9e23 < mine < 3.3e23
