"""Size and load time of a model file as Keras stores it (uncompressed zip) and as emokeras saves
it (deflated, ``save_model_atomic``), in the same process.

    .venv/bin/python benchmarks/model_file.py [RUN_DIR ...] [--repeats 7]

Without run folders it measures the bundled model. For each, both archives are written to a
temporary folder from the same weights, then loaded in turn (stored, deflated, stored, ...) with
``load_model_file``; the table gives the median load time of each and the ratio deflated/stored.
The first load of each is a warm-up and is not counted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    from emokeras.bundled import BUNDLED_MODEL_DIR
    from emokeras.run_folder import MODEL_FILE, load_model_file, save_model_atomic

    print("| model | stored MB | deflated MB | size ratio | stored load s | deflated load s "
          "| load ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for run in args.runs or [BUNDLED_MODEL_DIR]:
        model = load_model_file(run / MODEL_FILE)
        with tempfile.TemporaryDirectory() as scratch:
            stored, deflated = Path(scratch) / "stored.keras", Path(scratch) / "deflated.keras"
            model.save(stored)
            save_model_atomic(model, deflated)
            times: dict[Path, list[float]] = {stored: [], deflated: []}
            for _ in range(args.repeats + 1):
                for path in (stored, deflated):
                    started = time.perf_counter()
                    load_model_file(path)
                    times[path].append(time.perf_counter() - started)
            size = {path: path.stat().st_size / 1e6 for path in times}
            load = {path: statistics.median(values[1:]) for path, values in times.items()}
        print(f"| {run.name} | {size[stored]:.2f} | {size[deflated]:.2f} "
              f"| {size[deflated] / size[stored]:.3f} | {load[stored]:.2f} | {load[deflated]:.2f} "
              f"| {load[deflated] / load[stored]:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
