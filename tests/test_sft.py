"""SFT batches and training: assistant-only targets, no crossing between examples, accumulation-invariant."""

import copy

import pytest
import torch

from lm2llm.errors import UserError
from lm2llm.finetune.batches import SFTBatches, collate_examples, encode_conversations
from lm2llm.finetune.tasks import make_suite
from lm2llm.models import build_model
from lm2llm.tokenizer.hf_bpe import BPETokenizer
from lm2llm.training import Trainer, TrainerConfig
from lm2llm.training.objectives import IGNORE_INDEX, CausalLM


@pytest.fixture(scope="module")
def suite():
    return make_suite(24, 4, seed=0)


@pytest.fixture(scope="module")
def tokenizer(suite):
    train, _ = suite
    texts = [m["content"] for r in train for m in r.messages]
    return BPETokenizer.train(texts, vocab_size=400)


def conversations(records):
    return [list(r.messages) for r in records]


def test_targets_are_the_reply_and_its_end_token_only(tokenizer, suite):
    train, _ = suite
    encoded = encode_conversations(tokenizer, conversations(train[:6]), max_tokens=64)
    batch = collate_examples(encoded.examples, tokenizer.pad_id)
    for row, record in enumerate(train[:6]):
        targets = batch["targets"][row]
        kept = targets[targets != IGNORE_INDEX].tolist()
        assert kept == [*tokenizer.encode(record.answer), tokenizer.end_of_turn_id]
        assert tokenizer.pad_id not in kept and tokenizer.end_of_turn_id != tokenizer.pad_id
        n = len(encoded.examples[row][0]) - 1
        assert (batch["ids"][row, n:] == tokenizer.pad_id).all()


def test_no_assistant_tokens_is_an_error(tokenizer):
    with pytest.raises(UserError, match="no assistant token"):
        encode_conversations(tokenizer, [[{"role": "user", "content": "안녕하세요"}]], max_tokens=64)


def test_long_examples_are_cut_and_replies_past_the_context_dropped(tokenizer):
    long_prompt = [{"role": "user", "content": "word " * 80}, {"role": "assistant", "content": "ok"}]
    short = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4 " * 40}]
    encoded = encode_conversations(tokenizer, [long_prompt, short], max_tokens=16)
    assert encoded.dropped == [0] and encoded.truncated == 2 and len(encoded.examples[0][0]) == 17
    with pytest.raises(UserError, match="beyond"):
        encode_conversations(tokenizer, [long_prompt], max_tokens=16)


def test_padding_never_lets_examples_see_each_other(tokenizer, suite):
    torch.manual_seed(0)
    model = build_model("gpt", "gpt-tiny", vocab_size=tokenizer.vocab_size).eval()
    encoded = encode_conversations(tokenizer, conversations(suite[0][:4]), max_tokens=64)
    batch = collate_examples(encoded.examples, tokenizer.pad_id)
    with torch.no_grad():
        together, _ = model(batch["ids"])
        for row, (ids, _) in enumerate(encoded.examples):
            alone, _ = model(torch.tensor([ids[:-1]]))
            assert (together[row, :len(ids) - 1] - alone[0]).abs().max() < 1e-5


def sft_data(tokenizer, suite):
    train, test = suite
    return SFTBatches(encode_conversations(tokenizer, conversations(train), 64), batch_size=8,
                      pad_id=tokenizer.pad_id, seed=0,
                      eval_examples=encode_conversations(tokenizer, conversations(test), 64).examples)


def sft_trainer(tokenizer, suite, micro_batch_size):
    torch.manual_seed(0)
    model = build_model("gpt", "gpt-tiny", vocab_size=tokenizer.vocab_size)
    data = sft_data(tokenizer, suite)
    cfg = TrainerConfig(batch_size=8, micro_batch_size=micro_batch_size, max_steps=2, lr=1e-2, warmup_steps=0,
                      device="cpu", dtype="float32", progress=False, eval_every=100, weight_decay=0.0)
    return Trainer(model, CausalLM(), data, cfg)


def test_loss_does_not_depend_on_gradient_accumulation(tokenizer, suite):
    runs = []
    for micro in (8, 2):  # micro-batches with different numbers of reply tokens
        trainer = sft_trainer(tokenizer, suite, micro)
        losses = [trainer.train_step().item() for _ in range(2)]
        runs.append((losses, copy.deepcopy(trainer.model.state_dict())))
    (losses, state), others = runs[0], runs[1:]
    for other_losses, other_state in others:
        assert other_losses == pytest.approx(losses, abs=1e-5)
        assert max((state[k] - other_state[k]).abs().max().item() for k in state) < 1e-4  # after 2 Adam steps of lr 1e-2


def test_batches_resume_exactly(tokenizer, suite):
    data = sft_data(tokenizer, suite)
    for _ in range(4):
        data.next_batch()
    saved = data.state_tensors()
    expected = [data.next_batch() for _ in range(3)]
    data.load_state_tensors(saved)
    assert all(torch.equal(a["ids"], b["ids"]) for a, b in zip(expected, [data.next_batch() for _ in range(3)], strict=True))


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, tokenizer):
    """A run as `lm2llm train` leaves it (model + tokenizer), with a small untrained GPT."""
    from lm2llm.models import save_model

    path = tmp_path_factory.mktemp("base")
    torch.manual_seed(0)
    save_model(build_model("gpt", "gpt-tiny", vocab_size=tokenizer.vocab_size), path)
    tokenizer.save(path)
    return path


