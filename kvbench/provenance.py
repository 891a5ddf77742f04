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


class GitState:
    """{commit, dirty, toplevel} of the git work tree holding a directory (`result`; None outside one),
    its git processes started at once and read when `result` is asked:
    a run's manifest asks for two directories (kvbench's checkout and the working directory), so
    its four processes run side by side (about 10 ms each, a few hundredths of start-up in a row)."""

    def __init__(self, directory: Path) -> None:
        def git(*args: str) -> subprocess.Popen | OSError:
            try:
                return subprocess.Popen(["git", *args], cwd=directory, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True)
            except OSError as err:  # no git, or no such directory
                return err

        self._head = git("rev-parse", "HEAD", "--show-toplevel")  # one process, not two
        self._status = git("status", "--porcelain", "--untracked-files=no")

    def result(self) -> dict | None:
        try:
            head, status = _output(self._head), _output(self._status)
            commit, toplevel = head.splitlines()
        except (OSError, subprocess.SubprocessError, ValueError):
            return None
        return {"commit": commit, "dirty": bool(status), "toplevel": toplevel}


def _output(process: subprocess.Popen | OSError) -> str:
    """A git process's output; raises what `subprocess.run(..., check=True, timeout=5)` would."""
    if isinstance(process, OSError):
        raise process
    try:
        out, _ = process.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, process.args)
    return out.strip()


def distribution_version(name: str) -> str | None:
    """`importlib.metadata.version(name)`, read from the metadata's header lines only.

    The library parses a distribution's whole metadata file as an e-mail message (torch's and
    numpy's run to hundreds of lines of description), about 3 ms a package and a thirtieth of a
    second of every run's manifest; the version is one line of the header, before the first blank
    line. Anything unusual (no such line) is left to the library.
    """
    dist = metadata.distribution(name)
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    for line in text.split("\n", 64):
        if not line.strip():
            break
        key, colon, value = line.partition(":")
        if colon and key.strip().lower() == "version":
            return value.strip()
    return dist.version


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


def run_sources(cwd: Path | None = None) -> tuple[dict, dict | None]:
    """`kvbench_source()` and `working_repository(cwd)`, with their git processes run side by side."""
    source = _editable_source(direct_url())
    checkout = GitState(source) if source is not None else None
    working = GitState(Path.cwd() if cwd is None else cwd)
    return kvbench_source(checkout), working_repository(cwd, working)


def kvbench_source(checkout: GitState | None = None) -> dict:
    """{version, commit, dirty, how}: the kvbench that is running; commit and dirty None when unknown
    (`checkout`: the git state of its editable source, already started)."""
    try:
        version = distribution_version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        version = None
    record = direct_url()
    source = _editable_source(record)
    if source is not None:
        state = (checkout or GitState(source)).result()
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


def working_repository(cwd: Path | None = None, started: GitState | None = None) -> dict | None:
    """{commit, dirty, name} of the git repository the user runs kvbench from, unless it is kvbench's own
    source (then it is already recorded as kvbench's commit). Only the folder's name is kept, never its
    absolute path, so manifests and appendices do not reveal where a reviewer's-eyes-only study lives."""
    state = (started or GitState(Path.cwd() if cwd is None else cwd)).result()
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
