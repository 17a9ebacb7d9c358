"""Alignment: preference data, reward model, PPO-based RLHF and DPO (guide §4)."""
