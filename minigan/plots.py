"""Charts, drawn with matplotlib: the metrics of a training run (``losses.png``) and the
benchmark bar chart.

matplotlib is imported inside the functions that draw (never at ``import minigan``, never by
``minigan --help``), and only through its Agg canvas (:class:`matplotlib.figure.Figure` plus
``savefig``): no display is needed and no global pyplot state is touched. Each function
returns what it plotted (the series, the bars), so tests and callers can check the data
without reading pixels.

Which metrics share a subplot is :func:`metric_groups`'s decision: the groups a model
declares (``GAN.plot_groups``) and any a caller adds (e.g. quality metrics), then ``losses``
(every ``loss*`` key), ``D outputs`` (``d_real``, ``d_fake``) and one subplot for each other
metric.

>>> metric_groups(["loss_d", "loss_g", "d_real", "d_fake", "gp", "seconds"])
{'losses': ['loss_d', 'loss_g'], 'D outputs': ['d_real', 'd_fake'], 'gp': ['gp']}
>>> metric_groups(["loss_d", "wasserstein", "gp"], {"critic": ["wasserstein", "gp"]})
{'critic': ['wasserstein', 'gp'], 'losses': ['loss_d']}
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "BOOKKEEPING",
    "BarChart",
    "Series",
    "bar_chart",
    "metric_groups",
    "plot_metrics",
    "smooth",
]

#: keys of a metrics.jsonl record that say where and how fast, not how training goes
BOOKKEEPING = ("step", "epoch", "batch", "seconds", "images_per_s")
#: how the standard metrics are named on plots, in the progress bar and in summaries
LABELS = {"d_real": "D(x)", "d_fake": "D(G(z))"}
PathLike = str | os.PathLike[str]


def metric_groups(
    keys: Iterable[str], declared: Mapping[str, Sequence[str]] | None = None
) -> dict[str, list[str]]:
    """The subplots of a metrics plot: title -> the metrics drawn together.

    ``declared`` groups come first, in their order (keys that are not in ``keys`` dropped,
    empty groups skipped); the remaining metrics go to ``losses`` (names starting with
    ``loss``), ``D outputs`` (``d_real``, ``d_fake``) or a subplot of their own. The
    :data:`BOOKKEEPING` keys are never plotted.
    """
    present = [k for k in dict.fromkeys(keys) if k not in BOOKKEEPING]
    groups: dict[str, list[str]] = {}
    placed: set[str] = set()
    for title, members in (declared or {}).items():
        chosen = [k for k in members if k in present and k not in placed]
        if chosen:
            groups[str(title)] = chosen
            placed.update(chosen)
    rest = [k for k in present if k not in placed]
    automatic = {
        "losses": [k for k in rest if k.startswith("loss")],
        "D outputs": [k for k in rest if k in ("d_real", "d_fake")],
    }
    for title, members in automatic.items():
        if members:
            groups.setdefault(title, []).extend(members)
            placed.update(members)
    for key in rest:
        if key not in placed:
            groups[key] = [key]
    return groups


def smooth(values: Sequence[float] | np.ndarray, weight: float) -> np.ndarray:
    """An exponential moving average with TensorBoard's bias correction: point ``i`` is
    ``sum(w^(i-j) (1-w) v_j) / (1 - w^(i+1))``, so the first points are not pulled to 0.

    >>> smooth([1.0, 3.0], 0.5).round(4).tolist()   # (0.25 * 1 + 0.5 * 3) / 0.75
    [1.0, 2.3333]
    >>> smooth([1.0, 3.0], 0.0).tolist()
    [1.0, 3.0]
    """
    out = np.empty(len(values), np.float64)
    last = 0.0
    for i, v in enumerate(values):
        last = weight * last + (1.0 - weight) * float(v)
        out[i] = last / (1.0 - weight ** (i + 1)) if weight > 0 else last
    return out


def smoothing_weight(n: int) -> float:
    """The moving-average weight for a series of ``n`` points: none up to 25 points, then
    about ``n / 25`` points' memory (at most 0.98)."""
    return float(min(0.98, max(0.0, 1.0 - 25.0 / max(n, 1))))


