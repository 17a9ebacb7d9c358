"""Model presets: published architectures (counted, never trained here) and small CPU-sized ones.

Each published entry carries its source and, where the authors or the released checkpoint state one,
the total parameter count, which tests compare with our count. `CATALOG` lists well-known models whose
architecture was never published: what is public about them, marked as such, with no invented numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

GPT2_VOCAB = 50257
LLAMA2_VOCAB = 32000
# GPT-2 style is TransformerConfig's default; these are the LLaMA-style fields (see factory.FAMILY_DEFAULTS).
_LLAMA2_COMMON = {"vocab_size": LLAMA2_VOCAB, "context_length": 4096, "norm_eps": 1e-5}


@dataclass(frozen=True)
class Preset:
    family: str
    config: dict[str, Any]
    source: str
    year: int | None = None
    published_params: int | None = None  # the exact total the authors/checkpoint give, when they give one
    stated_params: str | None = None  # the rounded figure the paper's name or table uses ("117M")
    trained_tokens: float | None = None  # tokens the published model was trained on, when stated
    notes: str = ""
    cpu_sized: bool = False


def _gpt3(n_layer: int, d_model: int, n_head: int, stated: str, **extra: Any) -> Preset:
    return Preset(
        "gpt",
        {"vocab_size": GPT2_VOCAB, "context_length": 2048, "n_layer": n_layer, "d_model": d_model, "n_head": n_head,
         **extra},
        "Brown et al. 2020, Language Models are Few-Shot Learners, table 2.1",
        2020, stated_params=stated, trained_tokens=300e9,
        notes="dense layers shown; GPT-3 alternates dense and locally banded sparse attention (same parameters)",
    )


PRESETS: dict[str, Preset] = {
    # --- small presets for a 2-core CPU (vocab_size is set from the tokenizer when training) ---
    "gpt-tiny": Preset("gpt", {"context_length": 64, "n_layer": 2, "d_model": 64, "n_head": 4},
                       "lm2llm: for tests and quick tour runs", cpu_sized=True),
    "gpt-small": Preset("gpt", {"context_length": 128, "n_layer": 4, "d_model": 192, "n_head": 6},
                        "lm2llm: about 2M parameters, learns readable text in minutes on 2 cores", cpu_sized=True),
    "llama-tiny": Preset("llama", {"context_length": 64, "n_layer": 2, "d_model": 64, "n_head": 4, "n_kv_head": 2},
                         "lm2llm: for tests and quick tour runs", cpu_sized=True),
    "llama-small": Preset("llama", {"context_length": 128, "n_layer": 4, "d_model": 192, "n_head": 6, "n_kv_head": 2},
                          "lm2llm: the LLaMA-style counterpart of gpt-small", cpu_sized=True),
    "rnn-small": Preset("rnn", {"d_embed": 128, "d_hidden": 256, "n_layer": 2}, "lm2llm", cpu_sized=True),
    "lstm-small": Preset("lstm", {"d_embed": 128, "d_hidden": 256, "n_layer": 2}, "lm2llm", cpu_sized=True),
    "gru-small": Preset("gru", {"d_embed": 128, "d_hidden": 256, "n_layer": 2}, "lm2llm", cpu_sized=True),
    # --- published architectures ---
    "gpt-1": Preset(
        "gpt", {"vocab_size": 40478, "context_length": 512, "n_layer": 12, "d_model": 768, "n_head": 12},
        "Radford et al. 2018, Improving Language Understanding by Generative Pre-Training", 2018,
        stated_params="117M", trained_tokens=None,
        notes="GPT-1 normalises after each sublayer (post-norm) and has no final norm; our pre-norm block "
              "adds that final norm (1,536 parameters)",
    ),
    "gpt2-small": Preset("gpt", {"vocab_size": GPT2_VOCAB, "context_length": 1024, "n_layer": 12, "d_model": 768, "n_head": 12},
                         "Radford et al. 2019, Language Models are Unsupervised Multitask Learners; openai-community/gpt2",
                         2019, published_params=124_439_808, stated_params="117M",
                         notes="the paper's table says 117M; the released checkpoint has 124,439,808"),
    "gpt2-medium": Preset("gpt", {"vocab_size": GPT2_VOCAB, "context_length": 1024, "n_layer": 24, "d_model": 1024, "n_head": 16},
                          "Radford et al. 2019; openai-community/gpt2-medium", 2019,
                          published_params=354_823_168, stated_params="345M"),
    "gpt2-large": Preset("gpt", {"vocab_size": GPT2_VOCAB, "context_length": 1024, "n_layer": 36, "d_model": 1280, "n_head": 20},
                         "Radford et al. 2019; openai-community/gpt2-large", 2019,
                         published_params=774_030_080, stated_params="762M"),
    "gpt2-xl": Preset("gpt", {"vocab_size": GPT2_VOCAB, "context_length": 1024, "n_layer": 48, "d_model": 1600, "n_head": 25},
                      "Radford et al. 2019; openai-community/gpt2-xl", 2019,
                      published_params=1_557_611_200, stated_params="1.5B"),
    "gpt3-125m": _gpt3(12, 768, 12, "125M"),
    "gpt3-350m": _gpt3(24, 1024, 16, "350M"),
    "gpt3-760m": _gpt3(24, 1536, 16, "760M"),
    "gpt3-1.3b": _gpt3(24, 2048, 16, "1.3B"),
    "gpt3-2.7b": _gpt3(32, 2560, 32, "2.7B"),
    "gpt3-6.7b": _gpt3(32, 4096, 32, "6.7B"),
    "gpt3-13b": _gpt3(40, 5120, 40, "13B"),
    "gpt3-175b": _gpt3(96, 12288, 96, "175B"),
    "llama2-7b": Preset("llama", {**_LLAMA2_COMMON, "n_layer": 32, "d_model": 4096, "n_head": 32, "d_ff": 11008},
                        "Touvron et al. 2023, Llama 2; meta-llama/Llama-2-7b-hf", 2023,
                        published_params=6_738_415_616, stated_params="7B", trained_tokens=2e12),
    "llama2-13b": Preset("llama", {**_LLAMA2_COMMON, "n_layer": 40, "d_model": 5120, "n_head": 40, "d_ff": 13824},
                         "Touvron et al. 2023, Llama 2; meta-llama/Llama-2-13b-hf", 2023,
                         published_params=13_015_864_320, stated_params="13B", trained_tokens=2e12),
    "llama2-70b": Preset("llama", {**_LLAMA2_COMMON, "n_layer": 80, "d_model": 8192, "n_head": 64, "n_kv_head": 8,
                                   "d_ff": 28672},
                         "Touvron et al. 2023, Llama 2; meta-llama/Llama-2-70b-hf", 2023,
                         published_params=68_976_648_192, stated_params="70B", trained_tokens=2e12),
    "llama3-8b": Preset("llama", {"vocab_size": 128256, "context_length": 8192, "n_layer": 32, "d_model": 4096,
                                  "n_head": 32, "n_kv_head": 8, "d_ff": 14336, "rope_theta": 500000.0},
                        "Meta 2024, The Llama 3 Herd of Models; meta-llama/Meta-Llama-3-8B", 2024,
                        published_params=8_030_261_248, stated_params="8B", trained_tokens=15e12),
    "mistral-7b": Preset("llama", {"vocab_size": 32000, "context_length": 32768, "n_layer": 32, "d_model": 4096,
                                   "n_head": 32, "n_kv_head": 8, "d_ff": 14336},
                         "Jiang et al. 2023, Mistral 7B; mistralai/Mistral-7B-v0.1", 2023,
                         published_params=7_241_732_096, stated_params="7B",
                         notes="sliding-window attention (4,096) changes which keys are seen, not the parameters"),
    "solar-10.7b": Preset("llama", {"vocab_size": 32000, "context_length": 4096, "n_layer": 48, "d_model": 4096,
                                    "n_head": 32, "n_kv_head": 8, "d_ff": 14336},
                          "Kim et al. 2023, SOLAR 10.7B: depth up-scaling; upstage/SOLAR-10.7B-v1.0", 2023,
                          published_params=10_731_524_096, stated_params="10.7B",
                          notes="depth up-scaling: two copies of a 32-layer Mistral-initialised model, 8 layers "
                                "cut from the seam of each, stacked to 48 layers and trained further"),
    "palm-540b": Preset("llama", {"vocab_size": 256000, "context_length": 2048, "n_layer": 118, "d_model": 18432,
                                  "n_head": 48, "n_kv_head": 1, "head_dim": 256, "d_ff": 73728, "norm": "layernorm",
                                  "tie_embeddings": True, "parallel_block": True},
                        "Chowdhery et al. 2022, PaLM: Scaling Language Modeling with Pathways, table 1", 2022,
                        stated_params="540.35B", trained_tokens=780e9,
                        notes="parallel attention+MLP block, multi-query attention, SwiGLU, RoPE, shared "
                              "input/output embeddings, no biases"),
}

# BERT is an encoder (built in lm2llm.bert); counted here by formula, checked against transformers.
BERT_PRESETS: dict[str, Preset] = {
    "bert-tiny": Preset("bert", {"vocab_size": 256, "context_length": 64, "type_vocab_size": 2, "n_layer": 2,
                                 "d_model": 64, "n_head": 4, "d_ff": 256},
                        "lm2llm: gpt-tiny's shape as an encoder, for tests and quick tour runs", cpu_sized=True),
    "bert-base": Preset("bert", {"vocab_size": 30522, "context_length": 512, "type_vocab_size": 2, "n_layer": 12,
                                 "d_model": 768, "n_head": 12, "d_ff": 3072},
                        "Devlin et al. 2019, BERT; google-bert/bert-base-uncased (with pooler)", 2018,
                        published_params=109_482_240, stated_params="110M"),
    "bert-large": Preset("bert", {"vocab_size": 30522, "context_length": 512, "type_vocab_size": 2, "n_layer": 24,
                                  "d_model": 1024, "n_head": 16, "d_ff": 4096},
                         "Devlin et al. 2019, BERT; google-bert/bert-large-uncased (with pooler)", 2018,
                         published_params=335_141_888, stated_params="340M"),
}


@dataclass(frozen=True)
class CatalogEntry:
    """A model whose architecture is not published: only what its makers or reliable reports say."""

    name: str
    maker: str
    year: int
    architecture_published: bool
    public_facts: list[str] = field(default_factory=list)
    unconfirmed: list[str] = field(default_factory=list)  # figures that circulate but the maker never confirmed


CATALOG: list[CatalogEntry] = [
    CatalogEntry("GPT-3.5", "OpenAI", 2022, False,
                 ["a series of GPT-3-family models trained on text and code; ChatGPT was fine-tuned from one of "
                  "them with RLHF (OpenAI's ChatGPT announcement)",
                  "sizes and architectures of the series are not published"],
                 []),
    CatalogEntry("GPT-4", "OpenAI", 2023, False,
                 ["Transformer-based, pre-trained to predict the next token, then tuned with RLHF (technical report)",
                  "accepts image and text input, produces text",
                  "the technical report withholds architecture, size, hardware, compute and data"],
                 ["1.76T parameters (a mixture-of-experts estimate from press reports; OpenAI has not confirmed it)"]),
    CatalogEntry("Gemini 1.0", "Google DeepMind", 2023, False,
                 ["decoder-only Transformer, natively multimodal (text, images, audio, video input)",
                  "32k-token context; efficient attention such as multi-query attention (technical report)",
                  "sizes Ultra, Pro and Nano; only Nano's are stated: Nano-1 1.8B and Nano-2 3.25B parameters"],
                 []),
    CatalogEntry("HyperCLOVA X", "NAVER Cloud", 2023, False,
                 ["decoder-only Transformer trained on Korean, English and code, aligned with SFT and RLHF "
                  "(technical report, 2024)",
                  "parameter count and detailed architecture are not disclosed",
                  "its predecessor HyperCLOVA (2021) described models up to 82B parameters"],
                 []),
]
