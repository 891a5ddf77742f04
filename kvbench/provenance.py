"""Where a run's code came from: the installed kvbench itself, and the user's working repository.

Two different things, recorded apart in every manifest:

- **kvbench**: the version and git commit of the kvbench that ran, and whether its source tree had
  uncommitted changes. Found, in order: an editable install's source directory (read live with git,
  from the install's `direct_url.json`); the stamp `_build_info.json` that `setup.py` writes into
  the package when a wheel is built from a checkout; the commit pip recorded for a
  `pip install git+https://...@<commit>` (`direct_url.json`'s `vcs_info`). Otherwise the commit is
  unknown, and the version alone identifies the code.
- **the working repository**: the git repository the user ran `kvbench` from (their experiment
  scripts and configs), when the current directory is inside one that is not kvbench's own source.
"""

from __future__ import annotations

import json
import subprocess
from importlib import metadata, resources
from pathlib import Path
from urllib.parse import unquote, urlparse

BUILD_INFO = "_build_info.json"
DISTRIBUTION = "kvbench"


def git_state(directory: Path) -> dict | None:
    """{commit, dirty, toplevel} of the git work tree holding `directory`, or None outside one."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=directory, capture_output=True, text=True, timeout=5,
                              check=True).stdout.strip()

    try:
        commit, toplevel = git("rev-parse", "HEAD", "--show-toplevel").splitlines()  # one process, not two
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return {"commit": commit, "dirty": dirty, "toplevel": toplevel}


def direct_url() -> dict:
    """The install's PEP 610 record (`direct_url.json`), or {} when pip wrote none (an index install)."""
    # Every installed copy's metadata, not just the first found: a checkout's own `kvbench.egg-info`
    # (left by setuptools) shadows the venv's dist-info when Python runs from the checkout.
    texts = [d.read_text("direct_url.json") for d in metadata.distributions(name=DISTRIBUTION)]
    text = next((t for t in texts if t), None)
    try:
        record = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}
    return record if isinstance(record, dict) else {}


def build_stamp() -> dict:
    """The commit stamped into the package when its wheel was built from a checkout, or {}."""
    try:
        text = resources.files("kvbench").joinpath(BUILD_INFO).read_text()
    except (FileNotFoundError, OSError):
        return {}
    try:
        stamp = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return stamp if isinstance(stamp, dict) else {}


def _editable_source(record: dict) -> Path | None:
    if not (record.get("dir_info") or {}).get("editable"):
        return None
    url = urlparse(str(record.get("url", "")))
    return Path(unquote(url.path)) if url.scheme == "file" else None


def kvbench_source() -> dict:
    """{version, commit, dirty, how}: the kvbench that is running; commit and dirty None when unknown."""
    try:
        version = metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        version = None
    record = direct_url()
    source = _editable_source(record)
    if source is not None:
        state = git_state(source)
        if state:
            return {"version": version, "commit": state["commit"], "dirty": state["dirty"],
                    "how": "editable install: its source checkout, read with git"}
    stamp = build_stamp()
    if stamp.get("commit"):
        return {"version": version, "commit": stamp["commit"], "dirty": bool(stamp.get("dirty")),
                "how": "stamped into the package when it was built"}
    vcs = record.get("vcs_info") or {}
    if vcs.get("commit_id"):
        return {"version": version, "commit": vcs["commit_id"], "dirty": False,
                "how": f"recorded by pip ({vcs.get('vcs', 'vcs')} install)"}
    return {"version": version, "commit": None, "dirty": None, "how": "unknown (installed without git metadata)"}


def working_repository(cwd: Path | None = None) -> dict | None:
    """{commit, dirty, name} of the git repository the user runs kvbench from, unless it is kvbench's own
    source (then it is already recorded as kvbench's commit). Only the folder's name is kept, never its
    absolute path, so manifests and appendices do not reveal where a reviewer's-eyes-only study lives."""
    state = git_state(Path.cwd() if cwd is None else cwd)
    if state is None:
        return None
    source = _editable_source(direct_url())
    if source is not None and Path(state["toplevel"]).resolve() == source.resolve():
        return None
    return {"commit": state["commit"], "dirty": state["dirty"], "name": Path(state["toplevel"]).name}


def describe(commit: str | None, dirty: bool | None) -> str:
    """'<commit>' or '<commit> (uncommitted changes)', or 'unknown'."""
    if not commit:
        return "unknown"
    return commit + (" (uncommitted changes)" if dirty else "")
