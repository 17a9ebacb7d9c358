"""Chapter 6.2 runs end to end in quick mode: a trained run, measured settings, computed claims, figures."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_generation_chapter_quick(cli, tmp_path):
    result = cli("tour", "--quick", "--only", "6.2", "--out", tmp_path, "--json")
    assert result.code == 0, result.err
    chapter = json.loads(result.out)["chapters"][0]
    assert len(chapter["claims"]) == 5
    assert all(isinstance(claim["holds"], bool) for claim in chapter["claims"])
    settings = chapter["metrics"]["settings"]
    assert settings["greedy"]["distinct_2"] <= settings["T=1.5"]["distinct_2"]
    assert all(setting["perplexity"] >= 1 for setting in settings.values())
    folder = next(tmp_path.glob("ch06_02*"))
    assert (folder / "sampling.png").is_file() and (folder / "kv_cache.png").is_file()
    assert (folder / "run" / "model.safetensors").is_file()
