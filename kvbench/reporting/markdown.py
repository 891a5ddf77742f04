"""Small Markdown writers: pipe tables, code blocks, images; cell text escaped so tables stay tables."""

from __future__ import annotations

from collections.abc import Sequence


def cell(text: object) -> str:
    """A table cell: pipes escaped, line breaks turned into spaces."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def code_block(text: str, language: str = "") -> str:
    fence = "```"
    while fence in text:  # a fence longer than any run of backticks inside
        fence += "`"
    return f"{fence}{language}\n{text.rstrip()}\n{fence}\n"


def image(alt: str, path: str) -> str:
    return f"![{alt.replace(']', ')').replace('[', '(')}]({path.replace(' ', '%20')})\n"
