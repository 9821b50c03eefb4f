"""The manifests are pure functions of their parameters: building them reads no file and no environment."""

from __future__ import annotations

import ast
import builtins
import io
import os
import pathlib
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import pytest

import mnistkit.manifests as manifests_pkg
from mnistkit.manifests import ManifestParams, all_manifests, model_train_workflow, to_yaml
from helpers.paths import ROOT


class _NoEnviron(Mapping[str, str]):
    """``os.environ`` as the test's thread sees it: every access fails. Other threads (a server a session
    fixture started, polling its model folder) read the real environment: they are not the builder."""

    def __init__(self, real: Mapping[str, str], thread: int) -> None:
        self._real, self._thread = real, thread

    def _check(self) -> None:
        if threading.get_ident() == self._thread:
            raise AssertionError("a manifest builder read the environment")

    def __getitem__(self, key: str) -> str:
        self._check()
        return self._real[key]

    def __iter__(self) -> Iterator[str]:
        self._check()
        return iter(self._real)

    def __len__(self) -> int:
        self._check()
        return len(self._real)


@contextmanager
def _no_io(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every file-system and environment access from this thread fails (and is recorded, in case a caller
    swallows the error); other threads, which are not the builder, go through."""
    seen: list[str] = []
    me = threading.get_ident()

    def refuse(what: str, real: Callable[..., object]) -> Callable[..., object]:
        def fail(*args: object, **kwargs: object) -> object:
            if threading.get_ident() != me:
                return real(*args, **kwargs)
            seen.append(f"{what}{args[:1]!r}")
            raise AssertionError(f"a manifest builder did I/O: {what}{args[:1]!r}")

        return fail

    with monkeypatch.context() as m:
        for mod, name in [(builtins, "open"), (io, "open"), (os, "open"), (os, "stat"), (os, "listdir"),
                          (os, "scandir"), (os, "getenv")]:
            m.setattr(mod, name, refuse(f"{mod.__name__}.{name}", getattr(mod, name)))
        for name in ("open", "read_text", "read_bytes", "exists", "is_file", "is_dir", "stat", "iterdir"):
            m.setattr(pathlib.Path, name, refuse(f"Path.{name}", getattr(pathlib.Path, name)))
        m.setattr(os, "environ", _NoEnviron(os.environ, me))
        yield seen


@pytest.mark.parametrize("trainer", ["tfjob", "trainjob"])
def test_rendering_every_manifest_reads_no_file_and_no_environment(
    trainer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = {"namespace": "kubeflow-user-ada", "job_name": "mnist-ada-1", "trainer": trainer}
    expected = {name: to_yaml(m) for name, m in all_manifests(ManifestParams(**values)).items()}  # imports warm
    env = {"BUCKET_NAME": "room", "S3_ENDPOINT": "minio:9000", "AWS_ENDPOINT_URL": "http://minio:9000"}
    with _no_io(monkeypatch) as seen:
        rendered = {name: to_yaml(m) for name, m in all_manifests(ManifestParams(**values)).items()}
        from_env = ManifestParams.from_env(env, **values).with_parameters({"tf-worker": "2"})
        workflow = model_train_workflow(from_env, name=from_env.job_name)
    assert seen == []
    assert rendered == expected and workflow["metadata"]["namespace"] == "kubeflow-user-ada"
    assert from_env.s3_data_url == "s3://room/data/mnist"


def test_the_guard_catches_a_builder_that_reads(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    """The check above can fail: what the old ``current_user`` did (a file, then the environment) is caught."""
    (tmp_path / "ns").write_text("kubeflow-user-ada")
    for read in (lambda: (tmp_path / "ns").read_text(), lambda: os.environ.get("USER", ""), lambda: os.getenv("X")):
        with pytest.raises(AssertionError, match="I/O|environment"), _no_io(monkeypatch):
            read()


def test_the_guard_lets_other_threads_work(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    """A server's polling thread (a session fixture) reading files meanwhile is not the builder: it goes
    through and is not recorded, while the same reads in the test's thread are refused."""
    (tmp_path / "v").write_text("1")
    got: list[object] = []

    def poll() -> None:
        got.extend([(tmp_path / "v").read_text(), os.stat(tmp_path).st_mode > 0, os.environ.get("PATH") is not None])

    with _no_io(monkeypatch) as seen:
        worker = threading.Thread(target=poll)
        worker.start()
        worker.join()
        with pytest.raises(AssertionError, match="I/O"):
            (tmp_path / "v").read_text()
    assert got == ["1", True, True]
    assert seen == [f"Path.read_text({tmp_path / 'v'!r},)"]


def test_no_manifest_module_reads_files_or_the_environment() -> None:
    """Who the user is and which namespace a pod runs in are read in mnistkit.cluster.identity, not here."""
    reads = {"environ", "getenv", "open", "read_text", "read_bytes", "NAMESPACE_FILE"}
    found = []
    for path in sorted((ROOT / "mnistkit" / "manifests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""
            if name in reads:
                found.append(f"{path.name}:{node.lineno}: {name}")
    assert found == []
    assert not hasattr(manifests_pkg, "current_user") and not hasattr(manifests_pkg, "default_job_name")
