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
import os
import sys
import time
from pathlib import Path

from tqdm import tqdm

from emokeras.aggregation import METHODS
from emokeras.cliargs import add_config_arguments, config_from_arguments
from emokeras.datasets.base import IMAGE_EXTENSIONS
from emokeras.errors import EmokerasError
from emokeras.fileio import atomic_write, write_csv_atomic
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
                 "frames_without_face", "error")
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
            found = (p for p in path.rglob("*") if p.suffix.lower() in wanted and p.is_file())
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
            "audio_scores": _scores(heard.class_names, heard.scores)}


def _fusion_fields(video) -> dict:
    """The face-only and audio-only results of a fused video prediction, as result columns."""
    face_index = int(video.face_scores.argmax())
    row = {"face_label": video.class_names[face_index],
           "face_confidence": round(float(video.face_scores[face_index]), 4),
           "face_scores": _scores(video.class_names, video.face_scores),
           "scores": _scores(video.class_names, video.scores)}
    if video.audio_error is not None:
        return {**row, "audio_error": video.audio_error}
    audio_index = int(video.audio_scores.argmax())
    return {**row, "audio_label": video.audio_class_names[audio_index],
            "audio_confidence": round(float(video.audio_scores[audio_index]), 4),
            "audio_scores": _scores(video.audio_class_names, video.audio_scores),
            "audio_weight": video.audio_weight}


def _predict_one(path: Path, model, args, audio_model=None) -> tuple[dict, object | None]:
    from emokeras.inference import predict_image, predict_video

    if path.suffix.lower() in AUDIO_EXTENSIONS:
        return _predict_audio_file(path, audio_model), None
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        face = predict_image(path, model)[0]
        row = {"kind": "image", "label": face.label, "emoji": face.emoji,
               "confidence": round(face.confidence, 4)}
        return row, None
    sampling = (
        {"frame_step": args.frame_step} if args.frame_step else {"target_fps": args.target_fps}
    )
    video = predict_video(path, model, aggregate=args.aggregate, max_frames=args.max_frames,
                          audio_model=audio_model, audio_weight=args.audio_weight, **sampling)
    row = {"kind": "video", "label": video.label, "emoji": video.emoji,
           "confidence": round(video.confidence, 4), "frames_read": video.frames_read,
           "frames_without_face": video.frames_without_face}
    if video.face_scores is not None:
        row.update(_fusion_fields(video))
    return row, video


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
        # the audio columns only when some file has them; the per-class score dicts are JSON's
        fields = RESULT_FIELDS + tuple(f for f in AUDIO_FIELDS if any(f in row for row in rows))
        write_csv_atomic(path, fields, ({f: row.get(f, "") for f in fields} for row in rows))


def predict_command(args) -> int:
    from emokeras.inference import resolve_model
    from emokeras.plots import plot_timeline

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
    rows, failed = [], 0
    for path in tqdm(files, unit="file", desc="predict", disable=len(files) == 1):
        try:
            row, video = _predict_one(path, model, args, audio_model)
            if video is not None and args.plot:
                plot_timeline(video, args.plot / f"{path.stem}_timeline.png")
            rows.append({"path": str(path), "status": "ok", **row})
        except EmokerasError as error:  # a bad file is reported and the run carries on
            failed += 1
            rows.append({"path": str(path), "status": "failed", "error": str(error)})
            tqdm.write(f"failed: {path}: {error}")
            continue
        if args.explain and row["kind"] != "audio":  # Grad-CAM is of faces
            _explain_one(path, model, args.explain, video)
    if args.output:
        _write_results(args.output, rows)
    for row in rows:
        if row["status"] == "ok":
            parts = [f"face {row['face_label']}"] if "face_label" in row else []
            if "audio_label" in row and row["kind"] != "audio":
                parts.append(f"voice {row['audio_label']}")
            if "audio_error" in row:
                parts.append("no usable audio")
            detail = f" [{', '.join(parts)}]" if parts else ""
            print(f"{row['path']}: {row['label']} {row['emoji']} ({row['confidence']:.0%})"
                  f"{detail}")
    print(f"{len(rows) - failed} of {len(rows)} files predicted"
          + (f", {failed} failed (see above)" if failed else ""))
    return 1 if failed == len(rows) else 0


