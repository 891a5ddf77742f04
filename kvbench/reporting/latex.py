"""Small LaTeX writers for the appendix: escaped text, booktabs tables, verbatim blocks, figures.

Everything written here compiles with pdflatex and the booktabs, graphicx, longtable and array packages
(all in every TeX distribution's base).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence

import pandas as pd

_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
    # Characters kvbench's own text uses that pdflatex's default fonts lack.
    "±": r"$\pm$", "≥": r"$\geq$", "≤": r"$\leq$", "×": r"$\times$", "→": r"$\rightarrow$", "−": "-", "·": r"\,/\,",
}
VERBATIM_WIDTH = 80  # characters: a longer verbatim line (footnotesize) would run off an article page


LONG_WORD = 40  # characters: a longer word (a checksum, a path) gets break points every BREAK_EVERY
BREAK_EVERY = 16


def escape(text: object) -> str:
    """Text with LaTeX's special characters escaped; long words may break (copying keeps them whole)."""
    return " ".join(_escape_word(word) for word in str(text).split(" "))


def _escape_word(word: str) -> str:
    chars = [_SPECIAL.get(c, c) for c in word]
    if len(word) > LONG_WORD:
        chars = [c + (r"\allowbreak{}" if (i + 1) % BREAK_EVERY == 0 else "") for i, c in enumerate(chars)]
    return "".join(chars)


NUMBER = re.compile(r"^(n/a|[-+≥]?\s*[\d.]+.*)$")


def column_format(rows: Sequence[Sequence[object]], num_columns: int) -> str:
    """`l` for text columns, `r` for columns whose every cell is a number (means, intervals, counts), so
    that digits line up."""
    def numeric(j: int) -> bool:
        cells = [str(row[j]).strip() for row in rows]
        return bool(cells) and all(NUMBER.match(c) for c in cells)

    return "".join("r" if numeric(j) else "l" for j in range(num_columns))


def booktabs_table(headers: Sequence[str], rows: Sequence[Sequence[object]], caption: str, label: str) -> str:
    """A floating booktabs table written by pandas' `Styler.to_latex`: numbers right-aligned, scaled
    down to the text width only when it is wider."""
    frame = pd.DataFrame([[escape(c) for c in row] for row in rows], columns=[escape(h) for h in headers])
    latex = frame.style.hide(axis="index").to_latex(
        column_format=column_format(rows, len(headers)), hrules=True, caption=escape(caption), label=label,
        position="!htbp", position_float="centering",
    )
    # Shrink (never enlarge) a table wider than the text, and set it small, as tables in papers are.
    latex = latex.replace("\\begin{tabular}", "\\footnotesize\\setlength{\\tabcolsep}{4pt}\n"
                          "\\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}{%\n"
                          "\\begin{tabular}", 1)
    return latex.replace("\\end{tabular}", "\\end{tabular}}", 1) + "\n"


def long_table(headers: Sequence[str], rows: Sequence[Sequence[object]], caption: str, label: str,
               columns: str) -> str:
    """A booktabs longtable: stays where it is written and breaks across pages (lists of runs, settings).

    `columns` is the column spec; give text columns a width (`p{0.6\\linewidth}`) so long cells wrap
    (set ragged right, without hyphenation: cells hold names and settings, not prose).
    """
    columns = columns.replace("p{", r">{\raggedright\arraybackslash\hyphenpenalty=10000}p{")
    return "\n".join([
        r"{\small",
        r"\begin{longtable}{" + columns + "}",
        f"\\caption{{{escape(caption)}}}\\label{{{label}}}\\\\",
        r"\toprule",
        _row(headers),
        r"\midrule",
        r"\endfirsthead",  # the caption and label once; the header row again on every later page
        r"\toprule",
        _row(headers),
        r"\midrule",
        r"\endhead",
        *(_row(row) for row in rows),
        r"\bottomrule",
        r"\end{longtable}}",
        "",
    ])


def _row(cells: Sequence[object]) -> str:
    return " & ".join(escape(c) for c in cells) + r" \\"


def verbatim(text: str) -> str:
    """A verbatim block; a line too long for the page is wrapped, continued with a shell-style backslash."""
    lines = [wrapped for line in text.rstrip().splitlines() for wrapped in _wrap(line)]
    return "{\\footnotesize\n\\begin{verbatim}\n" + "\n".join(lines) + "\n\\end{verbatim}\n}\n"


def _wrap(line: str) -> list[str]:
    if len(line) <= VERBATIM_WIDTH:
        return [line]
    pieces = textwrap.wrap(line, VERBATIM_WIDTH - 6, break_long_words=True, break_on_hyphens=False)
    return [("    " if i else "") + piece + (" \\" if i < len(pieces) - 1 else "") for i, piece in enumerate(pieces)]


def figure(path: str, caption: str, label: str) -> str:
    """A figure at the text width; `path` is relative to the appendix directory (\\kvbenchappendixdir).
    Charts are drawn 6.5 in wide (styles.TEXT_WIDTH_IN), the text width of a page with 1-inch margins,
    so they print at their own size there and scale only slightly in other layouts."""
    return "\n".join([
        r"\begin{figure}[htbp]", r"\centering",
        f"\\includegraphics[width=\\linewidth,height=0.85\\textheight,keepaspectratio]{{\\kvbenchappendixdir/{path}}}",
        f"\\caption{{{escape(caption)}}}", f"\\label{{{label}}}", r"\end{figure}", "",
    ])
