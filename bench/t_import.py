"""Target 4: ``import mnistkit`` <= 0.3 s, and a fresh interpreter to a rendered notebook panel.

Reference: ``python -c pass`` measured alternately with the same interpreter, so the figure is the
import's own cost (interpreter start-up subtracted). ``-X importtime`` names the slowest modules. The
panel time is a fresh ``python`` building ``S3Panel()`` and its widget state (what a notebook cell
renders), against the same interpreter start-up.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

from bench.common import ROOT, Context, Outcome, median, py_env, say

__all__ = ["importtime_top", "run"]

GOAL_S = 0.3
_PANEL = "from mnistkit.widgets import S3Panel; p = S3Panel(); p._repr_mimebundle_()"


def _time(code: str) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=py_env(), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def importtime_top(module: str = "mnistkit", n: int = 8) -> list[tuple[float, str]]:
    """The ``n`` largest cumulative import times (seconds, module) from ``python -X importtime``."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], cwd=ROOT, env=py_env(),
                          capture_output=True, text=True, check=True)
    rows = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+\d+\s+\|\s+(\d+)\s+\|\s+(.*)$", line)
        if m:
            rows.append((int(m.group(1)) / 1e6, m.group(2).rstrip()))
    return sorted(rows, reverse=True)[:n]


def run(ctx: Context) -> Outcome:
    reps = 5 if ctx.quick else 15
    _time("pass")  # warm the page cache for both
    _time("import mnistkit")
    base, imp = [], []
    for _ in range(reps):  # interleaved so drift hits both alike
        base.append(_time("pass"))
        imp.append(_time("import mnistkit"))
    cost = median(imp) - median(base)
    say(f"python -c pass: median {median(base) * 1000:.0f} ms; python -c 'import mnistkit': median "
        f"{median(imp) * 1000:.0f} ms -> import cost {cost * 1000:.0f} ms ({reps} interleaved runs)")
    say("python -X importtime -c 'import mnistkit', largest cumulative:")
    top = importtime_top()
    for secs, name in top:
        say(f"  {secs * 1000:7.1f} ms  {name}")

    panel_reps = 2 if ctx.quick else 3
    panel, pbase = [], []
    try:
        _time(_PANEL)
        for _ in range(panel_reps):
            pbase.append(_time("pass"))
            panel.append(_time(_PANEL))
        say(f"fresh python -> S3Panel() built and its widget rendered to a mime bundle: median "
            f"{median(panel):.2f} s ({median(panel) - median(pbase):.2f} s over interpreter start-up)")
        panel_s: float | None = median(panel) - median(pbase)
    except subprocess.CalledProcessError:
        say("S3Panel could not be built in a fresh interpreter (see `python -c \"from mnistkit.widgets import "
            "S3Panel; S3Panel()\"`)")
        panel_s = None
    return Outcome(
        "import",
        f"import mnistkit {cost:.3f} s over bare python ({median(imp):.3f} vs {median(base):.3f} s); "
        f"panel {panel_s if panel_s is None else round(panel_s, 2)} s",
        f"<= {GOAL_S} s",
        cost <= GOAL_S,
        {"import_s": cost, "python_s": median(base), "import_total_s": median(imp), "panel_s": panel_s,
         "importtime_top": top},
    )