def demo_command(args) -> int:
    """The whole video path with the bundled model, on a clip built from a public-domain photo."""
    from emokeras.inference import predict_video
    from emokeras.plots import plot_timeline
    from emokeras.sample_data import make_example_videos

    clip = make_example_videos(args.out)[0]
    prediction = predict_video(clip, target_fps=10)
    timeline = plot_timeline(prediction, args.out / "demo_timeline.png")
    with atomic_write(args.out / "demo_prediction.json", encoding="utf-8") as handle:
        json.dump(prediction.to_dict(), handle, indent=2, ensure_ascii=False)
    print(f"{clip.name}: {prediction.label} {prediction.emoji} ({prediction.confidence:.0%}) "
          f"from {prediction.num_frames} of {prediction.frames_read} frames")
    print(f"timeline: {timeline}")
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
                     aggregate=args.aggregate)
    print(f"{stats.frames} frames, {stats.faces} faces labelled in {stats.seconds:.1f} s: "
          f"{stats.fps:.1f} frames/s")
    if stats.out is not None:
        print(f"annotated video: {stats.out}")
    return 0


def app_command(args) -> int:
    """Serve the web app (needs the ``app`` extra: Gradio)."""
    try:
        import gradio  # noqa: F401

        from emokeras.app import build_app, launch_app
    except ImportError as error:
        print(f"error: the web app needs Gradio ({error}): pip install 'emokeras[app]'",
              file=sys.stderr)
        return 2
    app = build_app(models_dir=args.models_dir, max_upload_mb=args.max_upload_mb)
    launch_app(app, host=args.host, port=args.port, max_upload_mb=args.max_upload_mb)
    return 0


def train_parser() -> argparse.ArgumentParser:
    """The train command's own parser; its flags come from TrainConfig, which imports Keras, so
    it is built only when ``train`` runs, keeping the other commands' start-up light."""
    from emokeras.training import TrainConfig

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
    from emokeras.training import TrainConfig

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

    report, written = evaluate_run(args.run_dir, args.data, args.split)
    frame, auc = report["frame"], report["roc_auc"]["macro"]
    print(f"{args.split}: frame accuracy {frame['accuracy']:.4f}, macro F1 "
          f"{frame['macro_f1']:.4f}, ROC AUC (macro) {auc or float('nan'):.4f} "
          f"on {frame['count']} faces")
    for method, metrics in report["video"].items():
        print(f"  video-level, {method:>11}: accuracy {metrics['accuracy']:.4f} "
              f"on {metrics['count']} videos")
    for sex, metrics in report["per_sex"].items():
        print(f"  {sex}: frame accuracy {metrics['frame']['accuracy']:.4f}")
    print("written:", *written, sep="\n  ")
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
    result = run_export(model, args.out, formats=args.formats, quantize=args.quantize,
                        representative=args.representative, overwrite=args.overwrite,
                        version=args.version)
    for entry in result.entries:
        checked = ""
        if "max_abs_diff_vs_keras" in entry:
            checked = (f", vs Keras: max |diff| {entry['max_abs_diff_vs_keras']:.2g}, top class "
                       f"agrees {entry['argmax_agreement_vs_keras']:.0%}")
        print(f"{args.out / entry['path']}: {entry['bytes'] / 1e6:.1f} MB{checked}")
    print(f"summary: {args.out / 'export.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emokeras", description="Emotions in faces, in video.")
    commands = parser.add_subparsers(dest="command", required=True)

    predict = commands.add_parser("predict", help="label videos and images (files or folders)")
    predict.add_argument("paths", nargs="+", type=Path)
    predict.add_argument("--model", type=Path, help="a run folder (default: the bundled model)")
    predict.add_argument("--aggregate", choices=METHODS, default="sum")
    sampling = predict.add_mutually_exclusive_group()
    sampling.add_argument("--target-fps", type=float, default=10.0)
    sampling.add_argument("--frame-step", type=int)
    predict.add_argument("--max-frames", type=int)
    predict.add_argument("--output", type=Path, help="write results to a .csv or .json file")
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
    live.set_defaults(run=live_command)

    app = commands.add_parser("app", help="serve the web app (needs the 'app' extra)")
    app.add_argument("--host", default="127.0.0.1",
                     help="address to serve on (default 127.0.0.1: this machine only)")
    app.add_argument("--port", type=int, default=7860)
    app.add_argument("--max-upload-mb", type=float, default=50.0)
    app.add_argument("--models-dir", type=Path, default=Path("saved_models"),
                     help="offer the run folders found here (default saved_models/)")
    app.set_defaults(run=app_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    # TensorFlow's C++ start-up chatter (CUDA probes, CPU flags) is noise on a command line
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train"]:
        args = argparse.Namespace(run=train_command, train_args=argv[1:])
    else:
        args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args)
    except EmokerasError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
