"""GGUF export: read back by gguf.GGUFReader (llama.cpp's Python reader) exactly as written; the Q/K
permutation makes llama.cpp's interleaved RoPE agree with ours; llama.cpp itself scores text as we do
(llama.cpp's own library, where `make setup` could unpack it)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import regex
import torch

from lm2llm.compress.gguf_export import export_gguf, named_tensors, permute_rope_rows
from lm2llm.compress.quantize import matrix_kind, quantize
from lm2llm.errors import UserError
from lm2llm.gguf.llama import LLAMA3_SPLIT, import_gguf
from lm2llm.gguf.reader import GGUFFile
from lm2llm.models import build_model, load_model, save_model
from lm2llm.models.attention import apply_rope
from lm2llm.models.positions import rope_cos_sin
from lm2llm.tokenizer import BPETokenizer, CharTokenizer, load_tokenizer
from lm2llm.tokenizer.bpe import SPLIT_PATTERN

gguf = pytest.importorskip("gguf")

TEXTS = ["def add(a, b):\n    return a + b\n", "대한민국 헌법 제1조 대한민국은 민주공화국이다.",
         "Quantization stores weights in fewer bits.", "법률은 공포한 날부터 시행한다."] * 20


def make_run(path, family: str, **overrides):
    tokenizer = BPETokenizer.train(TEXTS, vocab_size=320)
    torch.manual_seed(0)
    model = build_model(family, f"{family}-tiny", vocab_size=tokenizer.vocab_size, **overrides)
    for p in model.parameters():  # logits that spread, as a trained model's do
        p.data.mul_(3)
    save_model(model, path)
    tokenizer.save(path)
    return path


@pytest.fixture(scope="module")
def llama_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("llama") / "run", "llama", d_model=64, d_ff=128)


@pytest.fixture(scope="module")
def gpt_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("gpt") / "run", "gpt")


def field(reader, key):
    return reader.fields[key].contents()


@pytest.mark.parametrize("kind", ["f32", "f16", "q8_0", "q4_0", "q4_1"])
def test_gguf_reader_reads_back_every_tensor_and_field(llama_run, tmp_path, kind):
    summary = export_gguf(llama_run, tmp_path / "model.gguf", kind)
    reader = gguf.GGUFReader(str(tmp_path / "model.gguf"))
    model = load_model(llama_run)
    expected = dict(named_tensors(model))
    assert [t.name for t in reader.tensors] == list(expected) and summary["tensors"] == len(expected)
    for tensor in reader.tensors:
        weight = expected[tensor.name]
        assert tuple(int(d) for d in tensor.shape) == tuple(weight.shape[::-1]), tensor.name
        if weight.dim() == 1 or kind == "f32":
            assert tensor.tensor_type == gguf.GGMLQuantizationType.F32
            assert np.array_equal(tensor.data, weight.numpy()), tensor.name
        elif kind == "f16":
            assert np.array_equal(tensor.data, weight.numpy().astype(np.float16)), tensor.name
        else:
            block_kind = matrix_kind(kind, embedding=tensor.name in ("token_embd.weight", "output.weight"))
            assert tensor.tensor_type.name == block_kind.upper()
            assert np.array_equal(tensor.data, quantize(weight, block_kind).numpy()), tensor.name
    c = model.config
    assert field(reader, "general.architecture") == "llama"
    assert field(reader, "llama.block_count") == c.n_layer and field(reader, "llama.attention.head_count_kv") == c.n_kv_head
    assert field(reader, "llama.rope.freq_base") == pytest.approx(c.rope_theta)
    assert field(reader, "tokenizer.ggml.model") == "gpt2" and field(reader, "tokenizer.ggml.pre") == "llama-bpe"
    tokens = field(reader, "tokenizer.ggml.tokens")
    assert len(tokens) == c.vocab_size and tokens[0] == "<|endoftext|>"
    assert field(reader, "tokenizer.ggml.token_type")[:2] == [3, 3]
    assert "{% generation %}" not in field(reader, "tokenizer.chat_template")


def test_our_reader_and_importer_get_the_run_back(llama_run, tmp_path):
    """lm2llm's own reader sees the same tensors, and import-gguf rebuilds the same model and tokenizer."""
    export_gguf(llama_run, tmp_path / "model.gguf", "q8_0")
    ours, theirs = GGUFFile(tmp_path / "model.gguf"), gguf.GGUFReader(str(tmp_path / "model.gguf"))
    assert list(ours.tensors) == [t.name for t in theirs.tensors]
    for tensor in theirs.tensors:
        assert np.array_equal(np.asarray(ours.raw(tensor.name)), tensor.data.reshape(-1).view(np.uint8)), tensor.name
    export_gguf(llama_run, tmp_path / "f32.gguf", "f32")
    imported = import_gguf(tmp_path / "f32.gguf", tmp_path / "imported")
    assert imported
    original, back = load_model(llama_run).state_dict(), load_model(tmp_path / "imported").state_dict()
    assert original.keys() == back.keys() and all(torch.equal(original[k], back[k]) for k in original)
    text = "대한민국 헌법 제1조 def add(a, b):\n    return a + b  Quantization!!"
    assert load_tokenizer(tmp_path / "imported").encode(text) == load_tokenizer(llama_run).encode(text)


