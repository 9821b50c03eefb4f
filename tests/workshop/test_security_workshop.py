"""Workshop isolation (issue 16): per-participant keys against an S3 server that enforces IAM policies."""

from __future__ import annotations

import random

import pytest

from mnistkit import s3
from mnistkit.workshop.access import INSTRUCTOR
from mnistkit.workshop.room_s3 import RoomS3Server

N = 30


def _denied(call, codes: tuple[str, ...] = ("AccessDenied", "403")) -> bool:
    from botocore.exceptions import ClientError

    try:
        call()
    except ClientError as exc:
        return exc.response.get("Error", {}).get("Code") in codes
    return False


def test_thirty_participants_cannot_touch_each_others_objects_or_shared() -> None:
    people = [f"p{i:02d}" for i in range(N)]
    with RoomS3Server("room-bucket", "room1", people) as srv:
        b = srv.bucket
        admin = s3.make_client(srv.config_for(INSTRUCTOR), max_attempts=1)
        admin.put_object(Bucket=b, Key="workshop/room1/_shared/data/mnist/train.gz", Body=b"shared data")
        clients = {p: s3.make_client(srv.config_for(p), max_attempts=1) for p in people}
        for p, c in clients.items():  # each writes and reads their own prefix, reads _shared
            c.put_object(Bucket=b, Key=f"workshop/room1/{p}/runs/r.json", Body=p.encode())
            assert c.get_object(Bucket=b, Key=f"workshop/room1/{p}/runs/r.json")["Body"].read() == p.encode()
            assert (
                c.get_object(Bucket=b, Key="workshop/room1/_shared/data/mnist/train.gz")["Body"].read()
                == b"shared data"
            )
        rng = random.Random(16)
        tried = allowed = copy_reads = 0
        for p, c in clients.items():
            others = rng.sample([q for q in people if q != p], 3)
            attempts = [
                lambda c=c: c.put_object(Bucket=b, Key="workshop/room1/_shared/data/mnist/train.gz", Body=b"evil"),
                lambda c=c: c.delete_object(Bucket=b, Key="workshop/room1/_shared/data/mnist/train.gz"),
                lambda c=c: c.put_object(Bucket=b, Key="workshop/room1/ranking.json", Body=b"evil"),
            ]
            for q in others:
                key = f"workshop/room1/{q}/runs/r.json"
                attempts += [
                    lambda key=key, c=c: c.put_object(Bucket=b, Key=key, Body=b"forged"),
                    lambda key=key, c=c: c.put_object(Bucket=b, Key=key.replace("r.json", "new.json"), Body=b"{}"),
                    lambda key=key, c=c: c.delete_object(Bucket=b, Key=key),
                    lambda key=key, c=c: c.get_object(Bucket=b, Key=key),
                    lambda q=q, c=c, p=p: c.copy_object(
                        Bucket=b,
                        Key=f"workshop/room1/{q}/copy.json",
                        CopySource={"Bucket": b, "Key": f"workshop/room1/{p}/runs/r.json"},
                    ),
                ]
            for attempt in attempts:
                tried += 1
                allowed += not _denied(attempt)
            # Reading another's object as a CopyObject source: AWS and MinIO check s3:GetObject on the source,
            # moto (1 call per participant here) does not, so this is counted apart, as moto's gap.
            source = {"Bucket": b, "Key": f"workshop/room1/{others[0]}/runs/r.json"}
            copy_reads += not _denied(
                lambda c=c, p=p, source=source: c.copy_object(
                    Bucket=b, Key=f"workshop/room1/{p}/stolen.json", CopySource=source
                )
            )
        # nothing changed: every record still holds its owner's name, _shared its data
        for p in people:
            assert admin.get_object(Bucket=b, Key=f"workshop/room1/{p}/runs/r.json")["Body"].read() == p.encode()
        assert (
            admin.get_object(Bucket=b, Key="workshop/room1/_shared/data/mnist/train.gz")["Body"].read()
            == b"shared data"
        )
        outsider = s3.make_client(
            srv.config_for(people[0]).__class__(
                bucket=b,
                endpoint_url=srv.endpoint_url,
                access_key_id="mnistkit-local",
                secret_access_key="x",
                use_https=False,
                verify_ssl=False,
            ),
            max_attempts=1,
        )
        unknown_key_denied = _denied(
            lambda: outsider.get_object(Bucket=b, Key="workshop/room1/p00/runs/r.json"),
            ("InvalidAccessKeyId", "AccessDenied", "403"),
        )
    print(
        f"FIGURE workshop_isolation participants={N} cross_attempts={tried} allowed={allowed} "
        f"unknown_key_denied={unknown_key_denied} copy_source_reads_moto_allows={copy_reads}"
    )
    assert allowed == 0 and unknown_key_denied


def test_prepare_writes_policies_that_name_only_the_participants_prefix(tmp_path, capsys) -> None:
    import json

    from mnistkit.cli import main

    assert (
        main(
            [
                "workshop",
                "prepare",
                str(tmp_path),
                "--no-wheels",
                "--participants",
                "ada,bob",
                "--room",
                "room1",
                "--bucket",
                "mnist",
            ]
        )
        == 0
    )
    ada = json.loads((tmp_path / "access" / "policies" / "ada.json").read_text())
    resources = [r for st in ada["Statement"] for r in st["Resource"]]
    assert "arn:aws:s3:::mnist/workshop/room1/ada/*" in resources
    assert not any("bob" in r for r in resources)
    shared = [st for st in ada["Statement"] if "arn:aws:s3:::mnist/workshop/room1/_shared/*" in st["Resource"]]
    assert [st["Action"] for st in shared] == [["s3:GetObject"]]  # _shared is read-only
    assert "mc admin policy create" in (tmp_path / "access" / "README.txt").read_text()
    assert (tmp_path / "access" / "policies" / "instructor.json").exists()


