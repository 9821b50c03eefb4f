"""Input validation wherever a user types: every bad value is a one-sentence error naming the field.

The CLI cases run in one driver subprocess that calls ``mnistkit.cli.main`` per case with fresh
stdout/stderr (an interpreter per case would cost ~1 s each); an exception escaping ``main`` is printed
there exactly as the interpreter would print it, so "no Traceback" means the same thing. A few cases
also run through the real ``python -m mnistkit`` entry point to prove the driver agrees with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mnistkit.embedded_s3 import free_port
from mnistkit.errors import MnistkitError

pytestmark = pytest.mark.reliability

_DRIVER = r"""
import contextlib, io, json, os, sys, traceback
from mnistkit.cli import main
for line in sys.stdin:
    case = json.loads(line)
    saved = dict(os.environ)
    os.environ.update(case.get("env", {}))
    for k in case.get("unset", []):
        os.environ.pop(k, None)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(case["argv"])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            traceback.print_exc()
            code = 1
    os.environ.clear()
    os.environ.update(saved)
    print(json.dumps({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}), flush=True)
"""


def _png(path: Path, width: int, height: int, *, truncate: bool = False) -> Path:
    """A grayscale PNG written by hand (zlib compresses a huge blank image to a few KB)."""
    comp = zlib.compressobj(9)
    row = b"\x00" + bytes(width)  # filter byte + a blank row; streamed so 400 Mpixels never sit in memory
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    path.write_bytes(data[: len(data) // 2] if truncate else data)
    return path


CLUSTER_COMMANDS = ("submit", "list", "get", "logs", "delete", "deploy", "doctor", "port-forward", "secret")
_S3_KEYS = {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE1234", "AWS_SECRET_ACCESS_KEY": "not-a-real-secret"}


def _cluster_argv(command: str, kubeconfig: Path) -> list[str]:
    """Each cluster command with good input, for a job that does not exist."""
    extra = {"submit": ["--job-name", "mnist-x"], "doctor": [], "list": [], "secret": []}.get(command, ["mnist-x"])
    return [command, "--kubeconfig", str(kubeconfig), *extra]


def _cluster_cases(tmp: Path) -> list[tuple[str, list[str], dict[str, str]]]:
    """Bad input to every cluster command: refused before any request (the server here is unreachable)."""
    from helpers.k8s_double import K8sDouble

    kc = ["--kubeconfig", str(K8sDouble().kubeconfig(tmp / "kc-dead", "ns", f"http://127.0.0.1:{free_port()}"))]
    cases = [
        ("job_name", ["submit", *kc, "--job-name", "Bad_Name"], {}),
        ("tf_worker", ["submit", *kc, "-p", "tf-worker=-1"], {}),
        ("parameter", ["submit", *kc, "-p", "tf-worker"], {}),
        ("namespace", ["list", *kc, "-n", "Bad_Namespace"], {}),
        ("job_name", ["get", *kc, "Bad_Name"], {}),
        ("job_name", ["logs", *kc, "x" * 60], {}),
        ("tail", ["logs", *kc, "mnist-x", "--tail", "-1"], {}),
        ("job_name", ["delete", *kc, "dots.are.not.labels"], {}),
        ("job_name", ["deploy", *kc, "trailing-"], {}),
        ("secret", ["doctor", *kc, "--secret", "Bad_Secret"], {}),
        ("port", ["port-forward", *kc, "mnist-x", "--port", "70000"], {}),
        ("target", ["port-forward", *kc, "mnist-x", "grafana"], {}),
        ("secret", ["secret", *kc, "--name", "Bad_Secret"], _S3_KEYS),
        ("secret_access_key", ["secret", *kc], {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE1234"}),
        ("kubeconfig", ["list", "--kubeconfig", str(tmp / "no-such-kubeconfig")], {}),
        ("context", ["list", *kc, "--context", "no-such-context"], {}),
    ]
    assert {argv[0] for _f, argv, _e in cases} >= set(CLUSTER_COMMANDS)
    return cases


def _cases(tmp: Path) -> list[tuple[str, list[str], dict[str, str]]]:
    """(field the message must name, argv, extra env)."""
    dead = str(free_port())
    train = ["train", "--run-dir", str(tmp / "runs"), "--no-wait"]
    s3 = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
          "S3_USE_HTTPS": "0", "BUCKET_NAME": "mnist"}
    (tmp / "not-png.png").write_text("hello, I am text")
    (tmp / "empty.png").write_bytes(b"")
    (tmp / "dir.png").mkdir(exist_ok=True)
    predict = ["predict", "--port", dead, "--timeout", "2"]
    cases: list[tuple[str, list[str], dict[str, str]]] = [
        # training parameters
        ("train_steps", [*train, "--train-steps", "0"], {}),
        ("train_steps", [*train, "--train-steps", "abc"], {}),
        ("train_steps", [*train, "--train-steps", "1e12"], {}),
        ("batch_size", [*train, "--batch-size", "0"], {}),
        ("batch_size", [*train, "--batch-size", "100000"], {}),
        ("learning_rate", [*train, "--learning-rate", "-1"], {}),
        ("learning_rate", [*train, "--learning-rate", "nan"], {}),
        ("learning_rate", [*train, "--learning-rate", "inf"], {}),
        ("workers", [*train, "--workers", "0"], {}),
        ("workers", [*train, "--workers", "1000"], {}),
        ("model_type", [*train, "--model-type", "resnet"], {}),
        ("engine", [*train, "--engine", "slurm"], {}),
        # job names (DNS-1123)
        ("job_name", [*train, "--job-name", "Bad_Name"], {}),
        ("job_name", [*train, "--job-name", "x" * 60], {}),
        ("job_name", [*train, "--job-name=-leading-dash"], {}),
        ("job_name", [*train, "--job-name", "trailing-"], {}),
        ("job_name", [*train, "--job-name", "dots.are.not.labels"], {}),
        # S3 fields, as URLs and as the environment
        ("data_dir", [*train, "--data-dir", "s3://"], {}),
        ("data_dir", [*train, "--data-dir", "s3://Bad_Bucket/data"], {}),
        ("model_dir", [*train, "--model-dir", "s3://ab/x"], {}),
        ("bucket", ["data", "upload", "--source", "sample"], {**s3, "BUCKET_NAME": "Bad_Bucket"}),
        ("endpoint_url", ["data", "upload", "--source", "sample"], {**s3, "AWS_ENDPOINT_URL": "ftp://x"}),
        ("endpoint", ["data", "upload", "--source", "sample"],
         {**s3, "AWS_ENDPOINT_URL": "", "S3_ENDPOINT": "http://minio:9000"}),
        ("use_https", ["data", "upload", "--source", "sample"], {**s3, "S3_USE_HTTPS": "maybe"}),
        ("verify_ssl", ["data", "upload", "--source", "sample"], {**s3, "S3_VERIFY_SSL": "perhaps"}),
        ("region", ["data", "upload", "--source", "sample"], {**s3, "AWS_REGION": "US East"}),
        ("secret_access_key", ["data", "upload", "--source", "sample"], {**s3, "AWS_SECRET_ACCESS_KEY": ""}),
        ("url", ["data", "upload", "--source", "sample", "--url", "http://bucket/data"], s3),
        # images
        ("image", [*predict, "--image", str(tmp / "not-png.png")], {}),
        ("image", [*predict, "--image", str(tmp / "empty.png")], {}),
        ("image", [*predict, "--image", str(tmp / "missing.png")], {}),
        ("image", [*predict, "--image", str(tmp / "dir.png")], {}),
        ("image", [*predict, "--image", str(_png(tmp / "huge.png", 20000, 20000))], {}),
        ("image", [*predict, "--image", str(_png(tmp / "cut.png", 64, 64, truncate=True))], {}),
        ("test_image", [*predict, "--test-image", "-1"], {}),
        ("test_image", [*predict, "--test-image", "99999999"], {}),
        ("port", ["predict", "--port", "70000", "--test-image", "0"], {}),
        ("timeout", [*predict, "--timeout", "-5", "--test-image", "0"], {}),
        *_cluster_cases(tmp),
    ]
    return cases


def _run_driver(cases: list[tuple[str, list[str], dict[str, str]]], cwd: Path) -> list[dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_", "BUCKET_NAME", "TF_MODEL_SERVER"))}
    env.pop("KUBECONFIG", None)
    env.pop("KUBERNETES_SERVICE_HOST", None)
    driver = subprocess.run([sys.executable, "-c", _DRIVER], input="".join(
        json.dumps({"argv": argv, "env": extra}) + "\n" for _f, argv, extra in cases), env=env, cwd=cwd,
        capture_output=True, text=True, timeout=240, check=False)
    results = [json.loads(ln) for ln in driver.stdout.splitlines() if ln.startswith("{")]
    assert len(results) == len(cases), driver.stderr[-3000:]
    return results


def _named(field: str, message: str) -> bool:
    variants = {field, field.replace("_", "-"), field.replace("_", " "), f"--{field.replace('_', '-')}"}
    low = message.lower()
    return any(v.lower() in low for v in variants)


@pytest.mark.slow
def test_cli_rejects_bad_input_with_a_sentence_naming_the_field(tmp_path: Path) -> None:
    cases = _cases(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_", "BUCKET_NAME", "TF_MODEL_SERVER"))}
    results = _run_driver(cases, tmp_path)
    tracebacks, unnamed, wrong_code = [], [], []
    for (field, argv, _extra), res in zip(cases, results):
        where = f"{field}: {' '.join(argv[:1] + argv[-2:])}"
        if "Traceback" in res["stderr"]:
            tracebacks.append(f"{where}\n{res['stderr'][-1500:]}")
        elif not _named(field, res["stderr"]):
            unnamed.append(f"{where} -> {res['stderr'].strip()[-300:]!r}")
        if res["code"] not in (1, 2):
            wrong_code.append(f"{where} -> exit {res['code']}")
    print(f"FIGURE input_validation_cli inputs={len(cases)} tracebacks={len(tracebacks)} "
          f"messages_without_field={len(unnamed)} wrong_exit_codes={len(wrong_code)}")
    assert tracebacks == [], "\n\n".join(tracebacks)
    assert unnamed == [], "\n".join(unnamed)
    assert wrong_code == [], "\n".join(wrong_code)
    # the driver agrees with the real entry point on a few cases
    for field, argv, extra in (cases[0], cases[20], cases[29]):
        proc = subprocess.run([sys.executable, "-m", "mnistkit", *argv], env={**env, **extra}, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode in (1, 2) and "Traceback" not in proc.stderr, proc.stderr
        assert _named(field, proc.stderr.replace(str(tmp_path), "<tmp>")), proc.stderr


@pytest.mark.slow
def test_data_source_that_does_not_exist_names_source(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "mnistkit", "data", "write", "--source", str(tmp_path / "nowhere"),
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert proc.returncode in (1, 2) and "Traceback" not in proc.stderr
    assert _named("source", proc.stderr.replace(str(tmp_path), "<tmp>")), proc.stderr


def test_image_and_canvas_functions_raise_errors_naming_the_field(tmp_path: Path) -> None:
    from mnistkit import drawing
    from mnistkit.serving import images

    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    huge = _png(tmp_path / "huge.png", 20000, 20000)
    cut = _png(tmp_path / "cut.png", 64, 64, truncate=True)
    tried, tracebacks, unnamed = 0, [], []
    calls = [
        ("image", lambda: images.load_png(tmp_path / "text.png")),
        ("image", lambda: images.load_png(tmp_path / "empty.png")),
        ("image", lambda: images.load_png(huge)),
        ("image", lambda: images.load_png(cut)),
        ("image", lambda: images.load_png(tmp_path)),
        ("image", lambda: images.to_mnist(np.zeros((0, 5)))),
        ("image", lambda: images.to_mnist(np.zeros((3, 28, 28)))),
        ("canvas", lambda: drawing.preprocess("")),
        ("canvas", lambda: drawing.preprocess(b"")),
        ("canvas", lambda: drawing.preprocess(b"not a png at all")),
        ("canvas", lambda: drawing.preprocess("data:image/png;base64,!!!notbase64")),
        ("canvas", lambda: drawing.preprocess(cut.read_bytes())),
        ("canvas", lambda: drawing.preprocess(np.zeros((0, 0)))),
        ("canvas", lambda: drawing.preprocess(np.zeros((28, 28)))),  # blank: nothing drawn
        ("canvas", lambda: drawing.preprocess(np.array([[None]], dtype=object))),
        ("canvas", lambda: drawing.preprocess(np.zeros((4, 4, 4, 4)))),
    ]
    for field, call in calls:
        tried += 1
        try:
            call()
        except MnistkitError as exc:
            if exc.field != field and not _named(field, str(exc)):
                unnamed.append(f"{field}: {exc!r}")
        except Exception as exc:  # anything else would reach the user as a traceback
            tracebacks.append(f"{field}: {type(exc).__name__}: {exc}")
        else:
            unnamed.append(f"{field}: accepted a bad input")
    print(f"FIGURE input_validation_images inputs={tried} tracebacks={len(tracebacks)} "
          f"messages_without_field={len(unnamed)}")
    assert tracebacks == [], tracebacks
    assert unnamed == [], unnamed


def test_huge_canvas_png_is_a_clear_error(tmp_path: Path) -> None:
    from mnistkit import drawing

    bomb = _png(tmp_path / "bomb.png", 20000, 20000).read_bytes()  # 400 M pixels in a ~400 KB file
    try:
        drawing.preprocess(bomb)
    except MnistkitError as exc:
        assert exc.field == "canvas"
    except Exception as exc:  # noqa: BLE001 - what a user would get as a traceback
        raise AssertionError(f"{type(exc).__name__} escaped: {exc}") from None
    else:
        raise AssertionError("a 20000x20000 canvas was accepted")


def test_every_cluster_command_explains_api_failures_in_one_sentence(tmp_path: Path) -> None:
    """Unreachable, 401, 403 and 404 from the API server: one sentence naming the server or object, no traceback."""
    from helpers.k8s_double import K8sDouble

    ns = "kubeflow-user-jane"
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there: connection refused
    doubles = {code: K8sDouble().start() for code in (401, 403, 404)}
    try:
        for code, double in doubles.items():
            double.reject = code
        configs = {"unreachable": K8sDouble().kubeconfig(tmp_path / "kc-dead", ns, dead)}
        configs |= {str(code): d.kubeconfig(tmp_path / f"kc-{code}", ns) for code, d in doubles.items()}
        servers = {"unreachable": dead} | {str(code): d.url for code, d in doubles.items()}
        cases = [(scenario, _cluster_argv(cmd, kc), _S3_KEYS) for scenario, kc in configs.items()
                 for cmd in CLUSTER_COMMANDS]
        results = _run_driver(cases, tmp_path)
    finally:
        for double in doubles.values():
            double.stop()
    bad = []
    for (scenario, argv, _env), res in zip(cases, results):
        command, out = argv[0], res["stdout"] + res["stderr"]
        if scenario in ("unreachable", "401"):
            needles = [servers[scenario].split("//")[1]]  # the server, by address
        elif scenario == "403":
            needles = [ns] + (["doctor"] if command != "doctor" else [])  # where, and how to see what is missing
        else:
            # submit asks first which training API the cluster has: with none, it names both and doctor
            needles = {"list": ["workflows"], "submit": ["tfjobs.kubeflow.org", "doctor"], "secret": ["aws-creds"],
                       "doctor": ["not installed"]}.get(command, ["mnist-x"])
        errors = [ln for ln in res["stderr"].splitlines() if ln.strip()]
        problems = []
        if "Traceback" in out:
            problems.append("traceback")
        if res["code"] != 1:
            problems.append(f"exit {res['code']}")
        if command != "doctor" and (len(errors) != 1 or not errors[0].startswith("mnistkit: error: ")):
            problems.append("not one error line")
        problems += [f"does not name {n!r}" for n in needles if n not in out]
        if problems:
            bad.append(f"{scenario} {command}: {', '.join(problems)}\n{out.strip()[-1200:]}")
    print(f"FIGURE cluster_api_failures cases={len(cases)} bad={len(bad)}")
    assert bad == [], "\n\n".join(bad)


def test_port_forward_says_it_cannot_reach_an_api_server_gone_away(tmp_path: Path) -> None:
    """Listing the pods worked; the WebSocket for the first connection finds no API server: one sentence saying it
    cannot reach the server (not that the server answered), no traceback."""
    import socket

    from helpers.k8s_double import K8sDouble

    ns = "kubeflow-user-jane"
    k8s = K8sDouble().start()
    k8s.create(("", "pods"), ns, {"metadata": {"name": "mnist-x-tb-1", "labels": {
        "mnistkit.io/job": "mnist-x", "app.kubernetes.io/component": "tensorboard"}}, "status": {"phase": "Running"}})
    server = k8s.url
    kc = k8s.kubeconfig(tmp_path / "kc", ns)
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    proc = subprocess.Popen([sys.executable, "-m", "mnistkit", "port-forward", "--kubeconfig", str(kc), "mnist-x"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("forwarding http://127.0.0.1:"), line + proc.stderr.read() if proc.stderr else line
        port = int(line.split(":")[2].split(" ")[0])
    finally:
        k8s.stop()  # the API server goes away (connection refused from now on)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        assert conn.recv(1) == b""
    _, err = proc.communicate(timeout=60)
    errors = [ln for ln in err.splitlines() if ln.strip()]
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert len(errors) == 1 and errors[0].startswith(
        f"mnistkit: error: cannot reach the Kubernetes API server {server} while forwarding to pod 'mnist-x-tb-1'"
    ), err
