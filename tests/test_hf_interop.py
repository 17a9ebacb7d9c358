"""Hugging Face interop: export → transformers' Auto classes give our logits and ids; import → theirs."""

from __future__ import annotations

import json
import os

import pytest
import torch

from lm2llm.classify.model import SequenceClassifier, load_classifier, save_classifier
from lm2llm.models import build_model, load_model, save_model
from lm2llm.tokenizer.chat import ENCODER_TOKENS
from lm2llm.tokenizer.hf_bpe import BPETokenizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

transformers = pytest.importorskip("transformers")

TEXTS = ["The quick brown fox jumps over the lazy dog. " * 3, "def add(a, b):\n    return a + b\n",
         "대한민국은 민주공화국이다. 모든 권력은 국민으로부터 나온다.", "Mixed 한국어 and English, 123!"]


@pytest.fixture(scope="module")
def tokenizer():
    return BPETokenizer.train(TEXTS * 4, 320, extra_special_tokens=ENCODER_TOKENS)


def batch(tokenizer, pad_side="right"):
    rows = [tokenizer.encode(t)[:20] for t in TEXTS]
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), tokenizer.pad_id)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        span = slice(0, len(row)) if pad_side == "right" else slice(width - len(row), width)
        ids[i, span], mask[i, span] = torch.tensor(row), 1
    return ids, mask


@pytest.mark.parametrize("family", ["gpt", "llama", "bert"])
def test_exported_run_loads_in_transformers_with_our_logits_and_ids(family, tokenizer, tmp_path, cli):
    torch.manual_seed(0)
    extra = {"n_kv_head": 2} if family == "llama" else {}
    model = build_model(family, vocab_size=tokenizer.vocab_size, context_length=32, n_layer=2, d_model=32,
                        n_head=4, **extra).eval()
    save_model(model, tmp_path / "run")
    tokenizer.save(tmp_path / "run")
    result = cli("export-hf", tmp_path / "run", "--out", tmp_path / "hf", "--json")
    assert result.code == 0, result.err
    info = json.loads(result.out)
    auto = transformers.AutoModelForMaskedLM if family == "bert" else transformers.AutoModelForCausalLM
    hf = auto.from_pretrained(tmp_path / "hf").eval()
    assert type(hf).__name__ == info["architecture"]
    ids, mask = batch(tokenizer)
    if family == "bert":
        ours, _ = model(ids, attention_mask=mask)
    else:
        ours, _ = model(ids)  # causal: right padding does not change the real tokens' logits
    with torch.no_grad():
        theirs = hf(input_ids=ids, attention_mask=mask).logits
    assert (ours - theirs)[mask.bool()].abs().max().item() < 1e-5
    auto_tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    for text in TEXTS:
        assert auto_tokenizer(text, add_special_tokens=False)["input_ids"] == tokenizer.encode(text)


@pytest.mark.parametrize("family", ["bert", "gpt"])
def test_exported_classifier_is_a_sequence_classification_model(family, tokenizer, tmp_path, cli):
    torch.manual_seed(1)
    backbone = build_model(family, vocab_size=tokenizer.vocab_size, context_length=32, n_layer=1, d_model=32, n_head=4)
    model = SequenceClassifier(backbone, ["긍정", "negative", "neutral"]).eval()
    save_classifier(model, tmp_path / "run")
    tokenizer.save(tmp_path / "run")
    assert cli("export-hf", tmp_path / "run", "--out", tmp_path / "hf").code == 0
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "hf").eval()
    assert hf.config.id2label[0] == "긍정"
    ids, mask = batch(tokenizer)
    with torch.no_grad():
        assert (model(ids, mask) - hf(input_ids=ids, attention_mask=mask).logits).abs().max().item() < 1e-5


def _random_hf(kind):
    small = dict(vocab_size=120)
    if kind == "gpt2":
        return transformers.GPT2LMHeadModel(transformers.GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=40,
                                                                     **small))
    if kind == "llama":
        return transformers.LlamaForCausalLM(transformers.LlamaConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=40, **small))
    bert = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                max_position_embeddings=40, **small)
    if kind == "bert":
        return transformers.BertForMaskedLM(transformers.BertConfig(**bert))
    if kind == "bert-cls":
        return transformers.BertForSequenceClassification(transformers.BertConfig(num_labels=3, **bert))
    return transformers.GPT2ForSequenceClassification(transformers.GPT2Config(
        n_embd=32, n_layer=2, n_head=4, n_positions=40, num_labels=2, pad_token_id=0, **small))


@pytest.mark.parametrize("kind", ["gpt2", "llama", "bert", "bert-cls", "gpt2-cls"])
def test_imported_checkpoint_gives_transformers_logits(kind, tmp_path, cli):
    torch.manual_seed(2)
    hf = _random_hf(kind).eval()
    with torch.no_grad():  # random init leaves some weights at exactly 0/1; perturb so every mapping matters
        for p in hf.parameters():
            p.add_(0.01 * torch.randn_like(p))
    hf.save_pretrained(tmp_path / "hf")
    result = cli("import-hf", tmp_path / "hf", "--out", tmp_path / "run", "--json")
    assert result.code == 0, result.err
    ids = torch.randint(1, 120, (2, 12))
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    ids[1, 9:] = 0
    with torch.no_grad():
        theirs = hf(input_ids=ids, attention_mask=mask).logits
        if kind.endswith("-cls"):
            ours = load_classifier(tmp_path / "run")(ids, mask)
            assert (ours - theirs).abs().max().item() < 1e-5
            return
        model = load_model(tmp_path / "run").eval()
        ours = model(ids, attention_mask=mask)[0]
    assert (ours - theirs)[mask.bool()].abs().max().item() < 1e-5


def test_import_refuses_pickles_and_unknown_architectures(tmp_path, cli):
    folder = tmp_path / "hf"
    _random_hf("gpt2").save_pretrained(folder)
    os.replace(folder / "model.safetensors", folder / "pytorch_model.bin")
    result = cli("import-hf", folder, "--out", tmp_path / "run")
    assert result.code == 2 and "safetensors" in result.err and not (tmp_path / "run").exists()
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "activation_function": "relu"}))
    result = cli("import-hf", folder, "--out", tmp_path / "run")
    assert result.code == 2 and "relu" in result.err


@pytest.mark.slow
def test_minilm_in_our_bert_equals_sentence_transformers(cli):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    from lm2llm.embeddings import SentenceEncoder, minilm_dir

    sentences = ["A man is playing a guitar.", "Someone plays an instrument.", "The stock market fell today.",
                 "고양이가 소파 위에서 자고 있다.", "강아지가 공원에서 뛰어논다.", "word " * 400]
    ours = SentenceEncoder().encode(sentences)
    reference = SentenceTransformer(str(minilm_dir()), device="cpu").encode(sentences, convert_to_tensor=True)
    assert (ours - reference).abs().max().item() < 1e-5
    assert torch.allclose(ours.norm(dim=1), torch.ones(len(sentences)), atol=1e-5)
    result = cli("embed", *sentences[:3], "--json")
    similarity = json.loads(result.out)["cosine_similarity"]
    assert result.code == 0 and similarity[0][1] > similarity[0][2]
