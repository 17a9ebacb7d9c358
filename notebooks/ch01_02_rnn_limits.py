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
# # 1.2 The limits of recurrent models · 순환 모델의 한계
#
# An RNN carries everything it read in one hidden state, updated token by token. The loss at the last token
# must send its gradient back through every step, and it fades on the way (vanishing gradients). A
# Transformer connects the last token to every earlier one directly. We measure how much gradient reaches
# a token d positions back in freshly built models (`lm2llm.models.build_model`).
#
# RNN은 읽은 모든 것을 하나의 은닉 상태에 담아 토큰마다 갱신합니다. 마지막 토큰의 손실 기울기는 모든 단계를
# 거슬러 돌아가야 하고, 그 사이에 사라집니다(기울기 소실). 트랜스포머는 마지막 토큰을 앞의 모든 토큰에 직접
# 잇습니다. 새로 만든 모델에서 d칸 앞 토큰까지 기울기가 얼마나 닿는지 잽니다.

# %% tags=["parameters"]
QUICK = True  # quick mode: tiny budgets (CI runs every notebook this way) · 빠른 모드: 작은 예산

# %%
import torch

from lm2llm.models import build_model
from lm2llm.tour.chapters.ch01_02_rnn_limits import VOCAB, gradient_by_distance

torch.manual_seed(0)
seq_len, width = (32, 32) if QUICK else (128, 64)
models = {
    "RNN": build_model("rnn", vocab_size=VOCAB, d_embed=width, d_hidden=width),
    "LSTM": build_model("lstm", vocab_size=VOCAB, d_embed=width, d_hidden=width),
    "Transformer": build_model("gpt", vocab_size=VOCAB, d_model=width, n_head=4, n_layer=2, context_length=seq_len),
}
reach = {name: gradient_by_distance(model, seq_len) for name, model in models.items()}
for name, norms in reach.items():
    print(f"{name:12s} gradient at distance 1: {norms[1]:.2e} · at distance {seq_len - 1}: {norms[-1]:.2e} "
          f"· ratio {norms[-1] / norms[1]:.1e}")

# %% [markdown]
# **Exercise · 연습.** Check the measurement says what the text claims: the far/near gradient ratio of the
# Elman RNN is much smaller than the Transformer's.
#
# 측정이 본문의 주장대로인지 확인하세요: 엘만 RNN의 먼 곳/가까운 곳 기울기 비율이 트랜스포머보다 훨씬 작습니다.

# %%
ratio = {name: norms[-1] / norms[1] for name, norms in reach.items()}
print(ratio)
assert ratio["RNN"] < 0.01 * ratio["Transformer"]
