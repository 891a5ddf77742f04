"""`kvbench appendix SWEEP_DIR... --out DIR`: a reproducibility appendix in LaTeX and Markdown.

Writes into DIR:

    appendix.md               the appendix in Markdown (GitHub-flavoured: pipe tables)
    appendix.tex              the same in LaTeX, to \\input into a paper (needs booktabs, graphicx, longtable and array;
                              set \\kvbenchappendixdir to DIR's path relative to the paper first)
    appendix_standalone.tex   a minimal document around appendix.tex, to compile on its own
    figures/                  the report's charts (PDF for LaTeX, PNG for Markdown) and their numbers
    configs/<run>.yaml        every run's resolved config
    runs.csv                  the tidy table of runs

The appendix holds: the environment (git commit, Python, torch, triton and other versions,
platform, GPU), the datasets with checksums, seeds and repeat counts, the exact command lines (the
sweep and each run), the resolved config (what all runs share, then what differs per run), summary
tables with 95% intervals, the highest rate under the latency bound, the figures, and runs left out.
Exit status: 0 on success, 2 for bad input (no such directory, no complete run).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from kvbench.reporting import latex
from kvbench.reporting import markdown as md
from kvbench.reporting.charts import LatencyBound
from kvbench.reporting.environment import dataset_rows, environment_rows, seed_rows, sweep_commands
from kvbench.reporting.report import ScenarioReport, make_report
from kvbench.reporting.runs import InputError, RunSet, flatten, load_runs, mapping
from kvbench.results import CONFIG as CONFIG_FILE
from kvbench.results import SUMMARY as SUMMARY_FILE
from kvbench.reporting.series import slug
from kvbench.reporting.tables import SUMMARY_TABLES, summary_cells, summary_numbers, sustained_cells

MARKDOWN = "appendix.md"
LATEX = "appendix.tex"
STANDALONE = "appendix_standalone.tex"
CONFIGS = "configs"


# The appendix is a list of blocks, each rendered once to Markdown and once to LaTeX.
@dataclass
class Heading:
    text: str
    level: int  # 1 section, 2 subsection, 3 subsubsection


@dataclass
class Paragraph:
    text: str  # plain text: escaped for LaTeX, taken as is by Markdown


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str
    # LaTeX: None for a floating table of results; a longtable column spec for lists that must stay
    # in place and may run over pages (the widths let long cells wrap).
    long_columns: str | None = None


@dataclass
class Code:
    text: str
    language: str = ""


@dataclass
class Figure:
    png: str  # paths relative to the appendix directory
    pdf: str
    caption: str


Block = Heading | Paragraph | Table | Code | Figure


def build_blocks(run_set: RunSet, reports: list[ScenarioReport], out_dir: Path, command: str) -> list[Block]:
    records = run_set.records
    blocks: list[Block] = [
        Heading("Reproducibility appendix", 1),
        Paragraph(f"Generated from {len(records)} complete runs by the command below. Every number is read from "
                  "the run directories (manifest.json, config.yaml, summary.json, steps and requests tables)."),
        Code(command, "bash"),
        Heading("Environment", 2),
        Table(["item", "value"], [list(r) for r in environment_rows(records)], "Software and hardware of the runs.",
              r"p{0.3\linewidth} p{0.62\linewidth}"),
        Heading("Datasets", 2),
        Table(["dataset", "field", "value"], dataset_table_rows(records), "Datasets read by the runs, with checksums.",
              r"p{0.22\linewidth} p{0.12\linewidth} p{0.56\linewidth}"),
        Heading("Seeds and repeats", 2),
        Table(["item", "value"], [list(r) for r in seed_rows(records)],
              "Seeds; a configuration is a resolved config less its seed.", r"p{0.3\linewidth} p{0.62\linewidth}"),
        Heading("Commands", 2),
    ]
    sweeps = sweep_commands(records)
    if sweeps:
        blocks.append(Paragraph("The sweeps, as Hydra recorded them:"))
        blocks.append(Code("\n".join(command for _, command in sweeps), "bash"))
    blocks.append(Paragraph("Each run alone:"))
    blocks.append(Code("\n".join(f"# {r.name}\n{r.command}" for r in records), "bash"))
    blocks += config_blocks(run_set, out_dir)
    blocks += reproduce_blocks(run_set, sweeps)
    for report in reports:
        blocks += result_blocks(report, out_dir, many=len(reports) > 1)
    if run_set.problems:
        blocks.append(Heading("Runs left out", 2))
        blocks.append(Table(["run", "status", "what happened"],
                            [[p.path.name if p.path.parent in run_set.inputs else str(p.path), p.status, p.detail]
                             for p in run_set.problems],
                            "Runs that did not complete, never ran, or repeat another run; excluded above.",
                            r"p{0.3\linewidth} p{0.12\linewidth} p{0.48\linewidth}"))
    return [scrubbed(block) for block in blocks]


def reproduce_blocks(run_set: RunSet, sweeps: list[tuple[Path, str]]) -> list[Block]:
    """How to reproduce: what to install, what to run, how long it takes, and checksums to check against."""
    records = run_set.records
    manifests = [r.manifest for r in records]
    versions = sorted({str(mapping(m.get("kvbench")).get("version") or mapping(m.get("versions")).get("kvbench"))
                       for m in manifests})
    commits = sorted({c for m in manifests if (c := mapping(m.get("kvbench")).get("commit"))})
    torch_versions = sorted({str(mapping(m.get("versions")).get("torch")) for m in manifests} - {"None"})
    install = [f"pip install 'torch=={v.split('+')[0]}'" for v in torch_versions[:1]]
    install += [f"pip install 'kvbench=={v}'" for v in versions if v != "None"]
    if commits:
        install.append(f"# or from a kvbench checkout at the commit the runs used: git checkout {commits[0]} && pip install .")
    runs_text = [command for _, command in sweeps] or [r.command for r in records]
    wall_s = [float(w) for m in manifests if isinstance(w := m.get("wall_time_s"), (int, float))]
    platforms = sorted({str(m.get("platform", "not recorded")) for m in manifests})
    runtime = (f"The runs took {sum(wall_s):.0f} s of wall time in all (the longest {max(wall_s):.0f} s), one after "
               f"another, on {'; '.join(platforms)}." if wall_s else "The manifests do not record run times.")
    rows = [[r.name, _sha256(r.path / CONFIG_FILE), _sha256(r.path / SUMMARY_FILE)] for r in records]
    return [
        Heading("How to reproduce", 2),
        Paragraph("Install the kvbench (and PyTorch) the runs used, rerun them, and rebuild this appendix:"),
        Code("\n".join([*install, *runs_text, "kvbench appendix <the sweep directories> --out appendix"]), "bash"),
        Paragraph(runtime + " The simulator is deterministic: the same config and seed give a byte-identical "
                  "summary.json, so a rerun's files match the SHA-256 sums below (floats are stored at 12 "
                  "significant digits, so they match across machines). Runs on a device measure time and vary."),
        Table(["run", "config.yaml SHA-256", "summary.json SHA-256"], rows, "Checksums of each run's config and summary.",
              r"p{0.2\linewidth} p{0.35\linewidth} p{0.35\linewidth}"),
    ]


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "missing"


# An absolute path: a slash not preceded by a word character (so `s/token`, `1/2` stay), at least two parts.
ABSOLUTE_PATH = re.compile(r"(?<![\w~.<>])/(?:[^\s/'\"=,]+/)+([^\s/'\"=,]+)")


def scrub_paths(text: str) -> str:
    """Absolute paths cut to `<dir>/<last part>`: an appendix must not reveal where (or whose) the runs
    were, for double-blind review; the last part still says which folder is meant."""
    return ABSOLUTE_PATH.sub(lambda m: f"<dir>/{m.group(1)}", text)


def scrubbed(block: Block) -> Block:
    if isinstance(block, (Heading, Paragraph)):
        return replace(block, text=scrub_paths(block.text))
    if isinstance(block, Code):
        return replace(block, text=scrub_paths(block.text))
    if isinstance(block, Table):
        return replace(block, rows=[[scrub_paths(str(c)) for c in row] for row in block.rows],
                       caption=scrub_paths(block.caption))
    return block


def dataset_table_rows(records) -> list[list[str]]:
    """One row per field of each dataset, so that checksums have the width of the page."""
    rows = []
    for name, source, tokenizer, sha256 in dataset_rows(records):
        fields = [("source", source), ("tokenizer", tokenizer), ("SHA-256", sha256)]
        rows += [[name if i == 0 else "", field, value or "-"] for i, (field, value) in enumerate(fields)]
    return rows


def config_blocks(run_set: RunSet, out_dir: Path) -> list[Block]:
    """What every run's resolved config shares, what differs per run; each config also as a file."""
    configs_dir = out_dir / CONFIGS
    configs_dir.mkdir(parents=True, exist_ok=True)
    flats = [flatten(r.config) for r in run_set.records]
    keys = list(dict.fromkeys(k for f in flats for k in f))
    shared = {k for k in keys if all(k in f and f[k] == flats[0].get(k) for f in flats)}
    rows = []
    for record, flat in zip(run_set.records, flats):
        file_name = f"{slug(record.name)}.yaml"
        (configs_dir / file_name).write_text(yaml.safe_dump(record.config, sort_keys=False))
        rows.append([record.name, " ".join(f"{k}={flat[k]}" for k in keys if k not in shared and k in flat),
                     f"{CONFIGS}/{file_name}"])
    return [
        Heading("Configuration", 2),
        Paragraph("Settings shared by every run (the resolved config, as kvbench ran it):"),
        Code(yaml.safe_dump(_unflatten({k: flats[0][k] for k in keys if k in shared}), sort_keys=False), "yaml"),
        Paragraph("Settings that differ between runs:"),
        Table(["run", "settings", "full config"], rows, "Per-run settings beyond the shared ones.",
              r"p{0.18\linewidth} p{0.5\linewidth} p{0.24\linewidth}"),
    ]


