"""Target 6: S3 transfers through mnistkit >= 0.9 x raw boto3 ``upload_file``/``download_file``.

Both sides use the same boto3 client (``mnistkit.s3.make_client``) against the same embedded server, so
the figure is the cost of mnistkit's layer only (error wrapping, progress, atomic download with size and
MD5 verification, listing). Payloads: the dataset (four IDX gz files of the offline sample) and a
SavedModel export (the one target ``accuracy`` trained when it ran first, else files of an export's sizes).
Repeats are interleaved with alternating order; the figure is median(raw time) / median(mnistkit time).
``publish_model_version`` (staging, verify, copy) is reported too, as what publishing safely costs.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import Context, Outcome, median, say

__all__ = ["run"]

GOAL = 0.9


def _fake_export(root: Path) -> Path:
    """Files with the sizes of a ``cnn`` export (the real one is used when available)."""
    rng = os.urandom
    (root / "variables").mkdir(parents=True, exist_ok=True)
    (root / "saved_model.pb").write_bytes(rng(180_000))
    (root / "fingerprint.pb").write_bytes(rng(60))
    (root / "variables" / "variables.index").write_bytes(rng(1_500))
    (root / "variables" / "variables.data-00000-of-00001").write_bytes(rng(420_000))
    return root


def _raw_upload(client: Any, root: Path, bucket: str, prefix: str) -> None:
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        client.upload_file(str(p), bucket, f"{prefix}/{p.relative_to(root).as_posix()}")


def _raw_download(client: Any, bucket: str, prefix: str, root: Path) -> None:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
    for page in pages:
        for o in page.get("Contents", []):
            target = root / o["Key"][len(prefix) + 1 :]
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, o["Key"], str(target))


def _timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def run(ctx: Context) -> Outcome:
    from mnistkit import data, s3
    from mnistkit.embedded_s3 import EmbeddedS3

    rounds = 3 if ctx.quick else 9
    ds_dir = data.write_data_dir(data.offline_sample(), ctx.tmp("s3-data"))
    export = ctx.shared.get("export_dir")
    export_dir = Path(export) if export else _fake_export(ctx.tmp("s3-export") / "1")
    sizes = {name: sum(p.stat().st_size for p in d.rglob("*") if p.is_file())
             for name, d in (("dataset", Path(ds_dir)), ("export", export_dir))}
    say(f"payloads: dataset {sizes['dataset'] / 1e6:.2f} MB in 4 files; export {sizes['export'] / 1e6:.2f} MB "
        f"({'trained' if export else 'synthetic, sizes of a cnn export'}); {rounds} interleaved rounds")

    times: dict[str, list[float]] = {}
    with EmbeddedS3(bucket="bench") as server:
        cfg = server.config
        client = s3.make_client(cfg)
        s3.ensure_bucket(client, cfg.bucket, cfg.region)
        b = cfg.bucket
        for payload, src in (("dataset", Path(ds_dir)), ("export", export_dir)):
            for i in range(rounds + 1):  # round 0 warms connections and the server, not counted
                tag = uuid.uuid4().hex[:8]
                down = ctx.tmp("s3-down")
                # Default arguments bind this round's values (the lambdas run within the round).
                pairs = [
                    (f"{payload} upload", "raw", lambda src=src, tag=tag: _raw_upload(client, src, b, f"raw-{tag}")),
                    (f"{payload} upload", "mnistkit",
                     lambda src=src, tag=tag: s3.upload_dir(client, src, b, f"mk-{tag}")),
                ]
                dls = [
                    (f"{payload} download", "raw",
                     lambda tag=tag, down=down: _raw_download(client, b, f"raw-{tag}", down / "raw")),
                    (f"{payload} download", "mnistkit",
                     lambda tag=tag, down=down: s3.download_prefix(client, b, f"mk-{tag}", down / "mk")),
                ]
                if i % 2:
                    pairs.reverse()
                    dls.reverse()
                for op, side, fn in pairs + dls:
                    dt = _timed(fn)
                    if i:
                        times.setdefault(f"{op}|{side}", []).append(dt)
                if payload == "export":
                    url = f"s3://{b}/publish-{tag}"
                    dt = _timed(lambda src=src, url=url: s3.publish_model_version(client, src, url, 1))
                    if i:
                        times.setdefault("export publish|mnistkit", []).append(dt)
                shutil.rmtree(down, ignore_errors=True)
    ratios: dict[str, float] = {}
    for op in ("dataset upload", "dataset download", "export upload", "export download"):
        raw, mk = median(times[f"{op}|raw"]), median(times[f"{op}|mnistkit"])
        ratios[op] = raw / mk
        say(f"{op:17s}: boto3 {raw * 1000:7.1f} ms, mnistkit {mk * 1000:7.1f} ms -> {ratios[op]:.2f}x")
    pub = median(times["export publish|mnistkit"])
    say(f"export publish  : publish_model_version {pub * 1000:.1f} ms = "
        f"{median(times['export upload|raw']) / pub:.2f}x raw upload (staging + verify + copy; informational)")
    worst = min(ratios, key=lambda k: ratios[k])
    return Outcome(
        "s3",
        f"{ratios[worst]:.2f}x raw boto3 (worst: {worst}; "
        + ", ".join(f"{k.replace('dataset', 'data')} {v:.2f}x" for k, v in ratios.items()) + ")",
        f">= {GOAL}x",
        ratios[worst] >= GOAL,
        {"ratios": ratios, "median_s": {k: median(v) for k, v in times.items()}, "sizes": sizes},
    )
