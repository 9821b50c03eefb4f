"""Benchmarks for mnistkit: ``python -m bench`` (``make bench``).

Users pick mnistkit only if its conveniences cost nothing, so every figure is a ratio (or a difference)
against a plain reference measured in the same run, side by side or interleaved: the machine is shared
and absolute times drift, ratios hold. One module per target; ``bench.__main__`` runs them and prints
one summary line per target: ``<target>: <figure> (target <t>) ok|miss``.

These are measurements, not tests: they never fail CI (``tests/bench/test_bench_smoke.py`` only checks that
the code still runs and prints the summary in the right format).
"""

__all__: list[str] = []
