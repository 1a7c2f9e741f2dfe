"""The configuration dataclasses of training: ``TrainConfig`` with its ``Phase``, ``HeadConfig``
and ``AugmentConfig``. Plain Python (no Keras or TensorFlow import), so that the command line
builds its flags and ``--help`` from them in a fraction of a second; the modules that use them
(``emokeras.training``, ``emokeras.models.heads``, ``emokeras.datasets.pipeline``) re-export them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from emokeras.errors import ConfigError

ACTIVATIONS = ("softmax", "sigmoid")


@dataclass(frozen=True)
class HeadConfig:
    """Dropout -> Dense(units) -> ReLU -> BatchNorm -> Dense(classes) -> activation.

    ``units=0`` gives a linear probe: Dropout -> Dense(classes) -> activation. ``batchnorm=False``
    drops the BatchNormalization. ``activation`` is ``"softmax"`` (one label per image) or
    ``"sigmoid"`` (independent labels).
    """

    dropout: float = 0.5
    units: int = 256
    batchnorm: bool = True
    activation: str = "softmax"

    def __post_init__(self) -> None:
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, int | float):
            raise ConfigError(f"head dropout must be a number in [0, 1), got {self.dropout!r}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"head dropout must be in [0, 1), got {self.dropout!r}")
        if isinstance(self.units, bool) or not isinstance(self.units, int) or self.units < 0:
            raise ConfigError(
                f"head units must be an int >= 0 (0: a linear probe), got {self.units!r}"
            )
        if not isinstance(self.batchnorm, bool):
            raise ConfigError(f"head batchnorm must be True or False, got {self.batchnorm!r}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                f"head activation {self.activation!r} is not one of {list(ACTIVATIONS)}"
            )



@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation, on raw 0-255 images. A zero (or False) turns a step off.

    - ``flip``: mirror left-right with probability 1/2.
    - ``rotation_degrees``: rotate by up to this many degrees either way.
    - ``zoom``: random resized crop: a square crop whose side is 1 - z of the image's, z uniform
      in [0, zoom], at a uniformly random position inside the image, scaled back to full size.
    - ``translate``: shift by up to this fraction of the side, each axis, either way.
    - ``brightness``: add up to this fraction of 255, either way.
    - ``contrast``: scale the contrast by a factor in [1 - contrast, 1 + contrast].
    - ``mixup_alpha``: MixUp with lambda ~ Beta(alpha, alpha), one lambda per batch; 0 disables.

    SpecAugment, for spectrogram images (rows = frequency bands, columns = time frames, 0 =
    silence; see ``emokeras.datasets.spec_augment``):

    - ``time_shift``: shift the columns by up to this fraction of the width, either way; the
      frames uncovered are silence.
    - ``freq_mask``: ``num_masks`` bands of whole rows set to 0, each up to this fraction of the
      height.
    - ``time_mask``: ``num_masks`` bands of whole columns set to 0, each up to this fraction of
      the width.
    - ``num_masks``: masks of each kind per image.

    Flips, rotations and zooms make no sense on a spectrogram (they reverse time or move
    frequencies): :meth:`spectrogram` turns them off and SpecAugment on.

    Geometric steps fill uncovered pixels by reflection; every step keeps values in [0, 255].
    """

    flip: bool = True
    rotation_degrees: float = 10.0
    zoom: float = 0.15
    translate: float = 0.05
    brightness: float = 0.2
    contrast: float = 0.2
    mixup_alpha: float = 0.0
    freq_mask: float = 0.0
    time_mask: float = 0.0
    num_masks: int = 2
    time_shift: float = 0.0

    def __post_init__(self) -> None:
        ranges = {
            "rotation_degrees": (0.0, 180.0, True),
            "zoom": (0.0, 1.0, False),
            "translate": (0.0, 1.0, False),
            "brightness": (0.0, 1.0, True),
            "contrast": (0.0, 1.0, False),
            "freq_mask": (0.0, 1.0, False),
            "time_mask": (0.0, 1.0, False),
            "time_shift": (0.0, 1.0, False),
        }
        for name, (low, high, high_allowed) in ranges.items():
            value = getattr(self, name)
            ok = low <= value <= high if high_allowed else low <= value < high
            if not ok:
                bound = "]" if high_allowed else ")"
                raise ConfigError(
                    f"AugmentConfig.{name} must be in [{low:g}, {high:g}{bound}, got {value!r}"
                )
        if not self.mixup_alpha >= 0:
            raise ConfigError(f"AugmentConfig.mixup_alpha must be >= 0, got {self.mixup_alpha!r}")
        count = self.num_masks
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigError(f"AugmentConfig.num_masks must be an int >= 1, got {count!r}")

    @classmethod
    def spectrogram(cls, **changes) -> AugmentConfig:
        """SpecAugment for spectrogram images, every image-only step off; ``changes`` override."""
        return cls(**{**_SPECTROGRAM_VALUES, **changes})

    @property
    def augments_images(self) -> bool:
        """Whether any per-image step (everything but MixUp) is on."""
        return bool(
            self.flip or self.rotation_degrees or self.zoom or self.translate
            or self.brightness or self.contrast
            or self.freq_mask or self.time_mask or self.time_shift
        )  # fmt: skip


