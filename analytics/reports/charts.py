"""Charts for the analyst reports: matplotlib (Agg) figures as inline base64 PNG data URIs.

Every function takes a tidy DataFrame (the same table that is exported next to the report) and
returns a ``data:image/png;base64,...`` string, so a report is one self-contained HTML file.
Text from the data (categories, segment names) is drawn as plain text: mathtext is off, so a
``$`` in a category never turns into a formula or an error.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

__all__ = [
    "DECISION_COLOURS",
    "bar_chart",
    "calibration_chart",
    "confusion_chart",
    "curve_chart",
    "distribution_chart",
    "importance_chart",
    "latency_chart",
    "psi_chart",
    "stacked_rates_chart",
    "value_curve_chart",
    "volume_chart",
]

#: One colour per decision, the same in every chart.
DECISION_COLOURS: dict[str, str] = {
    "approve": "#2e7d32",
    "review": "#f9a825",
    "decline": "#c62828",
    "other": "#78909c",
}
_PALETTE = ["#1f5fa8", "#e07b00", "#2e7d32", "#8e24aa", "#00838f", "#6d4c41"]
_STYLE: dict[str, Any] = {
    "text.parse_math": False,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "figure.dpi": 100,
    "savefig.dpi": 110,
}


def _short(text: Any, limit: int = 28) -> str:
    value = str(text)
    return value if len(value) <= limit else value[: limit - 1] + "…"


@contextmanager
def _figure(width: float = 7.5, height: float = 3.6) -> Iterator[Figure]:
    with plt.rc_context(cast(Any, _STYLE)):
        fig = plt.figure(figsize=(width, height))
        try:
            yield fig
        finally:
            plt.close(fig)


def _png(fig: Figure) -> str:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _colour(i: int) -> str:
    return _PALETTE[i % len(_PALETTE)]


def curve_chart(
    curves: pd.DataFrame, x: str, y: str, title: str, xlabel: str, ylabel: str, diagonal: bool
) -> str:
    """One line per ``model`` of ``y`` against ``x`` (ROC or precision-recall)."""
    with _figure(5.2, 4.2) as fig:
        ax = fig.add_subplot()
        for i, (model, part) in enumerate(curves.groupby("model", sort=True)):
            ax.plot(part[x], part[y], color=_colour(i), lw=2, label=_short(model, 40))
        if diagonal:
            ax.plot([0, 1], [0, 1], ls="--", color="#999999", lw=1, label="chance")
        ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel=xlabel, ylabel=ylabel, title=title)
        ax.legend(loc="lower right" if diagonal else "lower left", fontsize=8)
        return _png(fig)


def confusion_chart(
    confusion: pd.DataFrame, classes: tuple[str, str] = ("negative", "positive")
) -> str:
    """A 2x2 heatmap per ``model`` row (columns ``tn fp fn tp``); ``classes`` = (neg, pos)."""
    neg, pos = (_short(c, 14) for c in classes)
    n = len(confusion)
    with _figure(3.4 * n + 0.4, 3.4) as fig:
        for i, row in enumerate(confusion.itertuples(index=False)):
            ax = fig.add_subplot(1, n, i + 1)
            cells = np.array([[row.tn, row.fp], [row.fn, row.tp]], dtype=float)
            ax.imshow(cells, cmap="Blues", vmin=0)
            ax.grid(False)
            top = cells.max() or 1.0
            for (r, c), value in np.ndenumerate(cells):
                colour = "white" if value > top * 0.6 else "black"
                ax.text(c, r, f"{int(value):,}", ha="center", va="center", color=colour, size=12)
            ax.set_xticks([0, 1], [f"predicted {neg}", f"predicted {pos}"])
            ax.set_yticks([0, 1], [f"actual {neg}", f"actual {pos}"], rotation=90, va="center")
            ax.set_title(_short(row.model, 34))
        return _png(fig)


def calibration_chart(calibration: pd.DataFrame) -> str:
    """Observed positive rate against mean predicted score per bin, one line per model."""
    with _figure(5.2, 4.2) as fig:
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1], ls="--", color="#999999", lw=1, label="perfectly calibrated")
        for i, (model, part) in enumerate(calibration.groupby("model", sort=True)):
            ax.plot(
                part["mean_score"],
                part["observed_rate"],
                marker="o",
                color=_colour(i),
                lw=2,
                label=_short(model, 40),
            )
        ax.set(
            xlim=(0, 1),
            ylim=(0, 1.02),
            xlabel="mean predicted risk in bin",
            ylabel="observed share of positives",
            title="Calibration",
        )
        ax.legend(loc="upper left", fontsize=8)
        return _png(fig)


def value_curve_chart(curve: pd.DataFrame, cutoffs: pd.DataFrame) -> str:
    """Expected value per applicant against a single approve/decline cut-off, per model."""
    with _figure(7.5, 3.8) as fig:
        ax = fig.add_subplot()
        for i, (model, part) in enumerate(curve.groupby("model", sort=True)):
            ax.plot(
                part["threshold"],
                part["value_single_cut"],
                color=_colour(i),
                lw=2,
                label=_short(model, 34),
            )
            best = cutoffs[cutoffs["model"] == model]
            for lo, hi in zip(best["approve_below"], best["decline_from"], strict=True):
                ax.axvline(float(lo), color=_colour(i), ls="--", lw=1)
                ax.axvline(float(hi), color=_colour(i), ls="--", lw=1)
        ax.set(
            xlim=(0, 1),
            xlabel="score cut-off",
            ylabel="expected value per applicant",
            title="Expected value by cut-off (dashed: optimal approve / decline cut-offs)",
        )
        ax.legend(fontsize=8, loc="lower right")
        return _png(fig)


def importance_chart(importance: pd.DataFrame, top: int = 15) -> str:
    """Horizontal bars of mean absolute contribution per feature, one panel per model."""
    models = sorted(importance["model"].unique(), key=str)
    n = len(models)
    rows = min(top, int(importance.groupby("model").size().max()))
    with _figure(4.6 * n + 0.6, 0.32 * rows + 1.4) as fig:
        for i, model in enumerate(models):
            part = importance[importance["model"] == model].nlargest(top, "importance")
            ax = fig.add_subplot(1, n, i + 1)
            ax.barh(
                [_short(f) for f in part["feature"]][::-1],
                part["importance"][::-1],
                color=_colour(i),
            )
            ax.set(title=_short(model, 34), xlabel="mean |contribution| to the score")
            ax.grid(axis="y", visible=False)
        return _png(fig)


def volume_chart(volume: pd.DataFrame, decisions: Sequence[str]) -> str:
    """Stacked bars of decisions per period (``period`` + one column per decision)."""
    with _figure(8.5, 3.6) as fig:
        ax = fig.add_subplot()
        labels = [str(p) for p in volume["period_label"]]
        x = np.arange(len(labels))
        bottom = np.zeros(len(labels))
        for i, name in enumerate(decisions):
            values = volume[name].to_numpy(dtype=float)
            ax.bar(
                x,
                values,
                bottom=bottom,
                label=_short(name),
                color=DECISION_COLOURS.get(name, _colour(i)),
                width=0.8,
            )
            bottom += values
        step = max(1, len(labels) // 12)
        ax.set_xticks(x[::step], labels[::step], rotation=30, ha="right")
        ax.set(ylabel="decisions", title="Decisions per period")
        ax.grid(axis="x", visible=False)
        ax.legend(fontsize=8, ncols=min(len(decisions), 4), loc="upper left")
        return _png(fig)


def stacked_rates_chart(rates: pd.DataFrame, by: str, decisions: Sequence[str], title: str) -> str:
    """Horizontal 100% bars: the share of each decision per ``by`` value."""
    rows = len(rates)
    with _figure(8.0, 0.45 * rows + 1.5) as fig:
        ax = fig.add_subplot()
        labels = [_short(v, 32) for v in rates[by]]
        y = np.arange(rows)
        left = np.zeros(rows)
        for i, name in enumerate(decisions):
            share = rates[f"{name}_rate"].fillna(0).to_numpy(dtype=float)
            ax.barh(
                y,
                share,
                left=left,
                label=_short(name),
                color=DECISION_COLOURS.get(name, _colour(i)),
            )
            for yi, (lo, w) in enumerate(zip(left, share, strict=True)):
                if w >= 0.06:
                    ax.text(
                        lo + w / 2, yi, f"{w:.0%}", ha="center", va="center", size=8, color="white"
                    )
            left += share
        ax.set_yticks(y, labels)
        ax.invert_yaxis()
        ax.set(xlim=(0, 1), xlabel="share of decisions", title=title)
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
        ax.grid(axis="y", visible=False)
        ax.legend(
            fontsize=8,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
        )
        return _png(fig)


def latency_chart(latency_ms: pd.Series, percentiles: dict[str, float]) -> str:
    """Histogram of end-to-end latency with the percentile lines."""
    values = latency_ms.dropna().to_numpy(dtype=float)
    with _figure(7.5, 3.4) as fig:
        ax = fig.add_subplot()
        ax.hist(values, bins=40, color=_PALETTE[0], alpha=0.85)
        for i, (name, value) in enumerate(percentiles.items()):
            ax.axvline(
                value, color=_colour(i + 1), ls="--", lw=1.2, label=f"{name} {value:,.0f} ms"
            )
        ax.set(xlabel="event time → decision (ms)", ylabel="decisions", title="End-to-end latency")
        ax.legend(fontsize=8)
        return _png(fig)


def bar_chart(frame: pd.DataFrame, label: str, value: str, title: str, xlabel: str) -> str:
    """Horizontal bars of ``value`` per ``label`` (largest on top)."""
    rows = len(frame)
    with _figure(7.0, 0.4 * rows + 1.3) as fig:
        ax = fig.add_subplot()
        ax.barh([_short(v, 36) for v in frame[label]], frame[value], color=_PALETTE[3])
        ax.invert_yaxis()
        ax.set(title=title, xlabel=xlabel)
        ax.grid(axis="y", visible=False)
        return _png(fig)


def psi_chart(drift: pd.DataFrame, moderate: float, shift: float) -> str:
    """PSI per feature, coloured by band, with the 0.1 / 0.25 guide lines."""
    rows = len(drift)
    with _figure(7.5, 0.32 * rows + 1.4) as fig:
        ax = fig.add_subplot()
        psi = drift["psi"].fillna(0).to_numpy(dtype=float)
        colours = [
            "#c62828" if v > shift else "#f9a825" if v > moderate else "#2e7d32" for v in psi
        ]
        ax.barh([_short(f) for f in drift["feature"]], psi, color=colours)
        ax.axvline(moderate, color="#f9a825", ls="--", lw=1, label=f"moderate ({moderate})")
        ax.axvline(shift, color="#c62828", ls="--", lw=1, label=f"real shift ({shift})")
        ax.invert_yaxis()
        ax.set(xlabel="population stability index (PSI)", title="Drift per feature")
        ax.set_xlim(0, max(float(psi.max()) * 1.1 if len(psi) else 0.0, shift * 1.3))
        ax.grid(axis="y", visible=False)
        ax.legend(fontsize=8, loc="lower right")
        return _png(fig)


def distribution_chart(dist: pd.DataFrame, features: Sequence[str]) -> str:
    """Training vs recent share per bin / category, one panel per feature."""
    n = len(features)
    cols = 2 if n > 1 else 1
    nrows = (n + cols - 1) // cols
    with _figure(5.2 * cols, 3.3 * nrows) as fig:
        for i, feature in enumerate(features):
            part = dist[dist["feature"] == feature]
            ax = fig.add_subplot(nrows, cols, i + 1)
            x = np.arange(len(part))
            ax.bar(x - 0.2, part["train_share"], width=0.4, label="training", color=_PALETTE[0])
            ax.bar(x + 0.2, part["recent_share"], width=0.4, label="recent", color=_PALETTE[1])
            step = max(1, len(part) // 8)
            ax.set_xticks(
                x[::step],
                [_short(b, 14) for b in part["bin"]][::step],
                rotation=30,
                ha="right",
                size=8,
            )
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
            ax.set_title(_short(feature, 40))
            ax.grid(axis="x", visible=False)
            if i == 0:
                ax.legend(fontsize=8)
        return _png(fig)