@dataclasses.dataclass
class Series:
    """One metric as plotted: its steps, raw values and the smoothed line."""

    key: str
    steps: np.ndarray
    values: np.ndarray
    smoothed: np.ndarray


def _series(records: Sequence[Mapping[str, Any]], key: str, xkey: str) -> Series:
    """The finite values of ``key`` over the records that have it."""
    points = [
        (float(r[xkey]), float(r[key]))
        for r in records
        if key in r and xkey in r and r[key] is not None and math.isfinite(float(r[key]))
    ]
    steps = np.array([p[0] for p in points], np.float64)
    values = np.array([p[1] for p in points], np.float64)
    return Series(key, steps, values, smooth(values, smoothing_weight(len(values))))


def log_scale(series: Iterable[Series]) -> bool:
    """Whether a subplot reads better on a log axis: every value positive and the trend (the
    smoothed values, so that noise near 0 does not decide) spanning two decades or more."""
    series = list(series)
    if any(s.values.size and s.values.min() <= 0 for s in series):
        return False
    values = np.concatenate([s.smoothed for s in series] + [np.zeros(0)])
    return bool(values.size and values.max() / values.min() >= 100)


def _draw_group(ax: Any, title: str, members: list[Series]) -> None:
    for k, s in enumerate(members):
        colour = f"C{k % 10}"
        label = LABELS.get(s.key, s.key)
        if len(s.values) > 25:  # noisy: the raw values faint, the moving average on top
            ax.plot(s.steps, s.values, color=colour, alpha=0.25, linewidth=0.8)
            ax.plot(s.steps, s.smoothed, color=colour, linewidth=1.6, label=f"{label} (smoothed)")
        else:  # few points (or sparse ones, e.g. a quality metric): every point marked
            ax.plot(s.steps, s.values, color=colour, marker="o", markersize=3, label=label)
    if log_scale(members):
        ax.set_yscale("log")
    elif all(s.values.size and s.values.min() >= 0 and s.values.max() <= 1 for s in members):
        if all(s.key in LABELS for s in members):  # probabilities: the whole range
            ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small")


