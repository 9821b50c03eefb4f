"""Workshop mode: names, workspaces and their reset, run records, the leaderboard, the panels, a room of 30."""

from __future__ import annotations

import json
import statistics
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from mnistkit import s3
from mnistkit.config import S3Config
from mnistkit.errors import ConfigError
from mnistkit.workshop.leaderboard import Leaderboard
from mnistkit.workshop.names import default_participant, participant_from_user, validate_participant
from mnistkit.workshop.runs import RunRecord, list_runs, record_run, shared_client
from mnistkit.workshop.workspace import Workspace


# ------------------------------------------------------------------------------------------------ names


@pytest.mark.parametrize("bad", ["", "Ada", "ada_l", "-ada", "ada-", "a" * 31, "ada lovelace", "_shared"])
def test_participant_names_are_dns_labels(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_participant(bad)
    assert info.value.field == "participant"
    assert info.value.value == bad


def test_hub_user_names_fold_into_distinct_participants(tmp_path: Path) -> None:
    assert participant_from_user("ada") == "ada"
    a, b = participant_from_user("Jane.Doe@Example.org"), participant_from_user("jane-doe@example.org")
    assert a.startswith("jane-doe-example-org-") and b.startswith("jane-doe-example-org-")
    assert a != b  # folding alone would merge them into one prefix
    assert validate_participant(participant_from_user("x" * 80)) and len(participant_from_user("x" * 80)) <= 30
    assert default_participant({"JUPYTERHUB_USER": "Grace.Hopper"}).startswith("grace-hopper-")
    assert default_participant({"JUPYTERHUB_USER": "x", "MNISTKIT_PARTICIPANT": "ada"}) == "ada"
    none = "/nonexistent/namespace"
    with pytest.raises(ConfigError):
        default_participant({}, none)
    # In a Kubeflow notebook there is no JUPYTERHUB_USER and everyone is jovyan: the profile namespace names them.
    ns = tmp_path / "namespace"
    ns.write_text("kubeflow-grace\n")
    assert default_participant({"USER": "jovyan"}, str(ns)) == "kubeflow-grace"
    with pytest.raises(ConfigError, match="jovyan"):
        default_participant({"USER": "jovyan"}, none)
    assert default_participant({"USER": "ada"}, none) == "ada"


# ------------------------------------------------------------------------------------------- workspaces


def _put(cfg: S3Config, key: str, body: bytes = b"x") -> None:
    shared_client(cfg).put_object(Bucket=cfg.bucket, Key=key, Body=body)


def _keys(cfg: S3Config, prefix: str = "") -> set[str]:
    return {o["Key"] for o in s3.list_keys(shared_client(cfg), cfg.bucket, prefix)}


def test_workspace_paths_and_job_names(s3_config: S3Config, tmp_path: Path) -> None:
    ws = Workspace(s3_config, "room1", "ada", tmp_path)
    assert ws.prefix == "workshop/room1/ada/"
    assert ws.url("models") == f"s3://{s3_config.bucket}/workshop/room1/ada/models"
    assert ws.shared_data_url == f"s3://{s3_config.bucket}/workshop/room1/_shared/data/mnist"
    job = ws.job_name()
    assert job.startswith("mnist-ada-") and len(job) <= 52
    assert ws.job_name() != job
    cfg = ws.train_config(job, train_steps=5, model_type="small")
    assert cfg.model_dir == ws.url("models", job) and cfg.data_dir == ws.shared_data_url
    assert ws.engine().run_dir == tmp_path / "room1" / "ada" / "runs"
    env = {"MNISTKIT_WORKSHOP_ROOM": "room1", "JUPYTERHUB_USER": "Ada.L", **s3_config.to_env()}
    from_env = Workspace.from_env(env=env, local_root=tmp_path)
    assert from_env.participant.startswith("ada-l-") and from_env.s3 == s3_config
    assert s3_config.secret_access_key not in repr(from_env)
    with pytest.raises(ConfigError, match="room"):
        Workspace.from_env(env={"JUPYTERHUB_USER": "ada"})


def test_reset_deletes_only_my_prefix_and_folder(s3_config: S3Config, tmp_path: Path) -> None:
    me = Workspace(s3_config, "room1", "ada", tmp_path)
    # Neighbours whose names start like mine, the room's shared data, and another room.
    keep = [
        "workshop/room1/ada2/models/m/saved_model.pb",
        "workshop/room1/ada-l/runs/r.json",
        "workshop/room1/_shared/data/mnist/t10k-images-idx3-ubyte.gz",
        "workshop/room2/ada/runs/r.json",
        "workshop/room1/ada",  # an object named like my prefix without the slash
    ]
    mine = ["workshop/room1/ada/models/m/saved_model.pb", "workshop/room1/ada/runs/r.json"]
    for key in keep + mine:
        _put(s3_config, key)
    (me.local_dir / "runs").mkdir(parents=True)
    (me.local_dir / "runs" / "log.txt").write_text("x")
    neighbour = tmp_path / "room1" / "ada2"
    neighbour.mkdir(parents=True)
    (neighbour / "keep.txt").write_text("x")

    report = me.reset()
    assert report.objects_deleted == 2 and report.local_removed
    assert _keys(s3_config) == set(keep)
    assert not me.local_dir.exists() and (neighbour / "keep.txt").exists()
    assert "deleted 2 objects" in str(report)
    again = me.reset()  # resetting an empty workspace is fine
    assert again.objects_deleted == 0 and not again.local_removed


# ---------------------------------------------------------------------------------------------- records


def test_record_run_writes_one_json_under_my_prefix(s3_config: S3Config) -> None:
    trainer_result = {"test_accuracy": 0.91, "export": "s3://b/x/export/mnist/1", "version": 1, "train_seconds": 3.2}
    rec = record_run(s3_config, "room1", "ada", {**trainer_result, "job_name": "mnist-ada-1", "state": "Succeeded",
                                                  "drawing_pad_score": 0.8, "digit_set": "offline-50-s20180808"})
    assert rec.key.startswith("workshop/room1/ada/runs/") and rec.key.endswith(".json")
    body = shared_client(s3_config).get_object(Bucket=s3_config.bucket, Key=rec.key)["Body"].read()
    back = RunRecord.from_json(body)
    assert back == rec
    assert back.extra == {"export": "s3://b/x/export/mnist/1", "version": 1, "train_seconds": 3.2}
    # Defaults: a result with an accuracy and no state succeeded; JobState values are accepted.
    from mnistkit.engines.base import JobState

    assert record_run(s3_config, "room1", "ada", {"test_accuracy": 0.5}).state == "Succeeded"
    assert record_run(s3_config, "room1", "ada", {"state": JobState.FAILED}).state == "Failed"
    for bad, field in (({"test_accuracy": 1.5}, "test_accuracy"), ({"drawing_pad_score": "high"}, "drawing_pad_score"),
                       ({"state": "exploded"}, "state")):
        with pytest.raises(ConfigError) as info:
            record_run(s3_config, "room1", "ada", bad)
        assert info.value.field == field
    with pytest.raises(ConfigError):
        record_run(s3_config, "room1", "Not A Name", {})


def test_list_runs_skips_bad_records_and_foreign_objects(s3_config: S3Config) -> None:
    good = record_run(s3_config, "room1", "ada", {"test_accuracy": 0.9})
    _put(s3_config, "workshop/room1/bob/runs/broken.json", b"{not json")
    # A record copied into someone else's prefix must not count for them.
    _put(s3_config, "workshop/room1/eve/runs/fake.json", good.to_json().encode())
    _put(s3_config, "workshop/room1/_shared/runs/x.json", good.to_json().encode())
    _put(s3_config, "workshop/room1/ada/models/m/result.json", b"{}")
    listing = list_runs(s3_config, "room1")
    assert [r.run_id for r in listing.runs] == [good.run_id]
    assert listing.participants == ("ada", "bob", "eve")
    assert len(listing.errors) == 2 and any("broken.json" in e for e in listing.errors)


def test_a_taken_run_key_is_not_overwritten(s3_config: S3Config, monkeypatch: pytest.MonkeyPatch) -> None:
    """The put is conditional: if a run id were ever reused, the second writer picks a new one."""
    from mnistkit.workshop import runs

    first = record_run(s3_config, "room1", "ada", {"test_accuracy": 0.1})
    ids = iter([first.run_id, "20990101T000000000000Z-aaaaaaaaaaaaaaaaaaaaaaaa"])
    monkeypatch.setattr(runs, "_new_run_id", lambda _now: next(ids))
    second = record_run(s3_config, "room1", "ada", {"test_accuracy": 0.9})
    assert second.run_id != first.run_id
    stored = list_runs(s3_config, "room1", "ada").runs
    assert {r.test_accuracy for r in stored} == {0.1, 0.9}


# ------------------------------------------------------------------------------------------ leaderboard


def _room(cfg: S3Config, room: str = "room1") -> None:
    rows = [
        ("alice", 0.95, 0.90), ("alice", 0.97, 0.70),
        ("bob", 0.92, 0.80),
        ("carol", 0.99, 0.80),  # same best score as bob, better accuracy: ranked above bob
        ("dave", None, None),  # a failed run: listed, unranked
    ]
    for who, acc, pad in rows:
        state = "Failed" if acc is None else "Succeeded"
        record_run(cfg, room, who, {"test_accuracy": acc, "drawing_pad_score": pad, "state": state,
                                    "job_name": f"mnist-{who}-x", "digit_set": "offline-50-s20180808"})


def test_leaderboard_ranks_by_best_drawing_pad_score(s3_config: S3Config) -> None:
    _room(s3_config)
    board = Leaderboard(s3_config, "room1", rank_reported=True)
    board.refresh()
    table = board.standings()
    assert [(s.rank, s.participant) for s in table] == [(1, "alice"), (2, "carol"), (3, "bob"), (None, "dave")]
    assert table[0].best_score == 0.90 and table[0].best_test_accuracy == 0.97 and table[0].runs == 2
    assert table[-1].last_state == "Failed"
    assert board.refresh_s is not None and board.refresh_s >= 0 and board.refreshed_at
    assert board.summary().startswith("5 runs from 4 participants in ")
    text = board.format_table()
    assert text.splitlines()[1].split()[:2] == ["1", "alice"]
    # Scores made on another digit set are not ranked against this one.
    other = Leaderboard(s3_config, "room1", digit_set="official-50-s1", rank_reported=True)
    other.refresh()
    assert all(s.rank is None for s in other.standings())


def test_participant_view_shows_only_aggregates_of_others(s3_config: S3Config) -> None:
    _room(s3_config)
    board = Leaderboard(s3_config, "room1", rank_reported=True)
    board.refresh()
    view = board.participant_view("bob")
    assert [r.participant for r in view.runs] == ["bob"]
    assert view.rank == 3 and view.of == 3 and view.best_score == 0.80
    assert view.others.participants == 3 and view.others.runs == 4 and view.others.scored == 2
    assert view.others.best_score == 0.90 and view.others.median_best_score == statistics.median([0.90, 0.80])
    rendered = json.dumps(view.to_dict()) + view.to_html() + repr(view)
    for other in ("alice", "carol", "dave"):
        assert other not in rendered, f"{other}'s name leaked into bob's view"
    assert "bob" in rendered


def test_leaderboard_keeps_last_data_when_the_store_fails(s3_config: S3Config) -> None:
    _room(s3_config)
    board = Leaderboard(s3_config, "room1", rank_reported=True)
    board.refresh()
    board.cfg = replace(s3_config, bucket="no-such-bucket-here")
    board._client = None
    board.refresh()
    assert board.error and "no-such-bucket-here" in board.error
    assert len(board.runs()) == 5  # still showing the last good read


def test_check_results_reach_the_teachers_grid(s3_config: S3Config, tmp_path: Path) -> None:
    from mnistkit.workshop.exercises import CheckResult

    alice = Workspace(s3_config, "room1", "alice", tmp_path)
    bob = Workspace(s3_config, "room1", "bob", tmp_path)
    alice.record_check(CheckResult(False, "0-255", "divide by 255", "data"))
    alice.record_check(CheckResult(True, "fine", "", "data"))  # the latest result wins
    alice.record_check(CheckResult(False, "not centred", "centre it", "preprocess"))
    bob.record_run({"test_accuracy": 0.5})
    board = Leaderboard(s3_config, "room1", rank_reported=True)
    board.refresh()
    assert board.check_grid() == {"alice": {"data": True, "preprocess": False}, "bob": {}}


# ------------------------------------------------------------------------------------------------ panels


def test_instructor_panel_renders_runs_board_and_checks(s3_config: S3Config) -> None:
    from mnistkit.workshop.panel import InstructorPanel, ParticipantPanel

    _room(s3_config)
    panel = InstructorPanel(leaderboard=Leaderboard(s3_config, "room1", rank_reported=True))
    assert "5 runs from 4 participants" in panel.timing.value
    board = panel.board.value
    assert board.index("alice") < board.index("carol") < board.index("bob") < board.index("dave")
    assert panel.runs.value.count("<tr>") == 1 + 5
    assert "0.970" in panel.runs.value and "Failed" in panel.runs.value
    record_run(s3_config, "room1", "eve", {"test_accuracy": 0.5, "drawing_pad_score": 0.99})
    panel.refresh_button.click()
    assert "6 runs from 5 participants" in panel.timing.value
    assert panel.board.value.index("eve") < panel.board.value.index("alice")
    mine = ParticipantPanel(panel.leaderboard, "dave")
    assert "dave" in mine.view.value and all(n not in mine.view.value for n in ("alice", "bob", "carol", "eve"))


# ------------------------------------------------------------------------------------------ a full room


def test_a_room_of_thirty_writes_at_once_and_the_panel_sees_every_run(s3_config: S3Config, tmp_path: Path) -> None:
    from mnistkit.workshop.panel import InstructorPanel

    n = 30  # one boto3 client shared by all (thread-safe): 30 writers hit the server at once either way
    people = [f"p{i:02d}-{name}" for i, name in enumerate(["ada", "bob", "cy"] * 10)]
    barrier = threading.Barrier(n + 1)
    written: list[RunRecord] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def participant(name: str, i: int) -> None:
        try:
            ws = Workspace(s3_config, "room30", name, tmp_path)
            barrier.wait(timeout=30)
            rec = ws.record_run({"job_name": ws.job_name(), "test_accuracy": 0.5 + i / 100,
                                 "drawing_pad_score": (i % 10) / 10, "digit_set": "offline-50-s20180808"})
            with lock:
                written.append(rec)
        except BaseException as exc:  # noqa: BLE001 - reported below
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=participant, args=(name, i)) for i, name in enumerate(people)]
    for t in threads:
        t.start()
    board = Leaderboard(s3_config, "room30", rank_reported=True)
    panel = InstructorPanel(leaderboard=board, refresh=False)
    barrier.wait(timeout=30)
    panel.refresh()  # the instructor refreshes while the room is writing: must not fail
    assert not board.error
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    t0 = time.monotonic()
    panel.refresh()
    refresh_s = time.monotonic() - t0
    listed = board.runs()
    keys = [r.key for r in written]
    collisions = len(keys) - len(set(keys)) + (len(written) - len(listed))
    print(f"FIGURE workshop runs_listed={len(listed)}/{n} collisions={collisions} refresh_s={refresh_s:.2f}")
    assert len(listed) == n and collisions == 0
    assert {r.participant for r in listed} == set(people)
    assert {r.run_id for r in listed} == {r.run_id for r in written}
    assert all(r.job_name.startswith(f"mnist-{r.participant}-") for r in listed)  # job names carry the user
    assert f"{n} runs from {n} participants" in panel.timing.value
    assert [s.best_score for s in board.standings()[:3]] == [0.9, 0.9, 0.9]
    view = board.participant_view(people[0])
    assert view.others.participants == n - 1
    assert all(p not in view.to_html() for p in people[1:])


