"""Fault injection: hostile media, broken models, kills and the app, each case in its own process.

    .venv/bin/python benchmarks/faults.py [--only SUBSTRING] [--keep]

Every case runs in a fresh subprocess (or drives one: ``emokeras predict``, ``train.py``, the
app), and its peak resident memory is that process's own ``ru_maxrss`` (``os.wait4``). A case is
*handled* when it ends as expected: the typed error named in "expected" (with the reason the
message must say), or the expected outcome of a kill (the run finishes on its rerun). *Data lost*
says whether work or files already made were lost or left half-written (partial files, missing
history rows, results computed and then thrown away). Goal: every case handled, nothing lost,
peak memory under 1.5 GB on every hostile input.

Tiny models and data throughout (an untrained small_cnn, a few dozen FER2013 faces, the fixture
clips), so the whole catalogue takes a few minutes on two cores. Needs ../shared (the fixtures and
FER2013); nothing is written outside a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EMOKERAS_SHARED", ROOT.parent / "shared"))
IMAGES = SHARED / "fixtures" / "images"
VIDEO = SHARED / "fixtures" / "video" / "single_face.mp4"
RAVDESS = SHARED / "fixtures" / "ravdess"
FER2013 = SHARED / "data" / "fer2013" / "fer2013_images.tar.gz"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3",
       "GRADIO_ANALYTICS_ENABLED": "False"}
GOAL_MIB = 1536
TINY_TRAIN = ["--backbone", "small_cnn", "--weights", "none", "--channels", "1",
              "--input-size", "48", "--batch-size", "32", "--no-feature-cache",
              "--early-stopping-patience", "100"]

# What each child runs first: report() prints the outcome as one JSON line; typed() runs a call
# and reports the class and message of what it raised (or "no error").
PRELUDE = """
import json, sys
def report(got, **extra):
    print("RESULT " + json.dumps({"got": got, **extra}), flush=True)
def typed(call):
    try:
        value = call()
    except BaseException as error:
        report(type(error).__name__, message=str(error)[:400])
        return
    report("no error", message=repr(value)[:200])
