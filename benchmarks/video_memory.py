"""Peak memory of streaming a real clip vs a 20x longer video built from it.

Two workloads: reading every frame (``emokeras.video.iter_frames``), and ``predict_video`` on
every frame with the bundled model (decode, track the face, classify in batches, aggregate).
Each run has its own process and reports its own peak RSS, so one measurement cannot inherit
another's heap. The long video and a 1x copy are written with the same encoder (OpenCV's MPEG-4),
so the ratio compares length alone; the original H.264 clip is shown too.

    python benchmarks/video_memory.py [--clip PATH] [--repeat 20] [--workload read|predict|both]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from emokeras.sample_data import write_video
from emokeras.video import iter_frames, probe_video

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = REPO.parent / "shared" / "fixtures" / "ravdess" / "actor01_sample_01.mp4"

# Runs in a fresh interpreter: import, run the workload on the video (or on none: "-"), report
# frames and peak RSS. Peak RSS is VmHWM from /proc: getrusage's ru_maxrss survives fork and exec
# on Linux, so a child would report its parent's peak (this script's, after writing the long
# video) instead of its own. The predict child loads the model before "-" returns, so its
# baseline row includes TensorFlow and the model.
CHILD = """
import json, sys
path, workload = sys.argv[1], sys.argv[2]
frames = 0
if workload == "read":
    from emokeras.video import iter_frames
    if path != "-":
        for _ in iter_frames(path):
            frames += 1
else:
    from emokeras.inference import predict_video
    from emokeras.model import resolve_model
    model = resolve_model(None)
    if path != "-":
        frames = predict_video(path, model, frame_step=1).frames_read
status = open("/proc/self/status").read()
peak_kib = int(status.split("VmHWM:")[1].split()[0])
print(json.dumps({"frames": frames, "peak_kib": peak_kib}))
"""

WORKLOADS = {"read": "reading every frame", "predict": "predict_video on every frame"}


def measure(path: str, workload: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, path, workload], check=True, capture_output=True, text=True,
        cwd=REPO,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def repeated_frames(clip: Path, repeat: int):
    for _ in range(repeat):
        for frame in iter_frames(clip):
            yield frame.image


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--workload", choices=[*WORKLOADS, "both"], default="both")
    args = parser.parse_args()
    workloads = list(WORKLOADS) if args.workload == "both" else [args.workload]

    fps = probe_video(args.clip).fps
    with tempfile.TemporaryDirectory() as tmp:
        short = write_video(Path(tmp) / "short_1x.mp4", repeated_frames(args.clip, 1), fps)
        long = write_video(Path(tmp) / f"long_{args.repeat}x.mp4",
                           repeated_frames(args.clip, args.repeat), fps)
        rows = [
            ("python + emokeras imported, no video", "-"),
            (f"{args.clip.name} (original H.264)", str(args.clip)),
            ("1x copy (MPEG-4)", str(short)),
            (f"{args.repeat}x longer (MPEG-4)", str(long)),
        ]
        tables = {w: [(label, measure(path, w)) for label, path in rows] for w in workloads}

    for workload, results in tables.items():
        base = results[2][1]["peak_kib"]
        print(f"\n{WORKLOADS[workload]}\n")
        print("| video | frames | seconds | peak RSS (MiB) | ratio to 1x copy |")
        print("|---|---:|---:|---:|---:|")
        for label, r in results:
            seconds = f"{r['frames'] / fps:.1f}" if r["frames"] else "-"
            print(f"| {label} | {r['frames']} | {seconds} | {r['peak_kib'] / 1024:.1f} "
                  f"| {r['peak_kib'] / base:.3f} |")
        ratio = results[3][1]["peak_kib"] / base
        verdict = "met" if ratio <= 1.1 else "MISSED"
        print(f"\n{WORKLOADS[workload]}: {args.repeat}x longer / 1x: {ratio:.3f} (goal <= 1.1): "
              f"{verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