TRICKY = ["I'll say it's 12345 dollars.\n\n\tOK?!", "  leading   spaces  \r\n\r\n", "대한민국은 1948년에...",
          "don'T WE'LL x'Re", "a\u00a0b\u3000c", "emoji 🙂🙂 ##$$%%", "tabs\t\t\nnext"]


def test_llama_bpe_pre_tokenizer_splits_like_ours():
    """tokenizer.ggml.pre = llama-bpe names llama.cpp's Llama-3 split; it cuts text exactly as our GPT-4 regex."""
    for text in TRICKY:
        assert regex.findall(SPLIT_PATTERN, text) == regex.findall(LLAMA3_SPLIT, text), text


def test_gpt2_style_run_fuses_qkv(gpt_run, tmp_path):
    summary = export_gguf(gpt_run, tmp_path / "gpt.gguf", "q8_0")
    reader = gguf.GGUFReader(str(tmp_path / "gpt.gguf"))
    names = {t.name: t for t in reader.tensors}
    model = load_model(gpt_run)
    assert summary["architecture"] == "gpt2" and "position_embd.weight" in names and "output.weight" in names
    assert tuple(int(d) for d in names["blk.0.attn_qkv.weight"].shape) == (64, 3 * 64)
    bias = torch.cat([model.blocks[0].attn.q_proj.bias, model.blocks[0].attn.k_proj.bias, model.blocks[0].attn.v_proj.bias])
    assert np.array_equal(names["blk.0.attn_qkv.bias"].data, bias.detach().numpy())


def interleaved_rope(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """llama.cpp's (and Meta's) RoPE, written independently: rotate pairs (x[2i], x[2i+1]) by p·θ^(−2i/d)."""
    d = x.shape[-1]
    angles = positions[:, None].double() * theta ** (-torch.arange(0, d, 2).double() / d)
    cos, sin = angles.cos().float(), angles.sin().float()
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)


