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
# # 2.2 BERT vs GPT · BERT와 GPT
#
# The same Transformer blocks, two jobs. GPT is a causal decoder: each token sees only the past and predicts
# the next. BERT is a bidirectional encoder: it sees both sides and fills in masked tokens (15 % of them:
# 80 % become [MASK], 10 % a random token, 10 % stay). `lm2llm.training.masking` does BERT's masking.
#
# 같은 트랜스포머 블록, 다른 일. GPT는 인과 디코더로, 각 토큰이 과거만 보고 다음을 예측합니다. BERT는 양방향
# 인코더로, 양쪽을 보고 가려진 토큰(15 %: 그중 80 %는 [MASK], 10 %는 임의 토큰, 10 %는 그대로)을 채웁니다.
# `lm2llm.training.masking`이 BERT의 마스킹을 합니다.

# %% tags=["parameters"]
QUICK = True  # quick mode: tiny budgets (CI runs every notebook this way) · 빠른 모드: 작은 예산

# %%
import torch

from lm2llm.models import build_model
from lm2llm.training.masking import mask_tokens

VOCAB, MASK_ID, SPECIAL = 100, 99, {0, 98, 99}
ids = torch.randint(1, 98, (64, 128), generator=torch.Generator().manual_seed(0))
inputs, targets = mask_tokens(ids, mask_id=MASK_ID, vocab_size=VOCAB, special_ids=SPECIAL,
                              generator=torch.Generator().manual_seed(1))
chosen = targets != -100
print(f"chosen {chosen.float().mean():.3f} · of those: [MASK] {(inputs[chosen] == MASK_ID).float().mean():.3f}, "
      f"unchanged {(inputs[chosen] == ids[chosen]).float().mean():.3f}")

# %% [markdown]
# What each can see: change a *later* token and watch whether an earlier position's output moves.
#
# 각각이 보는 범위: *뒤쪽* 토큰을 바꾸고 앞쪽 위치의 출력이 변하는지 봅니다.

# %%
torch.manual_seed(0)
gpt = build_model("gpt", vocab_size=VOCAB, d_model=32, n_head=4, n_layer=2, context_length=16).eval()
bert = build_model("bert", "bert-tiny", vocab_size=VOCAB).eval()
x = torch.randint(1, 98, (1, 16))
y = x.clone()
y[0, -1] = (x[0, -1] + 1) % 98 + 1
with torch.no_grad():
    gpt_moves = (gpt(x)[0][0, 0] - gpt(y)[0][0, 0]).abs().max().item()
    bert_out = bert(x), bert(y)
print("GPT position 0 changes by", gpt_moves)

# %% [markdown]
# **Exercise · 연습.** Check the masking rates (about 15 % chosen, 80 % of those [MASK]), that GPT's first
# position ignores the future, and that BERT's does not.
#
# 마스킹 비율(약 15 % 선택, 그중 80 % [MASK])과, GPT의 첫 위치는 미래를 무시하지만 BERT는 그렇지 않음을
# 확인하세요.

# %%
first = [out[0] if isinstance(out, tuple) else out for out in bert_out]
bert_moves = (first[0][0, 0] - first[1][0, 0]).abs().max().item()
print("BERT position 0 changes by", bert_moves)
assert abs(chosen.float().mean().item() - 0.15) < 0.01 and abs((inputs[chosen] == MASK_ID).float().mean().item() - 0.8) < 0.03
assert gpt_moves == 0 and bert_moves > 0
