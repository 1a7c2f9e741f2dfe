"""The emokeras command: predict (bad files reported and skipped), train, evaluate, demo."""

from __future__ import annotations

import json
import os
import shutil
import signal
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
    assert code == 1  # some inputs failed
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
    printed = capsys.readouterr().out
    assert "3 of 6 files predicted; 3 of 6 failed" in printed
    assert f"results: {out}" in printed and f"timelines: {tmp_path / 'plots'}" in printed


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


def test_predict_fast_classifies_with_the_bundled_ensembles_first_member(tmp_path):
    from emokeras.inference import predict_image
    from emokeras.model import resolve_model

    photo = IMAGES / "happy_f15.jpg"
    out = tmp_path / "fast.json"
    assert main(["predict", str(photo), "--fast", "--output", str(out)]) == 0
    [row] = json.loads(out.read_text())
    [member] = predict_image(photo, resolve_model().single())
    assert row["label"] == member.label
    assert row["confidence"] == pytest.approx(member.confidence, abs=1e-4)


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


def test_a_bad_output_fails_before_any_prediction_work(tmp_path, capsys):
    # issue 16: --output naming a directory lost the whole run after predicting everything. The
    # model here does not exist: a check made after loading it would report the model instead.
    notes = tmp_path / "notes.txt"
    notes.write_text("a file, not a folder")
    loop = tmp_path / "loop.csv"
    loop.symlink_to(loop)
    cases = {
        tmp_path: "is a directory",
        tmp_path / "results.txt": "unknown format '.txt'",
        tmp_path / "results": "unknown format '(no suffix)'",
        notes / "results.csv": "is not a folder",
        Path("/proc/results.csv"): "cannot write in '/proc'",
        loop: "symlink loop",
    }
    (tmp_path / "adir.json").mkdir()
    cases[tmp_path / "adir.json"] = "is a directory"
    for output, reason in cases.items():
        code = main(["predict", str(IMAGES / "single_face.jpg"), "--model",
                     str(tmp_path / "no_model"), "--output", str(output)])
        err = capsys.readouterr().err
        assert code == 2, output
        assert f"--output {str(output)!r}" in err and reason in err, err
        assert "model.keras" not in err and "no_model" not in err


def test_broken_links_and_loops_in_a_folder_are_failed_inputs(tiny_run, tmp_path, capsys):
    folder = tmp_path / "media"
    folder.mkdir()
    shutil.copyfile(IMAGES / "happy_f15.jpg", folder / "a_happy.jpg")
    (folder / "b_broken.jpg").symlink_to(tmp_path / "gone.jpg")
    (folder / "c_loop.mp4").symlink_to(folder / "c_loop.mp4")
    out = tmp_path / "new" / "folder" / "results.csv"  # made by the writer
    # the exit status of a run with failed files is the predict command's own (0 or 1)
    assert main(["predict", str(folder), "--model", str(tiny_run), "--output", str(out)]) in (0, 1)
    rows = {row["path"].rsplit("/", 1)[-1]: row for row in read_csv(out)}
    assert [rows[n]["status"] for n in sorted(rows)] == ["ok", "failed", "failed"]
    assert "broken symlink" in rows["b_broken.jpg"]["error"]
    assert "symlink loop" in rows["c_loop.mp4"]["error"]
    assert "1 of 3 files predicted; 2 of 3 failed" in capsys.readouterr().out


