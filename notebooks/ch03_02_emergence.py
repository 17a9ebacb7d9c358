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
# # 3.2 Emergent abilities · 창발 능력
#
# Some abilities seem to appear suddenly with scale. Part of that is the metric: exact match needs *every*
# token of an answer right, so a smooth per-token improvement looks like a jump. Chapter 3.2 trains models
# on the synthetic tasks of `lm2llm.scale.tasks`; here we look at the tasks and at the metric effect.
#
# 어떤 능력은 규모가 커지면 갑자기 나타나는 것처럼 보입니다. 그 일부는 척도 탓입니다: 정확 일치는 답의 *모든*
# 토큰이 맞아야 하므로, 토큰 단위의 매끄러운 향상이 도약처럼 보입니다. 3.2장은 `lm2llm.scale.tasks`의 합성
# 과제로 모델을 학습합니다. 여기서는 과제와 척도 효과를 살펴봅니다.

# %% tags=["parameters"]
QUICK = True  # quick mode: tiny budgets (CI runs every notebook this way) · 빠른 모드: 작은 예산

# %%
import random

from lm2llm.scale import tasks

rng = random.Random(0)
print(tasks.kv_example(rng, shots=3))
for form in ("P", "R", "S"):  # plain, reversed, scratchpad · 그대로, 뒤집기, 풀이 과정
    print(tasks.addition_example(457, 368, form))
print("a perfect copier's accuracy at 0, 2, 8 shots:", [round(tasks.perfect_copier(s), 3) for s in (0, 2, 8)])

# %% [markdown]
# The metric effect: if a model gets each token right with probability p, an answer of L tokens is exactly
# right with probability p^L. A steady rise of p looks like a sudden rise of exact match.
#
# 척도 효과: 모델이 토큰 하나를 확률 p로 맞힌다면 L개 토큰짜리 답이 통째로 맞을 확률은 p^L입니다. p가 꾸준히
# 올라도 정확 일치는 갑자기 오르는 것처럼 보입니다.

# %%
length = len(tasks.addition_answer(457, 368, "S"))
for p in (0.5, 0.8, 0.9, 0.95, 0.99):
    print(f"per-token {p:.2f} → exact match of a {length}-character scratchpad {p ** length:.4f}")

# %% [markdown]
# **Exercise · 연습.** Read the final sum out of a scratchpad and out of a reversed answer with
# `final_answer`, and check both give 457 + 368.
#
# `final_answer`로 풀이 과정과 뒤집힌 답에서 최종 합을 읽어, 둘 다 457 + 368이 되는지 확인하세요.

# %%
scratchpad, reversed_answer = tasks.addition_answer(457, 368, "S"), tasks.addition_answer(457, 368, "R")
print(scratchpad, reversed_answer)
assert tasks.final_answer(scratchpad, "S") == tasks.final_answer(reversed_answer, "R") == str(457 + 368)