_SPECTROGRAM_VALUES = {
    "flip": False, "rotation_degrees": 0.0, "zoom": 0.0, "translate": 0.0, "brightness": 0.0,
    "contrast": 0.0, "freq_mask": 0.15, "time_mask": 0.2, "time_shift": 0.1,
}  # fmt: skip


@dataclass(frozen=True)
class TargetConfig:
    """What the training images are taught, when it is not the dataset's own labels.

    - ``ferplus_votes``: a FER+ votes file (``ferplus_votes.csv``): FER2013 training faces learn
      their crowd-vote distribution over the 7 classes (contempt, unknown and not-a-face votes
      dropped; see ``emokeras.datasets.ferplus``) instead of FER2013's single label. FER2013
      data only. Validation is then against PublicTest's own FER+ votes (accuracy against their
      top class): a run is selected on what it is taught, still on PublicTest.
    - ``ferplus_weight``: with ``ferplus_votes``, the share of the votes in each face's target;
      the rest is FER2013's own label (one-hot), on the training faces and on the validation
      faces alike. 1 (the default) is the votes alone. Below 0.5 a face's top class is always
      its FER2013 label, so validation accuracy is FER2013 PublicTest accuracy; at 0.5 it is
      too, but for faces whose votes all name one other class (a tie).
    - ``teacher``: a run folder (an ensemble, say) whose probabilities the model learns
      (knowledge distillation): the target is ``teacher_weight`` x the teacher's probabilities
      on the face plus the rest x the labels (or votes). The teacher must predict the data's
      label set.
    """

    ferplus_votes: str | None = None
    ferplus_weight: float = 1.0
    teacher: str | None = None
    teacher_weight: float = 0.5

    def __post_init__(self) -> None:
        for name in ("ferplus_weight", "teacher_weight"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"targets.{name} must be in [0, 1], got {getattr(self, name)!r}")
        if self.ferplus_weight != 1 and self.ferplus_votes is None:
            raise ConfigError("targets.ferplus_weight blends FER+ votes with FER2013's labels; "
                              "it needs targets.ferplus_votes")

    @property
    def from_labels(self) -> bool:
        """Whether the targets are simply the dataset's labels."""
        return self.ferplus_votes is None and self.teacher is None


