"""Who may write into a run (or sweep) directory, and how a rerun replaces an earlier result.

A run claims its directory before writing anything:

- an exclusive lock (`flock` on `.kvbench.lock` inside the directory, released when the process
  ends, however it ends) makes a second live run that targets the same directory fail at once;
- a directory that already holds a run is never written into: without `overwrite` the claim is
  refused, naming what is there; with `overwrite` the new run writes into a fresh sibling
  (`<name>.partial-<id>`) and `commit()` swaps it into place only when the new run completed, so an
  earlier result is never deleted before its replacement exists and the two never mix.

Claims are re-entrant within a process: the Hydra callback claims `hydra.run.dir` before Hydra writes
into it, and `runner.execute` then finds that claim by the directory it writes into.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from kvbench.errors import RunDirectoryError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; directories are still never mixed or deleted
    fcntl = None

LOCK = ".kvbench.lock"
# Files kvbench writes into a run directory: any of them means the directory holds a run. Hydra's
# own `.hydra/` and log are not among them: Hydra writes those for the job about to start.
RUN_FILE_PREFIXES = ("manifest.json", "summary.json", "config.yaml", "steps.", "requests.")

HYDRA_DIR = ".hydra"

_claims: dict[Path, RunClaim] = {}  # write_dir -> its claim, for re-entrant claims in this process


def holds_run(path: Path) -> bool:
    """Whether `path`, or a folder right below it (a sweep's job), holds files of a kvbench run."""
    if not path.is_dir():
        return False
    folders = [path, *(p for p in path.iterdir() if p.is_dir() and p.name != HYDRA_DIR)]
    return any(
        entry.name.startswith(RUN_FILE_PREFIXES) and entry.is_file() for folder in folders for entry in folder.iterdir()
    )


def _status(path: Path) -> str:
    """What a directory holds, for the refusal message."""
    import json

    try:
        status = json.loads((path / "manifest.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        status = None
    return f"a {status} run" if isinstance(status, str) else "earlier results"


class RunClaim:
    """This process's right to write a run into `target` (see the module docstring)."""

    def __init__(self, target: Path, write_dir: Path, lock_fd: int | None):
        self.target = target
        self.write_dir = write_dir
        self._lock_fd = lock_fd
        self._depth = 1

    @classmethod
    def acquire(cls, target: str | Path, overwrite: bool = False) -> RunClaim:
        target = Path(target).absolute()
        existing = _claims.get(target)
        if existing is not None:
            existing._depth += 1
            return existing
        target.mkdir(parents=True, exist_ok=True)
        lock_fd = _lock(target)
        write_dir = target
        if holds_run(target):
            if not overwrite:
                _unlock(target, lock_fd)
                raise RunDirectoryError(
                    f"{target} already holds {_status(target)}; choose another directory "
                    f"(hydra.run.dir= / hydra.sweep.dir=) or pass --overwrite to replace it once the new run completes"
                )
            write_dir = target.with_name(f"{target.name}.partial-{secrets.token_hex(3)}")
            write_dir.mkdir()
        claim = cls(target, write_dir, lock_fd)
        _claims[write_dir] = claim
        return claim

    @property
    def replaces(self) -> bool:
        return self.write_dir != self.target

    def commit(self) -> Path:
        """The run completed: put it where it was asked to go (swapping out what was there)."""
        if not self.replaces:
            return self.target
        old = self.target.with_name(f".{self.target.name}.replaced-{secrets.token_hex(3)}")
        os.rename(self.target, old)
        try:
            os.rename(self.write_dir, self.target)
        except OSError:
            os.rename(old, self.target)
            raise
        _claims[self.target] = _claims.pop(self.write_dir)
        self.write_dir = self.target
        shutil.rmtree(old, ignore_errors=True)
        if self._lock_fd is not None:  # its lock file went with the old directory
            os.close(self._lock_fd)
            self._lock_fd = None
        return self.target

    def release(self) -> None:
        self._depth -= 1
        if self._depth:
            return
        _claims.pop(self.write_dir, None)
        if self._lock_fd is not None:
            _unlock(self.target, self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> RunClaim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _lock(directory: Path) -> int | None:
    """An exclusive lock on `directory`, or RunDirectoryError naming the process that holds it."""
    if fcntl is None:
        return None
    path = directory / LOCK
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RunDirectoryError(
                f"{directory} is being written by another run (pid {holder}); choose another directory "
                "(hydra.run.dir= / hydra.sweep.dir=)"
            ) from None
        try:
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:  # not a lock file its holder removed while we waited to open it
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            return fd
        os.close(fd)


def _unlock(directory: Path, fd: int | None) -> None:
    if fd is None:
        return
    try:
        (directory / LOCK).unlink(missing_ok=True)
    except OSError:
        pass  # a read-only directory: the lock file stays, unlocked, and is ignored
    os.close(fd)
