"""``emokeras predict``: label videos, images (and with --audio-model, audio files)."""

from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path

from tqdm import tqdm

from emokeras.aggregation import METHODS
from emokeras.cli.common import FAST_HELP, add_detector_arguments, detector_options
from emokeras.errors import ConfigError, EmokerasError
from emokeras.fileio import atomic_write, missing_reason, write_csv_atomic
from emokeras.media import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, media_kind

RESULT_FIELDS = ("path", "kind", "status", "label", "emoji", "confidence", "frames_read",
                 "frames_without_face", "faces", "face", "box_x", "box_y", "box_w", "box_h",
                 "detector_score", "error")
#: CSV columns of a run with --audio-model: the face-only and audio-only labels beside the fused
AUDIO_FIELDS = ("face_label", "face_confidence", "audio_label", "audio_confidence",
                "audio_weight", "audio_error")


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

    kind = media_kind(path)
    if kind == "audio":
        return [_predict_audio_file(path, audio_model)], None
    if kind == "image":
        faces = predict_image(path, model, which=getattr(args, "faces", "largest"),
                              **detector_options(args))
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
                              progress=bar.update, **detector_options(args))
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
    from emokeras.model import resolve_model
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
    if args.fast:
        model = model.single()
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



def add_parser(commands) -> None:
    """Add the ``predict`` command to ``commands`` (the parser's subparsers)."""
    predict = commands.add_parser("predict", help="label videos and images (files or folders)")
    predict.add_argument("paths", nargs="+", type=Path)
    predict.add_argument("--model", type=Path, help="a run folder (default: the bundled model)")
    predict.add_argument("--fast", action="store_true", help=FAST_HELP)
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
