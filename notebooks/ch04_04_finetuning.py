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
# # 4.4 Fine-tuning · 파인튜닝
#
# Supervised fine-tuning (SFT) teaches a pre-trained model the chat format: conversations are rendered with
# role tokens, and the loss counts only the assistant's tokens. LoRA trains small low-rank adapters
# instead of every weight. Both pieces below come from `lm2llm.tokenizer` and `lm2llm.models.lora`.
#
# 지도 파인튜닝(SFT)은 사전학습 모델에 대화 형식을 가르칩니다: 대화를 역할 토큰과 함께 펼치고, 손실은 어시스턴트의
# 토큰만 셉니다. LoRA는 모든 가중치 대신 작은 저랭크 어댑터만 학습합니다. 아래 두 부품은 `lm2llm.tokenizer`와
# `lm2llm.models.lora`에서 옵니다.

# %% tags=["parameters"]
QUICK = True  # quick mode: tiny budgets (CI runs every notebook this way) · 빠른 모드: 작은 예산

# %%
from lm2llm.data import load_documents
from lm2llm.models import build_model
from lm2llm.models.lora import LoraConfig, add_lora
from lm2llm.tokenizer import BPETokenizer

tokenizer = BPETokenizer.train(load_documents("python-docs", limit=20) + load_documents("korean-law"), 1000)
conversation = [{"role": "user", "content": "한국의 수도는?"}, {"role": "assistant", "content": "서울입니다."}]
ids, mask = tokenizer.render_chat(conversation)
print("the model reads:  ", tokenizer.render_text(conversation))
print("the loss counts:  ", repr(tokenizer.decode([i for i, learn in zip(ids, mask, strict=True) if learn])),
      f"({sum(mask)} of {len(ids)} tokens)")

# %% [markdown]
# Only the assistant's answer and its end-of-turn token carry loss: the model learns to answer, not to
# imitate the user.
#
# 손실은 어시스턴트의 답과 턴 끝 토큰에만 걸립니다: 모델은 사용자를 흉내 내는 것이 아니라 답하는 법을 배웁니다.

# %%
model = build_model("gpt", "gpt-small", vocab_size=tokenizer.vocab_size)
total = sum(p.numel() for p in model.parameters())
wrapped = add_lora(model, LoraConfig(r=8, alpha=16, targets=["q_proj", "v_proj"]))
trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
print(f"{len(wrapped)} layers got adapters; trainable {trainable:,} of {total:,} ({trainable / total:.2%})")

# %% [markdown]
# **Exercise · 연습.** A rank-r adapter on a d_in → d_out layer adds r·(d_in + d_out) parameters. Check the
# count above with that formula.
#
# d_in → d_out 층의 랭크 r 어댑터는 r·(d_in + d_out)개의 파라미터를 더합니다. 위의 수를 이 공식으로 확인하세요.

# %%
d_model = model.config.d_model
expected = len(wrapped) * 8 * (d_model + d_model)
print(expected, trainable)
assert trainable == expected and sum(mask) < len(mask)
