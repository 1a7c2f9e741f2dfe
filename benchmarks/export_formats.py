"""Export formats of the bundled model: file size, CPU latency and FER2013 PrivateTest accuracy.

Every format is exported here by ``emokeras.export`` and run in this one process, so the latency
ratios are fair: Keras (``predict_on_batch``, as ``EmotionModel.predict`` runs it, and an eager
call for comparison), the SavedModel's ``serving_default`` signature (``tf.saved_model.load``),
ONNX (onnxruntime, CPU) fp32 / dynamic / static int8, and TFLite (LiteRT) fp32 / dynamic / full
int8. Latency is the
median over repeats after a warm-up, with formats timed in turn within each repeat (so a busy
neighbour slows them all alike), at batch 1 and batch 32, given per frame. Accuracy is on FER2013
PrivateTest (3,589 faces, read through the same pipeline ``evaluate.py`` uses), reported only;
int8 is calibrated on FER2013 Training faces, never on a test face.

    python benchmarks/export_formats.py --fer2013 FER_DIR [--threads 2] [--repeats 30]

FER_DIR is ../shared/data/fer2013/fer2013_images.tar.gz extracted.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from emokeras.bundled import BUNDLED_MODEL_DIR  # noqa: E402
from emokeras.datasets import load_fer2013_folders  # noqa: E402
from emokeras.datasets.pipeline import make_dataset  # noqa: E402
from emokeras.export import (  # noqa: E402
    onnx_predictor,
    run_export,
    tflite_predictor,
    variables_bytes,
    weight_bytes,
)
from emokeras.model import resolve_model  # noqa: E402


def load_split(image_set, size: int, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Faces as the exports take them (N, size, size, 3) float32, gray in three equal channels,
    decoded and resized by the training/evaluation pipeline; and their labels."""
    if limit is not None:
        keep = np.linspace(0, len(image_set) - 1, limit).round().astype(int)
        image_set = type(image_set)(paths=tuple(image_set.paths[i] for i in keep),
                                    labels=image_set.labels[keep], label_set=image_set.label_set)
    dataset = make_dataset(image_set, num_classes=len(image_set.label_set), input_size=size,
                           channels=1, batch_size=256)
    gray = np.concatenate([x.numpy() for x, _ in dataset])
    return np.repeat(gray, 3, axis=-1), np.asarray(image_set.labels)


def size_of(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def in_batches(predict, frames: np.ndarray, batch: int = 256) -> np.ndarray:
    return np.concatenate([predict(frames[i : i + batch]) for i in range(0, len(frames), batch)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fer2013", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for every runtime")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--calibration", type=int, default=300,
                        help="FER2013 Training faces to calibrate int8 on")
    parser.add_argument("--out", type=Path, help="keep the exports here (default: a temp folder)")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    emotion = resolve_model(None)
    size = emotion.input_size
    sets = load_fer2013_folders(args.fer2013)
    calibration, _ = load_split(sets["Training"], size, args.calibration)
    test, labels = load_split(sets["PrivateTest"], size)
    print(f"PrivateTest: {len(test)} faces; int8 calibrated on {len(calibration)} Training faces",
          file=sys.stderr)

    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch)
        started = time.perf_counter()
        run_export(emotion, out, quantize=("none", "dynamic", "int8"),
                   representative=calibration, overwrite=True, verify=False)
        print(f"exported in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        keras_export = out / "keras_model_export"
        emotion.model.export(str(keras_export), verbose=False)

        loaded = tf.saved_model.load(str(out / "savedmodel" / "1"))
        serving = loaded.signatures["serving_default"]
        gray_model = emotion.model
        formats = {
            "Keras predict_on_batch (EmotionModel.predict)": (
                lambda x: np.asarray(gray_model.predict_on_batch(x[..., :1])),
                BUNDLED_MODEL_DIR / "model.keras"),
            "Keras, called eagerly": (
                lambda x: np.asarray(gray_model(x[..., :1], training=False)),
                BUNDLED_MODEL_DIR / "model.keras"),
            "SavedModel serving_default": (
                lambda x: serving(images=tf.constant(x))["probabilities"].numpy(),
                out / "savedmodel" / "1"),
        }
        for runtime, loader, suffix in (("ONNX", onnx_predictor, "onnx"),
                                        ("TFLite", tflite_predictor, "tflite")):
            for quantize, label in (("none", "fp32"), ("dynamic", "dynamic int8"),
                                    ("int8", "int8 (static, calibrated)")):
                name = "model" if quantize == "none" else f"model_{quantize}"
                path = out / suffix / f"{name}.{suffix}"
                formats[f"{runtime} {label}"] = (loader(path, threads=args.threads), path)

        rows = {}
        keras_probs = None
        for name, (predict, path) in formats.items():
            probs = in_batches(predict, test)
            if keras_probs is None:
                keras_probs = probs
            rows[name] = {
                "bytes": size_of(path),
                "accuracy": float(np.mean(probs.argmax(axis=1) == labels)),
                "agreement": float(np.mean(probs.argmax(axis=1) == keras_probs.argmax(axis=1))),
                "max_diff": float(np.abs(probs - keras_probs).max()),
            }
        for batch in (1, 32):
            frames = test[:batch]
            for predict, _ in formats.values():  # warm-up
                for _ in range(3):
                    predict(frames)
            times = {name: [] for name in formats}
            for _ in range(args.repeats if batch == 1 else max(5, args.repeats // 2)):
                for name, (predict, _) in formats.items():
                    start = time.perf_counter()
                    predict(frames)
                    times[name].append(time.perf_counter() - start)
            for name in formats:
                rows[name][f"ms_b{batch}"] = 1000 * float(np.median(times[name])) / batch

        saved = out / "savedmodel" / "1"
        sizes = (weight_bytes(emotion), variables_bytes(saved), variables_bytes(keras_export))

    print(f"\nbundled model: {keras.__name__} {keras.__version__}, TensorFlow {tf.__version__}, "
          f"{args.threads} threads, median of {args.repeats} (batch 1) / "
          f"{max(5, args.repeats // 2)} (batch 32) timed calls\n")
    print("| format | size (MB) | ms / frame, batch 1 | ms / frame, batch 32 | PrivateTest "
          "accuracy | top class = Keras | max abs diff vs Keras |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['bytes'] / 1e6:.2f} | {r['ms_b1']:.2f} | {r['ms_b32']:.2f} | "
              f"{r['accuracy']:.2%} | {r['agreement']:.2%} | {r['max_diff']:.2g} |")
    print(f"\nweights {sizes[0] / 1e6:.2f} MB; SavedModel variables/ written by emokeras "
          f"{sizes[1] / 1e6:.2f} MB, by keras Model.export {sizes[2] / 1e6:.2f} MB")
    for runtime in ("ONNX", "TFLite"):
        fp32 = rows[f"{runtime} fp32"]
        for label in ("dynamic int8", "int8 (static, calibrated)"):
            q = rows[f"{runtime} {label}"]
            print(f"{runtime} {label}: {fp32['ms_b1'] / q['ms_b1']:.2f}x (batch 1), "
                  f"{fp32['ms_b32'] / q['ms_b32']:.2f}x (batch 32) the speed of fp32; accuracy "
                  f"{100 * (q['accuracy'] - fp32['accuracy']):+.2f} points")
    return 0


if __name__ == "__main__":
    sys.exit(main())
