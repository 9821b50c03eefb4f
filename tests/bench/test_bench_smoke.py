"""The benchmark code must not rot: a quick run of two cheap targets prints the summary in its format.

No timing is asserted (speed is reported by ``make bench``, never gated in CI): only that the run
finishes, prints one ``<target>: <figure> (target <t>) ok|miss`` line per target, and saves valid JSON.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.paths import ROOT

LINE = re.compile(r"^(?P<target>import|s3): (?P<figure>.+) \(target (?P<goal>[^()]+)\) (?P<verdict>ok|miss)$")


@pytest.mark.slow
def test_quick_bench_prints_summary_lines(tmp_path: Path) -> None:
    out_json = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "import,s3", "--json", str(out_json)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = proc.stdout.split("== summary", 1)[1].splitlines()[1:]
    lines = [ln for ln in summary if ln.strip() and not ln.startswith("bench:")]
    matches = [LINE.match(ln) for ln in lines]
    assert all(matches), lines
    assert [m.group("target") for m in matches if m] == ["import", "s3"]
    s3 = next(m for m in matches if m and m.group("target") == "s3")
    assert re.match(r"\d+\.\d\dx raw boto3", s3.group("figure")), s3.group("figure")
    doc = json.loads(out_json.read_text())
    assert set(doc["targets"]) == {"import", "s3"}
    assert doc["targets"]["s3"]["ratios"].keys() == {"dataset upload", "dataset download", "export upload",
                                                    "export download"}
    assert doc["machine"]["cores"] >= 1


def test_unknown_target_is_refused() -> None:
    proc = subprocess.run([sys.executable, "-m", "bench", "--only", "nope"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode != 0
    assert "unknown target(s) nope" in proc.stderr