def test_predict_writes_per_frame_tables_and_every_class_probability(tiny_run, tmp_path, capsys):
    import pandas as pd

    from emokeras.labels import FER2013

    out, table = tmp_path / "r.csv", tmp_path / "frames.csv"
    files = [str(VIDEOS / "single_face.mp4"), str(IMAGES / "multi_face.jpg")]
    assert main(["predict", *files, "--model", str(tiny_run), "--frame-step", "6",
                 "--faces", "all", "--output", str(out), "--per-frame", str(table)]) == 0
    rows = read_csv(out)
    faces = [r for r in rows if r["kind"] == "image"]
    assert len(faces) >= 3 and [int(r["face"]) for r in faces] == list(range(len(faces)))
    for row in rows:  # every class's probability, summing to 1
        assert sum(float(row[c]) for c in FER2013.classes) == pytest.approx(1.0, abs=1e-3)
    assert all(r["box_w"] for r in faces)
    frames = pd.read_csv(table)
    assert list(frames.columns)[:4] == ["file", "frame_index", "timestamp", "track_id"]
    assert set(FER2013.classes) <= set(frames.columns)
    on_video = frames[frames["file"] == files[0]]
    assert len(on_video) >= 12 and len(frames) == len(on_video) + len(faces)
    on_image = frames[frames["file"] == files[1]]
    assert list(on_image["track_id"]) == list(range(len(faces)))
    printed = capsys.readouterr().out
    assert f"per-frame table ({len(frames)} rows" in printed and str(table) in printed
    parquet = tmp_path / "frames.parquet"
    assert main(["predict", files[1], "--model", str(tiny_run), "--faces", "all",
                 "--per-frame", str(parquet)]) == 0
    assert len(pd.read_parquet(parquet)) == len(faces)


def test_predict_refuses_an_unknown_table_type_before_any_work(tiny_run, tmp_path, capsys):
    code = main(["predict", str(VIDEOS / "single_face.mp4"), "--model", str(tiny_run),
                 "--per-frame", str(tmp_path / "frames.xlsx")])
    assert code == 2
    err = capsys.readouterr()
    assert ".csv or .parquet" in err.err and "files predicted" not in err.out
    assert not (tmp_path / "frames.xlsx").exists()


def test_predict_exit_status_and_summary_when_one_input_fails(tiny_run, tmp_path, capsys):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    code = main(["predict", str(IMAGES / "single_face.jpg"), str(bad), "--model",
                 str(tiny_run)])
    assert code == 1
    assert "1 of 2 files predicted; 1 of 2 failed" in capsys.readouterr().out


def test_predict_has_no_tensorflow_log_lines_on_stderr():
    done = _console_script("predict", str(IMAGES / "single_face.jpg"))
    assert done.returncode == 0, done.stderr
    assert "single_face.jpg: " in done.stdout
    for noise in ("cuInit", "oneDNN", "absl", "cuda", "I0000", "E0000", "W0000"):
        assert noise not in done.stderr, done.stderr
    loud = _console_script("--verbose", "predict", str(IMAGES / "single_face.jpg"))
    assert loud.returncode == 0 and "single_face.jpg: " in loud.stdout


def test_prepare_command_takes_flags_generated_from_prepare_config(tmp_path, capsys):
    from emokeras.prepare import PrepareConfig

    out = tmp_path / "faces"
    assert main(["prepare", "--example", str(out), "--step", "5", "--size", "48",
                 "--labels", "ravdess", "--detector", "haar"]) == 0
    rows = read_csv(out / "manifest.csv")
    ok = [r for r in rows if r["status"] == "ok"]
    assert ok and all(int(r["frame_index"]) % 5 == 0 for r in ok)
    assert cv2.imread(str(out / ok[0]["crop_path"])).shape[:2] == (48, 48)
    printed = capsys.readouterr().out
    assert "2 videos" in printed and f"manifest: {out / 'manifest.csv'}" in printed
    help_text = _console_script("prepare", "--help").stdout
    for field in ("--target-fps", "--detector", "--which", "--val-fraction", "--seed"):
        assert field in help_text, field
    assert PrepareConfig().target_fps == 6.0  # the default the flags fall back to


def test_a_missing_extra_is_one_line_naming_it(tmp_path):
    from emokeras.errors import MissingExtraError
    from emokeras.extras import EXTRAS, require_extra

    with pytest.raises(MissingExtraError, match=r"pip install 'emokeras\[export\]'") as caught:
        require_extra("export", "ONNX export", ("emokeras_no_such_module",))
    assert caught.value.extra == "export" and "\n" not in str(caught.value)
    for extra in EXTRAS:
        require_extra(extra, extra)  # CI installs every extra: all present


