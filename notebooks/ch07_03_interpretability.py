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
# # 7.3 Interpretability · 해석 가능성
#
# The logit lens reads the residual stream after each layer through the model's final norm and output
# head: "what would the model say if it stopped here?". We run SmolLM2-135M-Instruct once with forward hooks
# (`lm2llm.interpret.run_with_cache`) and follow the answer to "The capital of France is" layer by layer.
#
# 로짓 렌즈는 각 층 뒤의 잔차 스트림을 모델의 마지막 정규화와 출력 헤드에 통과시켜 읽습니다: "여기서 멈추면 모델은
# 무엇이라 말할까?". SmolLM2-135M-Instruct를 순전파 훅(`lm2llm.interpret.run_with_cache`)과 함께 한 번 돌리고,
# "The capital of France is"의 답을 층마다 따라갑니다.

# %% tags=["parameters"]
QUICK = True  # quick mode: tiny budgets (CI runs every notebook this way) · 빠른 모드: 작은 예산

# %%
import torch

from lm2llm.gguf.registry import resolve_run
from lm2llm.interpret import run_with_cache
from lm2llm.interpret.logit_lens import lens_report
from lm2llm.models import load_model
from lm2llm.tokenizer import load_tokenizer

run = resolve_run("smollm2-135m-instruct")
model, tokenizer = load_model(run).eval(), load_tokenizer(run)
with torch.no_grad():
    trace = run_with_cache(model, torch.tensor([tokenizer.encode("The capital of France is")]))
    report = lens_report(model, trace)
print("answer:", repr(tokenizer.decode([report.answer_id])))
for layer, (rank, prob) in enumerate(zip(report.answer_rank, report.answer_prob, strict=True)):
    if layer % 5 == 0 or layer == len(report.answer_rank) - 1:
        print(f"after layer {layer:2d}: rank {rank:6d} · probability {prob:.3f}")

# %% [markdown]
# **Exercise · 연습.** Find the first layer where the answer is the lens's top token (rank 0), and check
# that the early layers do not have it yet.
#
# 답이 렌즈의 1위 토큰(순위 0)이 되는 첫 층을 찾고, 초기 층에서는 아직 아님을 확인하세요.

# %%
first = next(layer for layer, rank in enumerate(report.answer_rank) if rank == 0)
print("first layer with the answer on top:", first, "of", len(report.answer_rank) - 1)
assert report.answer_rank[0] > 0 and report.answer_rank[-1] == 0 and first > len(report.answer_rank) // 2
