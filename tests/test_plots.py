"""Figures draw Hangul: a Korean label renders without matplotlib's missing-glyph warning."""

from __future__ import annotations

import warnings


def test_a_korean_label_renders_with_every_glyph(tmp_path):
    from lm2llm.tour.plots import plt

    fig, ax = plt.subplots()
    ax.set_title("대한민국 헌법 제1조 — 한국어 토큰")
    ax.plot([0, 1], [0, 1], label="학습 손실")
    ax.legend()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Glyph … missing from font(s)" is a UserWarning
        fig.savefig(tmp_path / "korean.png")
    plt.close(fig)
    assert (tmp_path / "korean.png").stat().st_size > 0