@dataclass(frozen=True)
class Phase:
    """One phase: what of the backbone trains, for how many epochs, at what peak learning rate.

    ``trainable`` is 0 (head only), a number of top backbone layers, a block name (``"block5"``)
    or ``"all"``; see :func:`emokeras.models.freeze_backbone`.
    """

    trainable: int | str
    epochs: int
    learning_rate: float

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"a phase needs epochs >= 1, got {self.epochs}")
        if not self.learning_rate > 0:
            raise ConfigError(f"a phase needs a learning rate > 0, got {self.learning_rate}")

    @classmethod
    def parse(cls, text: str) -> Phase:
        """Read ``TRAINABLE:EPOCHS:LR``, e.g. ``0:3:1e-3``, ``block5:5:1e-4``, ``all:10:3e-5``."""
        parts = text.strip().split(":")
        if len(parts) != 3:
            raise ConfigError(f"a phase is TRAINABLE:EPOCHS:LR (e.g. 0:3:1e-3), got {text!r}")
        trainable: int | str = int(parts[0]) if parts[0].isdigit() else parts[0]
        try:
            return cls(trainable, int(parts[1]), float(parts[2]))
        except ValueError as error:
            raise ConfigError(f"phase {text!r}: {error}") from None

    def __str__(self) -> str:
        return f"{self.trainable}:{self.epochs}:{self.learning_rate:g}"

    @property
    def head_only(self) -> bool:
        return self.trainable == 0


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs; written to the run folder as ``config.json``."""

    backbone: str = "mobilenet_v2"
    weights: str | None = "imagenet"
    input_size: int | None = None
    channels: int = 3
    head: HeadConfig = field(default_factory=HeadConfig)
    phases: tuple[Phase, ...] = (Phase(0, 5, 1e-3), Phase("all", 10, 1e-4))
    batch_size: int = 32
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    #: "inverse": loss weighted by inverse class frequency; "sqrt_inverse": by its square root
    #: (a milder lift for rare classes); "sampling": balanced batches.
    class_balance: Literal["none", "inverse", "sqrt_inverse", "sampling"] = "inverse"
    #: fraction of each phase's steps spent warming the learning rate up linearly
    warmup_fraction: float = 0.1
    #: "cosine": warmup then cosine decay; "plateau": constant, cut by ReduceLROnPlateau
    lr_schedule: Literal["cosine", "plateau"] = "cosine"
    backbone_lr_multiplier: float = 0.1
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    feature_cache: bool = True
    early_stopping_patience: int = 5
    reduce_lr_patience: int = 2
    monitor: str = "val_accuracy"
    mixed_precision: bool = False
    seed: int = 0
    targets: TargetConfig = field(default_factory=TargetConfig)
    #: a run folder whose weights start this model (same architecture; for an ensemble, its
    #: member ``init_member``, counted from 1), instead of ``weights``
    init_from: str | None = None
    init_member: int = 1

    def __post_init__(self) -> None:
        if not self.phases:
            raise ConfigError("a run needs at least one phase")
        for name, allowed in (
            ("class_balance", ("none", "inverse", "sqrt_inverse", "sampling")),
            ("lr_schedule", ("cosine", "plateau")),
        ):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not 0 <= self.warmup_fraction < 1:
            raise ConfigError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if isinstance(self.init_member, bool) or not (
                isinstance(self.init_member, int) and self.init_member >= 1):
            raise ConfigError(f"init_member counts from 1, got {self.init_member!r}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["phases"] = [str(p) for p in self.phases]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a (possibly partial) nested dict, as ``config.json`` or ``--config`` hold."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"unknown config keys {unknown}; known: {sorted(known)}")
        values: dict[str, Any] = {}
        nested = {"head": HeadConfig, "augment": AugmentConfig, "targets": TargetConfig}
        for key, value in data.items():
            if key in nested and isinstance(value, dict):
                value = _dataclass_from_dict(nested[key], value, key)
            elif key == "phases":
                value = tuple(p if isinstance(p, Phase) else Phase.parse(str(p)) for p in value)
            values[key] = value
        return cls(**values)


def _dataclass_from_dict(cls, data: dict[str, Any], where: str):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown keys {unknown} in {where!r}; known: {sorted(known)}")
    return cls(**data)
