"""Target 7: the whole ``mnistkit demo`` (what ``make demo`` runs after install), and the notebook suite.

The demo runs as ``python -m mnistkit demo`` in a fresh run dir; its wall time and the peak resident
memory of its whole process tree (the demo, its 2 training workers, the embedded S3 and the server
threads; sampled every 0.2 s with psutil) are reported, with the training share of the time as the
reference point (everything else is mnistkit's overhead: S3, data, serving, prediction, cleanup). Then
every ``notebooks/*.ipynb`` is executed under papermill (skipped with a line when there are none).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from bench.common import ROOT, Context, Outcome, py_env, say

__all__ = ["run", "run_tree"]

GOAL_S = 300.0


def run_tree(args: list[str], *, cwd: Path, log: Path, timeout: float) -> tuple[int, float, int]:
    """Run a command; returns (exit code, wall seconds, peak RSS bytes of its process tree)."""
    import psutil

    t0 = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(args, cwd=cwd, env=py_env(), stdout=out, stderr=subprocess.STDOUT)
        root = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            total = 0
            try:
                for p in [root, *root.children(recursive=True)]:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
            peak = max(peak, total)
            if time.monotonic() - t0 > timeout:
                for p in root.children(recursive=True):
                    p.kill()
                proc.kill()
                break
            time.sleep(0.2)
        rc = proc.wait()
    return rc, time.monotonic() - t0, peak


def _notebooks(ctx: Context) -> tuple[str, bool | None, dict[str, object]]:
    nbs = sorted((ROOT / "notebooks").glob("*.ipynb")) if (ROOT / "notebooks").is_dir() else []
    if not nbs:
        say("notebooks: none in notebooks/ yet: skipped")
        return "notebooks skipped (none)", None, {}
    out_dir = ctx.tmp("notebooks")
    results: dict[str, object] = {}
    failed = []
    for nb in nbs:
        rc, wall, peak = run_tree(
            [sys.executable, "-m", "papermill", str(nb), str(out_dir / nb.name), "--cwd", str(nb.parent),
             "-k", "python3", "--no-progress-bar"],
            cwd=ROOT, log=out_dir / f"{nb.stem}.log", timeout=180)
        results[nb.name] = {"rc": rc, "seconds": round(wall, 1), "peak_rss_mb": round(peak / 1e6)}
        say(f"notebook {nb.name}: {'ok' if rc == 0 else f'FAILED (rc {rc})'} in {wall:.1f} s, "
            f"peak RSS {peak / 1e6:.0f} MB")
        if rc != 0:
            failed.append(nb.name)
            tail = (out_dir / f"{nb.stem}.log").read_text(errors="replace").strip().splitlines()[-3:]
            for line in tail:
                say(f"    {line[:200]}")
    total = sum(float(r["seconds"]) for r in results.values())  # type: ignore[index]
    fig = f"{len(nbs) - len(failed)}/{len(nbs)} notebooks ok in {total:.0f} s"
    return fig, not failed, results


def run(ctx: Context) -> Outcome:
    run_dir = ctx.tmp("demo")
    rc, wall, peak = run_tree([sys.executable, "-m", "mnistkit", "demo", f"--run-dir={run_dir / 'run'}"],
                              cwd=run_dir, log=run_dir / "demo.log", timeout=900)
    log = (run_dir / "demo.log").read_text(errors="replace")
    m = re.search(r"done in (\d+)s", log)
    train_s = float(m.group(1)) if m else float("nan")
    acc = re.search(r"\[6/6\] accuracy: .*", log)
    say(f"mnistkit demo: rc {rc}, {wall:.1f} s wall ({train_s:.0f} s training = {train_s / wall:.0%}), "
        f"peak RSS of the process tree {peak / 1e6:.0f} MB")
    if acc:
        say(f"  {acc.group(0)}")
    if rc != 0:
        for line in log.strip().splitlines()[-8:]:
            say(f"    {line[:200]}")
    nb_fig, nb_ok, nb = _notebooks(ctx) if not ctx.quick else ("notebooks not run in --quick", None, {})
    if ctx.quick:
        say("notebooks: not run in --quick")
    ok = rc == 0 and wall <= GOAL_S and nb_ok is not False
    return Outcome(
        "demo",
        f"mnistkit demo {'ok' if rc == 0 else f'FAILED rc {rc}'} in {wall:.0f} s (training {train_s:.0f} s, "
        f"rest {wall - train_s:.0f} s), peak RSS {peak / 1e6:.0f} MB; {nb_fig}",
        f"completes in <= {GOAL_S:.0f} s, notebooks pass",
        ok,
        {"rc": rc, "wall_s": wall, "train_s": train_s, "peak_rss_bytes": peak, "notebooks": nb},
    )
