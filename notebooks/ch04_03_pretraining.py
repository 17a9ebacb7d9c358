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
# # 4.3 Pre-training · 사전학습
#
# Pre-training is next-token prediction on raw text: the loss is the cross-entropy of the true next token.
# An untrained model over V tokens starts near ln V (a uniform guess). We train a tiny GPT for a few
# seconds on characters of English and Korean text and watch the loss fall below that.
#
# 사전학습은 원문에서 다음 토큰을 예측하는 것입니다: 손실은 실제 다음 토큰의 교차 엔트로피입니다. 토큰 V개를
# 다루는 학습 전 모델은 ln V(균등 추측) 근처에서 시작합니다. 작은 GPT를 영어와 한국어 글자로 몇 초 학습하고
# 손실이 그 아래로 내려가는 것을 봅니다.

# %% tags=["parameters"]
QUICK = True  # quick mode: tiny budgets (CI runs every notebook this way) · 빠른 모드: 작은 예산

# %%
import math

import torch

from lm2llm.data import load_documents
from lm2llm.models import build_model
from lm2llm.tokenizer import CharTokenizer

torch.manual_seed(0)
text = "\n".join(load_documents("python-docs", limit=20) + load_documents("korean-law", limit=2))
tokenizer = CharTokenizer.train([text])
ids = torch.tensor(tokenizer.encode(text))
context, batch, steps = 32, 16, 40 if QUICK else 600
model = build_model("gpt", vocab_size=tokenizer.vocab_size, d_model=64, n_head=4, n_layer=2, context_length=context)
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)


def windows(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    starts = torch.randint(0, len(ids) - context - 1, (batch,), generator=generator)
    rows = torch.stack([ids[s:s + context + 1] for s in starts.tolist()])
    return rows[:, :-1], rows[:, 1:]


generator = torch.Generator().manual_seed(0)
losses = []
for _ in range(steps):
    x, y = windows(generator)
    _, loss = model(x, y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
print(f"vocabulary {tokenizer.vocab_size} characters → uniform guess ln V = {math.log(tokenizer.vocab_size):.2f} nats")
print(f"loss: step 0 {losses[0]:.2f} → step {steps - 1} {sum(losses[-10:]) / 10:.2f} (mean of the last 10)")

# %% [markdown]
# `lm2llm train` does the same with more care (token shards, learning-rate schedule, checkpoints, CPU-time
# budgets); chapter 4.3 compares an n-gram, an LSTM and a GPT on the same budget.
#
# `lm2llm train`은 같은 일을 더 꼼꼼히 합니다(토큰 샤드, 학습률 스케줄, 체크포인트, CPU 시간 예산). 4.3장은
# 같은 예산에서 n-gram, LSTM, GPT를 비교합니다.

# %% [markdown]
# **Exercise · 연습.** Check that the first loss is near ln V (within 0.5 nats) and that training brought
# the loss at least 1 nat below it.
#
# 첫 손실이 ln V 근처(0.5 nat 이내)인지, 그리고 학습이 손실을 그보다 1 nat 이상 낮췄는지 확인하세요.

# %%
uniform = math.log(tokenizer.vocab_size)
assert abs(losses[0] - uniform) < 0.5 and sum(losses[-10:]) / 10 < uniform - 1
