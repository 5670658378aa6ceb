"""Time each step of ``rfm train`` on the UCI Online Retail file.

Usage: ``python benchmarks/train_steps.py [PATH] [--method auto|seed]``. The file is PATH, else
``$RFM_UCI_PATH``, else ``../shared/data/online_retail.csv.gz`` beside the repository.
Targets (2 cores): cleaning + RFM under 3 s, total under 30 s. Exit code 1 if one is missed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from model_training.pipeline import train

__all__ = ["main"]

_DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "online_retail.csv.gz"
_TARGETS = {"clean+rfm": 3.0, "total": 30.0}
_LABELS = {"model": "model selection + fit", "write": "write outputs"}


def main(argv: list[str] | None = None) -> int:
    """Run the pipeline once, print each step's time and check the targets."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path", nargs="?", default=os.environ.get("RFM_UCI_PATH", _DEFAULT))
    parser.add_argument("--method", choices=["auto", "seed"], default="auto")
    args = parser.parse_args(argv)
    path = Path(args.path)
    if not path.is_file():
        print(f"error: UCI file not found at {path}; pass a path or set RFM_UCI_PATH")
        return 2
    with tempfile.TemporaryDirectory(prefix="rfm-bench-") as out:
        result = train(path, out, method=args.method)
    timings = dict(result.timings)
    timings["clean+rfm"] = timings["clean"] + timings["rfm"]
    print(f"{path} ({args.method}): {result.card['n_customers']} customers")
    for step in ("load", "clean", "rfm", "clean+rfm", "model", "write", "report", "total"):
        target = _TARGETS.get(step)
        verdict = "" if target is None else (" ok" if timings[step] < target else " SLOW")
        limit = "" if target is None else f"  (target < {target:.0f} s){verdict}"
        print(f"  {_LABELS.get(step, step):<24} {timings[step]:7.2f} s{limit}")
    card = result.card
    print(f"  chosen: {card['method']} k={card['n_segments']} silhouette={card['silhouette']:.3f}")
    missed = [step for step, target in _TARGETS.items() if timings[step] >= target]
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
