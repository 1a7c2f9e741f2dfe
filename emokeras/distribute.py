"""tf.distribute strategies for train.py: several GPUs on one machine, or several machines."""

from __future__ import annotations

import json
import logging
import os

import tensorflow as tf

from emokeras.errors import ConfigError

log = logging.getLogger(__name__)

STRATEGIES = ("none", "mirrored", "multiworker")


def split_cpu(replicas: int) -> None:
    """Split the CPU into ``replicas`` logical devices, to run a strategy on a machine without GPUs.

    Must run before TensorFlow creates any tensor.
    """
    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(replicas)]
    )


def make_strategy(kind: str) -> tf.distribute.Strategy | None:
    """``"none"``: no strategy; ``"mirrored"``: every GPU here (or every logical CPU when there
    is no GPU); ``"multiworker"``: MultiWorkerMirroredStrategy over the cluster in ``TF_CONFIG``."""
    if kind == "none":
        return None
    if kind == "mirrored":
        devices = None
        if not tf.config.list_logical_devices("GPU"):
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices=devices)
    elif kind == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ConfigError("--distribute multiworker needs the cluster described in TF_CONFIG")
        try:
            json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError as error:
            raise ConfigError(f"TF_CONFIG is not valid JSON: {error}") from None
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        raise ConfigError(f"unknown distribution strategy {kind!r}; choose from {STRATEGIES}")
    log.info("%s strategy with %d replicas", kind, strategy.num_replicas_in_sync)
    return strategy
