"""The emokeras command: predict (bad files reported and skipped), train, evaluate, demo."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from conftest import IMAGES, RAVDESS_CLIPS, VIDEOS

from emokeras.cli import main
from emokeras.fileio import read_csv, write_json_atomic
from emokeras.models import build_model


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A run folder as train.py writes one (model + labels), with an untrained small_cnn."""
    run = tmp_path_factory.mktemp("run")
    build_model("small_cnn", 7, weights=None, input_size=48, channels=1).save(run / "model.keras")
    write_json_atomic(run / "labels.json", {"label_set": "fer2013"})
    return run


def test_predict_on_a_folder_reports_bad_files_and_carries_on(tiny_run, tmp_path, capsys):
    folder = tmp_path / "media"
    folder.mkdir()
    shutil.copyfile(VIDEOS / "single_face.mp4", folder / "a_single_face.mp4")
    shutil.copyfile(RAVDESS_CLIPS / "actor02_sample_03.mp4", folder / "b_actor02.mp4")
    shutil.copyfile(IMAGES / "happy_f15.jpg", folder / "c_happy.jpg")
    (folder / "d_corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200)
    (folder / "e_notes.jpg").write_text("not an image")
    shutil.copyfile(VIDEOS / "no_face.mp4", folder / "f_no_face.mp4")
    out = tmp_path / "results.csv"
    code = main(["predict", str(folder), "--model", str(tiny_run), "--target-fps", "4",
                 "--output", str(out), "--plot", str(tmp_path / "plots")])
    assert code == 0
    rows = {row["path"].rsplit("/", 1)[-1]: row for row in read_csv(out)}
    assert [rows[n]["status"] for n in sorted(rows)] == ["ok", "ok", "ok", "failed", "failed",
                                                         "failed"]
    assert "d_corrupt.mp4" in rows["d_corrupt.mp4"]["error"]
    assert "e_notes.jpg" in rows["e_notes.jpg"]["error"]
    assert "no face" in rows["f_no_face.mp4"]["error"]
    assert rows["c_happy.jpg"]["kind"] == "image" and rows["a_single_face.mp4"]["kind"] == "video"
    assert int(rows["b_actor02.mp4"]["frames_read"]) >= 12
    for video in ("a_single_face", "b_actor02"):
        image = cv2.imread(str(tmp_path / "plots" / f"{video}_timeline.png"))
        assert image is not None and image.shape[1] > 500
    assert "3 of 6 files predicted, 3 failed" in capsys.readouterr().out


def test_predict_writes_json_and_fails_when_everything_fails(tiny_run, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["predict", str(IMAGES / "single_face.jpg"), "--model", str(tiny_run),
                 "--output", str(out)]) == 0
    [row] = json.loads(out.read_text())
    assert row["status"] == "ok" and row["label"]
    assert main(["predict", str(tmp_path / "missing.mp4"), "--model", str(tiny_run)]) == 1
    assert main(["predict", str(tmp_path / "empty_dir_that_is_missing"), "--model",
                 str(tmp_path)]) == 2
    assert "model.keras" in capsys.readouterr().err


def test_demo_runs_the_bundled_model_on_the_example_clip(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    prediction = json.loads((tmp_path / "demo_prediction.json").read_text())
    assert prediction["frames_classified"] == prediction["frames_read"] == 20
    assert cv2.imread(str(tmp_path / "demo_timeline.png")) is not None
    assert "timeline:" in capsys.readouterr().out


def _console_script(*args: str) -> subprocess.CompletedProcess:
    """Run the installed ``emokeras`` console script, as a user would."""
    script = Path(sys.executable).with_name("emokeras")
    assert script.is_file(), f"the console script is not installed next to {sys.executable}"
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=120)


def test_console_script_has_train_and_evaluate(tmp_path, fer2013_subset):
    listed = _console_script("--help")
    assert listed.returncode == 0 and "train" in listed.stdout and "evaluate" in listed.stdout
    train_help = _console_script("train", "--help")
    assert train_help.returncode == 0
    for flag in ("--data", "--backbone", "--phases", "--by-sex", "--distribute"):
        assert flag in train_help.stdout, flag
    missing = _console_script("evaluate", str(tmp_path), "--data", str(fer2013_subset))
    assert missing.returncode == 2 and "model.keras" in missing.stderr
