"""`emokeras app`: the analysis behind the page, and the page itself in a real headless Chromium."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest
from conftest import IMAGES, RAVDESS_CLIPS, VIDEOS

from emokeras.app import BUNDLED, VIDEO_FPS, ModelCache, analyse_file, list_models
from emokeras.cli import build_parser
from emokeras.errors import ModelNotOfferedError
from emokeras.fileio import write_json_atomic
from emokeras.labels import EMOJI

# Gradio 6.31's queue uses pandas options and arguments that pandas 3 deprecates; not ours.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:gradio.queueing")

CHROMIUM = Path("/usr/bin/chromium")
CLIP = VIDEOS / "single_face.mp4"  # 0.2 MB
BIG_CLIP = RAVDESS_CLIPS / "actor01_sample_02.mp4"  # 5.3 MB: over the served app's 1 MB limit


@pytest.fixture(scope="module")
def model():
    return ModelCache().get(BUNDLED)


@pytest.fixture
def notes(tmp_path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("not a video, not an image")
    return path


def test_list_models_offers_the_bundled_model_and_run_folders(tmp_path):
    assert list_models(tmp_path / "missing") == [BUNDLED]
    run = tmp_path / "runs" / "mobilenet"
    run.mkdir(parents=True)
    (run / "model.keras").write_bytes(b"")
    write_json_atomic(run / "labels.json", {"label_set": "fer2013"})
    by_sex = tmp_path / "runs" / "by_sex"
    for sex in ("male", "female"):
        (by_sex / sex).mkdir(parents=True)
        (by_sex / sex / "model.keras").write_bytes(b"")
        write_json_atomic(by_sex / sex / "labels.json", {"label_set": "fer2013"})
    write_json_atomic(by_sex / "routing.json", {"male": "male/model.keras"})
    (tmp_path / "runs" / "not_a_run").mkdir()
    assert list_models(tmp_path / "runs") == [BUNDLED, str(by_sex), str(run)]


def test_bad_uploads_get_a_message_not_a_traceback(model, tmp_path, notes):
    result = analyse_file(notes, model)
    assert not result.ok and "notes.txt" in result.status and "not an image or a video" in \
        result.status
    assert analyse_file(None, model).status.startswith("**Error:**")
    too_big = analyse_file(CLIP, model, max_upload_mb=0.1)
    assert not too_big.ok and "over the 0.1 MB limit" in too_big.status
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200)
    result = analyse_file(broken, model, workdir=tmp_path)
    assert not result.ok and "cannot read video 'broken.mp4'" in result.status
    assert str(tmp_path) not in result.status  # the server's paths stay on the server
    fake = tmp_path / "fake.jpg"
    fake.write_text("not a JPEG")
    assert "cannot read image 'fake.jpg'" in analyse_file(fake, model).status
    no_face = analyse_file(VIDEOS / "no_face.mp4", model, workdir=tmp_path)
    assert not no_face.ok and no_face.status.startswith("No face found")


def test_an_image_shows_every_face_boxed_and_labelled(model):
    result = analyse_file(IMAGES / "multi_face.jpg", model, threshold=0.0)
    assert result.ok and result.kind == "image" and result.timeline is None
    lines = result.label.splitlines()
    assert len(lines) >= 2 and all(line.startswith(f"- face {i}:")
                                   for i, line in enumerate(lines, 1))
    assert all(any(emoji in line for emoji in EMOJI.values()) for line in lines)
    assert set(result.scores) == set(model.label_set.classes)
    assert sum(result.scores.values()) == pytest.approx(1.0, abs=1e-4)
    from emokeras.images import load_image

    assert result.image.shape == load_image(IMAGES / "multi_face.jpg").shape
    assert (result.image != load_image(IMAGES / "multi_face.jpg")).any()  # boxes were drawn
    uncertain = analyse_file(IMAGES / "multi_face.jpg", model, threshold=1.0)
    assert all("uncertain (best guess" in line for line in uncertain.label.splitlines())


def test_the_app_command_binds_localhost_by_default():
    args = build_parser().parse_args(["app"])
    assert (args.host, args.port, args.max_upload_mb) == ("127.0.0.1", 7860, 50.0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app, served from a background thread on a free localhost port, 1 MB upload limit."""
    from emokeras.app import build_app, launch_app

    app = build_app(models_dir=tmp_path_factory.mktemp("no_runs"), max_upload_mb=1)
    launch_app(app, host="127.0.0.1", port=_free_port(), block=False, quiet=True)
    try:
        yield app.local_url
    finally:
        app.close()


