"""Export: SavedModel in TF Serving's layout (checked with saved_model_cli and TF Serving's request
formats), ONNX and TFLite in fp32 and quantized, on real faces: FER2013 faces from ../shared and
the posed photos of the fixtures. FER2013 Training faces calibrate int8; PublicTest faces measure
agreement; PrivateTest is never touched."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import FER2013_TARBALL, IMAGES

from emokeras.cli import main
from emokeras.errors import ConfigError, ExportExistsError, RunFolderError
from emokeras.export import (
    GRAY_WEIGHTS,
    as_frames,
    export_saved_model,
    export_tflite,
    keras_probabilities,
    load_face_folder,
    onnx_predictor,
    predict_request_to_inputs,
    rest_body_to_inputs,
    rest_response,
    run_export,
    run_signature,
    tflite_predictor,
    variables_bytes,
    verify_file,
    verify_saved_model,
    weight_bytes,
)
from emokeras.faces import HaarFaceDetector, crop_face
from emokeras.images import load_image, resize
from emokeras.labels import FER2013
from emokeras.model import EmotionModel, SexRoutedModel, resolve_model
from emokeras.models import build_model
from emokeras.models.heads import HeadConfig

SAVED_MODEL_CLI = Path(sys.executable).parent / "saved_model_cli"
SIZE = 48  # the bundled model's input


@pytest.fixture(scope="module")
def fer_faces() -> dict[str, np.ndarray]:
    """Real FER2013 faces at SIZE x SIZE, gray uint8: "Training" (30 a class: calibration) and
    "PublicTest" (40 a class: agreement). PrivateTest is not read."""
    wanted = {"Training": 30, "PublicTest": 40}
    counts: dict[tuple[str, str], int] = {}
    faces: dict[str, list[np.ndarray]] = {split: [] for split in wanted}
    with tarfile.open(FER2013_TARBALL) as tar:
        for member in tar:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) < 3:
                continue
            split, label = parts[-1].split("_")[0], parts[-2]
            if split not in wanted or counts.get((split, label), 0) >= wanted[split]:
                continue
            counts[split, label] = counts.get((split, label), 0) + 1
            data = np.frombuffer(tar.extractfile(member).read(), np.uint8)
            faces[split].append(resize(cv2.imdecode(data, cv2.IMREAD_GRAYSCALE), SIZE))
    return {split: np.stack(items) for split, items in faces.items()}


@pytest.fixture(scope="module")
def photo_crops() -> np.ndarray:
    """RGB face crops (SIZE x SIZE) of the posed-expression photos: colour, not gray."""
    detector = HaarFaceDetector()
    crops = []
    for name in ("angry_f13.jpg", "disgust_m7.jpg", "happy_f15.jpg", "surprise_f1.jpg",
                 "single_face.jpg"):
        rgb = load_image(IMAGES / name)
        boxes = detector.detect(rgb)
        if boxes:  # the Haar cascade misses one of them
            crops.append(crop_face(rgb, boxes[0], size=SIZE, margin=0.2))
    assert len(crops) >= 4
    return np.stack(crops)


@pytest.fixture(scope="module")
def bundled() -> EmotionModel:
    return resolve_model(None)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, bundled) -> Path:
    return export_saved_model(bundled, tmp_path_factory.mktemp("serving") / "emotion")


@pytest.fixture(scope="module")
def loaded(saved_model):
    return tf.saved_model.load(str(saved_model))


def test_saved_model_has_tf_servings_layout_and_each_weight_once(saved_model, bundled):
    assert saved_model.name == "1"
    assert saved_model.stat().st_mode & 0o055 == 0o055  # readable by a server run as another user
    assert {p.name for p in saved_model.iterdir()} >= {"saved_model.pb", "variables", "assets"}
    assert (saved_model / "assets" / "labels.txt").read_text().splitlines() == list(
        FER2013.classes)
    assert not [p for p in saved_model.parent.iterdir() if p.name != "1"]  # no temp folder left
    # keras.Model.export stores every weight twice (2.0x); this export stores them once
    stored, weights = variables_bytes(saved_model), weight_bytes(bundled)
    assert weights == sum(w.numpy().nbytes for w in bundled.model.weights)
    assert weights <= stored < 1.02 * weights, (stored, weights)


def test_saved_model_gives_keras_numbers_on_real_faces(saved_model, bundled, fer_faces,
                                                       photo_crops):
    # FER2013 faces (gray, as three equal channels) and colour crops of the photos
    faces = np.concatenate([as_frames(fer_faces["PublicTest"][:100], SIZE), photo_crops])
    result = verify_saved_model(saved_model, bundled, faces)
    assert result.max_abs_diff <= 1e-5
    assert result.argmax_agreement == 1.0
    # gray faces sent as RGB give exactly what the Keras model gives on the gray faces
    loaded = tf.saved_model.load(str(saved_model))
    gray = fer_faces["PublicTest"][:32]
    out = run_signature(loaded, "serving_default", {"images": as_frames(gray, SIZE)})
    expected = bundled.model.predict(gray[..., None].astype("float32"), verbose=0)
    assert np.abs(out["probabilities"] - expected).max() <= 1e-5
    assert [v.decode() for v in out["label"]] == [FER2013.classes[i] for i in
                                                 expected.argmax(axis=1)]


def _cli(*args: str) -> str:
    result = subprocess.run([str(SAVED_MODEL_CLI), *args], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_saved_model_cli_shows_the_signatures_and_runs_them(saved_model, bundled, fer_faces,
                                                            tmp_path):
    shown = _cli("show", "--all", "--dir", str(saved_model))
    assert "MetaGraphDef with tag-set: 'serve'" in shown
    blocks = {block.split("]")[0].strip("'"): block for block in shown.split("signature_def[")}
    default = blocks["serving_default"]
    field = "tensor_info:\n        dtype: {}\n        shape: {}"
    assert "inputs['images'] " + field.format("DT_FLOAT", f"(-1, {SIZE}, {SIZE}, 3)") in default
    for output, dtype, shape in (("probabilities", "DT_FLOAT", "(-1, 7)"),
                                 ("label_index", "DT_INT64", "(-1)"),
                                 ("label", "DT_STRING", "(-1)")):
        assert f"outputs['{output}'] " + field.format(dtype, shape) in default
    assert "Method name is: tensorflow/serving/predict" in default
    assert "inputs['images'] " + field.format("DT_UINT8", f"(-1, {SIZE}, {SIZE}, 3)") in blocks[
        "serving_uint8"]
    assert "outputs['class_names']" in blocks["class_names"]

    faces = as_frames(fer_faces["PublicTest"][:8], SIZE)
    np.save(tmp_path / "faces.npy", faces)
    _cli("run", "--dir", str(saved_model), "--tag_set", "serve", "--signature_def",
         "serving_default", "--inputs", f"images={tmp_path / 'faces.npy'}", "--outdir",
         str(tmp_path / "out"))
    probabilities = np.load(tmp_path / "out" / "probabilities.npy")
    assert np.abs(probabilities - keras_probabilities(bundled, faces)).max() <= 1e-5
    assert np.array_equal(np.load(tmp_path / "out" / "label_index.npy"),
                          probabilities.argmax(axis=1))


def test_tf_serving_grpc_and_rest_requests_give_keras_numbers(loaded, bundled, photo_crops):
    from tensorflow_serving.apis import predict_pb2

    expected = keras_probabilities(bundled, photo_crops)
    # gRPC: a PredictRequest as a client builds it, through the wire format
    for signature, frames in (("serving_default", photo_crops.astype(np.float32)),
                              ("serving_uint8", photo_crops)):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "emotion"
        request.model_spec.signature_name = signature
        request.inputs["images"].CopyFrom(tf.make_tensor_proto(frames))
        name, inputs = predict_request_to_inputs(
            predict_pb2.PredictRequest.FromString(request.SerializeToString()))
        assert name == signature
        out = run_signature(loaded, name, inputs)
        assert np.abs(out["probabilities"] - expected).max() <= 1e-5
    # a uint8 tensor sent to the float signature is refused, as TF Serving refuses it
    with pytest.raises(ConfigError, match="float32"):
        run_signature(loaded, "serving_default", {"images": photo_crops})

    # REST: the row format and the columnar format, as JSON text
    rows = json.dumps({"instances": photo_crops.tolist()})
    columns = json.dumps({"signature_name": "serving_default",
                          "inputs": {"images": photo_crops.tolist()}})
    for body, columnar in ((rows, False), (columns, True)):
        name, inputs = rest_body_to_inputs(body, loaded)
        out = run_signature(loaded, name, inputs)
        assert np.abs(out["probabilities"] - expected).max() <= 1e-5
        response = json.loads(json.dumps(rest_response(out, columnar=columnar)))
        if columnar:
            assert response["outputs"]["label"] == [FER2013.classes[i]
                                                    for i in expected.argmax(axis=1)]
        else:
            assert [p["label_index"] for p in response["predictions"]] == list(
                expected.argmax(axis=1))
    names = loaded.signatures["class_names"]()["class_names"].numpy()
    assert [n.decode() for n in names] == list(FER2013.classes)


def test_existing_version_is_refused_unless_overwrite(saved_model, bundled, tmp_path):
    base = tmp_path / "emotion"
    (base / "1").mkdir(parents=True)
    (base / "1" / "keep.txt").write_text("an earlier export")
    with pytest.raises(ExportExistsError, match="not empty"):
        export_saved_model(bundled, base, version=1)
    assert (base / "1" / "keep.txt").exists()
    export_saved_model(bundled, base, version=1, overwrite=True)
    assert not (base / "1" / "keep.txt").exists()
    assert (base / "1" / "saved_model.pb").is_file()
    assert sorted(p.name for p in base.iterdir()) == ["1"]  # nothing half-written left


# A process killed in the middle of an export: the real atomic helpers, the real SIGKILL.
KILLED_EXPORT = """import os, signal, sys
from pathlib import Path
from emokeras.fileio import atomic_folder, atomic_write
out = Path(sys.argv[1])
with atomic_write(out / "export.json") as handle:
    handle.write("{")
    handle.flush()
    with atomic_folder(out / "savedmodel" / "1") as work:
        (work / "saved_model.pb").write_bytes(b"half a graph")
        os.kill(os.getpid(), signal.SIGKILL)