"""


@dataclass(frozen=True)
class Outcome:
    case: str
    expected: str
    got: str
    handled: bool
    lost: bool
    peak_mib: float | None
    seconds: float
    hostile: bool = True  # hostile input: held to the memory goal


@dataclass(frozen=True)
class Child:
    returncode: int
    stdout: str
    stderr: str
    peak_mib: float
    seconds: float

    @property
    def result(self) -> dict:
        for line in reversed(self.stdout.splitlines()):
            if line.startswith("RESULT "):
                return json.loads(line[len("RESULT "):])
        return {"got": f"exit {self.returncode}", "message": self.stderr[-400:]}


def wait_child(process: subprocess.Popen, started: float, timeout: float) -> tuple[int, float]:
    """Wait for ``process``; its exit code and its own peak RSS in MiB (os.wait4's rusage)."""
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        timer.cancel()
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_maxrss / 1024  # Linux: KiB


def run_child(argv: list[str], *, timeout: float = 300, env: dict | None = None) -> Child:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        process = subprocess.Popen(argv, cwd=ROOT, env=env or ENV, stdout=out, stderr=err)
        code, peak = wait_child(process, started, timeout)
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        return Child(code, out.read().decode(errors="replace"),
                     err.read().decode(errors="replace"), peak, seconds)


def python(code: str, *args: str | Path, timeout: float = 300) -> Child:
    return run_child([sys.executable, "-c", PRELUDE + code, *map(str, args)], timeout=timeout)


def typed_case(case: str, expected: str, reason: str, code: str, *args, hostile=True) -> Outcome:
    """A call that must raise ``expected`` whose message says ``reason``."""
    child = python(code, *args)
    result = child.result
    got = result["got"]
    message = result.get("message", "")
    handled = got == expected and reason.lower() in message.lower()
    shown = got if handled else f"{got}: {message[:120]}"
    return Outcome(case, f"{expected} ({reason})", shown, handled, False, child.peak_mib,
                   child.seconds, hostile)


# ------------------------------------------------------------------------------------- fixtures


def write_huge_png(path: Path, width: int, height: int) -> None:
    """A valid all-black 8-bit gray PNG of width x height, compressed row by row (a small file).
    tests/test_images.py writes its decompression bomb with it too."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + kind + data + crc

    compressor = zlib.compressobj(9)
    row = bytes(width + 1)
    with open(path, "wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n")
        out.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)))
        for _ in range(height):
            data = compressor.compress(row)
            if data:
                out.write(chunk(b"IDAT", data))
        out.write(chunk(b"IDAT", compressor.flush()))
        out.write(chunk(b"IEND", b""))


def extract_fer_subset(dest: Path, per_class: int = 12) -> Path:
    counts: dict[tuple[str, str, str], int] = {}

    def keep(name: str) -> bool:
        parts = Path(name).parts
        if len(parts) < 3:
            return False
        key = (parts[-3], parts[-2], parts[-1].split("_")[0])
        counts[key] = counts.get(key, 0) + 1
        return counts[key] <= per_class

    with tarfile.open(FER2013) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and keep(m.name)]
        tar.extractall(dest, members=members, filter="data")
    return dest


SETUP_MODELS = """
import keras, shutil
from pathlib import Path
from emokeras.labels import get_label_set
from emokeras.models import build_model
from emokeras.run_folder import save_model_atomic, write_labels
work = Path(sys.argv[1])
labels = get_label_set("fer2013")
tiny = work / "models" / "tiny"
tiny.mkdir(parents=True)
save_model_atomic(build_model("small_cnn", 7, weights=None, input_size=48, channels=1),
                  tiny / "model.keras")
write_labels(tiny, labels)
# a model with a Lambda layer: safe mode must refuse its code
inputs = keras.Input((48, 48, 1))
x = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
x = keras.layers.GlobalAveragePooling2D()(x)
lam = work / "broken" / "lambda"
lam.mkdir(parents=True)
keras.Model(inputs, keras.layers.Dense(7, activation="softmax")(x)).save(lam / "model.keras")
write_labels(lam, labels)
report("ok")
"""


def make_broken_models(work: Path) -> dict[str, Path]:
    tiny = work / "models" / "tiny"
    model = (tiny / "model.keras").read_bytes()
    cases: dict[str, Path] = {"lambda": work / "broken" / "lambda"}

    def copy(name: str) -> Path:
        folder = work / "broken" / name
        shutil.copytree(tiny, folder)
        cases[name] = folder
        return folder

    (copy("truncated") / "model.keras").write_bytes(model[: len(model) // 2])
    (copy("garbage") / "model.keras").write_bytes(os.urandom(len(model)))
    (copy("empty") / "model.keras").write_bytes(b"")
    (copy("labels_not_json") / "labels.json").write_text('{"label_set": "fer2013", ')
    (copy("labels_wrong_type") / "labels.json").write_text('{"label_set": 5}')
    (copy("labels_wrong_classes") / "labels.json").write_text(json.dumps(
        {"label_set": "fer2013", "classes": ["a", "b", "c"], "emotions": ["a", "b", "c"]}))
    routed = work / "broken" / "routing_outside"
    routed.mkdir(parents=True)
    (routed / "routing.json").write_text(json.dumps(
        {"male": "../../models/tiny/model.keras", "female": str(tiny / "model.keras")}))
    cases["routing_outside"] = routed
    return cases


def audio_only_mp4(source: Path, dest: Path) -> Path:
    """The audio stream of ``source`` alone, remuxed into an .mp4 (no video stream)."""
    import av

    with av.open(str(source)) as inp, av.open(str(dest), "w") as out:
        stream = out.add_stream_from_template(inp.streams.audio[0])
        for packet in inp.demux(inp.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return dest


def partials(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".partial" in p.name]


# ------------------------------------------------------------------------------------- the cases


LOAD_IMAGE = "from emokeras.images import load_image\ntyped(lambda: load_image(sys.argv[1]))"
PREDICT_IMAGE = ("from emokeras.inference import predict_image\n"
                 "typed(lambda: predict_image(sys.argv[1]))")
READ_VIDEO = ("from emokeras.video import iter_frames\n"
              "typed(lambda: sum(1 for _ in iter_frames(sys.argv[1])))")
LOAD_MODEL = ("from emokeras.model import resolve_model\n"
              "typed(lambda: resolve_model(sys.argv[1]))")


def media_cases(work: Path) -> list[Callable[[], Outcome]]:
    media = work / "media"
    media.mkdir()
    (media / "empty.jpg").write_bytes(b"")
    (media / "text.jpg").write_text("not an image\n")
    (media / "truncated.jpg").write_bytes((IMAGES / "justin.jpg").read_bytes()[:200])
    (media / "folder.jpg").mkdir()
    (media / "loop.jpg").symlink_to(media / "loop.jpg")
    (media / "broken.jpg").symlink_to(media / "gone.jpg")
    write_huge_png(media / "bomb.png", 30000, 30000)
    (media / "empty.mp4").write_bytes(b"")
    (media / "text.mp4").write_text("not a video\n")
    data = VIDEO.read_bytes()
    (media / "truncated.mp4").write_bytes(data[: int(len(data) * 0.3)])
    audio_only_mp4(RAVDESS / "actor01_sample_01.mp4", media / "audio_only.mp4")
    (media / "folder.mp4").mkdir()
    (media / "loop.mp4").symlink_to(media / "loop.mp4")
    bomb_mb = (media / "bomb.png").stat().st_size / 1e6

    def image(case, file, reason, expected="ImageReadError"):
        return lambda: typed_case(f"image: {case}", expected, reason, LOAD_IMAGE, media / file)

    def video(case, file, reason, expected="VideoReadError"):
        return lambda: typed_case(f"video: {case}", expected, reason, READ_VIDEO, media / file)

    return [
        image("empty file", "empty.jpg", "empty"),
        image("text file named .jpg", "text.jpg", "could not decode"),
        image("truncated JPEG", "truncated.jpg", "could not decode"),
        image("directory named .jpg", "folder.jpg", "directory"),
        image("missing file", "missing.jpg", "no such file"),
        image("symlink loop", "loop.jpg", "symlink loop"),
        image("broken symlink", "broken.jpg", "broken symlink"),
        lambda: typed_case(
            f"image: 30000x30000 PNG ({bomb_mb:.1f} MB), predict_image", "ImageTooLargeError",
            "over the limit", PREDICT_IMAGE, media / "bomb.png"),
        lambda: typed_case(
            "app: 30000x30000 PNG upload (analyse_file)", "refused", "over the limit",
            "from emokeras.app import analyse_file\n"
            "result = analyse_file(sys.argv[1], None)\n"
            "report('refused' if not result.ok else 'analysed', message=result.status)",
            media / "bomb.png"),
        video("empty file", "empty.mp4", "empty"),
        video("text file named .mp4", "text.mp4", "could not open"),
        video("truncated MP4 (index lost)", "truncated.mp4", "could not open"),
        video("audio only, no video stream", "audio_only.mp4", "video"),
        video("directory named .mp4", "folder.mp4", "directory"),
        video("missing file", "missing.mp4", "no such file"),
        video("symlink loop", "loop.mp4", "symlink loop"),
        lambda: typed_case(
            "video: frames over max_pixels (limit lowered to 1000)", "VideoTooLargeError",
            "over the limit",
            "from emokeras.video import iter_frames\n"
            "typed(lambda: iter_frames(sys.argv[1], max_pixels=1000))", VIDEO),
    ]


def model_cases(broken: dict[str, Path]) -> list[Callable[[], Outcome]]:
    reasons = {
        "truncated": ("model.keras truncated", "model.keras"),
        "garbage": ("model.keras of random bytes", "model.keras"),
        "empty": ("model.keras empty (0 bytes)", "model.keras"),
        "labels_not_json": ("labels.json not JSON", "labels.json"),
        "labels_wrong_type": ("labels.json label_set: 5", "labels.json"),
        "labels_wrong_classes": ("labels.json: 3 classes, model: 7", "labels.json"),
        "lambda": ("Lambda layer (code in the model)", "lambda"),
        "routing_outside": ("routing.json entries outside the run", "routing.json"),
    }
    return [
        (lambda n=name, c=case, r=reason: typed_case(
            f"model: {c}", "ModelLoadError", r, LOAD_MODEL, broken[n], hostile=True))
        for name, (case, reason) in reasons.items()
    ]


def predict_cli_cases(work: Path) -> list[Callable[[], Outcome]]:
    tiny = work / "models" / "tiny"
    photo = IMAGES / "single_face.jpg"
    cli = [sys.executable, "-m", "emokeras.cli", "predict"]

    def bad_output(case: str, output: Path, reason: str) -> Outcome:
        child = run_child([*cli, str(photo), "--model", str(tiny), "--output", str(output)])
        handled = child.returncode == 2 and reason in child.stderr and "predicted" not in (
            child.stdout)
        got = (f"exit {child.returncode} before predicting" if handled
               else f"exit {child.returncode}: {child.stderr[-160:]!r}")
        # "lost": predictions were computed and then not written
        lost = "predicted" in child.stdout and not output.is_file()
        return Outcome(f"predict --output {case}", f"exit 2 at once ({reason})", got, handled,
                       lost, child.peak_mib, child.seconds)

    def folder_with_links() -> Outcome:
        folder = work / "links"
        folder.mkdir()
        shutil.copyfile(IMAGES / "happy_f15.jpg", folder / "a_happy.jpg")
        (folder / "b_broken.jpg").symlink_to(work / "gone.jpg")
        (folder / "c_loop.mp4").symlink_to(folder / "c_loop.mp4")
        out = work / "links.json"
        child = run_child([*cli, str(folder), "--model", str(tiny), "--output", str(out)])
        rows = json.loads(out.read_text()) if out.is_file() else []
        errors = " ".join(row.get("error", "") for row in rows)
        # exit 1: some inputs failed (0 in versions that exit 1 only when all failed)
        handled = (child.returncode in (0, 1) and len(rows) == 3 and "broken symlink" in errors
                   and "symlink loop" in errors)
        return Outcome("predict: folder with a broken link and a loop",
                       "both counted as failed, reasons given",
                       f"{sum(r['status'] == 'failed' for r in rows)} of {len(rows)} failed"
                       if rows else child.stderr[-160:], handled, False, child.peak_mib,
                       child.seconds)

    (work / "out_dir").mkdir()
    return [
        lambda: bad_output("names a directory", work / "out_dir", "is a directory"),
        lambda: bad_output("has an unknown extension", work / "results.txt", "unknown format"),
        lambda: bad_output("in an unwritable place", Path("/proc/results.csv"), "cannot write"),
        folder_with_links,
    ]


APP_PICKER = """
from pathlib import Path
from emokeras.app import ModelCache
from emokeras.errors import ModelNotOfferedError
models = Path(sys.argv[1])
cache = ModelCache(models_dir=models, max_models=3)
run = models / "tiny"
model = cache.get(str(run))
spellings = [str(run)] + [str(models / ("./" * i) / "tiny") for i in range(1, 20)]
same = all(cache.get(s) is model for s in spellings)
messages = set()
for choice in ["/etc", "/no/such/dir", str(models.parent), str(models / ".." / "broken"),
               "../broken/truncated", str(run / "model.keras"), "/proc/self/cwd"]:
    try:
        cache.get(choice)
        messages.add("LOADED " + choice)
    except ModelNotOfferedError as error:
        messages.add(str(error).replace(repr(choice), "<choice>"))
ok = same and len(cache) == 1 and messages == {"<choice> is not one of the offered models"}
report("confined" if ok else "NOT confined",
       message=f"{len(spellings)} spellings -> {len(cache)} model; messages {sorted(messages)}")
"""


def app_cases(work: Path) -> list[Callable[[], Outcome]]:
    def picker() -> Outcome:
        child = python(APP_PICKER, work / "models")
        got = child.result["got"]
        return Outcome("app: model picker, paths outside / 20 spellings",
                       "one message for all; 1 model cached", got if got == "confined"
                       else f"{got}: {child.result.get('message', '')[:160]}", got == "confined",
                       False, child.peak_mib, child.seconds)

    def sigterm() -> Outcome:
        temp = work / "app_tmp"
        temp.mkdir()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {**ENV, "TMPDIR": str(temp), "GRADIO_TEMP_DIR": str(temp / "gradio")}
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", "emokeras.cli", "app", "--port", str(port), "--models-dir",
             str(work / "models")], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).close()
                break
            except OSError:
                time.sleep(0.5)
        before = len(list(temp.glob("emokeras-app-*")))
        process.send_signal(signal.SIGTERM)
        code, peak = wait_child(process, started, 60)
        left = len(list(temp.glob("emokeras-app-*")))
        handled = before == 1 and left == 0 and code == 0
        return Outcome("app: SIGTERM while serving", "exit 0, temp folder removed",
                       f"exit {code}, {left} temp folder(s) left", handled, left > 0, peak,
                       time.monotonic() - started, hostile=False)

    return [picker, sigterm]


def poll(until: Callable[[], bool], process: subprocess.Popen, timeout: float = 240) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if until():
            return True
        time.sleep(0.05)
    return False


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.is_file() else 0


def kill_cases(work: Path) -> list[Callable[[], Outcome]]:
    fer = extract_fer_subset(work / "fer2013")

    def train_kill(case: str, phase: int) -> Outcome:
        out = work / f"train_{phase}"
        command = [sys.executable, "train.py", "--data", str(fer), "--run", "r", "--output-dir",
                   str(out), *TINY_TRAIN, "--phases", "all:3:1e-3,all:2:1e-4"]
        run = out / "r"
        log = run / "logs" / f"history_phase{phase}.csv"
        started = time.monotonic()
        process = subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        # after the phase's first epoch is logged and backed up
        backup = run / "backup" / f"phase{phase}"
        killed = poll(lambda: (run / "state.json").is_file() and lines(log) >= 2
                      and backup.is_dir() and any(backup.iterdir()), process)
        process.send_signal(signal.SIGKILL)
        wait_child(process, started, 30)
        child = run_child(command)
        history = [line.split(",")[:2] for line in
                   (run / "history.csv").read_text().splitlines()[1:]] if (
            run / "history.csv").is_file() else []
        metrics = json.loads((run / "metrics.json").read_text()) if (
            run / "metrics.json").is_file() else {}
        phases = [row[0] for row in history]
        handled = (killed and child.returncode == 0 and phases == ["0", "0", "0", "1", "1"]
                   and metrics.get("resumed") is True)
        lost = bool(partials(run)) or len(history) < 5
        got = (f"killed in phase {phase}; rerun: {len(history)} epochs "
               f"({phases.count('0')}+{phases.count('1')}), resumed={metrics.get('resumed')}")
        if child.returncode != 0:
            got += f"; rerun exit {child.returncode}: {child.stderr.strip()[-300:]!r}"
        return Outcome(f"kill: {case}", "5 epochs (3+2), resumed: true", got, handled, lost,
                       child.peak_mib, time.monotonic() - started, hostile=False)

    def prepare_kill() -> Outcome:
        videos = work / "prep_videos"
        videos.mkdir()
        for clip in sorted(RAVDESS.glob("*.mp4"))[:3]:
            shutil.copyfile(clip, videos / clip.name)
        out = work / "prep_out"
        command = [sys.executable, "-m", "data_prep.extract_faces", str(videos), str(out),
                   "--target-fps", "3", "--labels", "none"]
        started = time.monotonic()
        process = subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        # mid-way: once the first video is finished and the second has crops on disk
        killed = poll(lambda: len(list((out / "parts").glob("*.csv"))) >= 1
                      and len(list((out / "crops").glob("*/*.jpg"))) > lines(
                          next((out / "parts").glob("*.csv"))), process)
        process.send_signal(signal.SIGKILL)
        wait_child(process, started, 30)
        child = run_child(command)
        manifest = out / "manifest.csv"
        rows = lines(manifest) - 1
        parts = len(list((out / "parts").glob("*.csv")))
        handled = killed and child.returncode == 0 and parts == 3 and rows > 0
        return Outcome("kill: data preparation (extract_faces) mid-video",
                       "rerun finishes: 3 videos, manifest", f"rerun exit {child.returncode}, "
                       f"{parts} videos done, {rows} manifest rows", handled,
                       bool(partials(out)) or parts < 3, child.peak_mib,
                       time.monotonic() - started, hostile=False)

    def export_kill() -> Outcome:
        out = work / "export_out"
        command = [sys.executable, "-m", "emokeras.cli", "export", str(work / "models" / "tiny"),
                   "--out", str(out), "--formats", "savedmodel,tflite"]
        started = time.monotonic()
        process = subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        killed = poll(lambda: out.is_dir() and any(p.is_file() for p in out.rglob("*")),
                      process)
        process.send_signal(signal.SIGKILL)
        wait_child(process, started, 30)
        child = run_child(command)
        got = f"killed mid-export; rerun exit {child.returncode}"
        if child.returncode == 2 and "--overwrite" in child.stderr:
            # what the kill left is complete but refused, by design: --overwrite redoes it
            child = run_child([*command, "--overwrite"])
            got += f" (refuses to overwrite); with --overwrite exit {child.returncode}"
        summary = out / "export.json"
        handled = killed and child.returncode == 0 and summary.is_file()
        if child.returncode != 0:
            got += f": {child.stderr.strip()[-160:]!r}"
        # hidden .partial leftovers of the killed write: not outputs, but not swept either
        leftovers = [p for p in out.rglob("*") if ".partial" in p.name
                     and not any(".partial" in q.name for q in p.parents)]
        if leftovers:
            got += f"; {len(leftovers)} hidden .partial leftover(s) of the kill not swept"
        return Outcome("kill: export (SavedModel + TFLite) mid-write",
                       "rerun (with --overwrite if it refuses) exports cleanly",
                       got, handled, not summary.is_file(), child.peak_mib,
                       time.monotonic() - started, hostile=False)

    return [
        lambda: train_kill("training, in phase 0 of 2", 0),
        lambda: train_kill("training, in the last phase", 1),
        prepare_kill,
        export_kill,
    ]


# ------------------------------------------------------------------------------------- the table


def table(outcomes: list[Outcome]) -> str:
    rows = ["| case | expected | got | handled | data lost | peak RSS (MiB) | seconds |",
            "|---|---|---|---|---|---:|---:|"]
    for o in outcomes:
        peak = "-" if o.peak_mib is None else f"{o.peak_mib:.0f}"
        rows.append(f"| {o.case} | {o.expected} | {o.got.replace('|', '/')} | "
                    f"{'yes' if o.handled else '**no**'} | {'**yes**' if o.lost else 'no'} | "
                    f"{peak} | {o.seconds:.1f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated groups to run: media, models, predict, "
                                           "app, kills (default: all)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="emokeras-faults-"))
    started = time.monotonic()
    try:
        setup = python(SETUP_MODELS, work)
        if setup.result["got"] != "ok":
            print(f"setup failed: {setup.stderr[-2000:]}", file=sys.stderr)
            return 2
        groups = {"media": lambda: media_cases(work),
                  "models": lambda: model_cases(make_broken_models(work)),
                  "predict": lambda: predict_cli_cases(work), "app": lambda: app_cases(work),
                  "kills": lambda: kill_cases(work)}
        chosen = args.only.split(",") if args.only else list(groups)
        cases = [case for name in chosen for case in groups[name]()]
        outcomes = []
        for case in cases:
            outcome = case()
            outcomes.append(outcome)
            print(f"{'ok  ' if outcome.handled and not outcome.lost else 'FAIL'} "
                  f"{outcome.case}: {outcome.got}", file=sys.stderr, flush=True)
    finally:
        if args.keep:
            print(f"work folder: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(table(outcomes))
    handled = sum(o.handled for o in outcomes)
    lost = sum(o.lost for o in outcomes)
    hostile = [o.peak_mib for o in outcomes if o.hostile and o.peak_mib is not None] or [0.0]
    print(f"\n{handled} of {len(outcomes)} cases handled, {lost} lost data; peak RSS on hostile "
          f"inputs at most {max(hostile):.0f} MiB (goal {GOAL_MIB}); "
          f"{time.monotonic() - started:.0f} s in all")
    ok = handled == len(outcomes) and not lost and max(hostile) < GOAL_MIB
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
