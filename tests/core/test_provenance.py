"""Manifests record the kvbench that ran (its own commit) apart from the user's working repository."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kvbench import provenance

REPO = Path(__file__).resolve().parents[2]


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def test_an_editable_install_reports_its_own_checkouts_commit_from_any_directory(tmp_path, monkeypatch):
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    monkeypatch.chdir(tmp_path)  # not inside kvbench's repository: the commit must still be kvbench's
    source = provenance.kvbench_source()
    if not source["how"].startswith("editable"):
        pytest.skip("kvbench is not installed editable here")
    assert source["commit"] == git(REPO, "rev-parse", "HEAD")
    assert source["dirty"] == bool(git(REPO, "status", "--porcelain", "--untracked-files=no"))


def test_the_working_repository_is_recorded_apart_by_name_only(tmp_path, monkeypatch):
    study = tmp_path / "my_study"
    study.mkdir()
    git(study, "init", "-q")
    (study / "notes.txt").write_text("sweep plan\n")
    git(study, "add", "notes.txt")
    git(study, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "plan")
    monkeypatch.chdir(study)
    repo = provenance.working_repository()
    assert repo == {"commit": git(study, "rev-parse", "HEAD"), "dirty": False, "name": "my_study"}
    (study / "notes.txt").write_text("changed\n")
    assert provenance.working_repository()["dirty"] is True
    monkeypatch.chdir(tmp_path)  # outside any repository
    assert provenance.working_repository() is None


def test_a_wheel_built_from_a_checkout_carries_its_commit(tmp_path):
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("kvbench-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        stamp = json.loads(archive.read("kvbench/_build_info.json"))
        assert any(name.endswith("licenses/LICENSE") for name in archive.namelist())
    assert stamp["commit"] == git(REPO, "rev-parse", "HEAD")


def test_describe_says_when_the_tree_had_changes():
    assert provenance.describe("abc", True) == "abc (uncommitted changes)"
    assert provenance.describe(None, None) == "unknown"