def test_permuted_rows_make_interleaved_rope_agree_with_ours():
    torch.manual_seed(0)
    n_head, head_dim, d_model, theta = 3, 8, 16, 10000.0
    wq, wk = torch.randn(n_head * head_dim, d_model), torch.randn(n_head * head_dim, d_model)
    x = torch.randn(5, d_model)
    positions = torch.arange(5)
    cos, sin = rope_cos_sin(positions[None], head_dim, theta)

    def ours(w):
        heads = (x @ w.T).view(5, n_head, head_dim).transpose(0, 1)[None]
        return apply_rope(heads, cos, sin)[0]

    def theirs(w):
        return interleaved_rope((x @ permute_rope_rows(w, n_head).T).view(5, n_head, head_dim).transpose(0, 1),
                                positions, theta)

    torch.testing.assert_close(ours(wq) @ ours(wk).transpose(1, 2), theirs(wq) @ theirs(wk).transpose(1, 2),
                               rtol=1e-4, atol=1e-4)
    assert not torch.allclose(ours(wq) @ ours(wk).transpose(1, 2),
                              interleaved_rope((x @ wq.T).view(5, n_head, head_dim).transpose(0, 1), positions, theta)
                              @ interleaved_rope((x @ wk.T).view(5, n_head, head_dim).transpose(0, 1), positions,
                                                 theta).transpose(1, 2), atol=1e-2)


def test_unsupported_runs_are_user_errors(tmp_path):
    tokenizer = CharTokenizer.train(["안녕하세요"])
    save_model(build_model("gpt", "gpt-tiny", vocab_size=tokenizer.vocab_size), tmp_path / "char")
    tokenizer.save(tmp_path / "char")
    with pytest.raises(UserError, match="byte-level BPE"):
        export_gguf(tmp_path / "char", tmp_path / "x.gguf", "f16")
    with pytest.raises(UserError, match="unknown GGUF type"):
        export_gguf(tmp_path / "char", tmp_path / "x.gguf", "q5_k")
    assert not (tmp_path / "x.gguf").exists()


def llama_cpp_or_skip():
    """llama.cpp's own library (gguf/llama_cpp.py), or a skip that says how to get it."""
    from lm2llm.gguf.llama_cpp import NPM_PACKAGE, LlamaCpp, library_dir

    if library_dir() is None:
        pytest.skip(f"llama.cpp is not installed (make setup unpacks {NPM_PACKAGE} when npm is present)")
    return LlamaCpp


@pytest.mark.parametrize("family", ["llama", "gpt"])
def test_llama_cpp_scores_text_as_we_do(llama_run, gpt_run, tmp_path, family):
    """llama.cpp loads our f32 export, splits text into our token ids and gives our log-probabilities, to
    within what its defaults round: it keeps the KV cache in fp16 (and ggml's GELU reads an fp16 table),
    which moves token log-probabilities by a few thousandths (5e-3 at most here)."""
    llama_cpp = llama_cpp_or_skip()
    run = llama_run if family == "llama" else gpt_run
    export_gguf(run, tmp_path / "m.gguf", "f32")
    from lm2llm.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(run)
    text = "대한민국 헌법 제1조. def add(a, b): return a + b"
    ids = tokenizer.encode(text)
    with llama_cpp(tmp_path / "m.gguf", n_ctx=64) as llm:
        assert llm.tokenize(text) == ids  # the same pre-tokenizer and merges
        theirs = torch.log_softmax(torch.tensor(llm.score(ids)), -1)
    with torch.no_grad():
        ours = torch.log_softmax(load_model(run)(torch.tensor([ids]))[0][0], -1)
    picked = torch.tensor(ids[1:])
    diff = (ours[:-1].gather(1, picked[:, None]) - theirs[:-1].gather(1, picked[:, None])).abs().max()
    assert float(diff) < 2e-2, f"token log-probs differ by {float(diff):.2e}"
    assert not math.isnan(float(diff))


