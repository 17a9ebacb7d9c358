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
# # 2.1 The Transformer · 트랜스포머
#
# Self-attention mixes every token with every other, weighted by how well a query matches a key. Alone it
# cannot tell order apart; positions (here RoPE, rotary embeddings) fix that. We check both with
# `lm2llm.models.attention`.
#
# 셀프 어텐션은 쿼리와 키가 얼마나 맞는지에 따라 모든 토큰을 서로 섞습니다. 그것만으로는 순서를 구별하지
# 못하며, 위치 정보(여기서는 RoPE, 회전 위치 임베딩)가 이를 해결합니다. `lm2llm.models.attention`으로 둘 다
# 확인합니다.

# %% tags=["parameters"]
QUICK = True  # quick mode: tiny budgets (CI runs every notebook this way) · 빠른 모드: 작은 예산

# %%
import torch

from lm2llm.models.attention import Attention, apply_rope, sdpa_reference
from lm2llm.models.positions import rope_cos_sin

torch.manual_seed(0)
attention = Attention(d_model=32, n_head=4, n_kv_head=4, head_dim=8, bias=True).eval()
x = torch.randn(1, 10, 32)
perm = torch.randperm(10)
with torch.no_grad():
    gap = (attention(x[:, perm], allowed=None) - attention(x, allowed=None)[:, perm]).abs().max().item()
print(f"permute the input, and the output is the same rows permuted (largest difference {gap:.1e})")

# %% [markdown]
# The attention weights themselves: softmax(QKᵀ/√d) with a causal mask (a token may not look ahead), so
# every row sums to 1 and the upper triangle is 0.
#
# 어텐션 가중치 자체: 인과 마스크(앞을 볼 수 없음)를 씌운 softmax(QKᵀ/√d)라서 각 행의 합은 1이고 위쪽
# 삼각형은 0입니다.

# %%
q, k, v = (torch.randn(1, 1, 5, 8) for _ in range(3))
_, weights = sdpa_reference(q, k, v, causal=True)
print(weights[0, 0].numpy().round(2))

# %% [markdown]
# **Exercise · 연습.** RoPE turns each query and key by an angle proportional to its position, so their
# score depends only on the distance m − n. Check that shifting both positions by s leaves the score equal.
#
# RoPE는 쿼리와 키를 위치에 비례하는 각도로 돌리므로 점수가 거리 m − n에만 달려 있습니다. 두 위치를 s만큼
# 옮겨도 점수가 같은지 확인하세요.

# %%
head_dim = 16
qv, kv = torch.randn(1, 1, 1, head_dim), torch.randn(1, 1, 1, head_dim)


def score(m: int, n: int) -> float:
    rotated_q = apply_rope(qv, *rope_cos_sin(torch.tensor([[m]]), head_dim))
    rotated_k = apply_rope(kv, *rope_cos_sin(torch.tensor([[n]]), head_dim))
    return (rotated_q * rotated_k).sum().item()


print(score(5, 2), score(105, 102), score(5, 4))
assert abs(score(5, 2) - score(105, 102)) < 1e-4
assert abs(score(5, 2) - score(5, 4)) > 1e-4  # a different distance gives a different score · 거리가 다르면 점수도 다름
assert torch.allclose(weights.sum(-1), torch.ones(1, 1, 5)) and gap < 1e-5
