"""`kvbench appendix`: Markdown that parses, LaTeX that compiles (where a TeX toolchain is present)."""

import hashlib
import json
import re
import shutil
import subprocess

import pytest
import yaml

from kvbench.cli import main as kvbench_cli
from kvbench.reporting.appendix import main
from kvbench.reporting.latex import escape, verbatim
from kvbench.reporting.series import slug
from kvbench.reporting.sweeps import job_dir


def test_markdown_parses_with_tables_code_and_images_that_exist(appendix_dir):
    markdown_it = pytest.importorskip("markdown_it")
    tokens = markdown_it.MarkdownIt("commonmark").enable("table").parse((appendix_dir / "appendix.md").read_text())
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    for section in ("Environment", "Datasets", "Seeds and repeats", "Commands", "Configuration", "Results", "Figures"):
        assert section in headings
    assert sum(t.type == "table_open" for t in tokens) >= 7
    fences = [t.content for t in tokens if t.type == "fence"]
    assert any("kvbench run -m strategy=orca_max,paged workload.rate=2,16 seed=0,1" in f for f in fences)
    images = [c.attrs["src"] for t in tokens if t.type == "inline" for c in t.children or [] if c.type == "image"]
    assert len(images) == 8 and all((appendix_dir / src).is_file() for src in images)


def test_appendix_records_what_the_runs_recorded(appendix_dir, rate_sweep):
    text = (appendix_dir / "appendix.md").read_text()
    manifest = json.loads((job_dir(rate_sweep, 0) / "manifest.json").read_text())
    if manifest["kvbench"]["commit"]:
        assert f"| kvbench commit | {manifest['kvbench']['commit']}" in text
    assert "| working repository (where kvbench ran) |" in text
    for name in ("python", "torch", "triton"):
        assert f"| {name} | {manifest['versions'][name]} |" in text
    assert manifest["dataset"]["sha256"] in text
    assert "| seeds | 0, 1 |" in text and "| seeds per configuration | 2 (4 configurations) |" in text
    assert "GPU | none (simulator" in text
    for job in range(8):
        overrides = yaml.safe_load((job_dir(rate_sweep, job) / ".hydra" / "overrides.yaml").read_text())
        assert "kvbench run " + " ".join(overrides) in text
        config = yaml.safe_load((appendix_dir / "configs" / f"{slug('rate_sweep/' + job_dir(rate_sweep, job).name)}.yaml")
                                .read_text())
        assert config == yaml.safe_load((job_dir(rate_sweep, job) / "config.yaml").read_text())
    assert re.search(r"\d \[\d[\d.]*, \d[\d.]*\]", text)  # two seeds per point: intervals


def test_latex_is_well_formed_and_includes_existing_figures(appendix_dir):
    tex = (appendix_dir / "appendix.tex").read_text()
    begins = re.findall(r"\\begin\{(\w+)\}", tex)
    ends = re.findall(r"\\end\{(\w+)\}", tex)
    assert sorted(begins) == sorted(ends)
    for command in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{longtable}", r"\includegraphics"):
        assert command in tex
    figures = re.findall(r"\\includegraphics\[[^\]]*\]\{\\kvbenchappendixdir/([^}]+)\}", tex)
    assert len(figures) == 8 and all((appendix_dir / f).is_file() and f.endswith(".pdf") for f in figures)


def test_latex_compiles_where_a_toolchain_is_present(appendix_dir, tmp_path):
    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        pytest.skip("no pdflatex on this machine (apt-get install texlive-latex-recommended to run this test)")
    work = shutil.copytree(appendix_dir, tmp_path / "appendix")
    result = subprocess.run(
        [pdflatex, "-interaction=nonstopmode", "-halt-on-error", "appendix_standalone.tex"],
        cwd=work, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert (work / "appendix_standalone.pdf").read_bytes()[:5] == b"%PDF-"
    log = (work / "appendix_standalone.log").read_text(errors="replace")
    assert "Overfull \\hbox" not in log, [line for line in log.splitlines() if "Overfull" in line]


def test_the_appendix_reveals_no_absolute_path_and_says_how_to_reproduce(appendix_dir, rate_sweep):
    for name in ("appendix.md", "appendix.tex"):
        text = (appendix_dir / name).read_text()
        assert str(rate_sweep.parent) not in text and str(appendix_dir) not in text, name
    text = (appendix_dir / "appendix.md").read_text()
    assert "## How to reproduce" in text and "pip install 'kvbench==" in text
    assert "kvbench run -m strategy=orca_max,paged" in text
    summary_sha = hashlib.sha256((job_dir(rate_sweep, 0) / "summary.json").read_bytes()).hexdigest()
    assert summary_sha in text


def test_numbers_are_right_aligned_and_figures_drawn_at_text_width(appendix_dir):
    tex = (appendix_dir / "appendix.tex").read_text()
    specs = re.findall(r"\\begin\{tabular\}\{([lr]+)\}", tex)
    assert specs and all(spec[0] == "l" and set(spec[1:]) == {"r"} for spec in specs[:2])  # strategy, then numbers
    for pdf in (appendix_dir / "figures").glob("*.pdf"):
        width_pt = float(re.search(rb"/MediaBox \[ *0 0 ([\d.]+) ", pdf.read_bytes()).group(1))
        assert width_pt <= 6.5 * 72 + 0.5, pdf.name  # 6.5 in: printed at its own size, 8-pt labels stay 8 pt



def test_latex_escaping_and_wrapping():
    assert escape("50% of a_b & c#{x}") == r"50\% of a\_b \& c\#\{x\}"
    assert escape("1 ± 2 ≥ 3") == r"1 $\pm$ 2 $\geq$ 3"
    assert r"\allowbreak{}" in escape("a" * 64)  # a checksum may break across lines
    block = verbatim("kvbench run " + " ".join(f"key{i}=value{i}" for i in range(20)))
    lines = block.splitlines()[2:-2]
    assert len(lines) > 1 and all(len(line) <= 80 for line in lines)
    assert all(line.endswith(" \\") for line in lines[:-1])


def test_no_complete_run_is_bad_input(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert kvbench_cli(["appendix", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert "no complete run" in capsys.readouterr().err
