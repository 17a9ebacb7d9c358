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
# # 6.3 Prompting · 프롬프트 엔지니어링
#
# Each prompt technique of `lm2llm.prompting` (zero-shot instruction, few-shot examples, chain of thought, a
# role, a JSON format) is a way to build the conversation a chat model reads. Chapter 6.3 measures what
# each buys in accuracy; here we build them and count what each costs in tokens with SmolLM2's tokenizer.
#
# `lm2llm.prompting`의 각 기법(제로샷 지시, 퓨샷 예시, 사고의 사슬, 역할, JSON 형식)은 채팅 모델이 읽을
# 대화를 만드는 방법입니다. 6.3장은 각 기법이 정확도를 얼마나 올리는지 잽니다. 여기서는 기법별 대화를 만들고
# SmolLM2 토크나이저로 토큰 비용을 셉니다.

# %% tags=["parameters"]
QUICK = True  # quick mode: tiny budgets (CI runs every notebook this way) · 빠른 모드: 작은 예산

# %%
from lm2llm.finetune.tasks import make_suite
from lm2llm.gguf.registry import resolve_run
from lm2llm.prompting.techniques import techniques
from lm2llm.tokenizer import load_tokenizer

tokenizer = load_tokenizer(resolve_run("smollm2-135m-instruct"))
train, test = make_suite(5, 1, tasks=["addition", "korean_to_digits"])
question = test[1].prompt
shots = [(r.prompt, r.answer) for r in train if r.task == test[1].task][:3]
cost = {}
for name, technique in techniques().items():
    messages = technique.messages(question, shots[: technique.shots])
    cost[name] = len(tokenizer.encode(tokenizer.render_text(messages, add_generation_prompt=True)))
    print(f"{name:18s} {cost[name]:4d} tokens · {technique.description}")

# %%
print(tokenizer.render_text(techniques()["few_shot_random"].messages(question, shots), add_generation_prompt=True))

# %% [markdown]
# **Exercise · 연습.** Check that three examples cost more tokens than the plain instruction, and that a
# self-consistency run (several samples) would multiply the *output* cost, not the prompt's.
#
# 예시 세 개가 단순 지시보다 토큰이 많이 드는지, 그리고 자기 일관성(여러 번 샘플링)은 프롬프트가 아니라 *출력*
# 비용을 곱한다는 것을 확인하세요.

# %%
self_consistency = techniques()["self_consistency"]
print(self_consistency.samples, "samples of up to", self_consistency.max_new_tokens, "tokens each")
assert cost["few_shot_random"] > cost["zero_shot"] > cost["bare"]
assert cost["self_consistency"] == cost["chain_of_thought"] and self_consistency.samples > 1
