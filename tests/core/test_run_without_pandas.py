"""A simulator run writes its Parquet tables and summary without importing pandas (a third of a
second) or numpy.ma; pandas stays the library of reporting and of the DataFrames the API returns."""

import subprocess
import sys

from kvbench.results import read_table

PROBE = """
import sys
from kvbench.cli import main
code = main(sys.argv[1:])
print("loaded at exit:", *sorted(m for m in ("pandas", "numpy.ma", "pyarrow.compute") if m in sys.modules))
sys.exit(code)
"""


def test_a_simulator_run_never_imports_pandas(tmp_path):
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-c", PROBE, "run", "workload.num_requests=20", "goodput.ttft_ms=500",
         f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "loaded at exit:\n" in result.stdout
    requests = read_table(run_dir, "requests")
    assert len(requests) == 20 and requests["tpot_s"].dtype == "float64"
