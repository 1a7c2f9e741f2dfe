"""The ``emokeras`` command.

    emokeras predict clip.mp4 photo.jpg folder/ [--model RUN] [--output results.csv] [--plot DIR]
        [--explain DIR] [--audio-model AUDIO_RUN [--audio-weight 0.3]]
    emokeras spectrograms RAVDESS_DIR speech.npz [--labels speech5] [--duration 3] [--mel-bins 128]
    emokeras demo [--out DIR]
    emokeras ensemble RUN_DIR RUN_DIR [...] --out DIR [--no-flip] [--crop 44]
    emokeras export [RUN_DIR] --out DIR [--formats savedmodel,onnx,tflite]
                    [--quantize none,dynamic,int8] [--representative FACES_DIR]
    emokeras live --source 0 | FILE [--out annotated.mp4] [--model RUN] [--threshold 0.5]
    emokeras app [--host 127.0.0.1] [--port 7860] [--max-upload-mb 50]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from emokeras.aggregation import METHODS
from emokeras.cliargs import add_config_arguments, config_from_arguments
from emokeras.datasets.base import IMAGE_EXTENSIONS
from emokeras.errors import ConfigError, EmokerasError
from emokeras.fileio import atomic_write, missing_reason, write_csv_atomic
from emokeras.labels import LABEL_SETS, get_label_set
from emokeras.prepare import VIDEO_EXTENSIONS

TRAIN_HELP = """Train an emotion model on a dataset; writes saved_models/<run>/ (see emokeras.runs).

    emokeras train --data fer2013/ --backbone mobilenet_v2 --weights imagenet --input-size 96
    emokeras train --data faces/manifest.csv --labels ravdess --by-sex
    emokeras train --data ckplus48/ --config run.json --phases 0:3:1e-3,all:5:1e-4

Every TrainConfig field is a flag (see --help); --config run.json gives values, flags override.
A run killed part-way resumes when the same command is run again.
"""

EVALUATE_HELP = """Evaluate a trained run on a dataset split: metrics, ROC AUC, per-class scores,
video-level and per-sex results (for face-crop manifests), and PNG plots, all written into the
run folder.

    emokeras evaluate saved_models/<run> --data fer2013/ --split test
    emokeras evaluate saved_models/<run> --data faces/manifest.csv --split test
