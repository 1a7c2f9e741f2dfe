"""data_prep: real videos to face crops and a manifest; resumable, atomic, bad inputs reported."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
from conftest import REPO_ROOT, VIDEOS

from data_prep import extract_faces
from emokeras.datasets.sources import load_splits
from emokeras.errors import DatasetError
from emokeras.fileio import read_csv
from emokeras.labels import RAVDESS
from emokeras.prepare import PrepareConfig, find_videos, prepare_videos, write_manifest
from emokeras.run_folder import DEFAULT_FRAMING, CropFraming

FAST = PrepareConfig(target_fps=3.0, size=96, val_fraction=0.5, test_fraction=0.0)


def run_prepare(root: Path, out: Path, config: PrepareConfig = FAST) -> list[dict[str, str]]:
    list(prepare_videos(find_videos(root), root, out, config))
    return read_csv(write_manifest(out, config))


def test_ravdess_clips_become_labelled_crops_split_by_actor(ravdess_tree, tmp_path):
    rows = run_prepare(ravdess_tree, tmp_path)
    ok = [r for r in rows if r["status"] == "ok"]
    assert {r["video_id"] for r in rows} == {
        "Actor_01__01-01-01-01-01-01-01", "Actor_01__01-01-05-02-01-01-01",
        "Actor_02__01-01-01-01-02-01-02", "Actor_02__01-01-06-02-02-01-02",
    }
    # every video gives a face in nearly every sampled frame (~3.5 s at 3 fps = ~11 frames)
    for video_id in {r["video_id"] for r in rows}:
        faces = [r for r in ok if r["video_id"] == video_id]
        assert len(faces) >= 8, video_id
    angry = [r for r in ok if "-05-" in r["video_id"]]
    assert {r["label"] for r in angry} == {"angry"} and {r["label_index"] for r in angry} == {"4"}
    assert {(r["actor"], r["sex"]) for r in ok} == {("01", "male"), ("02", "female")}
    # whole actors per split, never frames of one actor in two splits
    splits_of_actor = {a: {r["split"] for r in ok if r["actor"] == a} for a in ("01", "02")}
    assert all(len(s) == 1 for s in splits_of_actor.values())
    assert set().union(*splits_of_actor.values()) == {"train", "val"}
    # timestamps follow frame indices at 29.97 fps; crops are real square images on disk
    for row in ok[:5]:
        assert float(row["timestamp"]) == pytest.approx(int(row["frame_index"]) / 29.97, abs=1e-3)
        crop = cv2.imread(str(tmp_path / row["crop_path"]))
        assert crop.shape == (96, 96, 3)


def test_bad_videos_are_reported_and_the_run_carries_on(ravdess_tree, tmp_path):
    root = tmp_path / "videos"
    shutil.copytree(ravdess_tree / "Actor_01", root / "Actor_01")
    (root / "03-01-02-01-01-01-03.mp4").write_text("not a video")
    shutil.copyfile(VIDEOS / "no_face.mp4", root / "01-01-03-01-01-01-05.mp4")
    shutil.copyfile(VIDEOS / "single_face.mp4", root / "interview.mp4")  # no RAVDESS name
    rows = run_prepare(root, tmp_path / "out")
    by_status = {}
    for row in rows:
        by_status.setdefault(row["status"], set()).add(row["video_id"])
    assert by_status["unreadable"] == {"03-01-02-01-01-01-03"}
    assert by_status["bad_name"] == {"interview"}
    assert by_status["no_face"] >= {"01-01-03-01-01-01-05"}
    assert by_status["ok"] == {"Actor_01__01-01-01-01-01-01-01", "Actor_01__01-01-05-02-01-01-01"}
    reasons = {r["video_id"]: r["reason"] for r in rows}
    assert "03-01-02-01-01-01-03.mp4" in reasons["03-01-02-01-01-01-03"]
    assert "interview.mp4" in reasons["interview"]
    no_face_rows = [r for r in rows if r["video_id"] == "01-01-03-01-01-01-05"]
    assert all(r["status"] == "no_face" and r["frame_index"] for r in no_face_rows)


def test_the_crop_margin_is_recorded_and_becomes_the_training_framing(ravdess_tree, tmp_path):
    # a model trained on these crops must be given detected faces cut with the same margin
    config = PrepareConfig(target_fps=3.0, max_frames=2, size=48, margin=0.35,
                           val_fraction=0.5, test_fraction=0.0)
    rows = run_prepare(ravdess_tree, tmp_path, config)
    assert sum(r["status"] == "ok" for r in rows) >= 6
    recorded = json.loads((tmp_path / "prepare.json").read_text())
    assert recorded["margin"] == 0.35 and recorded["detector"] == "yunet"
    manifest = tmp_path / "manifest.csv"
    assert load_splits(manifest, RAVDESS).framing == CropFraming(margin=0.35, shift_y=0.0)
    # a manifest from before prepare.json: prepare's default margin
    (tmp_path / "prepare.json").unlink()
    assert load_splits(manifest, RAVDESS).framing == DEFAULT_FRAMING
    for text in ("{not json", '{"size": 48}', '{"margin": 5}'):
        (tmp_path / "prepare.json").write_text(text)
        with pytest.raises(DatasetError, match="prepare.json"):
            load_splits(manifest, RAVDESS)


def test_rerun_skips_finished_videos_and_redoes_missing_ones(ravdess_tree, tmp_path):
    first = run_prepare(ravdess_tree, tmp_path)
    results = list(prepare_videos(find_videos(ravdess_tree), ravdess_tree, tmp_path, FAST))
    assert all(r.skipped for r in results)
    (tmp_path / "parts" / "Actor_02__01-01-06-02-02-01-02.csv").unlink()
    results = list(prepare_videos(find_videos(ravdess_tree), ravdess_tree, tmp_path, FAST))
    assert [r.video_id for r in results if not r.skipped] == ["Actor_02__01-01-06-02-02-01-02"]
    assert read_csv(write_manifest(tmp_path, FAST)) == first


@pytest.mark.slow
def test_a_killed_run_resumes_without_half_written_files(ravdess_tree, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "data_prep.extract_faces", str(ravdess_tree), str(out),
               "--target-fps", "3", "--size", "96"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    def finished_parts():  # hidden names are temporaries still being written
        return {p.stem for p in (out / "parts").glob("*.csv") if not p.name.startswith(".")}

    while not finished_parts() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = finished_parts()
    assert 1 <= len(done_before) < 4, "the kill should land mid-run"

    finished = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert f"{len(done_before)} skipped" in finished.stdout
    rows = read_csv(out / "manifest.csv")
    assert len({r["video_id"] for r in rows}) == 4
    assert not list(out.rglob("*.partial*")), "a temporary file was left behind"
    for row in rows:
        if row["status"] == "ok":
            assert cv2.imread(str(out / row["crop_path"])) is not None


def test_example_main_job(tmp_path, capsys):
    assert extract_faces.main(["--example", str(tmp_path)]) == 0
    rows = read_csv(tmp_path / "manifest.csv")
    face = [r for r in rows if r["video_id"] == "01-01-01-01-01-01-02"]
    no_face = [r for r in rows if r["video_id"] == "01-01-01-01-01-01-04"]
    assert face and all(r["status"] == "ok" and r["sex"] == "female" for r in face)
    assert no_face and all(r["status"] == "no_face" for r in no_face)
    assert "2 videos" in capsys.readouterr().out


def test_cli_rejects_a_missing_folder(tmp_path, capsys):
    assert extract_faces.main([str(tmp_path / "nope"), str(tmp_path / "out")]) == 2
    assert "nope" in capsys.readouterr().err
