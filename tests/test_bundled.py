"""The model shipped in the package: loads from package data and scores what its card records."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import FER2013_TARBALL, REPO_ROOT, _extract

from emokeras.bundled import BUNDLED_MODEL_DIR, bundled_model_card, load_bundled_model
from emokeras.datasets import load_class_folders
from emokeras.evaluation import evaluate_source
from emokeras.labels import FER2013


def test_bundled_model_is_package_data_within_the_size_limit():
    files = {p.name: p.stat().st_size for p in BUNDLED_MODEL_DIR.iterdir()}
    assert set(files) == {"model.keras", "labels.json", "config.json", "model_card.json",
                          "framing.json"}
    assert sum(files.values()) <= 15 * 1024 * 1024
    assert BUNDLED_MODEL_DIR.is_relative_to(REPO_ROOT / "emokeras")


@pytest.fixture(scope="module")
def private_test(tmp_path_factory):
    """FER2013 PrivateTest, all 3,589 faces (for reporting only, as shared/README says)."""
    root = _extract(FER2013_TARBALL, tmp_path_factory.mktemp("fer"),
                    lambda name: "/PrivateTest_" in name)
    return load_class_folders(root / "test", FER2013)


def test_bundled_model_scores_its_recorded_private_test_accuracy(private_test):
    model, label_set = load_bundled_model()
    assert label_set is FER2013
    card = bundled_model_card()
    metrics = evaluate_source(model, private_test, label_set.classes)
    assert metrics.count == 3589
    assert metrics.accuracy == pytest.approx(card["results"]["fer2013_private_test"], abs=1e-4)


def test_bundled_model_loads_in_a_fresh_process_without_shared_data():
    code = (
        "import numpy as np; from emokeras.bundled import load_bundled_model; "
        "m, labels = load_bundled_model(); _, s, _, c = m.input_shape; "
        "p = m.predict(np.full((1, s, s, c), 128.0, 'float32'), verbose=0); "
        "print(labels.name, p.shape, round(float(p.sum()), 4))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True,
                            text=True, env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["fer2013", "(1,", "7)", "1.0"]


def test_the_fast_form_is_the_first_member_alone(private_test):
    from emokeras.model import resolve_model
    from emokeras.models.ensemble import ensemble_members

    bundled = resolve_model()
    fast = bundled.single()
    assert fast.model is ensemble_members(bundled.model)[0]
    assert fast.label_set is bundled.label_set and fast.framing == bundled.framing
    assert fast.single() is fast  # a model that is no ensemble is its own fast form
    metrics = evaluate_source(fast.model, private_test, fast.label_set.classes)
    card = bundled_model_card()
    assert metrics.accuracy == pytest.approx(card["results"]["fast"]["fer2013_private_test"],
                                             abs=1e-4)


def test_the_fast_form_with_views_is_the_first_member_on_the_bundles_views(private_test):
    from emokeras.model import resolve_model
    from emokeras.models.ensemble import ensemble_members, ensemble_views

    bundled = resolve_model()
    with_views = bundled.single(views=True)
    assert ensemble_members(with_views.model) == ensemble_members(bundled.model)[:1]
    assert ensemble_views(with_views.model) == ensemble_views(bundled.model) == (True, [44])
    metrics = evaluate_source(with_views.model, private_test, with_views.label_set.classes)
    card = bundled_model_card()
    assert metrics.accuracy == pytest.approx(
        card["results"]["fast_views"]["fer2013_private_test"], abs=1e-4)
