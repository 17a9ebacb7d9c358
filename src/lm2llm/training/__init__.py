"""Training: one Trainer for every objective (causal LM now; SFT, reward, DPO and others plug in)."""

from lm2llm.training.config import RunConfig, TrainerConfig, build_config, fine_tuning
from lm2llm.training.objectives import CausalLM, Objective
from lm2llm.training.trainer import Trainer, TrainResult

__all__ = ["CausalLM", "Objective", "RunConfig", "TrainResult", "Trainer", "TrainerConfig", "build_config",
           "fine_tuning"]
