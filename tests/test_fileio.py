"""Atomic writes: whole files or none, with ordinary permissions."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from emokeras.fileio import atomic_path, atomic_write, read_csv, remove_partials, write_csv_atomic


def test_atomic_write_replaces_the_file_whole_with_ordinary_permissions(tmp_path):
    target = tmp_path / "out" / "results.csv"
    write_csv_atomic(target, ["a", "b"], [{"a": 1, "b": "x"}])
    assert read_csv(target) == [{"a": "1", "b": "x"}]
    umask = os.umask(0o022)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's owner-only 0600
    assert os.listdir(target.parent) == ["results.csv"]  # no temporary file left behind


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target) as handle:
        handle.write("half of the new")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["notes.txt"]


def test_atomic_path_keeps_the_suffix_for_writers_that_need_it(tmp_path):
    target = tmp_path / "clip.mp4"
    with atomic_path(target, keep_suffix=True) as partial:
        assert partial.parent == tmp_path and partial.suffix == ".mp4" and partial != target
        partial.write_bytes(b"video")
    assert target.read_bytes() == b"video" and os.listdir(tmp_path) == ["clip.mp4"]


def test_a_temporary_file_never_matches_the_targets_suffix(tmp_path):
    # A kill mid-write leaves the temporary behind; a "*.csv" glob must not take it for a result.
    with atomic_path(tmp_path / "part.csv") as partial:
        assert partial.name.startswith(".") and partial.suffix == ".partial"
        assert not list(tmp_path.glob("*.csv"))
        partial.write_text("a,b\n")
    assert (tmp_path / "part.csv").read_text() == "a,b\n"


def test_remove_partials_sweeps_only_what_a_killed_write_left(tmp_path):
    (tmp_path / "kept.csv").write_text("done")
    (tmp_path / ".left.k2j4x.partial").write_text("half")  # the name atomic_path gives
    (tmp_path / ".clip.p9q1z.partial.mp4").write_text("half")
    assert remove_partials(tmp_path) == 2
    assert os.listdir(tmp_path) == ["kept.csv"]


def test_remove_partials_with_folders_sweeps_a_killed_atomic_folder_build(tmp_path):
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "done.pb").write_text("a finished export")
    code = ("import os, signal, sys\nfrom emokeras.fileio import atomic_folder\n"
            "with atomic_folder(sys.argv[1], overwrite=True) as work:\n"
            "    (work / 'half.pb').write_text('half')\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    assert subprocess.run([sys.executable, "-c", code, str(tmp_path / "2")]).returncode == -9
    (left,) = [p.name for p in tmp_path.iterdir() if p.name != "1"]
    assert left.startswith(".2.partial-")
    assert remove_partials(tmp_path) == 0  # files only: the folder stays
    assert remove_partials(tmp_path, folders=True) == 1
    assert sorted(os.listdir(tmp_path)) == ["1"]
    assert (tmp_path / "1" / "done.pb").read_text() == "a finished export"
    assert remove_partials(tmp_path / "missing", folders=True) == 0
