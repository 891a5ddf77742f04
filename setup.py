"""Stamps the git commit of the checkout a wheel is built from into the package (kvbench/_build_info.json),
so that an installed kvbench knows its own commit (kvbench/provenance.py). Everything else is in
pyproject.toml."""

import json
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def git_stamp() -> dict:
    def git(*args):
        return subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != HERE:
            return {}  # a copy without its own .git inside some other repository: not kvbench's history
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return {}  # built from an sdist or a copy without .git: nothing to stamp


class BuildPyWithStamp(build_py):
    def run(self):
        super().run()
        stamp = git_stamp()
        if stamp and not self.dry_run:
            target = Path(self.build_lib) / "kvbench" / "_build_info.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(stamp, sort_keys=True) + "\n")


setup(cmdclass={"build_py": BuildPyWithStamp})
