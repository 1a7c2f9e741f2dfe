"""How long ``emokeras <command> --help`` takes, for every command, and whether it imported
TensorFlow (it should not: help needs no model).

    .venv/bin/python benchmarks/cli_startup.py [--repeats 5]

Each run is a fresh process of the installed console script; the table gives the median wall
time over the repeats. The TensorFlow check runs the same command in-process under ``python -c``
and looks at ``sys.modules`` afterwards.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = ("", "predict", "train", "evaluate", "ensemble", "demo", "export", "spectrograms",
            "live", "app", "prepare")
HEAVY = ("tensorflow", "keras", "gradio", "pandas", "onnxruntime", "tf2onnx")


def _imports_after_help(command: str) -> list[str]:
    code = (
        "import sys\nfrom emokeras.cli import main\n"
        f"try:\n    main([*{command.split()!r}, '--help'])\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    marked = [line for line in done.stdout.splitlines() if line.startswith("HEAVY:")]
    return [m for m in marked[-1][len("HEAVY:"):].split(",") if m] if marked else ["?"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    script = Path(sys.executable).with_name("emokeras")
    print("| command | median s | max s | heavy modules imported |")
    print("|---|---:|---:|---|")
    for command in COMMANDS:
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            done = subprocess.run([str(script), *command.split(), "--help"],
                                  capture_output=True, text=True)
            times.append(time.perf_counter() - start)
            if done.returncode != 0:
                print(f"emokeras {command} --help failed: {done.stderr}", file=sys.stderr)
                return 1
        heavy = _imports_after_help(command)
        print(f"| `emokeras {command + ' ' if command else ''}--help` | "
              f"{statistics.median(times):.2f} | {max(times):.2f} | {', '.join(heavy) or 'none'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
