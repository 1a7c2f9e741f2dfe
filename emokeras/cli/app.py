"""``emokeras app``: serve the Gradio web app."""

from __future__ import annotations

from pathlib import Path

from emokeras.cli.common import add_detector_arguments


def app_command(args) -> int:
    """Serve the web app (needs the ``app`` extra: Gradio)."""
    from emokeras.extras import require_extra

    require_extra("app", "the web app")  # one line naming the extra, before any work
    from emokeras.app import build_app, launch_app

    app = build_app(models_dir=args.models_dir, max_upload_mb=args.max_upload_mb,
                    detector=args.detector, detector_threshold=args.detector_threshold)
    launch_app(app, host=args.host, port=args.port, max_upload_mb=args.max_upload_mb)
    return 0


def add_parser(commands) -> None:
    """Add the ``app`` command to ``commands`` (the parser's subparsers)."""
    app = commands.add_parser("app", help="serve the web app (needs the 'app' extra)")
    app.add_argument("--host", default="127.0.0.1",
                     help="address to serve on (default 127.0.0.1: this machine only)")
    app.add_argument("--port", type=int, default=7860)
    app.add_argument("--max-upload-mb", type=float, default=50.0)
    app.add_argument("--models-dir", type=Path, default=Path("saved_models"),
                     help="offer the run folders found here (default saved_models/)")
    add_detector_arguments(app, align=False)
    app.set_defaults(run=app_command)
