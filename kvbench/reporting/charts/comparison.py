"""The comparison chart of `kvbench compare`: a grid of matched runs (rows) by metrics (columns).

Each cell shows the change against the base in % and is coloured by how far it moved in units of
its tolerance, the right way green, the wrong way red: a cell past one tolerance is a verdict
(bold, outlined when a regression); pale cells are within tolerance. A grid keeps forty runs by
seven metrics readable on one page, where bars per metric would not.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.patches import Rectangle
import pandas as pd
from matplotlib.colors import LinearSegmentedColormap

from kvbench.reporting.styles import new_figure, save_figure, style

NAME = "comparison"
SCORE_LIMIT = 3.0  # colour saturates at three tolerances
# Red (worse) through white (no change) to green (better): no change must look neutral.
CHANGE_CMAP = LinearSegmentedColormap.from_list(
    "kvbench_change", ["#B2182B", "#F4A582", "#FFFFFF", "#A6DBA0", "#1B7837"]
)


def score(row) -> float:
    """The change in units of the tolerance threshold, positive the right way (NaN when not judged)."""
    if row.verdict == "not compared" or math.isnan(row.change):
        return math.nan
    threshold = row.rtol * abs(row.base) + row.atol
    if row.direction == "either way":
        better = -abs(row.change)  # any change is away from the base
    else:
        better = row.change if row.direction == "higher is better" else -row.change
    if threshold == 0:
        return 0.0 if better == 0 else math.copysign(SCORE_LIMIT, better)
    return max(-SCORE_LIMIT, min(SCORE_LIMIT, better / threshold))


def draw(deltas: pd.DataFrame, title: str, out_dir) -> list:
    """`deltas` has the columns of compare.COLUMNS."""
    metrics = list(dict.fromkeys(deltas["metric"]))
    runs = list(dict.fromkeys(deltas["run"]))
    scores = np.full((len(runs), len(metrics)), np.nan)
    texts = [["" for _ in metrics] for _ in runs]
    verdicts = [["" for _ in metrics] for _ in runs]
    for row in deltas.itertuples():
        i, j = runs.index(row.run), metrics.index(row.metric)
        scores[i, j] = score(row)
        verdicts[i][j] = row.verdict
        texts[i][j] = "not\ncompared" if row.verdict == "not compared" else (
            f"{row.relative_change:+.1%}" if not math.isnan(row.relative_change) else f"{row.change:+.3g}"
        )
    with style():
        fig, axes = new_figure(1, 1, figsize=(2.2 + 1.25 * len(metrics), 1.6 + 0.28 * len(runs))
        )
        ax = axes[0][0]
        image = ax.imshow(np.ma.masked_invalid(scores), cmap=CHANGE_CMAP, vmin=-SCORE_LIMIT, vmax=SCORE_LIMIT,
                          aspect="auto")
        for i in range(len(runs)):
            for j in range(len(metrics)):
                judged = verdicts[i][j] in ("regression", "changed", "improvement")
                dark = abs(scores[i, j]) > 0.7 * SCORE_LIMIT
                ax.text(j, i, texts[i][j], ha="center", va="center", fontsize=7,
                        fontweight="bold" if judged else "normal", color="white" if dark else "black")
                if verdicts[i][j] in ("regression", "changed", "not compared"):
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.5))
        ax.set_xticks(range(len(metrics)), [m.replace("_", " ") for m in metrics], rotation=30, ha="right")
        ax.set_yticks(range(len(runs)), runs)
        ax.tick_params(length=0)
        ax.grid(visible=False)
        for spine in ax.spines.values():
            spine.set_visible(False)
        colorbar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
        colorbar.set_label("change in tolerances (+ better, − worse)")
        ax.set_title(title, fontsize=9)
        return save_figure(fig, out_dir, NAME)
