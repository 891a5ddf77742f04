"""The regression gate of CI, on the same small case: the committed baselines still reproduce."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kvbench.reporting.compare import main

REPO = Path(__file__).resolve().parents[2]
BASELINES = REPO / "results" / "baselines" / "sharegpt_sim"


def test_the_simulator_reproduces_the_committed_baselines(tmp_path):
    if not (BASELINES / "multirun.yaml").is_file():
        pytest.skip(f"no committed baselines at {BASELINES}")
    # `kvbench` from the interpreter running the tests, as CI's environment has it on PATH.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(["bash", str(REPO / "scripts" / "make_baselines.sh"), str(tmp_path / "new")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    new_runs = sorted(p.parent.name.split("_", 1)[0] for p in (tmp_path / "new").glob("*/summary.json"))
    assert new_runs == [str(i) for i in range(8)]
    assert not list((tmp_path / "new").rglob("steps.*"))  # baselines keep only what compare reads
    code = main([str(BASELINES), str(tmp_path / "new"), "--out", str(tmp_path / "comparison")])
    assert code == 0, (
        "the simulator no longer reproduces results/baselines (see the printed deltas); if the change is "
        "intended, regenerate them with scripts/make_baselines.sh and commit the result"
    )
