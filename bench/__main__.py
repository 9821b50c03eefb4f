"""``python -m bench [--quick] [--only a,b] [--t10k DIR] [--json PATH]``: run the targets, print the summary.

Targets, in the order they run: import, s3, trainer, accuracy, serving, drawing, demo. Each prints its
detail lines as it goes; the run ends with one line per target:
``<target>: <figure> (target <t>) ok|miss`` (or ``<target>: skipped (<why>)``).
The exit code is 0 even when a target is missed: benchmarks report, they do not gate.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shutil
import tempfile
import time
import traceback
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.common import Context, Outcome, say

__all__ = ["TARGETS", "machine", "main"]

# name -> module under bench/ with ``run(ctx) -> Outcome``
TARGETS = {
    "import": "bench.t_import",
    "s3": "bench.t_s3",
    "trainer": "bench.t_trainer",
    "accuracy": "bench.t_accuracy",
    "serving": "bench.t_serving",
    "batching": "bench.t_batching",
    "drawing": "bench.t_drawing",
    "demo": "bench.t_demo",
}


def machine() -> dict[str, Any]:
    """Cores, CPU model and memory: what the figures were measured on."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": cpu, "memory_gib": mem_gib, "python": platform.python_version(),
            "load_avg": os.getloadavg() if hasattr(os, "getloadavg") else None}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller sizes for a smoke run")
    p.add_argument("--only", default="", help=f"comma-separated targets ({','.join(TARGETS)}); default all")
    p.add_argument("--t10k", default="", help="official MNIST test set dir (default: MNISTKIT_T10K_DIR or "
                   "../shared/data/mnist-t10k); targets accuracy and drawing are skipped without it")
    p.add_argument("--json", default="", help="also save the results as JSON here")
    p.add_argument("--keep", action="store_true", help="keep the work dir (models, logs) for inspection")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(TARGETS)
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        raise SystemExit(f"bench: unknown target(s) {', '.join(unknown)}; choose from {', '.join(TARGETS)}")
    from mnistkit.data import find_official_test_set

    t10k = find_official_test_set(args.t10k or None)
    if args.t10k and t10k is None:
        say(f"bench: --t10k {args.t10k} does not hold the official test set files; accuracy/drawing will skip")
    work = Path(tempfile.mkdtemp(prefix="mnistkit-bench-"))
    ctx = Context(quick=args.quick, t10k=t10k, work=work)
    info = machine()
    started = datetime.now(timezone.utc)
    say(f"bench: {started:%Y-%m-%d %H:%M} UTC, {info['cores']} cores ({info['cpu']}), {info['memory_gib']} GiB, "
        f"load {info['load_avg']}; {'quick' if args.quick else 'full'} run of {', '.join(names)}")
    outcomes: list[Outcome] = []
    t0 = time.monotonic()
    try:
        for name in [n for n in TARGETS if n in names]:
            say(f"\n== {name} ==")
            t = time.monotonic()
            try:
                outcome = importlib.import_module(TARGETS[name]).run(ctx)
            except Exception as exc:  # noqa: BLE001 - one broken target must not hide the others' figures
                traceback.print_exc()
                outcome = Outcome(name, f"error: {type(exc).__name__}: {exc}", "-", False)
            outcome.details["seconds"] = round(time.monotonic() - t, 1)
            say(f"-- {name} took {outcome.details['seconds']:.0f}s")
            outcomes.append(outcome)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            say(f"bench: work dir kept in {work}")
    total = time.monotonic() - t0
    say(f"\n== summary ({total:.0f}s, {'quick' if args.quick else 'full'}) ==")
    for o in outcomes:
        say(o.summary())
    if args.json:
        doc = {"date": started.isoformat(), "quick": args.quick, "seconds": round(total, 1), "machine": info,
               "targets": {o.target: {"figure": o.figure, "goal": o.goal, "ok": o.ok, **o.details}
                           for o in outcomes}}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=2, default=str) + "\n")
        say(f"bench: results saved to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
