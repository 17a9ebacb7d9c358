"""Matplotlib set-up shared by every chapter: a headless backend, fonts that can draw Hangul, Korean figure text.

Matplotlib's default DejaVu font has no Hangul, so Korean tokens in heat maps and labels would show as
boxes. The family list below lets matplotlib fall back, glyph by glyph, to whichever Korean-capable font
the machine has (Noto Sans CJK on Linux, Malgun Gothic on Windows, Apple SD Gothic Neo on macOS). A
fresh machine often has none, so `make setup` installs `koreanize-matplotlib` for the NanumGothic font it
bundles; the font file is registered here without importing that package (which would change global
settings on import).

Chapters label their figures in English; in a `--lang ko` tour `localise_figure` (called by
`ChapterContext.save_figure`) puts every word of a figure through the report's glossary, so chapter code
stays one language.
"""

from __future__ import annotations

import importlib.metadata

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.axis import Axis  # noqa: E402
from matplotlib.category import StrCategoryFormatter  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from matplotlib.ticker import FixedFormatter, FixedLocator, FuncFormatter  # noqa: E402

from lm2llm.tour.i18n import translate  # noqa: E402

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


def text_artists(fig: Figure) -> list[Text]:
    """The figure's words as matplotlib Text artists: super-title and labels (the figure's texts), axes titles,
    axis labels (colour bars too), legend entries and titles, free text and annotations. Tick labels are not
    among them (see `named_ticks`), nor the text drawn on a heat map's cells (tokens shown as data)."""
    artists = list(fig.texts)
    legends = list(fig.legends)
    for ax in fig.axes:
        artists += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label]
        legends.append(ax.get_legend())
        if not ax.images:
            artists += ax.texts
    for legend in filter(None, legends):
        artists += [legend.get_title(), *legend.get_texts()]
    unique = {id(artist): artist for artist in artists if artist is not None and artist.get_text().strip()}
    return list(unique.values())


def named_ticks(fig: Figure) -> list[tuple[Axis, list[float], list[str]]]:
    """(axis, positions, labels) of the named ticks: bars drawn over names (`bar(names, ...)`) or labelled
    with `set_xticks(ticks, labels)`. Numeric ticks are not named ticks, nor the token labels of a heat map
    (an axes showing an image)."""
    named = []
    for ax in fig.axes:
        for axis in () if ax.images else (ax.xaxis, ax.yaxis):
            formatter = axis.get_major_formatter()
            if isinstance(formatter, StrCategoryFormatter):
                positions = list(axis.get_major_locator()())
            elif isinstance(axis.get_major_locator(), FixedLocator) and isinstance(formatter, FuncFormatter | FixedFormatter):
                positions = list(axis.get_major_locator().locs)
            else:
                continue
            named.append((axis, positions, [str(formatter(position, i)) for i, position in enumerate(positions)]))
    return named


def figure_words(fig: Figure) -> list[str]:
    """Every label of the figure that `localise_figure` translates, as drawn."""
    ticks = [label for _, _, labels in named_ticks(fig) for label in labels if label.strip()]
    return [artist.get_text() for artist in text_artists(fig)] + ticks


def localise_figure(fig: Figure, lang: str) -> None:
    """Translate the figure's words into the report's language (English figures are left alone)."""
    if lang == "en":
        return
    for artist in text_artists(fig):
        artist.set_text(translate(artist.get_text(), lang))
    for axis, positions, labels in named_ticks(fig):
        translated = [translate(label, lang) for label in labels]
        if translated != labels:
            axis.set_ticks(positions, translated)


def log_x_axes(ax, xlabel: str, ylabel: str | None = None, legend_size: int = 7) -> None:  # noqa: ANN001
    """The look of a size or compute plot: log x axis, labels, a small legend, a light grid."""
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.legend(fontsize=legend_size)
    ax.grid(alpha=0.3)


__all__ = ["figure_words", "localise_figure", "log_x_axes", "plt"]