"""


def test_rerun_after_a_killed_export_sweeps_its_hidden_leftovers(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    killed = subprocess.run([sys.executable, "-c", KILLED_EXPORT, str(out)])
    assert killed.returncode == -9
    left = [p.relative_to(out).as_posix() for p in out.rglob(".*")]
    assert any(p.startswith("savedmodel/.1.partial-") for p in left), left
    assert any(p.startswith(".export.") and p.endswith(".partial") for p in left), left
    assert not (out / "savedmodel" / "1").exists()  # the kill came before the rename

    result = run_export(_tiny(3), out, formats="savedmodel")
    assert [e.path for e in result.entries] == ["savedmodel/1"]
    assert sorted(p.name for p in (out / "savedmodel").iterdir()) == ["1"]
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "labels.txt", "savedmodel"]
    assert json.loads((out / "export.json").read_text())["exports"][0]["path"] == "savedmodel/1"


def _tiny(seed: int) -> EmotionModel:
    keras.utils.set_random_seed(seed)
    model = build_model("small_cnn", 7, weights=None, input_size=48, channels=1,
                        head=HeadConfig(units=16))
    return EmotionModel(model, FER2013)


def test_sex_routed_model_exports_one_saved_model_with_a_sex_input(tmp_path, fer_faces):
    routed = SexRoutedModel({"female": _tiny(1), "male": _tiny(2)})
    run = routed.save(tmp_path / "run")
    faces = np.stack([resize(face, 48) for face in fer_faces["PublicTest"][:12]])
    calibration = tmp_path / "calibration" / "faces"  # a folder of face images, any size
    calibration.mkdir(parents=True)
    for i, face in enumerate(fer_faces["Training"][:20]):
        assert cv2.imwrite(str(calibration / f"{i}.png"), face)
    assert load_face_folder(calibration.parent, 48).shape == (20, 48, 48, 3)
    assert main(["export", str(run), "--out", str(tmp_path / "out"), "--formats",
                 "savedmodel,onnx,tflite", "--quantize", "none,int8", "--representative",
                 str(calibration.parent)]) == 0
    out = tmp_path / "out"
    summary = json.loads((out / "export.json").read_text())
    assert summary["sex_input"] == ["female", "male"]
    assert sorted(e["path"] for e in summary["exports"]) == [
        "onnx/model_female.onnx", "onnx/model_female_int8.onnx", "onnx/model_male.onnx",
        "onnx/model_male_int8.onnx", "savedmodel/1", "tflite/model_female.tflite",
        "tflite/model_female_int8.tflite", "tflite/model_male.tflite",
        "tflite/model_male_int8.tflite"]
    assert {e["verified_on"] for e in summary["exports"]} == {"20 representative faces"}
    assert (out / "labels.txt").read_text().splitlines() == list(FER2013.classes)

    saved = out / "savedmodel" / "1"
    mixed = ["female", "male", "male", "female"] * 3
    for sexes in (mixed, ["male"] * 12):  # one sex only: the other model sees no rows
        result = verify_saved_model(saved, routed, faces, sexes=sexes)
        assert result.max_abs_diff <= 1e-5
    loaded = tf.saved_model.load(str(saved))
    with pytest.raises(ConfigError, match="female or male"):
        run_signature(loaded, "serving_default",
                      {"images": as_frames(faces[:2], 48),
                       "sex": np.array(["female", "unknown"], dtype=object)})
    # REST rows carry each face's sex
    body = json.dumps({"instances": [{"images": as_frames(faces[i:i + 1], 48)[0].tolist(),
                                      "sex": mixed[i]} for i in range(4)]})
    name, inputs = rest_body_to_inputs(body, loaded)
    got = run_signature(loaded, name, inputs)["probabilities"]
    assert np.abs(got - keras_probabilities(routed, faces[:4], mixed[:4])).max() <= 1e-5
    # each per-sex ONNX / TFLite file is its sex's model
    for sex, model in routed.models.items():
        for path in (out / "onnx" / f"model_{sex}.onnx", out / "tflite" / f"model_{sex}.tflite"):
            assert verify_file(path, model, faces, atol=1e-4).max_abs_diff <= 1e-4


def test_onnx_and_tflite_fp32_and_quantized_agree_with_keras_on_real_faces(
        bundled, fer_faces, tmp_path, record_property):
    result = run_export(bundled, tmp_path / "out", formats=("onnx", "tflite"),
                        quantize=("none", "dynamic", "int8"),
                        representative=fer_faces["Training"])
    faces = as_frames(fer_faces["PublicTest"], SIZE)  # not the calibration faces
    expected = keras_probabilities(bundled, faces)
    agreement = {}
    for entry in result.entries:
        path = tmp_path / "out" / entry.path
        predictor = onnx_predictor if entry.format == "onnx" else tflite_predictor
        got = predictor(path)(faces)
        key = f"{entry.format}_{entry.quantize}"
        agreement[key] = float(np.mean(got.argmax(axis=1) == expected.argmax(axis=1)))
        if entry.quantize == "none":
            assert np.abs(got - expected).max() <= 1e-4, key
        else:
            assert entry.bytes < 0.35 * (tmp_path / "out" / entry.path.replace(
                f"_{entry.quantize}", "")).stat().st_size  # int8 weights: about a quarter
    record_property("argmax_agreement_on_280_publictest_faces", agreement)
    print("argmax agreement with Keras on", len(faces), "PublicTest faces:", agreement)
    assert all(value >= 0.9 for value in agreement.values()), agreement


def test_representative_faces_of_the_wrong_shape_raise_config_error(bundled, fer_faces,
                                                                     tmp_path):
    wrong = np.stack([resize(face, 32) for face in fer_faces["Training"][:5]])[..., None]
    with pytest.raises(ConfigError) as error:
        export_tflite(bundled, tmp_path / "m.tflite", quantize="int8", representative=wrong)
    assert "(5, 32, 32, 1)" in str(error.value) and f"(N, {SIZE}, {SIZE}, 3)" in str(error.value)
    with pytest.raises(ConfigError, match="representative"):
        export_tflite(bundled, tmp_path / "m.tflite", quantize="int8")
    assert not (tmp_path / "m.tflite").exists()


def test_export_command_on_the_bundled_model_and_on_a_run_without_a_model(tmp_path, capsys):
    empty = tmp_path / "run"
    empty.mkdir()
    assert main(["export", str(empty), "--out", str(tmp_path / "x")]) == 2
    assert "has no model" in capsys.readouterr().err
    with pytest.raises(RunFolderError, match="has no model"):
        run_export(empty, tmp_path / "x")

    out = tmp_path / "bundled"
    assert main(["export", "--model", "bundled", "--out", str(out), "--formats",
                 "savedmodel"]) == 0
    assert (out / "savedmodel" / "1" / "saved_model.pb").is_file()
    exports = json.loads((out / "export.json").read_text())["exports"]
    assert exports[0]["max_abs_diff_vs_keras"] <= 1e-5
    # a second export into the same folder is refused, before any work
    assert main(["export", "--out", str(out), "--formats", "savedmodel"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_gray_weights_match_opencv():
    rgb = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    ours = rgb.astype(np.float32) @ np.asarray(GRAY_WEIGHTS, np.float32)
    assert np.abs(ours - cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)).max() <= 0.5 + 1e-3
