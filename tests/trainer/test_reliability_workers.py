"""Worker failure: SIGKILL one of 2 local workers mid-training and compare with an uninterrupted run.

Same config and seed for both runs, run one after the other (never two trainings at once on 2 cores).
Figures: steps redone after the restart, extra wall time, accuracy difference, hangs.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from mnistkit.config import S3Config, TrainConfig
from mnistkit.engines.base import JobState
from mnistkit.engines.local import LocalEngine, LocalJob
from mnistkit.trainspec import HOLD_ENV, RunLayout

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

CONFIG = TrainConfig(train_steps=300, batch_size=100, model_type="small", workers=2)
KILL_AFTER_EPOCH = 3  # the chief holds after this epoch's backup is saved (and on S3): the kill lands there
HOLD = {HOLD_ENV: str(KILL_AFTER_EPOCH)}
HANG_TIMEOUT_S = 300  # far above a run's length: reaching it means a hang, not slowness


def _losses_logged(text: str) -> dict[int, float]:
    """epoch -> training loss, from the trainer's "epoch k/n loss=..." lines (the last run of each epoch)."""
    return {int(ln.split("] epoch ")[1].split("/")[0]): float(ln.split(" loss=")[1].split()[0])
            for ln in text.splitlines() if "] epoch " in ln}


@dataclass(frozen=True)
class CleanRun:
    losses: dict[int, float]
    result: dict[str, Any]
    wall_s: float


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> CleanRun:
    """The uninterrupted run both kill tests compare with (trained once: it is the slow part)."""
    engine = LocalEngine(run_dir=tmp_path_factory.mktemp("clean") / "runs", max_restarts=2)
    t0 = time.monotonic()
    clean = engine.submit(CONFIG, "clean")
    state = clean.wait(timeout=HANG_TIMEOUT_S)
    assert state == JobState.SUCCEEDED, f"hang or failure of the clean run ({state}): {clean.logs(tail=30)}"
    return CleanRun(_losses_logged(clean._read_log(0)), clean.result(), time.monotonic() - t0)


def _held(job: LocalJob) -> bool:
    """The chief holds after epoch KILL_AFTER_EPOCH: its backup is complete (and synced), it trains no further."""
    return (job.work_dir / RunLayout.hold_marker(KILL_AFTER_EPOCH)).exists()


def _kill_worker_1_and_wait(job: LocalJob, ready: Callable[[], bool]) -> tuple[JobState, float]:
    """Kill worker 1 once ``ready()``: a condition the trainer guarantees, whatever the machine's speed."""
    t0 = time.monotonic()
    while not ready():
        assert time.monotonic() - t0 < HANG_TIMEOUT_S and job.state() != JobState.FAILED, job.logs(tail=30)
        time.sleep(0.05)
    os.kill(job.pids[1], signal.SIGKILL)  # SIGKILL: TF ignores SIGTERM inside collectives
    return job.wait(timeout=HANG_TIMEOUT_S), t0


def _check_replay(job: LocalJob, clean: CleanRun, figure: str, t_submit: float) -> str:
    """Common checks of a killed run against the clean one; returns worker 0's log after the restart."""
    result = job.result()
    log0 = job._read_log(0)
    before, after = log0.split("--- start 1")[0], log0.split("--- start 1")[1]
    resumed_losses = _losses_logged(after)
    done_before = max(_losses_logged(before))
    resumed_at = min(resumed_losses)
    steps_per_epoch = result["steps"] // result["epochs"]
    steps_redone = (done_before + 1 - resumed_at) * steps_per_epoch
    acc_diff = abs(result["test_accuracy"] - clean.result["test_accuracy"]) * 100
    loss_gap = max(abs(resumed_losses[e] - clean.losses[e]) for e in resumed_losses)
    killed_s = time.monotonic() - t_submit
    print(f"FIGURE {figure} steps={result['steps']} killed_after_epoch={done_before} "
          f"resumed_at_epoch={resumed_at} steps_redone={steps_redone} restarts={job.restarts} "
          f"clean_wall_s={clean.wall_s:.1f} killed_wall_s={killed_s:.1f} extra_wall_s={killed_s - clean.wall_s:.1f} "
          f"clean_acc={clean.result['test_accuracy']:.4f} killed_acc={result['test_accuracy']:.4f} "
          f"acc_diff_points={acc_diff:.2f} max_loss_gap={loss_gap:.4f} hangs=0")
    assert job.restarts == 1
    assert resumed_at > 1, "the restarted group trained from scratch instead of resuming"
    assert f"resuming at epoch {resumed_at}/{result['epochs']} from the last backup" in after
    # the data order is a function of the epoch: the resumed group trains on the batches the clean run did,
    # so its per-epoch losses are the clean run's (a restarted shuffle gave other batches: 0.8 points off)
    assert loss_gap <= 0.002, (clean.losses, resumed_losses)
    assert steps_redone <= steps_per_epoch  # at most the epoch that was running when the worker died
    assert result["epochs"] == clean.result["epochs"]
    assert acc_diff <= 1.0
    return after


def test_killed_worker_costs_little_and_changes_accuracy_by_at_most_a_point(clean_run: CleanRun,
                                                                            tmp_path: Path) -> None:
    engine = LocalEngine(run_dir=tmp_path / "runs", max_restarts=2, env=HOLD)
    job = engine.submit(CONFIG, "killed")
    state, t0 = _kill_worker_1_and_wait(job, lambda: _held(job))
    assert state == JobState.SUCCEEDED, f"hang or failure after the kill ({state}): {job.logs(tail=40)}"
    _check_replay(job, clean_run, "worker_kill_vs_clean", t0)


def test_killed_worker_resumes_from_the_s3_backup(clean_run: CleanRun, s3_config: S3Config, tmp_path: Path) -> None:
    """As on a cluster: the model dir is on S3 and every worker restores the backup from there."""
    from mnistkit import s3

    engine = LocalEngine(run_dir=tmp_path / "runs", max_restarts=2, s3_config=s3_config,
                         env=HOLD)
    job = engine.submit(replace(CONFIG, model_dir=s3_config.url("runs/killed-s3"), sync_seconds=1), "killed-s3")
    state, t0 = _kill_worker_1_and_wait(job, lambda: _held(job))  # the chief synced epoch 3's backup first
    assert state == JobState.SUCCEEDED, f"hang or failure after the kill ({state}): {job.logs(tail=40)}"
    _check_replay(job, clean_run, "worker_kill_s3_vs_clean", t0)
    for i in (0, 1):  # both restored from S3, the chief too (a newer local backup would split the group)
        assert "restored" in job._read_log(i).split("--- start 1")[1], job._read_log(i)[-2000:]
    assert s3_config.secret_access_key not in job.logs()
