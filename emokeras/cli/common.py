"""What several commands share: the face detector flags and their keywords."""

from __future__ import annotations

import argparse

FAST_HELP = ("with an ensemble (the bundled model is one), classify with its first member "
             "alone and no test-time views: about 12x less compute for some accuracy (the "
             "bundled model: 66.17%% instead of 69.30%% on FER2013 PrivateTest)")


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


def detector_options(args) -> dict:
    """The detector keywords of predict_image / predict_video / run_live from the flags."""
    return {"detector": getattr(args, "detector", None),
            "detector_threshold": getattr(args, "detector_threshold", None),
            "align": getattr(args, "align", True)}

