import json

import pytest


@pytest.mark.slow
def test_chapter_4_3_compares_ngram_lstm_and_gpt_on_one_clock(cli, tmp_path):
    result = cli("tour", "--quick", "--only", "4.3", "--out", tmp_path, "--json")
    assert result.code == 0, result.err
    chapter = json.loads(result.out)["chapters"][0]
    curves = chapter["metrics"]["curves"]
    assert set(curves) == {"LSTM", "GPT"}
    for curve in curves.values():  # each starts untrained and improves
        assert curve[-1]["val_loss"] < curve[0]["val_loss"]
    assert (tmp_path / "ch04_03" / "val_loss.png").is_file()
    assert 0 < chapter["metrics"]["ngram"]["val_bpb"] < 8
    assert len(chapter["claims"]) == 3