def result_blocks(report: ScenarioReport, out_dir: Path, many: bool) -> list[Block]:
    scenario = report.scenario
    numbers = summary_numbers(scenario)
    title = f"Results: {scenario.label}" if many else "Results"
    blocks: list[Block] = [
        Heading(title, 2),
        Paragraph(f"{scenario.label}. Means over seeds; [low, high] is the 95% bootstrap percentile interval "
                  "where a point has several seeds."),
    ]
    for what, columns in SUMMARY_TABLES:
        blocks.append(Table(*summary_cells(numbers, columns), f"{what} ({scenario.label})."))
    for chart in report.charts:
        if "sustained_rate" in chart.tables:
            sustained = chart.tables["sustained_rate"]
            blocks.append(Paragraph(f"Highest request rate sustained under the latency bound ({chart.notes[0]}):"))
            blocks.append(_sustained_table(sustained))
    blocks.append(Heading("Figures" + (f": {scenario.label}" if many else ""), 3))
    for chart in report.charts:
        caption = chart.title.replace("\n", ". ") + "."
        png, pdf = (os.path.relpath(p, out_dir) for p in chart.paths)
        blocks.append(Figure(png, pdf, caption))
    return blocks


def _sustained_table(sustained) -> Table:
    headers, rows = sustained_cells(sustained)
    return Table(headers, rows, "Highest request rate under the latency bound.")


