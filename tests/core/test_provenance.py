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


def test_package_versions_read_from_the_header_are_importlib_metadatas(tmp_path, monkeypatch):
    from importlib import metadata

    names = {d.metadata["Name"] for d in metadata.distributions()} - {None}
    assert len(names) > 10  # the venv's packages: kvbench's dependencies at least
    assert {name: provenance.distribution_version(name) for name in names} == {
        name: metadata.version(name) for name in names}
    # A header without a Version line is left to the library (which says None), not guessed from the body.
    dist_info = tmp_path / "bare-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: bare\n\nVersion: 9.9 in the body\n")
    monkeypatch.setattr(provenance.metadata, "distribution", lambda name: metadata.PathDistribution(dist_info))
    assert provenance.distribution_version("bare") is None is metadata.PathDistribution(dist_info).version


def test_a_version_line_deep_in_a_long_header_is_found(tmp_path, monkeypatch):
    from importlib import metadata

    dist_info = tmp_path / "long-2.5.dist-info"
    dist_info.mkdir()
    classifiers = "".join(f"Classifier: Topic :: {i}\n" for i in range(100))
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: long\n{classifiers}Version: 2.5\n\nbody\n")
    monkeypatch.setattr(provenance.metadata, "distribution", lambda name: metadata.PathDistribution(dist_info))
    assert provenance.distribution_version("long") == "2.5" == metadata.PathDistribution(dist_info).version


@pytest.mark.parametrize("in_a_repository", [True, False])
def test_run_sources_is_the_two_records_with_their_git_processes_side_by_side(tmp_path, monkeypatch,
                                                                              in_a_repository):
    study = tmp_path / "study"
    study.mkdir()
    if in_a_repository:
        git(study, "init", "-q")
        (study / "plan.txt").write_text("plan\n")
        git(study, "add", "plan.txt")
        git(study, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "plan")
        (study / "plan.txt").write_text("changed\n")
    monkeypatch.chdir(study)
    assert provenance.run_sources() == (provenance.kvbench_source(), provenance.working_repository())
    expected = {"commit": git(study, "rev-parse", "HEAD"), "dirty": True, "name": "study"} if in_a_repository else None
    assert provenance.run_sources()[1] == expected


def test_a_missing_directory_or_git_is_no_repository(tmp_path, monkeypatch):
    assert provenance.GitState(tmp_path / "gone").result() is None
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on the PATH
    assert provenance.GitState(tmp_path).result() is None