"""

RESULT_FIELDS = ("path", "kind", "status", "label", "emoji", "confidence", "frames_read",
                 "frames_without_face", "faces", "face", "box_x", "box_y", "box_w", "box_h",
                 "detector_score", "error")
#: CSV columns of a run with --audio-model: the face-only and audio-only labels beside the fused
AUDIO_FIELDS = ("face_label", "face_confidence", "audio_label", "audio_confidence",
                "audio_weight", "audio_error")
#: Files predict labels by their sound alone (they need --audio-model)
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".m4a", ".ogg")


def _media_files(paths: list[Path], audio: bool = False) -> list[Path]:
    """The given files, and the videos and images (and with ``audio`` the audio files) below the
    given folders, sorted."""
    wanted = {*VIDEO_EXTENSIONS, *IMAGE_EXTENSIONS, *(AUDIO_EXTENSIONS if audio else ())}
    files = []
    for path in paths:
        if path.is_dir():
            # broken links and symlink loops are kept: the reader counts them as failed and says
            # which they are, rather than skipping them without a word
            found = (p for p in path.rglob("*") if p.suffix.lower() in wanted
                     and (p.is_file() or (p.is_symlink() and not p.exists())))
            files += sorted(found)
        else:
            files.append(path)  # a missing or odd file is reported by the reader, with why
    return files


def _scores(names, scores) -> dict[str, float]:
    return {name: round(float(score), 4) for name, score in zip(names, scores, strict=True)}


def _predict_audio_file(path: Path, audio_model) -> dict:
    from emokeras.audio_inference import predict_audio
    from emokeras.errors import ConfigError

    if audio_model is None:
        raise ConfigError(f"{str(path)!r} is an audio file: predicting it needs --audio-model")
    heard = predict_audio(path, audio_model)
    return {"kind": "audio", "label": heard.label, "emoji": heard.emoji,
            "confidence": round(heard.confidence, 4), "audio_label": heard.label,
            "audio_confidence": round(heard.confidence, 4),
            "audio_scores": _scores(heard.class_names, heard.probabilities)}


def _fusion_fields(video) -> dict:
    """The face-only and audio-only results of a fused video prediction, as result columns."""
    face_index = int(video.face_scores.argmax())
    row = {"face_label": video.class_names[face_index],
           "face_confidence": round(float(video.face_scores[face_index]), 4),
           "face_scores": _scores(video.class_names, video.face_scores),
           "scores": _scores(video.class_names, video.probabilities)}
    if video.audio_error is not None:
        return {**row, "audio_error": video.audio_error}
    audio_index = int(video.audio_scores.argmax())
    return {**row, "audio_label": video.audio_class_names[audio_index],
            "audio_confidence": round(float(video.audio_scores[audio_index]), 4),
            "audio_scores": _scores(video.audio_class_names, video.audio_scores),
            "audio_weight": video.audio_weight}


def _expected_frames(path: Path, args) -> int | None:
    """About how many frames predict will sample from a video (for its progress bar)."""
    from emokeras.video import probe_video

    try:
        info = probe_video(path)
    except EmokerasError:
        return None  # the reader says why when the video is predicted
    if args.frame_step:
        count = math.ceil(info.frame_count / args.frame_step)
    else:
        count = math.ceil(info.duration * min(args.target_fps, info.fps or args.target_fps))
    return min(count, args.max_frames) if args.max_frames else count


def _predict_one(path: Path, model, args, audio_model=None) -> tuple[list[dict], object | None]:
    """The output rows of one file (one per face of an image with ``--faces all``, else one)
    and its result: a VideoPrediction, a list of ImagePredictions, or None (audio)."""
    from emokeras.inference import predict_image, predict_video

    if path.suffix.lower() in AUDIO_EXTENSIONS:
        return [_predict_audio_file(path, audio_model)], None
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        faces = predict_image(path, model, which=getattr(args, "faces", "largest"),
                              **_detector_options(args))
        rows = [{"kind": "image", "label": face.label, "emoji": face.emoji,
                 "confidence": round(face.confidence, 4), "face": i, **_box_fields(face.box),
                 "scores": _scores(face.class_names, face.probabilities)}
                for i, face in enumerate(faces)]
        return rows, faces
    sampling = (
        {"frame_step": args.frame_step} if args.frame_step else {"target_fps": args.target_fps}
    )
    # progress within a long video, in sampled frames; gone once the video is done
    with tqdm(total=_expected_frames(path, args), unit="frame", desc=path.name, leave=False,
              disable=None) as bar:
        video = predict_video(path, model, aggregate=args.aggregate, max_frames=args.max_frames,
                              audio_model=audio_model, audio_weight=args.audio_weight,
                              **sampling, faces=getattr(args, "faces", "largest"),
                              progress=bar.update, **_detector_options(args))
    row = {"kind": "video", "label": video.label, "emoji": video.emoji,
           "confidence": round(video.confidence, 4), "frames_read": video.frames_read,
           "frames_without_face": video.frames_without_face,
           "faces": len(getattr(video, "tracks", ()) or ()) or 1,
           "scores": _scores(video.class_names, video.probabilities)}
    if video.face_scores is not None:
        row.update(_fusion_fields(video))
    return [row], video


def _box_fields(box) -> dict:
    if box is None:
        return {}
    return {"box_x": box.x, "box_y": box.y, "box_w": box.width, "box_h": box.height,
            "detector_score": round(float(box.confidence), 4)}


def _explain_one(path: Path, model, out_dir: Path, video) -> None:
    """Write the Grad-CAM (or, for a ViT, attention-rollout) overlay of a predicted file."""
    from emokeras.explain import explain_file

    try:
        written = explain_file(path, model, out_dir, video=video)
        tqdm.write(f"explanation: {written}")
    except EmokerasError as error:  # the prediction stands; only its picture is missing
        tqdm.write(f"no explanation for {path}: {error}")


def _write_results(path: Path, rows: list[dict]) -> None:
    if path.suffix.lower() == ".json":
        with atomic_write(path, encoding="utf-8") as handle:
            json.dump(rows, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
    else:
        # every class's probability as a column (in the model's class order); the audio columns
        # only when some file has them (the voice's own class scores are JSON's)
        classes = list(dict.fromkeys(c for row in rows for c in row.get("scores", {})))
        fields = (RESULT_FIELDS + tuple(classes)
                  + tuple(f for f in AUDIO_FIELDS if any(f in row for row in rows)))
        write_csv_atomic(path, fields, ({f: row.get(f, row.get("scores", {}).get(f, ""))
                                         for f in fields} for row in rows))


#: What ``predict --output`` writes, by suffix
OUTPUT_SUFFIXES = (".csv", ".json")


def _output_problem(path: Path) -> str | None:
    """Why ``--output`` cannot be written (a folder, an unknown suffix, an unwritable place), or
    None; checked before any prediction so a bad name does not lose a whole run's work."""
    if path.is_dir():
        return "is a directory; name a .csv or .json file"
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        return f"unknown format {path.suffix or '(no suffix)'!r}; name a .csv or .json file"
    if path.is_symlink() and not path.exists():
        return missing_reason(path)
    # the nearest existing folder above it must take a new file (the writer makes the rest)
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return f"{str(folder)!r} is not a folder"
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        return f"cannot write in {str(folder)!r}: {error.strerror or error}"
    return None