# -------------------------------------------------------------------------------------------------- hub


def test_hub_context_reads_namespace_user_and_s3(tmp_path: Path) -> None:
    from mnistkit.workshop.hub import hub_context

    ns = tmp_path / "namespace"
    ns.write_text("kubeflow-ada\n")
    env = {"JUPYTERHUB_USER": "Ada.L", "MNISTKIT_WORKSHOP_ROOM": "room1", "KUBERNETES_SERVICE_HOST": "10.0.0.1",
           "BUCKET_NAME": "mnist", "AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "s3cr3t-value"}
    ctx = hub_context(env, str(ns))
    assert ctx.in_hub and ctx.in_cluster and ctx.namespace == "kubeflow-ada" and ctx.s3_configured
    assert ctx.participant.startswith("ada-l-") and ctx.room == "room1" and not ctx.problems
    assert "s3cr3t-value" not in str(ctx) + repr(ctx)
    bare = hub_context({"JUPYTERHUB_USER": "ada", "MNISTKIT_WORKSHOP_ROOM": "Bad Room"}, str(tmp_path / "none"))
    assert not bare.in_cluster and bare.namespace == "" and not bare.s3_configured
    assert any("room" in p for p in bare.problems) and any("PodDefault" in p for p in bare.problems)


def test_record_job_reads_state_accuracy_and_scores_the_model(s3_config: S3Config, tmp_path: Path) -> None:
    from mnistkit.config import TrainConfig
    from mnistkit.engines.base import JobState
    from mnistkit.workshop.digits import fixed_digit_set

    digits = fixed_digit_set()
    answers = {digits.images[i].tobytes(): int(digits.labels[i]) for i in range(len(digits))}

    class FakeJob:
        name = "mnist-ada-20260101-000000-abcd"
        config = TrainConfig(train_steps=7, model_type="small")

        def __init__(self, state: JobState, result: dict) -> None:
            self._state, self._result = state, result

        def state(self) -> JobState:
            return self._state

        def result(self) -> dict:
            return self._result

    ws = Workspace(s3_config, "room1", "ada", tmp_path)
    perfect = lambda images: [answers[im.astype("float32").tobytes()] for im in images]  # noqa: E731
    done = ws.record_job(FakeJob(JobState.SUCCEEDED, {"test_accuracy": 0.93, "export": "/x/export/mnist/1",
                                                      "version": 1}), model=perfect)
    assert (done.state, done.test_accuracy, done.drawing_pad_score, done.digit_set) == ("Succeeded", 0.93, 1.0, digits.id)
    assert done.job_name == FakeJob.name and done.extra["train_steps"] == 7 and done.extra["export"] == "/x/export/mnist/1"
    failed = ws.record_job(FakeJob(JobState.FAILED, {}), model=perfect)
    assert failed.state == "Failed" and failed.drawing_pad_score is None
    assert [r.state for r in list_runs(s3_config, "room1", "ada").runs] == ["Succeeded", "Failed"]


def test_teacher_checks_every_participants_latest_model(s3_config: S3Config) -> None:
    from mnistkit.workshop.digits import fixed_digit_set

    digits = fixed_digit_set()
    answers = {digits.images[i].tobytes(): int(digits.labels[i]) for i in range(len(digits))}
    models = {
        "/exports/alice/1": lambda images: [answers[im.astype("float32").tobytes()] for im in images],
        "/exports/bob/1": lambda images: [3] * len(images),
    }
    record_run(s3_config, "room1", "alice", {"test_accuracy": 0.9, "export": "/exports/alice/1"})
    record_run(s3_config, "room1", "bob", {"test_accuracy": 0.2, "export": "/exports/bob/1"})
    record_run(s3_config, "room1", "carol", {"state": "Failed"})
    record_run(s3_config, "room1", "dave", {"test_accuracy": 0.9, "export": "/exports/gone/1"})
    board = Leaderboard(s3_config, "room1", rank_reported=True)
    board.refresh()

    def load(export: str):  # noqa: ANN202
        return models[export]  # KeyError for dave's export: reported, not raised

    results = board.check_models(load)
    assert results["alice"].passed and "50/50" in results["alice"].message
    assert not results["bob"].passed and "answers 3" in results["bob"].message
    assert not results["carol"].passed and "no exported model" in results["carol"].message
    assert not results["dave"].passed and "could not load /exports/gone/1" in results["dave"].message


def test_workshop_cli_leaderboard_reset_and_whoami(
    s3_env: S3Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mnistkit.cli import main

    _room(s3_env)
    monkeypatch.setenv("MNISTKIT_WORKSHOP_ROOM", "room1")
    monkeypatch.setenv("MNISTKIT_WORKSHOP_HOME", str(tmp_path))
    monkeypatch.setenv("JUPYTERHUB_USER", "bob")
    assert main(["workshop", "leaderboard", "--rank-reported"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].split()[:2] == ["1", "alice"] and "5 runs from 4 participants" in out
    assert main(["workshop", "leaderboard", "--as", "bob", "--rank-reported"]) == 0
    out = capsys.readouterr().out
    assert "bob: best score 0.8, rank 3 of 3" in out and "alice" not in out and "carol" not in out

    assert main(["workshop", "reset"]) == 0  # without --yes: says what it would do, does nothing
    assert "would delete everything under" in capsys.readouterr().out
    assert len(list_runs(s3_env, "room1", "bob").runs) == 1
    assert main(["workshop", "reset", "--yes"]) == 0
    assert "deleted 1 objects" in capsys.readouterr().out
    assert list_runs(s3_env, "room1", "bob").runs == () and len(list_runs(s3_env, "room1").runs) == 4

    assert main(["workshop", "whoami"]) == 0
    out = capsys.readouterr().out
    assert "participant: bob" in out and "room:        room1" in out and s3_env.secret_access_key not in out
    assert main(["workshop", "leaderboard", "--room", "Bad Room"]) == 1
    assert "room" in capsys.readouterr().err


def test_local_export_copies_an_s3_export_once(s3_config: S3Config, tmp_path: Path) -> None:
    ws = Workspace(s3_config, "room1", "ada", tmp_path)
    base = "workshop/room1/ada/models/j1/export/mnist/3"
    _put(s3_config, f"{base}/saved_model.pb", b"pb")
    _put(s3_config, f"{base}/variables/variables.index", b"idx")
    local = Path(ws.local_export(f"s3://{s3_config.bucket}/{base}"))
    assert local.is_relative_to(ws.local_dir)
    assert (local / "saved_model.pb").read_bytes() == b"pb" and (local / "variables" / "variables.index").exists()
    (local / "saved_model.pb").write_bytes(b"kept")  # a second call reuses the copy instead of downloading
    assert ws.local_export(f"s3://{s3_config.bucket}/{base}") == str(local)
    assert (local / "saved_model.pb").read_bytes() == b"kept"
    assert ws.local_export("/some/local/export") == "/some/local/export"