def _unflatten(flat: dict) -> dict:
    nested: dict = {}
    for key, value in flat.items():
        node = nested
        *parents, leaf = key.split(".")
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return nested


def to_markdown(blocks: list[Block]) -> str:
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {block.text}\n")
        elif isinstance(block, Paragraph):
            parts.append(block.text + "\n")
        elif isinstance(block, Table):
            parts.append(f"*{block.caption}*\n\n" + md.table(block.headers, block.rows))
        elif isinstance(block, Code):
            parts.append(md.code_block(block.text, block.language))
        else:
            parts.append(md.image(block.caption, block.png) + f"\n*{block.caption}* ([PDF]({block.pdf}))\n")
    return "\n".join(parts)


def to_latex(blocks: list[Block]) -> str:
    commands = {1: "section", 2: "subsection", 3: "subsubsection"}
    parts = [
        "% kvbench reproducibility appendix: \\input this file.",
        "% It needs \\usepackage{booktabs,graphicx,longtable,array}.",
        "% Set \\newcommand{\\kvbenchappendixdir}{<this directory, relative to the main .tex>} before \\input.",
        "\\providecommand{\\kvbenchappendixdir}{.}",
        "",
    ]
    num_tables = num_figures = 0
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"\\{commands[block.level]}{{{latex.escape(block.text)}}}\n")
        elif isinstance(block, Paragraph):
            parts.append(_latex_paragraph(block.text) + "\n")
        elif isinstance(block, Table):
            num_tables += 1
            label = f"tab:kvbench-{num_tables}"
            if block.long_columns:
                parts.append(latex.long_table(block.headers, block.rows, block.caption, label, block.long_columns))
            else:
                parts.append(latex.booktabs_table(block.headers, block.rows, block.caption, label))
        elif isinstance(block, Code):
            parts.append(latex.verbatim(block.text))
        else:
            num_figures += 1
            parts.append(latex.figure(block.pdf, block.caption, f"fig:kvbench-{num_figures}"))
            if num_figures % 4 == 0:
                parts.append("\\clearpage\n")  # LaTeX holds at most 18 floats in waiting
    parts.append("\\clearpage\n")
    return "\n".join(parts)


