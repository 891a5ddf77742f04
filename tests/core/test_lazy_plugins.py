"""Plugin modules are imported when a name is first asked for (kvbench.registry): a run imports the
modules it uses; listing, an unknown name or a name that is not its module's finds them all."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROBE = """
import sys
from kvbench.compose import compose
from kvbench.runner import build

def plugins():
    return sorted(m for m in sys.modules if m.startswith(("kvbench.strategies.", "kvbench.workloads.", "kvbench.executors.")))

{body}
"""


def probe(body: str, cwd: Path) -> str:
    # From a folder of its own: `python -c` puts the working directory first on sys.path, and the
    # checkout's root would shadow an installed (non-editable) kvbench with its source tree.
    result = subprocess.run([sys.executable, "-c", PROBE.format(body=body)], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_run_imports_the_plugin_modules_it_names_and_listing_imports_them_all(tmp_path):
    out = probe("""
run = build(compose(["strategy=paged", "workload=sharegpt", "workload.num_requests=3", "engine=sim"]))
print(" ".join(plugins()))
from kvbench.strategies import STRATEGIES
from kvbench.workloads import WORKLOADS
from kvbench.executors import EXECUTORS
print(len(STRATEGIES.names()), len(WORKLOADS.names()), len(EXECUTORS.names()))
print(" ".join(plugins()))
""", tmp_path)
    at_the_run, names, listed = out.splitlines()
    assert {"kvbench.strategies.paged", "kvbench.workloads.sharegpt", "kvbench.executors.sim"} <= set(at_the_run.split())
    assert not {"kvbench.strategies.paged_radix", "kvbench.workloads.alpaca", "kvbench.executors.device"} & set(
        at_the_run.split())
    assert {"kvbench.strategies.paged_radix", "kvbench.workloads.alpaca", "kvbench.executors.device"} <= set(
        listed.split())
    assert [int(n) >= least for n, least in zip(names.split(), (8, 13, 2))] == [True] * 3


def test_names_that_are_not_module_names_are_found(tmp_path):
    out = probe("""
from kvbench.workloads import WORKLOADS
print(WORKLOADS.get("random").__module__)
cfg = compose(["workload=azure_code", "strategy=orca_max"])
print(cfg.workload.name, cfg.strategy.name)
""", tmp_path)
    assert out.split() == ["kvbench.workloads.shared_prefix_gen", "azure_code", "contiguous"]


def test_an_unknown_name_lists_every_plugin(tmp_path):
    out = probe("""
from kvbench.strategies import STRATEGIES
try:
    STRATEGIES.get("pagd")
except KeyError as err:
    print(err)
""", tmp_path)
    assert "unknown strategy 'pagd'" in out and "paged_radix" in out and "vattention" in out