def test_help_of_every_command_imports_no_tensorflow():
    commands = ["", "predict", "train", "evaluate", "ensemble", "demo", "export", "prepare",
                "spectrograms", "live", "app"]
    code = (
        "import contextlib, io, sys\nfrom emokeras.cli import main\n"
        f"for command in {commands!r}:\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try:\n            main([*command.split(), '--help'])\n"
        "        except SystemExit as done:\n            assert done.code == 0, command\n"
        "print(sorted({'tensorflow', 'keras', 'gradio', 'pandas'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_python_dash_m_runs_the_command_and_each_command_is_its_own_module():
    import emokeras.cli

    done = subprocess.run([sys.executable, "-m", "emokeras.cli", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    names = [module.__name__.rsplit(".", 1)[1] for module in emokeras.cli.COMMANDS]
    assert "{" + ",".join(names) + "}" in done.stdout  # every command, in the listed order
    assert names == ["predict", "train", "evaluate", "ensemble", "demo", "export", "prepare",
                     "spectrograms", "live", "app"]
    for module in emokeras.cli.COMMANDS:  # each owns its parser and the function it runs
        assert callable(module.add_parser)
        assert callable(getattr(module, f"{module.__name__.rsplit('.', 1)[1]}_command"))


def test_the_stderr_filter_knows_tensorflow_log_lines():
    from emokeras.quiet import is_tensorflow_log

    assert is_tensorflow_log(b"I0000 00:00:1796524776.825453    9821 port.cc:153] oneDNN custom")
    assert is_tensorflow_log(b"E0000 00:00:1796524776.8    12 cuda_executor.cc:1228] failed "
                             b"call to cuInit: UNKNOWN ERROR (303)")
    assert is_tensorflow_log(b"WARNING: All log messages before absl::InitializeLog() is called "
                             b"are written to STDERR")
    assert not is_tensorflow_log(b"error: cannot read image 'x.jpg': no such file")
    # a fatal line explains an abort: it is kept
    assert not is_tensorflow_log(b"F0000 00:00:1796524776.8    12 check_op.cc:12] Check failed")
    assert not is_tensorflow_log(b"WARNING emokeras.prepare: no grouped split made")


def test_the_stderr_filter_keeps_the_last_lines_of_a_process_that_aborts():
    # a C++ check failure writes its F line and aborts at once: no atexit, no Python thread runs
    script = (
        "import os\n"
        "from emokeras.quiet import quiet_tensorflow\n"
        "quiet_tensorflow()\n"
        "os.write(2, b'I0000 00:00:1796524776.825453    9821 port.cc:153] oneDNN custom\\n')\n"
        "os.write(2, b'F0000 00:00:1796524776.8    12 check_op.cc:12] Check failed: x\\n')\n"
        "os.write(2, b'the last words')\n"
        "os.abort()\n"
    )
    for _ in range(3):  # a lost line is a race: give it several chances to show
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
        assert done.returncode != 0
        assert b"check_op.cc:12] Check failed: x\n" in done.stderr, done.stderr
        assert done.stderr.endswith(b"the last words"), done.stderr
        assert b"oneDNN" not in done.stderr


def test_ctrl_c_reaches_the_whole_process_group_and_its_traceback_still_passes_the_filter():
    script = ("import time\nfrom emokeras.quiet import quiet_tensorflow\nquiet_tensorflow()\n"
              "print('started', flush=True)\ntime.sleep(60)\n")
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,  # its own group, as a terminal's foreground job
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert child.stdout.readline() == b"started\n"
    os.killpg(child.pid, signal.SIGINT)  # what Ctrl-C does: the filter gets it too
    _, stderr = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGINT
    assert stderr.rstrip().endswith(b"KeyboardInterrupt"), stderr
