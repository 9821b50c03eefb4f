"""The local engine: N ``python -m trainer.task`` processes with ``TF_CONFIG`` on free loopback ports.

It runs exactly the command a TFJob runs, so what works here works in the cluster. A supervisor
thread watches the workers and does what the training operator would:

* a worker that dies (SIGKILL, OOM, crash) takes the collective down with it, and TF would leave the
  survivors waiting forever, ignoring SIGTERM. So the supervisor SIGKILLs the whole group and starts it
  again on fresh ports; ``BackupAndRestore`` makes the new group resume from the last completed epoch.
  After ``max_restarts`` the job fails with the last worker's error;
* a worker whose peer never comes up exits by itself after ``config.peer_timeout`` (the trainer's watchdog),
  naming the missing peer; ``start_timeout`` bounds the whole start-up as a second line of defence.

State lives in ``<run_dir>/<job>/``: ``worker-<i>.log`` and the model dir (``mnistkit.trainspec.RunLayout``:
checkpoints, TensorBoard logs, ``metrics.jsonl``, ``result.json``, ``export/mnist/<version>/``) unless the
config names another (e.g. ``s3://``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mnistkit.cluster.identity import default_job_name
from mnistkit.config import S3Config, TrainConfig, validate_job_name
from mnistkit.embedded_s3 import free_port
from mnistkit.engines.base import Engine, EpochMetrics, Job, JobState
from mnistkit.engines.exposure import check_multi_worker
from mnistkit.engines.owner import die_with_owner, kill_at_exit
from mnistkit.errors import ConfigError, TrainingError
from mnistkit.trainspec import READY_LINE, RunLayout, parse_metrics

__all__ = ["LocalEngine", "LocalJob", "default_job_name"]


class LocalJob(Job):
    """A training running as local processes, supervised by a thread of this process."""

    config: TrainConfig  # always known here

    def __init__(
        self,
        name: str,
        config: TrainConfig,
        job_dir: Path,
        *,
        s3_config: S3Config | None,
        python: str,
        max_restarts: int,
        start_timeout: float,
        env: dict[str, str],
    ) -> None:
        self.name = name
        self.config = config
        self.job_dir = job_dir
        self._s3 = s3_config
        self._python = python
        self.max_restarts = max_restarts
        self.start_timeout = start_timeout
        self._env = env
        self._procs: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()
        self._state = JobState.PENDING
        self._stop_requested = False
        self.restarts = 0
        self.message = ""
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    # -- paths -----------------------------------------------------------------------------------
    @property
    def model_dir(self) -> str:
        return self.config.model_dir or str(self.job_dir / "model")

    @property
    def export_dir(self) -> str:
        return RunLayout(self.model_dir).export_dir(self.config.export_dir)

    @property
    def work_dir(self) -> Path:
        """The chief's local dir: the model dir itself, or a local mirror of an ``s3://`` one."""
        return Path(self.model_dir) if not self.model_dir.startswith("s3://") else self.job_dir / "work"

    @property
    def logdir(self) -> str:
        """Where TensorBoard events are written locally (what ``mnistkit.tensorboard.show`` reads)."""
        return str(self.work_dir / RunLayout.LOGS)

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return [p.pid for p in self._procs if p.poll() is None]

    # -- lifecycle -------------------------------------------------------------------------------
    def command(self) -> list[str]:
        return [self._python, "-m", "trainer.task", *replace(self.config, model_dir=self.model_dir).to_flags()]

    def _spawn_group(self) -> None:
        n = self.config.workers
        addrs = [f"127.0.0.1:{free_port()}" for _ in range(n)]
        procs = []
        for i in range(n):
            env = {**os.environ, **self._env, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
            if self._s3:
                env.update(self._s3.to_env())
            if n > 1:
                env["TF_CONFIG"] = json.dumps({"cluster": {"worker": addrs}, "task": {"type": "worker", "index": i}})
            else:
                env.pop("TF_CONFIG", None)
            env["MNISTKIT_WORK_DIR"] = str(self.work_dir)
            log = (self.job_dir / f"worker-{i}.log").open("ab")
            log.write(f"--- start {self.restarts} at {datetime.now(timezone.utc).isoformat()} ---\n".encode())
            log.flush()
            procs.append(
                subprocess.Popen(
                    self.command(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=str(_project_root()),
                    start_new_session=True,
                    preexec_fn=die_with_owner(),
                )
            )
            log.close()
        with self._lock:
            self._procs = procs

    def _kill_group(self) -> None:
        with self._lock:
            procs = list(self._procs)
        for p in procs:
            if p.poll() is None:
                # SIGKILL: TF swallows SIGTERM while a collective waits for a dead peer.
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not time out in practice
                pass

    def _set(self, state: JobState, message: str = "") -> None:
        self._state = state
        if message:
            self.message = message

    def _supervise(self) -> None:
        try:
            while True:
                self._spawn_group()
                self._set(JobState.RUNNING)
                failed = self._watch_group()
                if self._stop_requested:
                    self._kill_group()
                    self._set(JobState.STOPPED, "stopped by the user")
                    return
                if failed is None:
                    self._set(JobState.SUCCEEDED, "training finished")
                    return
                self._kill_group()
                if self.restarts >= self.max_restarts:
                    self._set(JobState.FAILED, f"{failed}; gave up after {self.restarts} restart(s)")
                    return
                self.restarts += 1
                self._set(JobState.RUNNING, f"{failed}; restarting all workers ({self.restarts}/{self.max_restarts})")
        except Exception as exc:  # noqa: BLE001 - never leave a job RUNNING with nobody watching it
            self._kill_group()
            self._set(JobState.FAILED, f"supervisor error: {exc}")
        finally:
            self._done.set()

    def _watch_group(self) -> str | None:
        """Wait until all workers exit 0 (None) or one fails (a sentence saying which and why)."""
        t_start = time.monotonic()
        while True:
            if self._stop_requested:
                return "stopped"
            with self._lock:
                codes = [p.poll() for p in self._procs]
            for i, code in enumerate(codes):
                if code not in (None, 0):
                    why = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
                    tail = self._tail_text(i, 3)
                    return f"worker {i} {why}" + (f": {tail}" if tail else "")
            if all(c == 0 for c in codes):
                return None
            if self.config.workers > 1 and time.monotonic() - t_start > self.start_timeout and not self._all_ready():
                return f"workers did not form a cluster within {self.start_timeout:.0f}s"
            time.sleep(0.2)

    def _all_ready(self) -> bool:
        return all(READY_LINE in self._read_log(i) for i in range(self.config.workers))

    def _read_log(self, i: int) -> str:
        path = self.job_dir / f"worker-{i}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _tail_text(self, i: int, n: int) -> str:
        lines = [ln for ln in self._read_log(i).splitlines() if ln.strip() and not ln.startswith("---")]
        errs = [ln for ln in lines if "error" in ln.lower()]
        return " | ".join((errs or lines)[-n:])

    def start(self) -> LocalJob:
        self.job_dir.mkdir(parents=True, exist_ok=True)
        self._set(JobState.PENDING)
        self._thread = threading.Thread(target=self._supervise, name=f"supervise-{self.name}", daemon=True)
        kill_at_exit(self)
        self._thread.start()
        return self

    # -- Job interface ---------------------------------------------------------------------------
    def state(self) -> JobState:
        return self._state

    def metrics(self) -> list[EpochMetrics]:
        path = self.work_dir / RunLayout.METRICS
        return parse_metrics(path.read_text()) if path.exists() else []

    def result(self) -> dict[str, Any]:
        """The chief's ``result.json`` (test accuracy, export path, version) once the job succeeded."""
        path = self.work_dir / RunLayout.RESULT
        return json.loads(path.read_text()) if path.exists() else {}

    def logs(self, tail: int | None = None) -> str:
        lines = []
        for i in range(self.config.workers):
            lines += [f"[worker-{i}] {ln}" for ln in self._read_log(i).splitlines()]
        return "\n".join(lines[-tail:] if tail else lines)

    def wait(self, timeout: float | None = None) -> JobState:
        self._done.wait(timeout)
        return self._state

    def stop(self) -> None:
        self._stop_requested = True
        self._kill_group()
        self._done.wait(30)

    def delete(self) -> None:
        self.stop()
        for i in range(self.config.workers):
            (self.job_dir / f"worker-{i}.log").unlink(missing_ok=True)

    def __repr__(self) -> str:
        return f"LocalJob({self.name!r}, state={self._state.value}, workers={self.config.workers})"


def _project_root() -> Path:
    """Where ``trainer`` is importable from (the source checkout or site-packages)."""
    import trainer

    return Path(trainer.__file__).resolve().parent.parent


class LocalEngine(Engine):
    """Runs trainings as local processes under ``run_dir`` (default ``./runs``)."""

    name = "local"

    def __init__(
        self,
        run_dir: str | os.PathLike[str] = "runs",
        s3_config: S3Config | None = None,
        *,
        python: str | None = None,
        max_restarts: int = 3,
        start_timeout: float = 300.0,
        env: dict[str, str] | None = None,
        allow_exposed_workers: bool | None = None,
    ) -> None:
        self.allow_exposed_workers = allow_exposed_workers  # None: $MNISTKIT_ALLOW_EXPOSED_WORKERS (see exposure.py)
        self.run_dir = Path(run_dir)
        self.s3_config = s3_config
        self.python = python or sys.executable
        self.max_restarts = max_restarts
        self.start_timeout = start_timeout
        self.env = dict(env or {})
        self._jobs: dict[str, LocalJob] = {}

    def submit(self, config: TrainConfig, job_name: str | None = None) -> LocalJob:
        name = validate_job_name(job_name or default_job_name(), "job_name")
        check_multi_worker(config.workers, self.allow_exposed_workers)
        job_dir = self.run_dir / name
        if name in self._jobs or job_dir.exists():
            raise ConfigError(
                f"job_name {name!r} is taken in {self.run_dir}; choose another, e.g. {default_job_name()!r}",
                field="job_name",
                value=name,
            )
        if (config.data_dir.startswith("s3://") or config.model_dir.startswith("s3://")) and self.s3_config is None:
            self.s3_config = S3Config.from_env()
        job = LocalJob(
            name,
            config,
            job_dir.resolve(),
            s3_config=self.s3_config,
            python=self.python,
            max_restarts=self.max_restarts,
            start_timeout=self.start_timeout,
            env=self.env,
        )
        self._jobs[name] = job
        return job.start()

    def get(self, job_name: str) -> LocalJob:
        if job_name in self._jobs:
            return self._jobs[job_name]
        raise TrainingError(f"no local job named {job_name!r} in this session", field="job_name", value=job_name)

    def list(self) -> list[Job]:
        return list(self._jobs.values())