@pytest.mark.slow
def test_the_page_in_a_real_browser(served, tmp_path, notes):
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    from emokeras.inference import predict_video

    expected = predict_video(CLIP, target_fps=VIDEO_FPS)  # what the page must say
    shots = tmp_path / "screenshots"
    shots.mkdir()

    def screenshot(page, name: str) -> None:
        page.screenshot(path=shots / f"{name}.png", full_page=True)
        shutil.copyfile(shots / f"{name}.png", shots / "last.png")

    def upload(page, path: Path) -> None:
        page.goto(served)
        page.wait_for_selector("#upload input[type=file]", state="attached", timeout=60_000)
        page.set_input_files("#upload input[type=file]", str(path))

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(served)
            page.wait_for_selector("#upload", timeout=60_000)
            assert not page.locator("#again").is_visible()  # nothing to analyse again yet
            upload(page, CLIP)
            page.wait_for_function(
                "document.querySelector('#label')?.innerText.includes('video label')",
                timeout=120_000)
            screenshot(page, "1_video")
            label = page.inner_text("#label")
            assert f"{expected.label} {expected.emoji} {expected.confidence:.0%}" in label
            frames = f"{expected.num_frames} of {expected.frames_read} sampled frames had a face"
            assert frames in page.inner_text("#status")
            assert expected.label in page.inner_text("#scores")  # the probability bars
            timeline = page.locator("#timeline img")
            assert "_timeline_" in timeline.get_attribute("src")
            page.wait_for_function(  # the PNG really arrived and decoded
                "document.querySelector('#timeline img')?.naturalWidth > 500")
            page.wait_for_function("document.querySelector('#faces img')?.naturalWidth > 0")
            assert page.locator("#again").is_visible()
            for table in ("#frames_csv", "#faces_csv"):  # the CSV downloads
                assert ".csv" in page.inner_text(table)

            upload(page, notes)
            page.wait_for_function(
                "document.querySelector('#status')?.innerText.includes('Error')", timeout=60_000)
            screenshot(page, "2_text_file")
            status = page.inner_text("#status")
            assert "cannot read notes.txt: not an image or a video" in status
            assert "Traceback" not in page.inner_text("body")

            upload(page, BIG_CLIP)
            page.get_by_text("exceed the maximum allowed size").wait_for(timeout=30_000)
            screenshot(page, "3_too_big")
            assert page.inner_text("#label") == ""
        finally:
            browser.close()
    last = (shots / "last.png").read_bytes()
    assert last.startswith(b"\x89PNG") and len(last) > 10_000


def _tiny_run(path: Path) -> Path:
    """A real, loadable run folder: an untrained small_cnn on 48x48 gray faces."""
    from emokeras.labels import get_label_set
    from emokeras.models import build_model
    from emokeras.run_folder import save_model_atomic, write_labels

    label_set = get_label_set("fer2013")
    path.mkdir(parents=True)
    model = build_model("small_cnn", len(label_set), weights=None, input_size=48, channels=1)
    save_model_atomic(model, path / "model.keras")
    write_labels(path, label_set)
    return path