def test_sft_cli_full_and_lora(cli, base_run, tmp_path):
    import json

    from lm2llm.models import family_of, load_model
    from lm2llm.models.lora import load_adapter
    from lm2llm.training.run import resume_config

    args = ["--task", "korean_to_digits", "--task", "reverse_words", "--n-train", "40", "--n-test", "4",
            "--steps", "4", "--batch-size", "8", "--lr", "3e-3", "--max-new-tokens", "6", "--json"]
    full = cli("sft", base_run, "--out", tmp_path / "full", *args)
    assert full.code == 0, full.err
    report = json.loads(full.out)
    assert report["held_out"] == 8 and set(report["per_task_after"]) == {"korean_to_digits", "reverse_words"}
    assert report["trainable_params"] == report["total_params"] and report["adapter_bytes"] is None
    assert 0 <= report["ended_turn_after"] <= 1 and 1 <= report["distinct_answers_after"] <= 8
    recorded = resume_config(tmp_path / "full")  # the record states the real base, data and trainer, and reloads
    assert (recorded.model, recorded.data, recorded.tokenizer) == (family_of(load_model(base_run)), "synthetic",
                                                                   str(base_run))
    assert (recorded.trainer.max_steps, recorded.trainer.batch_size, recorded.trainer.lr) == (4, 8, 3e-3)

    lora = cli("sft", base_run, "--out", tmp_path / "lora", "--lora", "r=4,alpha=8,targets=q_proj+v_proj", *args)
    assert lora.code == 0, lora.err
    report = json.loads(lora.out)
    assert report["trainable_params"] < report["total_params"] / 10 and report["adapter_bytes"] > 0
    base = load_model(base_run)
    adapters = 2 * 2 * 4 * (64 + 64)  # q and v in 2 blocks, r·(in+out) each
    chat_rows = [2, 3, 4, 5]  # <|system|>, <|user|>, <|assistant|>, <|end|>: trained by default with LoRA
    assert report["trainable_params"] == adapters + len(chat_rows) * 64
    adapter_config = json.loads((tmp_path / "lora" / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["trainable_token_indices"] == {"tok_emb": chat_rows}
    merged = load_model(tmp_path / "lora").eval()
    changed = (merged.tok_emb.weight != base.tok_emb.weight).any(dim=1).nonzero().flatten().tolist()
    assert set(changed) <= set(chat_rows) and {3, 4, 5} <= set(changed)
    with_adapter = load_model(base_run)
    load_adapter(with_adapter, tmp_path / "lora" / "adapter")
    ids = torch.randint(0, 300, (2, 16))
    assert (merged(ids)[0] - with_adapter.eval()(ids)[0]).abs().max() < 1e-5
    metrics = (tmp_path / "lora" / "metrics.jsonl").read_text()
    assert "exact_match_before" in metrics and "exact_match_after" in metrics

    again = cli("sft", base_run, "--out", tmp_path / "lora", "--lora", "r=4")
    assert again.code == 2 and "earlier lm2llm sft output" in again.err
    bad = cli("sft", base_run, "--out", tmp_path / "x", "--lora", "rank=4")
    assert bad.code == 2 and "--lora" in bad.err


def test_lora_train_tokens_option(cli, tokenizer, base_run, tmp_path):
    from lm2llm.finetune.sft import lora_token_ids

    assert lora_token_ids("chat", tokenizer) == [2, 3, 4, 5]
    assert lora_token_ids("none", tokenizer) is None
    assert lora_token_ids("<|end|>, 17,<|user|>", tokenizer) == [5, 17, 3]
    for bad in ("안녕하세요", "<|end|>,400", ",", "<|nope|>"):  # not one token, past the vocabulary, nothing
        with pytest.raises(UserError, match="token"):
            lora_token_ids(bad, tokenizer)
    no_lora = cli("sft", base_run, "--out", tmp_path / "a", "--lora-train-tokens", "none", "--steps", "1")
    assert no_lora.code == 2 and "--lora-train-tokens" in no_lora.err and not (tmp_path / "a").exists()
    bad = cli("sft", base_run, "--out", tmp_path / "b", "--lora", "r=2", "--lora-train-tokens", "한국어 문장")
    assert bad.code == 2 and "not one token" in bad.err and not (tmp_path / "b").exists()


def test_sft_on_the_real_alpaca_file(cli, shared_data, base_run, tmp_path):
    import json

    path = shared_data / "instructions-en" / "instruction-data.json"
    if not path.is_file():
        pytest.skip("instruction-data.json is absent")
    result = cli("sft", base_run, "--data", path, "--out", tmp_path / "alpaca", "--n-test", "4", "--steps", "3",
                 "--batch-size", "4", "--max-new-tokens", "4", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["held_out"] == 4
    config = json.loads((tmp_path / "alpaca" / "config.json").read_text())
    assert config["examples"]["train"] + config["examples"]["dropped"] == 1100 - 4


def test_a_base_without_a_chat_template_is_refused(cli, tmp_path):
    from lm2llm.models import save_model
    from lm2llm.tokenizer import CharTokenizer

    char = CharTokenizer.train(["가나다 abc"])
    save_model(build_model("gpt", "gpt-tiny", vocab_size=char.vocab_size), tmp_path / "base")
    char.save(tmp_path / "base")
    result = cli("sft", tmp_path / "base", "--out", tmp_path / "out", "--steps", "1")
    assert result.code == 2 and "chat template" in result.err


def test_a_file_too_small_to_hold_out_is_refused(cli, base_run, tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_text('{"instruction": "인사해 주세요.", "output": "안녕하세요"}\n', encoding="utf-8")
    result = cli("sft", base_run, "--data", path, "--out", tmp_path / "out", "--steps", "1")
    assert result.code == 2 and "hold any out" in result.err