def _export(client, bucket: str, prefix: str, tag: bytes) -> None:
    for name in ("saved_model.pb", "variables/variables.index"):
        client.put_object(Bucket=bucket, Key=f"{prefix}/{name}", Body=tag * 100)


def test_forged_and_oversize_records_do_not_rank(s3_config, monkeypatch) -> None:
    from mnistkit.workshop.leaderboard import Leaderboard
    from mnistkit.workshop.runs import MAX_RECORD_BYTES, record_run

    client = s3.make_client(s3_config)
    b = s3_config.bucket
    true_score = {b"A": 0.96, b"E": 0.10, b"C": 0.90}  # what the instructor's scoring measures per model
    for who, tag, reported in (("ada", b"A", 0.50), ("eve", b"E", 1.0), ("cid", b"C", 0.90)):
        prefix = f"workshop/room1/{who}/models/j/export/mnist/1"
        _export(client, b, prefix, tag)
        record_run(
            s3_config,
            "room1",
            who,
            {
                "test_accuracy": 0.9,
                "drawing_pad_score": reported,
                "export": f"s3://{b}/{prefix}",
                "digit_set": "offline-50-s20180808",
            },
        )
    # mallory claims 1.0 with ada's model (not under her own prefix) and leaves a 1 MB "record"
    record_run(
        s3_config,
        "room1",
        "mallory",
        {
            "test_accuracy": 1.0,
            "drawing_pad_score": 1.0,
            "export": f"s3://{b}/workshop/room1/ada/models/j/export/mnist/1",
        },
    )
    client.put_object(Bucket=b, Key="workshop/room1/mallory/runs/zzz.json", Body=b" " * (MAX_RECORD_BYTES * 16))
    fetched: list[str] = []
    real_get = client.get_object
    monkeypatch.setattr(client, "get_object", lambda **kw: fetched.append(kw["Key"]) or real_get(**kw))
    board = Leaderboard(s3_config, "room1", client=client)
    board.refresh(checks=False)
    assert "workshop/room1/mallory/runs/zzz.json" not in fetched  # skipped by its listed size
    assert any("zzz.json" in e and "skipped" in e for e in board.listing.errors)
    trusting = Leaderboard(s3_config, "room1", rank_reported=True, client=client)  # how it ranked before
    trusting.refresh(checks=False)
    reported_order = [s.participant for s in trusting.standings() if s.rank]
    assert all(s.rank is None for s in board.standings())  # nothing ranks before the instructor has scored

    def scorer(path, digits):
        return true_score[(path / "saved_model.pb").read_bytes()[:1]]

    verified = board.verify(held_back=object(), scorer=scorer)
    ranked = [s.participant for s in board.standings() if s.rank]
    assert verified == {"ada": 0.96, "eve": 0.10, "cid": 0.90} and ranked == ["ada", "cid", "eve"]
    assert "own prefix" in board.verify_errors["mallory"]
    forged_changes = int(ranked != sorted(verified, key=lambda p: -verified[p]))
    print(
        f"FIGURE forged_scores reported_ranking={reported_order} verified_ranking={ranked} "
        f"forged_that_change_ranking={forged_changes} oversize_records_downloaded=0"
    )
    assert set(reported_order[:2]) == {"eve", "mallory"} and forged_changes == 0


def test_scoring_sandbox_has_no_credentials_and_a_time_limit(monkeypatch, tmp_path) -> None:
    from mnistkit.errors import ServingError
    from mnistkit.workshop import scorer
    from mnistkit.workshop.digits import fixed_digit_set

    from helpers.faults import cached_small_saved_model

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "CANARY-secret")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIACANARY0000000000")
    monkeypatch.setenv("KUBECONFIG", "/home/me/.kube/config")
    env = scorer.sandbox_env(str(tmp_path))
    assert not [k for k in env if k.startswith("AWS") or "KUBE" in k or "TOKEN" in k or "SECRET" in k]
    digits = fixed_digit_set()
    score = scorer.score_in_sandbox(cached_small_saved_model(), digits)
    assert 0.0 <= score <= 1.0
    with pytest.raises(ServingError, match="took over"):
        scorer.score_in_sandbox(cached_small_saved_model(), digits, timeout_s=0.5)
    with pytest.raises(ServingError, match="failed"):
        scorer.score_in_sandbox(cached_small_saved_model(), digits, memory_bytes=256 * 1024**2)


def test_a_participant_still_sees_their_own_recorded_score_unranked(s3_config) -> None:
    from mnistkit.workshop.leaderboard import Leaderboard
    from mnistkit.workshop.runs import record_run

    record_run(s3_config, "room2", "ada", {"test_accuracy": 0.9, "drawing_pad_score": 0.7})
    board = Leaderboard(s3_config, "room2")
    board.refresh(checks=False)
    view = board.participant_view("ada")
    assert view.best_score == 0.7 and view.rank is None and "no scored run yet" not in view.to_html()


def test_a_failed_room_server_set_up_leaves_no_process(monkeypatch) -> None:
    from mnistkit.workshop import room_s3

    def boom(*_a, **_k):
        raise RuntimeError("IAM set-up failed")

    monkeypatch.setattr(room_s3, "create_users", boom)
    server = room_s3.RoomS3Server("room-bucket", "room1", ["ada"])
    procs = []
    real_popen = room_s3.subprocess.Popen
    monkeypatch.setattr(room_s3.subprocess, "Popen", lambda *a, **k: procs.append(real_popen(*a, **k)) or procs[-1])
    with pytest.raises(RuntimeError, match="IAM set-up failed"):
        server.start()
    assert len(procs) == 1 and procs[0].poll() is not None  # the moto process is gone