def predict_command(args) -> int:
    from emokeras.inference import resolve_model
    from emokeras.plots import plot_timeline

    if args.output and (problem := _output_problem(args.output)):
        print(f"error: --output {str(args.output)!r}: {problem}", file=sys.stderr)
        return 2
    if args.per_frame:  # refused before any work: an unknown type, or pandas missing
        from emokeras.results import check_table_path, require_pandas

        check_table_path(args.per_frame)
        if args.per_frame.is_dir():
            raise ConfigError(f"--per-frame {str(args.per_frame)!r} is a directory; name a "
                              ".csv or .parquet file")
        require_pandas()
        if args.per_frame.suffix.lower() == ".parquet":
            import importlib.util

            from emokeras.errors import MissingExtraError

            if importlib.util.find_spec("pyarrow") is None:
                raise MissingExtraError("tables", "pyarrow", "writing Parquet")
    model = resolve_model(args.model)
    audio_model = None
    if args.audio_model is not None:
        from emokeras.audio_inference import AudioEmotionModel, check_weight

        check_weight(args.audio_weight)
        audio_model = AudioEmotionModel.load(args.audio_model)
    files = _media_files(args.paths, audio=audio_model is not None)
    if not files:
        print("error: no videos or images found", file=sys.stderr)
        return 2
    rows, failed, results = [], 0, []
    for path in tqdm(files, unit="file", desc="predict", disable=len(files) == 1):
        try:
            file_rows, result = _predict_one(path, model, args, audio_model)
            video = result if hasattr(result, "frame_probs") else None
            if video is not None and args.plot:
                plot_timeline(video, args.plot / f"{path.stem}_timeline.png")
            rows += [{"path": str(path), "status": "ok", **row} for row in file_rows]
        except EmokerasError as error:  # a bad file is reported and the run carries on
            failed += 1
            rows.append({"path": str(path), "status": "failed", "error": str(error)})
            tqdm.write(f"failed: {path}: {error}")
            continue
        if result is not None:
            results += [result] if video is not None else list(result)
        if args.explain and file_rows[0]["kind"] != "audio":  # Grad-CAM is of faces
            _explain_one(path, model, args.explain, video)
    written = []
    if args.output:
        _write_results(args.output, rows)
        written.append(f"results: {args.output}")
    if args.per_frame and results:
        from emokeras.results import to_frame, write_table

        table = to_frame(results)
        write_table(table, args.per_frame)
        written.append(f"per-frame table ({len(table)} rows, one per face per frame): "
                       f"{args.per_frame}")
    if args.plot and any(hasattr(r, "frame_probs") for r in results):
        written.append(f"timelines: {args.plot}")
    if args.explain and results:
        written.append(f"explanations: {args.explain}")
    for row in rows:
        if row["status"] == "ok":
            parts = [f"face {row['face_label']}"] if "face_label" in row else []
            if "audio_label" in row and row["kind"] != "audio":
                parts.append(f"voice {row['audio_label']}")
            if "audio_error" in row:
                parts.append("no usable audio")
            detail = f" [{', '.join(parts)}]" if parts else ""
            face = ""  # an image with several faces (--faces all): which one
            if row.get("kind") == "image" and sum(r["path"] == row["path"] for r in rows) > 1:
                face = f" face {row['face']}"
            print(f"{row['path']}{face}: {row['label']} {row['emoji']} "
                  f"({row['confidence']:.0%}){detail}")
    for line in written:  # where everything went
        print(line)
    print(f"{len(files) - failed} of {len(files)} files predicted"
          + (f"; {failed} of {len(files)} failed (see above)" if failed else ""))
    return 1 if failed else 0


