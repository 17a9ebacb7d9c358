"""Tour chapters 2.2 (BERT vs GPT) and 6.1 (Hugging Face), quick mode, through the CLI."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.slow
def test_bert_vs_gpt_and_hugging_face_chapters(cli, tmp_path, known_peak):
    result = cli("tour", "--quick", "--only", "2.2", "--only", "6.1", "--out", tmp_path, "--json")
    assert result.code == 0, result.err
    chapters = {c["id"]: c for c in json.loads(result.out)["chapters"]}
    bert_gpt = chapters["2.2"]
    saved = json.loads((tmp_path / "ch02_02" / "result.json").read_text(encoding="utf-8"))
    rows = {row[0]: row[1:] for row in saved["tables"][0]["rows"]}
    assert rows["structure"] == ["encoder only", "decoder only"]
    assert all(0 <= v <= 1 for v in bert_gpt["metrics"]["blank_accuracy"].values())
    blank = bert_gpt["metrics"]["blank_scores"]
    # every model is scored on the same blanks against a guess from token frequencies
    assert all(0 <= blank[k]["top1"] <= 1 and blank[k]["nats"] > 0 for k in ("bert", "gpt", "frequencies"))
    plateau = bert_gpt["metrics"]["bert_on_plateau"]
    assert plateau == (blank["bert"]["nats"] > blank["frequencies"]["nats"] - 0.1)
    assert ("plateau" in bert_gpt["claims"][0]["measurement"]["en"]) == plateau
    assert len(bert_gpt["claims"]) == 4 and all(isinstance(c["holds"], bool) for c in bert_gpt["claims"])
    assert (tmp_path / "ch02_02" / "bert_vs_gpt.png").is_file()
    hugging_face = chapters["6.1"]["metrics"]
    # these are fidelity results, not tuning outcomes: they must hold on any machine
    assert hugging_face["same_ids"] and hugging_face["same_text"] and hugging_face["embedding_diff"] < 1e-5
    assert all(c["holds"] for c in chapters["6.1"]["claims"])
    print({cid: round(c["seconds"], 1) for cid, c in chapters.items()})
