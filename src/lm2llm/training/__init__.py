"""Training: one Trainer for every objective (causal LM now; SFT, reward, DPO and others plug in)."""

from lm2llm.training.config import TrainConfig, build_config
from lm2llm.training.objectives import CausalLM, Objective
from lm2llm.training.trainer import Trainer, TrainResult

__all__ = ["CausalLM", "Objective", "TrainConfig", "TrainResult", "Trainer", "build_config"]