def demo_command(args) -> int:
    """The whole video path with the bundled model, on a clip built from a public-domain photo."""
    from emokeras.inference import predict_video
    from emokeras.plots import plot_timeline
    from emokeras.sample_data import make_example_videos

    clip = make_example_videos(args.out)[0]
    prediction = predict_video(clip, target_fps=10, **_detector_options(args))
    timeline = plot_timeline(prediction, args.out / "demo_timeline.png")
    with atomic_write(args.out / "demo_prediction.json", encoding="utf-8") as handle:
        json.dump(prediction.to_dict(), handle, indent=2, ensure_ascii=False)
    print(f"{clip.name}: {prediction.label} {prediction.emoji} ({prediction.confidence:.0%}) "
          f"from {prediction.num_frames} of {prediction.frames_read} frames")
    print(f"timeline: {timeline}")
    return 0


PREPARE_HELP = """Turn a folder of videos into square face crops plus a manifest.csv (video id,
frame, timestamp, box, crop path, label, actor, sex, subject-grouped split, status, reason).
Resumable: a re-run skips finished videos. Unreadable videos, frames without a face and names
that give no label are recorded with the reason, and the run carries on.

    emokeras prepare RAVDESS/ faces/ --target-fps 6 --size 224
    emokeras prepare --example faces/        # on clips built from a bundled public-domain photo

Every PrepareConfig field is a flag; --config prep.json gives values, flags override.
"""


def _add_prepare_arguments(parser: argparse.ArgumentParser) -> None:
    from emokeras.prepare import PrepareConfig

    parser.add_argument("videos", nargs="?", type=Path, metavar="VIDEOS",
                        help="folder of videos (searched recursively)")
    parser.add_argument("out", type=Path, metavar="OUT",
                        help="output folder: crops/, parts/, manifest.csv")
    parser.add_argument("--example", action="store_true",
                        help="build example clips into OUT/videos and use them as VIDEOS")
    parser.add_argument("--labels", dest="label_source", choices=["ravdess", "folder", "none"],
                        default=argparse.SUPPRESS, help="the same as --label-source")
    add_config_arguments(parser, PrepareConfig)


def prepare_command(args) -> int:
    """Face crops and a manifest from a folder of videos (resumable)."""
    from collections import Counter

    from emokeras.prepare import (
        PrepareConfig,
        find_videos,
        make_detector,
        prepare_videos,
        write_manifest,
    )

    if args.videos is None and not args.example:
        raise ConfigError("give a VIDEOS folder, or --example")
    if getattr(args, "step", None) is not None and not hasattr(args, "target_fps"):
        args.target_fps = None  # --step replaces the default frame rate
    config = config_from_arguments(args, PrepareConfig)
    if config.detector == "mtcnn":  # before any work: one line naming the extra
        from emokeras.extras import require_extra

        require_extra("mtcnn", "the MTCNN face detector")
    detector = make_detector(config.detector, config.detector_threshold)
    if args.example:
        from emokeras.sample_data import make_example_videos

        args.videos = args.out / "videos"
        make_example_videos(args.videos)
    videos = find_videos(args.videos)
    if not videos:
        print(f"error: no videos found in {args.videos}", file=sys.stderr)
        return 1
    outcome: Counter[str] = Counter()
    results = prepare_videos(videos, args.videos, args.out, config, detector=detector)
    for result in tqdm(results, total=len(videos), unit="video", desc="face crops"):
        if result.skipped:
            outcome["skipped (done before)"] += 1
        elif result.status is not None:
            outcome[result.status] += 1
            tqdm.write(f"{result.status}: {result.path}: {result.reason}")
        elif result.num_faces == 0:
            outcome["no face in any frame"] += 1
            tqdm.write(f"no face: {result.path} ({result.num_frames} frames sampled)")
        else:
            outcome["done"] += 1
    manifest = write_manifest(args.out, config)
    summary = ", ".join(f"{count} {what}" for what, count in sorted(outcome.items()))
    print(f"{len(videos)} videos: {summary}\ncrops: {args.out / 'crops'}\nmanifest: {manifest}")
    return 0