def test_llama_cpp_reads_smollm2_as_we_do():
    """The shipped SmolLM2 file in llama.cpp: the same token ids for English, Korean and code, and next-token
    log-probabilities close to ours. Not equal: llama.cpp multiplies Q4_1 weights by activations it first
    rounds to 8 bits (Q8_1), where our import dequantizes the weights and computes in fp32."""
    llama_cpp = llama_cpp_or_skip()
    from lm2llm.gguf.registry import gguf_path, resolve_run
    from lm2llm.tokenizer import load_tokenizer

    try:
        path, run = gguf_path("smollm2-135m-instruct"), resolve_run("smollm2-135m-instruct")
    except UserError as exc:
        pytest.skip(str(exc))
    tokenizer = load_tokenizer(run)
    text = "The capital of France is Paris. 대한민국의 수도는 서울입니다. print(sum(range(10)))"
    ids = tokenizer.encode(text)
    with llama_cpp(path, n_ctx=64) as llm:
        assert llm.tokenize(text) == ids
        theirs = torch.log_softmax(torch.tensor(llm.score(ids)), -1)
    with torch.no_grad():
        ours = torch.log_softmax(load_model(run)(torch.tensor([ids]))[0][0], -1)
    picked = torch.tensor(ids[1:])[:, None]
    diff = (ours[:-1].gather(1, picked) - theirs[:-1].gather(1, picked)).abs()
    assert float(diff.mean()) < 0.1 and float(diff.max()) < 0.6, (float(diff.mean()), float(diff.max()))
    assert float((ours.argmax(-1) == theirs.argmax(-1)).float().mean()) >= 0.8


def test_export_gguf_cli_refuses_to_overwrite_without_force(cli, llama_run, tmp_path):
    out = tmp_path / "m.gguf"
    first = cli("export-gguf", llama_run, "--out", out, "--type", "q4_0", "--json")
    assert first.code == 0, first.err
    assert '"architecture": "llama"' in first.out
    again = cli("export-gguf", llama_run, "--out", out)
    assert again.code == 2 and "--force" in again.err
    assert cli("export-gguf", llama_run, "--out", out, "--force").code == 0
    other = tmp_path / "notes.txt"
    other.write_text("mine")
    refused = cli("export-gguf", llama_run, "--out", other, "--force")
    assert refused.code == 2 and other.read_text() == "mine"


def test_smollm2_tokenizer_is_written_as_its_own_file_has_it():
    """The imported SmolLM2 run's tokenizer goes back out with the original GGUF's tokens, merges, token
    types, pre-tokenizer name (smollm: single digits) and chat template."""
    from lm2llm.compress.gguf_export import tokenizer_metadata
    from lm2llm.gguf.registry import gguf_path, resolve_run

    try:
        original = GGUFFile(gguf_path("smollm2-135m-instruct"))
        run = resolve_run("smollm2-135m-instruct")
    except UserError as exc:
        pytest.skip(str(exc))
    tokenizer = load_tokenizer(run)
    meta = tokenizer_metadata(tokenizer, len(original.metadata["tokenizer.ggml.tokens"]), run)
    for key in ("tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type",
                "tokenizer.chat_template"):
        assert meta[key] == original.metadata[key], key


@pytest.mark.slow
def test_smollm2_exported_as_q4_1_is_the_shipped_file_byte_for_byte(tmp_path):
    """SmolLM2 ships as Q4_1 (embedding Q8_0); imported, then exported as q4_1, every tensor's bytes equal the
    shipped file's: import and export invert each other (the Q/K permutation included) and re-quantizing a
    Q4_1 or Q8_0 round trip gives the same blocks."""
    from lm2llm.gguf.registry import gguf_path, resolve_run

    try:
        shipped = GGUFFile(gguf_path("smollm2-135m-instruct"))
        run = resolve_run("smollm2-135m-instruct")
    except UserError as exc:
        pytest.skip(str(exc))
    export_gguf(run, tmp_path / "smol.gguf", "q4_1")
    ours = GGUFFile(tmp_path / "smol.gguf")
    assert sorted(ours.tensors) == sorted(shipped.tensors)
    for name, tensor in shipped.tensors.items():
        assert ours.tensors[name].ggml_type == tensor.ggml_type, name
        assert np.array_equal(np.asarray(ours.raw(name)), np.asarray(shipped.raw(name))), name
