"""Neural language models: recurrent (RNN, LSTM, GRU) and decoder-only Transformers (GPT, LLaMA, PaLM).

One interface for all of them:
- `build_model(family, preset=None, **overrides)` — families `rnn`, `lstm`, `gru`, `gpt`, `llama`, and the
  encoder `bert` (masked-LM logits from `forward`; no incremental decoding).
- `model(ids, targets=None) -> (logits, loss)`, `model.config` (a dataclass), `model.num_params()`.
- `state = model.new_state(batch_size, max_len)`, then `logits, _ = model(ids, state=state)` advances it
  (a KV cache for decoders, the hidden state for RNNs); `attention_mask` marks left padding.
- `save_model(model, dir)` / `load_model(dir)`: `model.safetensors` + `model_config.json`.
"""

from __future__ import annotations

from lm2llm.models.bert import Bert, BertConfig
from lm2llm.models.factory import FAMILIES, build_model, config_for, family_of
from lm2llm.models.io import load_model, save_model
from lm2llm.models.rnn import RNNConfig, RNNLanguageModel, RNNState
from lm2llm.models.transformer import DecoderState, Transformer, TransformerConfig

__all__ = [
    "Bert",
    "BertConfig",
    "FAMILIES",
    "DecoderState",
    "RNNConfig",
    "RNNLanguageModel",
    "RNNState",
    "Transformer",
    "TransformerConfig",
    "build_model",
    "config_for",
    "family_of",
    "load_model",
    "save_model",
]
