"""Matplotlib set-up shared by every chapter: a headless backend and fonts that can draw Hangul.

Matplotlib's default DejaVu font has no Hangul, so Korean tokens in heat maps and labels would show as
boxes. The family list below lets matplotlib fall back, glyph by glyph, to whichever Korean-capable font
the machine has (Noto Sans CJK on Linux, Malgun Gothic on Windows, Apple SD Gothic Neo on macOS). A
fresh machine often has none, so `make setup` installs `koreanize-matplotlib` for the NanumGothic font it
bundles; the font file is registered here without importing that package (which would change global
settings on import).
"""

from __future__ import annotations

import importlib.metadata

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import font_manager  # noqa: E402

KOREAN_FONTS = ["Noto Sans CJK KR", "Noto Sans KR", "NanumGothic", "Malgun Gothic", "Apple SD Gothic Neo", "AppleGothic"]


def _register_bundled_font(package: str = "koreanize-matplotlib", name: str = "NanumGothic.ttf") -> None:
    try:
        files = importlib.metadata.distribution(package).files or []
    except importlib.metadata.PackageNotFoundError:
        return
    for file in files:
        if file.name == name:
            font_manager.fontManager.addfont(str(file.locate()))


def _available(names: list[str]) -> list[str]:
    installed = {f.name for f in font_manager.fontManager.ttflist}
    return [n for n in names if n in installed]


_register_bundled_font()
plt.rcParams["font.family"] = ["DejaVu Sans", *_available(KOREAN_FONTS)]
plt.rcParams["axes.unicode_minus"] = False

__all__ = ["plt"]
