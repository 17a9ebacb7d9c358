"""BERT: logits equal transformers' BertForMaskedLM, the masking recipe, masked-LM training on the Trainer."""

from __future__ import annotations

import pytest
import torch

from lm2llm.data.shards import ShardWriter, TokenShards
from lm2llm.errors import UserError
from lm2llm.models import Bert, build_model, load_model, save_model
from lm2llm.training.config import build_config
from lm2llm.training.data import ShardBatches
from lm2llm.training.masking import MaskedBatches, mask_tokens
from lm2llm.training.objectives import IGNORE_INDEX, MaskedLM
from lm2llm.training.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_bert_logits_equal_transformers_with_padding():
    from lm2llm.hf import to_transformers

    torch.manual_seed(0)
    model = build_model("bert", vocab_size=97, context_length=24, n_layer=2, d_model=32, n_head=4).eval()
    hf = to_transformers(model)
    ids = torch.randint(0, 97, (3, 11))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    types = torch.zeros_like(ids)
    types[2, 5:] = 1
    ours, _ = model(ids, attention_mask=mask, token_type_ids=types)
    theirs = hf(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
    real = mask.bool()
    assert (ours - theirs)[real].abs().max().item() < 1e-5


def test_bert_base_counts_like_transformers_and_saves(tmp_path):
    import transformers

    from lm2llm.hf.convert import bert_hf_config

    with torch.device("meta"):
        ours = build_model("bert", "bert-base")
        theirs = transformers.BertForMaskedLM(bert_hf_config(ours.config))
    # BertForMaskedLM has no pooler; ours keeps it for sentence tasks
    assert ours.num_params() - sum(p.numel() for p in theirs.parameters()) == 768 * 768 + 768
    small = build_model("bert", vocab_size=50, context_length=16, d_model=16, n_head=2, n_layer=1)
    save_model(small, tmp_path)
    again = load_model(tmp_path)
    assert isinstance(again, Bert) and torch.equal(again.tok_emb.weight, small.tok_emb.weight)
    with pytest.raises(UserError, match="encoder"):
        small.new_state(1, 8)


def test_masking_follows_the_recipe_and_spares_special_tokens():
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 1000, (256, 512))
    ids[:, 0] = 1  # a special token in every row
    attention = torch.ones_like(ids)
    attention[:, -16:] = 0  # padding
    inputs, targets = mask_tokens(ids, mask_id=2, vocab_size=1000, special_ids={0, 1, 2}, generator=gen,
                                  attention_mask=attention)
    chosen = targets != IGNORE_INDEX
    eligible = (ids != 1) & attention.bool()
    assert not chosen[~eligible].any()
    assert torch.equal(targets[chosen], ids[chosen])
    assert abs(chosen.sum().item() / eligible.sum().item() - 0.15) < 0.005
    n = chosen.sum().item()
    masked = (inputs[chosen] == 2).sum().item() / n
    unchanged = (inputs[chosen] == ids[chosen]).sum().item() / n
    assert abs(masked - 0.8) < 0.01 and abs(unchanged - 0.1) < 0.01
    assert not torch.isin(inputs[chosen & (inputs != 2)], torch.tensor([0, 1])).any()  # random ids are ordinary
    assert torch.equal(inputs[~chosen], ids[~chosen])


def test_masked_lm_trains_on_the_trainer(tmp_path, known_peak):
    text = "the cat sat on the mat. the dog sat on the log. 고양이가 매트에 앉았다. " * 40
    vocab = sorted(set(text))
    ids = [3 + vocab.index(ch) for ch in text]  # 0..2: special ids, one of them the mask
    writer = ShardWriter(tmp_path / "data", len(vocab) + 3)
    writer.write("train", ids[: len(ids) * 9 // 10])
    writer.write("val", ids[len(ids) * 9 // 10:])
    writer.close()
    cfg = build_config({"batch_size": 16, "max_steps": 60, "warmup_steps": 5, "lr": 3e-3, "min_lr": 3e-4,
                        "eval_every": 60, "eval_batches": 2, "dtype": "float32", "device": "cpu", "progress": False,
                        "objective": "masked_lm"})
    shards = ShardBatches(TokenShards(tmp_path / "data"), block_size=32, batch_size=16, seed=1, eval_batches=2)
    data = MaskedBatches(shards, mask_id=2, vocab_size=len(vocab) + 3, special_ids={0, 1, 2}, seed=1)
    torch.manual_seed(0)
    model = build_model("bert", vocab_size=len(vocab) + 3, context_length=32, n_layer=2, d_model=48, n_head=4)
    trainer = Trainer(model, MaskedLM(), data, cfg)
    before = trainer.evaluate()["val_loss"]
    result = trainer.fit()
    # from a near-uniform guess to at least the characters' frequencies (BERT's first plateau)
    assert result.evals[-1]["val_loss"] < before - 0.3
    assert all(batch["targets"].ne(IGNORE_INDEX).any() for batch in data.eval_set())


def test_lm2llm_train_pretrains_bert_and_the_run_exports(tmp_path, cli, known_peak):
    from lm2llm.tokenizer.bpe_tokenizer import BPETokenizer
    from lm2llm.training.masking import ENCODER_TOKENS

    texts = ["Return the sum of a list of numbers.", "모든 국민은 법 앞에 평등하다.", "Open the file and read it."] * 30
    tokenizer = BPETokenizer.train(texts, 300, extra_special_tokens=ENCODER_TOKENS)
    ids = [i for text in texts for i in tokenizer.encode(text) + [tokenizer.eos_id]]
    writer = ShardWriter(tmp_path / "data", tokenizer.vocab_size)
    writer.write("train", ids[: len(ids) * 9 // 10])
    writer.write("val", ids[len(ids) * 9 // 10:])
    writer.close()
    tokenizer.save(tmp_path / "data" / "tokenizer")
    common = ["train", "--model", "bert", "--data", tmp_path / "data", "--json", "--set", "max_steps=6",
              "--set", "batch_size=4", "--set", "block_size=16", "--set", "model.context_length=16",
              "--set", "model.d_model=32", "--set", "model.n_layer=1", "--set", "eval_every=6", "--set", "dtype=float32"]
    wrong = cli(*common, "--out", tmp_path / "wrong")
    assert wrong.code == 2 and "masked_lm" in wrong.err
    result = cli(*common, "--out", tmp_path / "run", "--set", "objective=masked_lm")
    assert result.code == 0, result.err
    assert isinstance(load_model(tmp_path / "run"), Bert)
    assert cli("export-hf", tmp_path / "run", "--out", tmp_path / "hf").code == 0
    import transformers

    hf = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path / "hf").eval()
    x = torch.tensor([tokenizer.encode("모든 국민은")])
    with torch.no_grad():
        assert (load_model(tmp_path / "run")(x)[0] - hf(input_ids=x).logits).abs().max().item() < 1e-5