def spectrograms_command(args) -> int:
    """Spectrogram images of RAVDESS-named audio or video files, as an .npz to train on."""
    from emokeras.audio import SpectrogramConfig
    from emokeras.datasets.spectrograms import audio_spectrogram_set, save_spectrogram_npz

    config = SpectrogramConfig(duration=args.duration, num_mel_bins=args.mel_bins)
    source = args.src if args.src.is_dir() else [args.src]
    spec_set, failures = audio_spectrogram_set(source, config, get_label_set(args.labels),
                                               progress=True)
    for path, reason in failures:  # a bad file is reported and the others carry on
        print(f"failed: {path}: {reason}")
    if not len(spec_set):
        print(f"error: no spectrogram made from {args.src} ({len(failures)} failed), nothing "
              "written", file=sys.stderr)
        return 1
    save_spectrogram_npz(args.out, spec_set)
    counts = ", ".join(f"{name} {n}" for name, n in spec_set.class_counts().items())
    speakers = len(set(spec_set.subjects or ()))
    print(f"{args.out}: {len(spec_set)} spectrograms {config.image_shape[0]}x"
          f"{config.image_shape[1]} of {speakers} speakers ({counts})"
          + (f", {len(failures)} failed (see above)" if failures else ""))
    return 0


def live_command(args) -> int:
    """Label every face of a camera or a video file frame by frame; optionally save it."""
    from emokeras.live import display_available, run_live

    # by default a window where there is a display, headless elsewhere
    display = display_available() if args.display is None else args.display
    stats = run_live(args.source, args.model, out=args.out, threshold=args.threshold,
                     window=args.window, display=display, max_frames=args.max_frames,
                     aggregate=args.aggregate, **_detector_options(args))
    print(f"{stats.frames} frames, {stats.faces} faces labelled in {stats.seconds:.1f} s: "
          f"{stats.fps:.1f} frames/s")
    if stats.out is not None:
        print(f"annotated video: {stats.out}")
    return 0


def app_command(args) -> int:
    """Serve the web app (needs the ``app`` extra: Gradio)."""
    from emokeras.extras import require_extra

    require_extra("app", "the web app")  # one line naming the extra, before any work
    from emokeras.app import build_app, launch_app

    app = build_app(models_dir=args.models_dir, max_upload_mb=args.max_upload_mb,
                    detector=args.detector, detector_threshold=args.detector_threshold)
    launch_app(app, host=args.host, port=args.port, max_upload_mb=args.max_upload_mb)
    return 0


def train_parser() -> argparse.ArgumentParser:
    """The train command's own parser; its flags come from TrainConfig (emokeras.configs, which
    imports no Keras, so ``train --help`` is quick)."""
    from emokeras.configs import TrainConfig

    parser = argparse.ArgumentParser(
        prog="emokeras train", description=TRAIN_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", type=Path, required=True,
                        help="FER2013 CSV or folders, a data_prep manifest.csv, or class folders")
    parser.add_argument("--labels", choices=sorted(LABEL_SETS),
                        help="label set of a manifest or class folders (FER2013 knows its own)")
    parser.add_argument("--run", help="run name (default: <backbone>-<date>-<time>)")
    parser.add_argument("--output-dir", type=Path, default=Path("saved_models"))
    parser.add_argument("--limit", type=int, help="at most this many random items per split")
    parser.add_argument("--by-sex", action="store_true",
                        help="train one model per sex from a manifest's sex column")
    parser.add_argument("--val-fraction", type=float, default=0.15,
                        help="for class folders: share of subjects held out for validation")
    parser.add_argument("--test-fraction", type=float, default=0.15,
                        help="for class folders: share of subjects held out for testing")
    parser.add_argument("--distribute", choices=["none", "mirrored", "multiworker"],
                        default="none", help="tf.distribute strategy (multiworker reads TF_CONFIG)")
    parser.add_argument("--cpu-replicas", type=int, default=0,
                        help="split the CPU into N logical devices (try a strategy without GPUs)")
    add_config_arguments(parser, TrainConfig)
    return parser


def train_command(args) -> int:
    from emokeras.configs import TrainConfig

    logging.getLogger().setLevel(logging.INFO)  # epochs and phases are worth seeing
    options = train_parser().parse_args(args.train_args)
    config = config_from_arguments(options, TrainConfig)
    from emokeras.distribute import make_strategy, split_cpu

    if options.cpu_replicas > 1:
        split_cpu(options.cpu_replicas)  # before anything makes a tensor
    from emokeras.runs import train_run

    run = options.run or f"{config.backbone}-{time.strftime('%Y%m%d-%H%M%S')}"
    results = train_run(
        options.data, options.output_dir / run, config,
        label_set=get_label_set(options.labels) if options.labels else None,
        limit_items=options.limit, by_sex=options.by_sex,
        strategy=make_strategy(options.distribute),
        val_fraction=options.val_fraction, test_fraction=options.test_fraction,
    )
    for result in results:
        val = result.metrics["val"]["accuracy"]
        test = result.metrics.get("test", {}).get("accuracy")
        extra = f", test accuracy {test:.4f}" if test is not None else ""
        print(f"{result.run_dir}: validation accuracy {val:.4f}{extra}")
    return 0


