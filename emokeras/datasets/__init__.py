"""Datasets: RAVDESS names and manifests, FER2013 (CSV and folders), class folders, CK+, splits,
spectrogram sets (speech emotion).

No TensorFlow here: these modules list files, labels and subjects. The tf.data pipeline that
builds on them is ``emokeras.datasets.pipeline`` (it imports TensorFlow, so it is not imported
here), and ``emokeras.datasets.sources`` reads any supported dataset as train / val / test.
"""

from emokeras.datasets.base import IMAGE_EXTENSIONS, ImageSet
from emokeras.datasets.fer2013 import (
    FER2013_SPLITS,
    PRIVATE_TEST,
    PUBLIC_TEST,
    SPLIT_ROLES,
    TRAINING,
    Fer2013Arrays,
    load_fer2013_csv,
    load_fer2013_folders,
    write_fer2013_csv,
)
from emokeras.datasets.folders import CKPLUS_SUBJECT_PATTERN, load_ckplus, load_class_folders
from emokeras.datasets.manifest import manifest_image_set, read_manifest_rows
from emokeras.datasets.ravdess import (
    MANIFEST_COLUMNS,
    RAVDESS_FIELDS,
    RavdessClip,
    RavdessName,
    RavdessScan,
    parse_ravdess_name,
    read_ravdess_manifest,
    scan_ravdess,
    write_ravdess_manifest,
)
from emokeras.datasets.spectrograms import (
    AUDIO_EXTENSIONS,
    SpectrogramSet,
    audio_spectrogram_set,
    load_spectrogram_npz,
    save_spectrogram_npz,
)
from emokeras.datasets.splits import Split, fixed_subject_split, split_by_sex, subject_split

__all__ = [
    "AUDIO_EXTENSIONS",
    "CKPLUS_SUBJECT_PATTERN",
    "FER2013_SPLITS",
    "IMAGE_EXTENSIONS",
    "MANIFEST_COLUMNS",
    "PRIVATE_TEST",
    "PUBLIC_TEST",
    "RAVDESS_FIELDS",
    "SPLIT_ROLES",
    "TRAINING",
    "Fer2013Arrays",
    "ImageSet",
    "RavdessClip",
    "RavdessName",
    "RavdessScan",
    "SpectrogramSet",
    "Split",
    "audio_spectrogram_set",
    "fixed_subject_split",
    "load_ckplus",
    "load_class_folders",
    "load_fer2013_csv",
    "load_fer2013_folders",
    "load_spectrogram_npz",
    "manifest_image_set",
    "parse_ravdess_name",
    "read_manifest_rows",
    "read_ravdess_manifest",
    "save_spectrogram_npz",
    "scan_ravdess",
    "split_by_sex",
    "subject_split",
    "write_fer2013_csv",
    "write_ravdess_manifest",
]