def plot_metrics(
    path: PathLike,
    records: Sequence[Mapping[str, Any]],
    groups: Mapping[str, Sequence[str]] | None = None,
    title: str = "",
    xkey: str = "step",
) -> dict[str, list[Series]]:
    """Draw the metrics of ``records`` (metrics.jsonl lines) over ``xkey`` into the PNG
    ``path``, one subplot per group of :func:`metric_groups` (``groups`` are the declared
    ones), and return what was plotted: group title -> its :class:`Series`.

    Each series is drawn over the records that have it, so a metric logged every N steps
    (or once) shows as points. A noisy series (more than 25 points) is drawn faint with its
    moving average (:func:`smooth`) on top; a group whose values are all positive and span
    two decades gets a log axis. Nothing is written when there is nothing to plot.
    """
    keys = [k for r in records for k in r]
    plotted = {
        t: [s for s in (_series(records, k, xkey) for k in members) if s.values.size]
        for t, members in metric_groups(keys, groups).items()
    }
    plotted = {t: members for t, members in plotted.items() if members}
    if not plotted:
        return {}
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 1.2 + 2.4 * len(plotted)), dpi=100, layout="constrained")
    axes = fig.subplots(len(plotted), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (group, members) in zip(axes, plotted.items()):
        _draw_group(ax, group, members)
    axes[-1].set_xlabel(xkey)
    if title:
        fig.suptitle(title)
    _save(fig, path, {"Title": title} if title else {})
    return plotted


def _save(fig: Any, path: PathLike, metadata: Mapping[str, str]) -> None:
    """``fig`` as a PNG, written atomically (a temporary file renamed over ``path``)."""
    from minigan.images import _atomic

    _atomic(path, lambda tmp: fig.savefig(tmp, format="png", metadata=dict(metadata)))


# --------------------------------------------------------------------------- bar chart
@dataclasses.dataclass
class BarChart:
    """What :func:`bar_chart` drew: per bar its label, value, drawn length (cut at ``xmax``;
    0 for NaN), whether it was cut, its colour (``C1`` above the reference, else ``C0``) and
    the text at its end; the axis end ``xmax``, the image size in pixels and the matplotlib
    figure (its artists are what was drawn)."""

    labels: list[str]
    values: list[float]
    lengths: list[float]
    cut: list[bool]
    colours: list[str]
    texts: list[str]
    xmax: float
    size: tuple[int, int]  # (width, height)
    figure: Any = dataclasses.field(default=None, repr=False)


def _nice_step(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k that is at least ``value`` (> 0).

    >>> _nice_step(0.3), _nice_step(2.6)
    (0.5, 5.0)
    """
    power = 10.0 ** math.floor(math.log10(value))
    return next(s * power for s in (1, 2, 2.5, 5, 10) if value <= s * power * (1 + 1e-9))


def _format(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if value == 0 or math.isinf(value):
        return str(value).replace(".0", "")
    if abs(value) >= 1e4 or abs(value) < 1e-2:
        return f"{value:.1e}"
    return f"{value:.3g}"


def bar_chart(
    path: PathLike,
    bars: Sequence[tuple[str, float]],
    *,
    width: int = 960,
    title: str = "",
    xlabel: str = "",
    reference: float | None = 1.0,
    xmax: float | None = None,
) -> BarChart:
    """Horizontal bars, one per ``(label, value)``, top to bottom in the order given, written
    as the PNG ``path`` (``width`` pixels wide, 0.3 inch more per bar).

    The axis is linear from 0 to ``xmax`` (default: the largest finite value, or
    ``reference``, rounded up to a tick), so a bar's length is proportional to its value. A
    dark vertical line marks ``reference``; bars above it are orange (``C1``), the others blue
    (``C0``). A bar beyond ``xmax`` (or infinite) is cut at the edge, with a white notch,
    its true value written; NaN draws no bar and reads "n/a". Negative values raise
    ``ValueError``. Returns the :class:`BarChart` drawn.
    """
    if not bars:
        raise ValueError("bar_chart: no bars")
    labels = [str(label) for label, _ in bars]
    values = [float(v) for _, v in bars]
    if any(v < 0 for v in values):
        raise ValueError(f"bar_chart: bars start at 0, got negative values {values}")
    finite = [v for v in values if math.isfinite(v)]
    top = xmax or max([*finite, reference or 0.0]) or 1.0
    if xmax is None:
        step = _nice_step(top / 4)
        xmax = step * math.ceil(top * 1.02 / step)
    lengths = [0.0 if math.isnan(v) else min(v, xmax) for v in values]
    cut = [v > xmax for v in values]
    colours = ["C1" if reference is not None and v > reference else "C0" for v in values]
    texts = [_format(v) for v in values]

    from matplotlib.figure import Figure

    dpi, height = 100, 1.4 + 0.3 * len(bars)
    fig = Figure(figsize=(width / dpi, height), dpi=dpi, layout="constrained")
    ax = fig.subplots()
    rows = np.arange(len(bars))
    ax.barh(rows, lengths, height=0.7, color=colours)
    for row, length, text, is_cut in zip(rows, lengths, texts, cut):
        if is_cut:  # a notch near the end: the bar goes on
            ax.plot([0.97 * xmax] * 2, [row - 0.35, row + 0.35], color="white", linewidth=3)
        ax.text(length, float(row), " " + text, va="center", fontsize="small")
    if reference is not None and 0 <= reference <= xmax:
        ax.axvline(reference, color="0.15", linewidth=1)
    ax.set_yticks(rows, labels, fontsize="small")
    ax.set_ylim(len(bars) - 0.5, -0.5)  # the first bar on top
    ax.set_xlim(0, xmax * 1.12)  # room for the value of a full-length bar
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title)
    _save(fig, path, {"Title": title} if title else {})
    size = (int(round(width)), int(round(height * dpi)))
    return BarChart(labels, values, lengths, cut, colours, texts, float(xmax), size, fig)
