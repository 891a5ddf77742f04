"""How every kvbench figure looks: one colour per strategy, shared memory colours, saving as PNG + PDF.

A strategy keeps its colour in every figure of every report, so a reader learns it once. The
built-in presets have fixed colours (the contiguous family warm, the paged family cool, all from
the colour-blind-safe Okabe-Ito palette); any other name gets a colour from its MD5 digest, which is
the same in every process and on every machine (Python's `hash()` is salted per process).
"""

from __future__ import annotations

import colorsys
import hashlib
from pathlib import Path

import matplotlib
import matplotlib.colors as mcolors
from matplotlib.figure import Figure

STRATEGY_COLORS = {
    "orca_max": "#D55E00",
    "orca_pow2": "#E69F00",
    "orca_oracle": "#CC79A7",
    "contiguous": "#8C510A",
    "paged": "#0072B2",
    "paged_cow": "#009E73",
    "paged_prefix": "#56B4E9",
    "paged_radix": "#66A61E",
    "vattention": "#E7298A",
    "hf_dynamic": "#A6761D",
    "hf_static": "#882255",
}
# Line styles, so that strategies with equal results (orca_pow2 and orca_oracle under a buddy
# allocator, say) stay visible where their lines overlap.
STRATEGY_LINESTYLES = {
    "orca_max": "-", "orca_pow2": "--", "orca_oracle": ":", "contiguous": "-.",
    "paged": "-", "paged_cow": "--", "paged_prefix": ":",
    "paged_radix": "-.", "vattention": "-", "hf_dynamic": "--", "hf_static": ":",
}
# For names outside the built-in presets: no grey or purple (the memory categories' hues).
FALLBACK_COLORS = ("#B15928", "#1B9E77", "#E41A1C", "#FF7F00", "#01665E", "#FDBF6F", "#B2DF8A", "#FB9A99")

# The memory vocabulary of strategies/base.py, in stacking order, with its legend name. Cached blocks
# are free memory that still holds a prefix: any allocation may take them (evicting the prefix), so
# they are drawn as free, next to it, and charts give the prefix hit rate that says what they bought.
MEMORY_CATEGORIES = (
    ("token", "token states"),
    ("reserved", "reserved"),
    ("internal_frag", "internal fragmentation"),
    ("external_frag", "external fragmentation"),
    ("cached", "free, holding cached prefixes (reusable)"),
    ("free", "free"),
)
# Greys and purples: no memory category shares a hue with a strategy colour (orange, pink, brown,
# blue, green), so a bar of memory never reads as a strategy.
MEMORY_COLORS = {
    "token": "#3F3F3F",
    "reserved": "#BCBDDC",
    "internal_frag": "#807DBA",
    "external_frag": "#4A1486",
    "cached": "#D4D4D4",
    "free": "#F2F2F2",
}
MEMORY_HATCHES = {"cached": "////"}

# The names readers know, for legends, tick labels and tables (the run's own preset name stays in data).
DISPLAY_NAMES = {
    "orca_max": "Orca (Max)",
    "orca_pow2": "Orca (Pow2)",
    "orca_oracle": "Orca (Oracle)",
    "contiguous": "Contiguous",
    "paged": "vLLM (paged)",
    "paged_cow": "vLLM (paged + CoW)",
    "paged_prefix": "vLLM (prefix caching)",
    "paged_radix": "SGLang (radix)",
    "vattention": "vAttention",
    "hf_dynamic": "HF DynamicCache",
    "hf_static": "HF StaticCache",
}
# Figures are drawn at the width they are printed at (a US-letter or A4 page with 1-inch margins),
# so that 8-point labels print at 8 points in a paper's appendix.
TEXT_WIDTH_IN = 6.5

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    # No "tight" bounding box: constrained layout already fits every label inside the figure, which
    # keeps each file exactly TEXT_WIDTH_IN wide.
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "pdf.fonttype": 42,  # TrueType in PDFs: editable text, accepted by paper submission systems
}
FORMATS = ("png", "pdf")


def strategy_color(preset: str) -> str:
    """The colour of a strategy preset, stable across figures, processes and machines."""
    if preset in STRATEGY_COLORS:
        return STRATEGY_COLORS[preset]
    digest = hashlib.md5(preset.encode()).digest()
    return FALLBACK_COLORS[digest[0] % len(FALLBACK_COLORS)]


def display_name(preset: str) -> str:
    """'vLLM (paged)' for `paged`; other names as they are."""
    return DISPLAY_NAMES.get(preset, preset)


def strategy_linestyle(preset: str) -> str:
    if preset in STRATEGY_LINESTYLES:
        return STRATEGY_LINESTYLES[preset]
    return ("-", "--", ":", "-.")[hashlib.md5(preset.encode()).digest()[1] % 4]


def variant_color(preset: str, index: int, count: int) -> str:
    """Shades of a preset's colour for its variants (e.g. block sizes), light to dark in order."""
    if count <= 1:
        return strategy_color(preset)
    hue, lightness, saturation = colorsys.rgb_to_hls(*mcolors.to_rgb(strategy_color(preset)))
    lightest, darkest = min(0.8, lightness + 0.25), max(0.2, lightness - 0.2)
    shade = lightest + (darkest - lightest) * index / (count - 1)
    return mcolors.to_hex(colorsys.hls_to_rgb(hue, shade, saturation))


def style():
    """The house style, as a context: draw and save a figure inside it (matplotlib reads most
    settings when an artist is made, so the whole chart goes in the block)."""
    return matplotlib.rc_context(STYLE)


def new_figure(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], **subplots_kw):
    """(figure, 2-D array of axes), made without pyplot: reports never touch pyplot's global state
    or its backend, so importing kvbench in a notebook leaves the notebook's backend alone."""
    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplots_kw)
    return fig, axes


def save_figure(fig, out_dir: Path, name: str) -> list[Path]:
    """Write `name`.png and `name`.pdf, without timestamps, so the same data gives the same PDF."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in FORMATS:
        path = out_dir / f"{name}.{fmt}"
        metadata = {"CreationDate": None} if fmt == "pdf" else {"Software": None}
        fig.savefig(path, format=fmt, metadata=metadata)
        paths.append(path)
    return paths