def evaluate_command(args) -> int:
    from emokeras.evaluation import evaluate_run

    result = evaluate_run(args.run_dir, args.data, args.split)
    frame, auc = result.frame, result.roc_auc["macro"]
    print(f"{args.split}: frame accuracy {frame.accuracy:.4f}, macro F1 "
          f"{frame.macro_f1:.4f}, ROC AUC (macro) {auc or float('nan'):.4f} "
          f"on {frame.count} faces")
    for method, metrics in result.video.items():
        print(f"  video-level, {method:>11}: accuracy {metrics.accuracy:.4f} "
              f"on {metrics.count} videos")
    for sex, metrics in result.per_sex.items():
        print(f"  {sex}: frame accuracy {metrics['frame'].accuracy:.4f}")
    print("written:", *result.written, sep="\n  ")
    return 0


def ensemble_command(args) -> int:
    """Average trained runs (and their mirror images) into one run folder."""
    from emokeras.runs import ensemble_run

    out = ensemble_run(args.runs, args.out, flip=args.flip, crops=tuple(args.crop))
    views = ["the mirrored face"] * args.flip + [f"the central {c}x{c}" for c in args.crop]
    runs = f"{len(args.runs)} run{'s' * (len(args.runs) > 1)}"
    print(f"{out}: ensemble of {runs}"
          f"{', each also on ' + ' and '.join(views) if views else ''}")
    return 0


def export_command(args) -> int:
    """Export a run (or the bundled model) as a SavedModel for TF Serving, ONNX and TFLite."""
    from emokeras.export import run_export

    if args.run_dir is not None and args.model is not None:
        print("error: give a run folder or --model, not both", file=sys.stderr)
        return 2
    source = args.run_dir if args.run_dir is not None else args.model
    model = None if source is None or str(source) == "bundled" else source
    if "onnx" in {f.strip().lower() for f in args.formats.split(",")}:
        # before the SavedModel is written: a missing converter is one line, not a traceback
        from emokeras.extras import require_extra

        require_extra("export", "ONNX export (--formats onnx)", ("tf2onnx", "onnx"))
    result = run_export(model, args.out, formats=args.formats, quantize=args.quantize,
                        representative=args.representative, overwrite=args.overwrite,
                        version=args.version)
    for entry in result.entries:
        checked = ""
        if entry.verified:
            checked = (f", vs Keras: max |diff| {entry.max_abs_diff_vs_keras:.2g}, top class "
                       f"agrees {entry.argmax_agreement_vs_keras:.0%}")
        print(f"{args.out / entry.path}: {entry.bytes / 1e6:.1f} MB{checked}")
    print(f"summary: {args.out / 'export.json'}")
    return 0


def add_detector_arguments(parser: argparse.ArgumentParser, *, align: bool = True) -> None:
    """``--detector``, ``--detector-threshold`` (and ``--align/--no-align``): how faces are found
    and cut (see emokeras.faces.get_detector)."""
    from emokeras.faces import DEFAULT_DETECTOR, DETECTORS

    parser.add_argument("--detector", choices=sorted(DETECTORS), default=DEFAULT_DETECTOR,
                        help=f"face detector (default {DEFAULT_DETECTOR}; mtcnn needs the "
                             "'mtcnn' extra)")
    parser.add_argument("--detector-threshold", type=float, metavar="T",
                        help="drop faces scoring below T (yunet, mtcnn: 0 to 1, defaults 0.6 "
                             "and 0.9; haar: its min_neighbors, an integer, default 5)")
    if align:
        parser.add_argument("--align", action=argparse.BooleanOptionalAction, default=True,
                            help="turn each face upright from its eye landmarks before it is "
                                 "classified (default: yes)")