def test_the_model_picker_is_confined_to_the_offered_models(tmp_path):
    # issue 16: the picker loaded any server path, cached every spelling forever, and its
    # messages told whether a server folder existed
    models_dir = tmp_path / "models"
    run = _tiny_run(models_dir / "tiny")
    outside = _tiny_run(tmp_path / "outside")  # a real run folder, but not under models_dir
    (models_dir / "escape").symlink_to(outside)  # resolves outside: refused as well
    loop = models_dir / "loop"
    loop.symlink_to(loop)
    cache = ModelCache(models_dir=models_dir, max_models=2)

    model = cache.get(str(run))
    # every spelling of the offered folder is the same model, loaded once
    for spelling in (str(models_dir / "." / "tiny"), str(models_dir / "tiny" / ".." / "tiny"),
                     "tiny", f"{run}/", f"  {run}  "):
        assert cache.get(spelling) is model
    assert len(cache) == 1

    refused = [str(outside), str(models_dir / ".." / "outside"), "../outside",
               str(models_dir / "escape"), str(loop), "/etc", "/no/such/folder", str(tmp_path),
               str(models_dir), str(run / "model.keras"), "nul\0byte"]
    messages = set()
    for choice in refused:
        with pytest.raises(ModelNotOfferedError) as caught:
            cache.get(choice)
        messages.add(str(caught.value).replace(repr(choice), "<choice>"))
    assert messages == {"<choice> is not one of the offered models"}
    assert len(cache) == 1

    # at most max_models stay loaded, least recently used dropped first
    second = _tiny_run(models_dir / "second")
    third = _tiny_run(models_dir / "third")
    cache.get(str(second))
    cache.get(str(run))  # now the most recent
    cache.get(str(third))  # drops second
    assert len(cache) == 2
    assert cache.get(str(run)) is model
    # without a models folder only the bundled model is offered
    with pytest.raises(ModelNotOfferedError):
        ModelCache().get(str(run))


@pytest.mark.slow
def test_sigterm_stops_the_app_and_removes_its_temp_folder(tmp_path):
    # issue 16: the app left /tmp/emokeras-app-* behind when stopped with SIGTERM
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    from conftest import REPO_ROOT

    temp = tmp_path / "tmp"
    temp.mkdir()
    port = _free_port()
    env = {**os.environ, "TMPDIR": str(temp), "GRADIO_TEMP_DIR": str(temp / "gradio"),
           "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "emokeras.cli", "app", "--port", str(port), "--models-dir",
         str(tmp_path / "no_runs")], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).close()
                break
            except OSError:
                time.sleep(0.5)
        assert process.poll() is None, process.stdout.read().decode()[-2000:]
        assert [p.name.startswith("emokeras-app-") for p in temp.iterdir()].count(True) == 1
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=60)[0].decode()
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output[-2000:]
    assert not list(temp.glob("emokeras-app-*"))


def test_per_frame_and_per_face_tables_of_an_image_and_a_video(model, tmp_path):
    photo = analyse_file(IMAGES / "multi_face.jpg", model, threshold=0.0)
    faces = len(photo.label.splitlines())
    assert len(photo.frames) == len(photo.faces) == faces
    assert set(model.label_set.classes) <= set(photo.frames.columns)
    assert (photo.frames["file"] == "multi_face.jpg").all()
    video = analyse_file(CLIP, model, workdir=tmp_path)
    assert video.ok and len(video.frames) > 3
    assert list(video.frames.columns[:4]) == ["file", "frame_index", "timestamp", "track_id"]
    assert len(video.faces) >= 1 and video.faces["frames"].sum() == len(video.frames)


def test_the_app_has_named_api_endpoints_and_no_early_analyse_again(tmp_path):
    from emokeras.app import build_app

    app = build_app(models_dir=tmp_path)
    endpoints = app.get_api_info()["named_endpoints"]
    assert {"/analyse", "/analyse_again", "/analyse_snapshot"} <= set(endpoints)
    names = [p["parameter_name"] for p in endpoints["/analyse"]["parameters"]]
    assert names[:4] == ["file", "model", "aggregate", "threshold"]
    again = [c for c in app.config["components"]
             if c.get("props", {}).get("elem_id") == "again"]
    assert again and again[0]["props"]["visible"] is False  # nothing to analyse again yet