def _latex_paragraph(text: str) -> str:
    """Plain text with `code` spans set in \\texttt."""
    pieces = text.split("`")
    return "".join(f"\\texttt{{{latex.escape(p)}}}" if i % 2 else latex.escape(p) for i, p in enumerate(pieces))


def standalone_document() -> str:
    return "\n".join([
        "\\documentclass{article}",
        "\\usepackage[letterpaper,margin=1in]{geometry}",  # a 6.5 in text width: the charts' own width
        "\\usepackage{booktabs}",
        "\\usepackage{graphicx}",
        "\\usepackage{longtable}",
        "\\usepackage{array}",
        "\\newcommand{\\kvbenchappendixdir}{.}",
        "\\begin{document}",
        f"\\input{{{LATEX[:-4]}}}",
        "\\end{document}",
        "",
    ])


def _relative(path) -> str:
    """A path as the user may have typed it relative to the current directory (absolute ones are scrubbed)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def parse_args(args: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kvbench appendix",
                                     description="A reproducibility appendix (LaTeX and Markdown) for sweeps of runs.")
    parser.add_argument("inputs", nargs="+", metavar="SWEEP_DIR", help="sweep or run directories")
    parser.add_argument("--out", type=Path, required=True, help="directory to write the appendix into")
    parser.add_argument("--latency-bound", default="5x",
                        help="bound on mean normalized latency for the highest sustained rate (as in kvbench report)")
    return parser.parse_args(args)


def main(args: list[str]) -> int:
    ns = parse_args(args)
    bound = LatencyBound.parse(ns.latency_bound)  # bad input raises: the command layer prints it, exit 2
    run_set = load_runs(ns.inputs)
    if not run_set.records:
        raise InputError(f"no complete run under {', '.join(ns.inputs)}: "
                         + "; ".join(f"{p.path} ({p.status})" for p in run_set.problems))
    out_dir = ns.out
    reports = make_report(run_set, out_dir, bound)
    command = " ".join(["kvbench appendix", *map(_relative, ns.inputs), "--out", _relative(ns.out),
                        "--latency-bound", ns.latency_bound])
    blocks = build_blocks(run_set, reports, out_dir, command)
    (out_dir / MARKDOWN).write_text(to_markdown(blocks))
    (out_dir / LATEX).write_text(to_latex(blocks))
    (out_dir / STANDALONE).write_text(standalone_document())
    for problem in run_set.problems:
        print(f"kvbench appendix: left out: {problem.path} ({problem.status}): {problem.detail}", file=sys.stderr)
    print(f"appendix of {len(run_set.records)} runs: {out_dir / MARKDOWN}, {out_dir / LATEX}")
    return 0
