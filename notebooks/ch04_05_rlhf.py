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
# # 4.5 RLHF: reward models, PPO and DPO · RLHF: 보상 모델, PPO, DPO
#
# Preference tuning starts from pairs (a chosen and a rejected answer). A reward model learns to score the
# chosen one higher (the Bradley–Terry loss); DPO skips the reward model and pushes the policy's log-ratio
# against a frozen reference apart. Both losses are in `lm2llm.align.losses`, tested against TRL.
#
# 선호 학습은 (선택된 답, 거절된 답) 쌍에서 시작합니다. 보상 모델은 선택된 답에 더 높은 점수를 주도록 배우고
# (Bradley–Terry 손실), DPO는 보상 모델 없이 고정된 기준 모델 대비 정책의 로그 비율을 벌립니다. 두 손실 모두
# `lm2llm.align.losses`에 있고 TRL과 같은 값임을 테스트합니다.

# %% tags=["parameters"]
QUICK = True  # quick mode: tiny budgets (CI runs every notebook this way) · 빠른 모드: 작은 예산

# %%
import torch

from lm2llm.align.losses import bradley_terry_losses, dpo_loss, pairwise_accuracy

chosen_rewards, rejected_rewards = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([1.0, 0.7, -3.0])
print("Bradley-Terry losses", bradley_terry_losses(chosen_rewards, rejected_rewards),
      "· pairwise accuracy", pairwise_accuracy(chosen_rewards, rejected_rewards))

# Summed log-probabilities of each answer under the policy being trained and the frozen reference
# 학습 중인 정책과 고정된 기준 모델에서 각 답의 로그 확률 합
policy_chosen, policy_rejected = torch.tensor([-10.0, -12.0]), torch.tensor([-15.0, -11.0])
reference_chosen, reference_rejected = torch.tensor([-11.0, -12.0]), torch.tensor([-14.0, -11.0])
out = dpo_loss(policy_chosen, policy_rejected, reference_chosen, reference_rejected, beta=0.1)
print("DPO losses", out.losses, "· implicit rewards", out.chosen_rewards)

# %% [markdown]
# **Exercise · 연습.** Write the DPO loss yourself, −log σ(β·[(π_c − ref_c) − (π_r − ref_r)]), and
# compare. When the policy equals the reference the loss is log 2 for every pair.
#
# DPO 손실 −log σ(β·[(π_c − ref_c) − (π_r − ref_r)])을 직접 써서 비교하세요. 정책이 기준 모델과 같으면 모든
# 쌍의 손실이 log 2입니다.

# %%
beta = 0.1
mine = -torch.nn.functional.logsigmoid(beta * ((policy_chosen - reference_chosen) - (policy_rejected - reference_rejected)))
print(mine)
assert torch.allclose(mine, out.losses)
same = dpo_loss(reference_chosen, reference_rejected, reference_chosen, reference_rejected, beta=beta).losses
assert torch.allclose(same, torch.full_like(same, torch.log(torch.tensor(2.0)).item()))
