"""No import cycles among kvbench's modules, checked statically; and what a simulator run imports
before its first step.

Every `import` and `from ... import` in every module of the installed package (function-level
imports included: a cycle hidden in a function is still a cycle; `if TYPE_CHECKING:` blocks
excluded: they never run) is an edge to the module it names; a strongly connected component of
more than one module is a cycle. The discovery that package __init__ files run (kvbench.registry.discover)
is dynamic and not an edge: plugin modules import their package, never the other way round.
"""

from __future__ import annotations

import ast
import io
import subprocess
import sys
from pathlib import Path

import kvbench
import kvbench.kernels
import kvbench.strategies
import kvbench.workloads

PACKAGES = {p.__name__: Path(p.__file__).parent for p in (kvbench, kvbench.kernels, kvbench.strategies, kvbench.workloads)}


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _runtime_nodes(tree: ast.AST):
    """Every node, except the bodies of `if TYPE_CHECKING:`."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def import_graph() -> dict[str, set[str]]:
    found = modules()
    graph = {}
    for name, path in found.items():
        edges = set()
        for node in _runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    edges.add(target if target in found else node.module)
            elif isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names)
        graph[name] = {edge for edge in edges if edge in found and edge != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def test_the_checker_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_kvbench_has_no_import_cycles():
    graph = import_graph()
    assert "kvbench.commands.run" in graph and "kvbench.device.engine" in graph  # it saw the package
    assert cycles(graph) == []


def test_engine_modules_never_import_the_commands():
    graph = import_graph()
    for name, edges in graph.items():
        if not name.startswith(("kvbench.commands", "kvbench.cli")):
            assert not {e for e in edges if e.startswith("kvbench.commands")}, name


# A `kvbench run` with engine=sim needs none of these before its first step (torch: 1.5 s; pandas
# and pyarrow: a third of a second, imported where a table is built; matplotlib: charts only; tqdm:
# the progress bar, shown only on a terminal).
NOT_AT_START = ("torch", "pandas", "pyarrow", "matplotlib", "scipy", "tqdm")
FIRST_STEP_PROBE = f"""
import sys
import kvbench.runner
from kvbench.cli import main

def run_steps(*args, run_steps=kvbench.runner.run_steps):
    print("loaded at the first step:", *sorted(m for m in {NOT_AT_START!r} if m in sys.modules))
    return run_steps(*args)

kvbench.runner.run_steps = run_steps
sys.exit(main(sys.argv[1:]))
"""


def test_a_simulator_run_starts_without_torch_pandas_or_charts(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", FIRST_STEP_PROBE, "run", "workload.num_requests=2", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "loaded at the first step:\n" in result.stdout


def test_the_progress_bar_is_tqdm_on_a_terminal_and_none_elsewhere(monkeypatch):
    from tqdm import tqdm

    from kvbench.runner import progress_bar

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    with progress_bar(10, "paged / sharegpt", progress=True) as bar:
        assert isinstance(bar, tqdm) and not bar.disable
    assert progress_bar(10, "paged / sharegpt", progress=False).disable
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert progress_bar(10, "paged / sharegpt", progress=True).disable
