"""The coordinator's picture of a batch, drawn with matplotlib: answers counted over time
against what the batch needs, and its workers' accuracy on gold against the batch's threshold.

matplotlib is imported only when a chart is drawn: it costs about a second and tens of MB, which
a bot whose coordinators never ask for a chart should not pay at start. It is used through its
object interface (a `Figure` on an Agg canvas), never pyplot, whose global state is not safe in
the thread the drawing runs in.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from labeling.words import plural

if TYPE_CHECKING:
    from matplotlib.axes import Axes

# 1080 px wide, the width of most phones' screens, and under 1280 px on the long side, past
# which Telegram scales a photo down (and its text with it).
WIDTH_PX, HEIGHT_PX, DPI = 1080, 1280, 100
FONT_SIZE = 22  # in points at 100 dpi: about 30 px, legible at full width on a phone
BLUE, GREEN, RED, GREY, INK = "#3465a4", "#4e9a06", "#cc0000", "#9a9a9a", "#2e3436"


@dataclass(frozen=True, slots=True)
class BatchChart:
    """What the chart shows, in the status's own counts."""

    batch_id: int
    name: str
    progress: Sequence[tuple[float, int]]  # (Unix time, answers counted so far)
    counted: int
    needed: int
    stored: int
    # One entry per worker with gold answers: accuracy on gold (0-1), and whether suspended.
    accuracies: Sequence[tuple[float, bool]]
    threshold: float  # the batch's min_accuracy; 0 when the rule is off


def draw(chart: BatchChart) -> bytes:
    """The chart as a PNG, 1080 px wide."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with _style():
        figure = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, layout="constrained")
        FigureCanvasAgg(figure)
        top, bottom = figure.subplots(2, 1, height_ratios=(1, 1))
        name = chart.name if len(chart.name) <= 26 else chart.name[:25] + "…"
        figure.suptitle(f"Batch {chart.batch_id}: {name}", fontsize=FONT_SIZE + 6, weight="bold")
        _progress(top, chart)
        _accuracy(bottom, chart)
        out = io.BytesIO()
        figure.savefig(out, format="png", dpi=DPI)
    return out.getvalue()


def _style() -> AbstractContextManager[None]:
    from matplotlib import rc_context

    return rc_context(
        {
            "font.size": FONT_SIZE,
            "axes.titlesize": FONT_SIZE + 2,
            "axes.labelsize": FONT_SIZE,
            "legend.fontsize": FONT_SIZE - 3,
            "axes.edgecolor": INK,
            "axes.labelcolor": INK,
            "text.color": INK,
            "xtick.color": INK,
            "ytick.color": INK,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.color": "#dddddd",
            "lines.linewidth": 4,
        }
    )


def _progress(axes: Axes, chart: BatchChart) -> None:
    """Answers counted over time, clock times in UTC, the batch's need as a line."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
    from matplotlib.ticker import MaxNLocator, StrMethodFormatter

    share = f" ({chart.counted / chart.needed:.0%})" if chart.needed else ""
    axes.set_title(
        f"{chart.counted} of {plural(chart.needed, 'answer')} counted{share}", loc="left"
    )
    # Stored counts every answer, those not counted too (gold, extras, suspended workers').
    axes.text(
        0.02,
        0.97,
        f"{plural(chart.stored, 'answer')} stored",
        transform=axes.transAxes,
        va="top",
        color=GREY,
        fontsize=FONT_SIZE - 3,
    )
    times = [datetime.fromtimestamp(t, UTC) for t, _ in chart.progress]
    counts = [count for _, count in chart.progress]
    if times:
        # Dates as matplotlib's day numbers, which its date locator and formatter read.
        axes.step(date2num(times), counts, where="post", color=BLUE, label="answers counted")
        if times[-1] - times[0] < timedelta(minutes=10):  # a few answers: show some time around
            middle = times[0] + (times[-1] - times[0]) / 2
            around = date2num([middle - timedelta(minutes=5), middle + timedelta(minutes=5)])
            axes.set_xlim(float(around[0]), float(around[1]))
    if chart.needed:
        axes.axhline(
            chart.needed,
            color=GREEN,
            linestyle="--",
            linewidth=3,
            label=f"needed: {chart.needed}",
        )
    locator = AutoDateLocator(tz=UTC, minticks=3, maxticks=6)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=UTC))
    axes.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=True, steps=[1, 2, 2.5, 5, 10]))
    axes.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    axes.set_ylim(0, max(chart.needed, chart.counted, 1) * 1.2)
    axes.set_xlabel("time (UTC)")
    axes.set_ylabel("answers counted")
    axes.legend(loc="lower right")


def _accuracy(axes: Axes, chart: BatchChart) -> None:
    """How many workers fall in each tenth of accuracy on gold, suspended ones apart, and the
    batch's threshold."""
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    active, suspended = [0] * 10, [0] * 10
    for accuracy, is_suspended in chart.accuracies:
        tenth = min(9, int(accuracy * 10))
        (suspended if is_suspended else active)[tenth] += 1
    lefts = [tenth * 10 for tenth in range(10)]
    axes.set_title(f"{plural(len(chart.accuracies), 'worker')} by accuracy on gold", loc="left")
    if chart.accuracies:
        options: dict[str, Any] = {
            "width": 10,
            "align": "edge",
            "edgecolor": "white",
            "linewidth": 2,
        }
        axes.bar(lefts, active, color=BLUE, label="active", **options)
        if any(suspended):
            axes.bar(lefts, suspended, bottom=active, color=GREY, label="suspended", **options)
    else:
        axes.text(50, 0.5, "no gold answers yet", ha="center", va="center", fontsize=FONT_SIZE + 2)
    if chart.threshold:
        axes.axvline(
            chart.threshold * 100,
            color=RED,
            linestyle="--",
            linewidth=3,
            label=f"threshold: {chart.threshold:.0%}",
        )
    axes.set_xlim(0, 100)
    axes.set_ylim(0, max([a + s for a, s in zip(active, suspended, strict=True)] + [1]) * 1.15)
    axes.xaxis.set_major_locator(MaxNLocator(nbins=5, steps=[2]))
    axes.xaxis.set_major_formatter(PercentFormatter(100))
    axes.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=True, steps=[1, 2, 5, 10]))
    axes.set_xlabel("accuracy on gold")
    axes.set_ylabel("workers")
    if chart.accuracies or chart.threshold:
        axes.legend(loc="upper left")