def _detector_options(args) -> dict:
    """The detector keywords of predict_image / predict_video / run_live from the flags."""
    return {"detector": getattr(args, "detector", None),
            "detector_threshold": getattr(args, "detector_threshold", None),
            "align": getattr(args, "align", True)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emokeras", description="Emotions in faces, in video.")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show TensorFlow's start-up logging and info messages (give it "
                             "before the command)")
    commands = parser.add_subparsers(dest="command", required=True)

    predict = commands.add_parser("predict", help="label videos and images (files or folders)")
    predict.add_argument("paths", nargs="+", type=Path)
    predict.add_argument("--model", type=Path, help="a run folder (default: the bundled model)")
    predict.add_argument("--aggregate", choices=METHODS, default="sum")
    sampling = predict.add_mutually_exclusive_group()
    sampling.add_argument("--target-fps", type=float, default=10.0)
    sampling.add_argument("--frame-step", type=int)
    predict.add_argument("--max-frames", type=int)
    predict.add_argument("--output", type=Path,
                         help="write results to a .csv or .json file: a row per file (per face "
                              "of an image with --faces all), every class's probability")
    predict.add_argument("--per-frame", type=Path, metavar="FILE",
                         help="write a table with a row per face per frame (.csv or .parquet; "
                              "needs the 'tables' extra)")
    predict.add_argument("--plot", type=Path, help="write each video's timeline PNG here")
    predict.add_argument("--explain", type=Path, metavar="DIR",
                         help="write a Grad-CAM / attention-rollout overlay PNG per file here "
                              "(a video: its most confident frame)")
    predict.add_argument("--audio-model", type=Path, metavar="RUN_DIR",
                         help="an audio run folder (trained on 'emokeras spectrograms' output): "
                              "fuse each video's speech with its faces; audio files "
                              f"({', '.join(AUDIO_EXTENSIONS)}) are labelled by their sound alone")
    predict.add_argument("--audio-weight", type=float, default=0.3, metavar="W",
                         help="weight of the audio in the fusion, 0 to 1 (default 0.3)")
    add_detector_arguments(predict)
    predict.add_argument("--faces", choices=["largest", "all"], default="largest",
                         help="videos: classify the largest face of each frame (default), or "
                              "every face, each followed through the video as a track")
    predict.set_defaults(run=predict_command)

    # Listed for --help only: main() hands everything after "train" to train_parser(), whose
    # flags come from TrainConfig.
    commands.add_parser("train", add_help=False, help="train a model on a dataset")

    evaluate = commands.add_parser(
        "evaluate", help="metrics and plots of a run on a dataset split", description=EVALUATE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    evaluate.add_argument("run_dir", type=Path, metavar="RUN", help="a run folder written by train")
    evaluate.add_argument("--data", type=Path, required=True, help="any dataset train reads")
    evaluate.add_argument("--split", choices=["train", "val", "test"], default="val")
    evaluate.set_defaults(run=evaluate_command)

    ensemble = commands.add_parser(
        "ensemble", help="average trained runs into one model (a run folder)",
        description="Write a run folder whose model averages the class probabilities of the "
                    "given runs (same label set), by default also on each face's mirror image. "
                    "It works wherever a run folder does: predict, evaluate, export.")
    ensemble.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    ensemble.add_argument("--out", type=Path, required=True, help="the run folder to write")
    ensemble.add_argument("--flip", action=argparse.BooleanOptionalAction, default=True,
                          help="also average each model on the mirrored face (default: yes)")
    ensemble.add_argument("--crop", type=int, action="append", default=[], metavar="PIXELS",
                          help="also average each model on the face's central PIXELS square, "
                               "resized back (a zoom-in; repeat for more sizes)")
    ensemble.set_defaults(run=ensemble_command)

    demo = commands.add_parser("demo", help="run the bundled model on a built-in example clip")
    demo.add_argument("--out", type=Path, default=Path("saved_models/demo"))
    add_detector_arguments(demo)
    demo.set_defaults(run=demo_command)

    export = commands.add_parser(
        "export", help="export a model: SavedModel (TF Serving), ONNX, TFLite")
    export.add_argument("run_dir", nargs="?", type=Path,
                        help="a run folder (default: the bundled model)")
    export.add_argument("--model", help="'bundled', or a run folder (instead of RUN_DIR)")
    export.add_argument("--out", type=Path, required=True, help="write the exports here")
    export.add_argument("--formats", default="savedmodel,onnx,tflite",
                        help="comma-separated: savedmodel, onnx, tflite (default: all three)")
    export.add_argument("--quantize", default="none",
                        help="ONNX/TFLite variants, comma-separated: none, dynamic, int8 "
                             "(default none; int8 needs --representative)")
    export.add_argument("--representative", type=Path,
                        help="a folder of face crops to calibrate int8 on and to verify with")
    export.add_argument("--version", type=int, default=1,
                        help="the SavedModel's version folder (default 1)")
    export.add_argument("--overwrite", action="store_true", help="replace earlier exports")
    export.set_defaults(run=export_command)

    prepare = commands.add_parser(
        "prepare", help="face crops and a manifest from a folder of videos (resumable)",
        description=PREPARE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_prepare_arguments(prepare)
    prepare.set_defaults(run=prepare_command)

    spectrograms = commands.add_parser(
        "spectrograms", help="spectrogram images of RAVDESS-named audio/video files, as .npz",
        description="Spectrogram images of the speech in RAVDESS-named audio or video files "
                    "(labels from the names' emotion codes), written as an .npz that "
                    "'emokeras train --data' reads. Files of emotions outside the label set and "
                    "RAVDESS video-only files are skipped; unreadable files are reported.")
    spectrograms.add_argument("src", type=Path, metavar="SRC",
                              help="a folder (searched recursively) or one file")
    spectrograms.add_argument("out", type=Path, metavar="OUT.npz")
    spectrograms.add_argument("--labels", choices=["ravdess", "speech5"], default="speech5",
                              help="ravdess: all 8 emotions; speech5 (default): neutral, "
                                   "fearful, happy, sad, surprised")
    spectrograms.add_argument("--duration", type=float, default=3.0,
                              help="seconds of audio per image, centre-cropped or padded "
                                   "(default 3.0)")
    spectrograms.add_argument("--mel-bins", type=int, default=128,
                              help="mel bands: the image height (default 128; 0: linear STFT)")
    spectrograms.set_defaults(run=spectrograms_command)

    live = commands.add_parser("live", help="label every face of a camera or video, live")
    live.add_argument("--source", default="0", help="a camera index (default 0) or a video file")
    live.add_argument("--out", type=Path,
                      help="write the annotated video here (.mp4, .mov, .avi, lossless .mkv)")
    live.add_argument("--model", type=Path, help="a run folder (default: the bundled model)")
    live.add_argument("--threshold", type=float, default=0.5,
                      help="below this confidence a face is 'uncertain' (default 0.5)")
    live.add_argument("--window", type=int, default=5,
                      help="frames each face's label is smoothed over (default 5)")
    live.add_argument("--aggregate", choices=METHODS, default="sum")
    live.add_argument("--max-frames", type=int, help="stop after this many frames")
    live.add_argument("--display", action=argparse.BooleanOptionalAction, default=None,
                      help="show a window (default: only where there is a display)")
    add_detector_arguments(live)
    live.set_defaults(run=live_command)

    app = commands.add_parser("app", help="serve the web app (needs the 'app' extra)")
    app.add_argument("--host", default="127.0.0.1",
                     help="address to serve on (default 127.0.0.1: this machine only)")
    app.add_argument("--port", type=int, default=7860)
    app.add_argument("--max-upload-mb", type=float, default=50.0)
    app.add_argument("--models-dir", type=Path, default=Path("saved_models"),
                     help="offer the run folders found here (default saved_models/)")
    add_detector_arguments(app, align=False)
    app.set_defaults(run=app_command)
    return parser


def main(argv: list[str] | None = None, *, quiet: bool | None = None) -> int:
    """The ``emokeras`` command. ``quiet`` (default: when run as a program, ``argv`` None)
    keeps TensorFlow's C++ start-up logging off stderr; ``--verbose`` brings it back."""
    as_program = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    verbose = False
    while argv[:1] in (["--verbose"], ["-v"]):  # the global flag, before the command
        verbose, argv = True, argv[1:]
    # CUDA probes, CPU-flag notices and cuInit errors on a CPU machine read as failures
    from emokeras.quiet import quiet_tensorflow

    quiet_tensorflow(verbose=verbose, filter_stderr=as_program if quiet is None else quiet)
    if argv[:1] == ["train"]:
        args = argparse.Namespace(run=train_command, train_args=argv[1:])
    else:
        args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        if getattr(args, "detector", None) == "mtcnn":  # an extra's check, before any work
            from emokeras.extras import require_extra

            require_extra("mtcnn", "the MTCNN face detector (--detector mtcnn)")
        return args.run(args)
    except EmokerasError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
