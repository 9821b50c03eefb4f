"""Where a served request's time goes: ``python -m bench.profile_serving EXPORT_BASE [--seconds 15]``.

Not part of ``make bench``: run it when target 3 misses. It starts ``mnistkit serve`` on the export,
sends batch-1 gRPC (then REST) requests from this process while ``py-spy`` samples the server (install
it with ``.venv/bin/pip install py-spy``; it is not a project dependency), and prints the functions with
the most samples (self and inclusive) for each protocol, plus the client's own split.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _top(raw: Path, n: int) -> tuple[list[tuple[int, str]], list[tuple[int, str]], int]:
    selfc: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        c = int(count)
        total += c
        frames = stack.split(";")
        selfc[frames[-1]] += c
        for f in set(frames):
            incl[f] += c
    return ([(c, f) for f, c in selfc.most_common(n)], [(c, f) for f, c in incl.most_common(n * 3)], total)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile_serving")
    p.add_argument("export_base")
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--top", type=int, default=15)
    args = p.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    import numpy as np

    from bench.t_serving import _start_server
    from mnistkit.serving.client import ModelClient

    tmp = Path(tempfile.mkdtemp(prefix="profile-serving-"))
    proc, gport, rport = _start_server(args.export_base, tmp / "server.log")
    image = np.random.default_rng(0).random((1, 28, 28), dtype=np.float32)
    try:
        for proto, port in (("grpc", gport), ("rest", rport)):
            raw = tmp / f"{proto}.txt"
            with ModelClient("127.0.0.1", port, proto) as c:
                for _ in range(50):
                    c.predict(image)
                stop = threading.Event()
                lat: list[float] = []

                def load(stop: threading.Event = stop, lat: list[float] = lat) -> None:
                    while not stop.is_set():
                        t = time.perf_counter()
                        c.predict(image)  # noqa: B023 - the loop waits for this thread
                        lat.append((time.perf_counter() - t) * 1000)

                th = threading.Thread(target=load)
                th.start()
                subprocess.run([spy, "record", "--pid", str(proc.pid), "--duration", str(int(args.seconds)),
                                "--rate", "500", "--format", "raw", "--output", str(raw), "--nonblocking",
                                "--threads"], check=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
                stop.set()
                th.join()
            selfc, incl, total = _top(raw, args.top)
            busy = total / 500 * 1000 / max(1, len(lat))
            print(f"\n== {proto}: {len(lat)} requests, p50 {np.median(lat):.2f} ms; non-idle server thread time (summed over threads) "
                  f"{busy:.2f} ms per request ==")
            print("most samples (self):")
            for c, f in selfc:
                print(f"  {100 * c / total:5.1f}%  {f[:150]}")
            print("most samples (inclusive, mnistkit and grpc frames):")
            shown = 0
            for c, f in incl:
                if not f.startswith("thread") and shown < args.top:
                    print(f"  {100 * c / total:5.1f}%  {f[:150]}")
                    shown += 1
    finally:
        proc.terminate()
        proc.wait(10)
        print(f"\nraw py-spy stacks in {tmp}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
