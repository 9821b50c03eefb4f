"""Workshop isolation (issue 16): per-participant keys against an S3 server that enforces IAM policies."""

from __future__ import annotations

import random

import pytest

from mnistkit import s3
from mnistkit.workshop.access import INSTRUCTOR
from mnistkit.workshop.room_s3 import RoomS3Server

N = 30


def _denied(call, codes: tuple[str, ...] = ("AccessDenied", "403")) -> bool:  # noqa: ANN001
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
            assert c.get_object(Bucket=b, Key="workshop/room1/_shared/data/mnist/train.gz")["Body"].read() == b"shared data"
        rng = random.Random(16)
        tried = allowed = copy_reads = 0
        for p, c in clients.items():
            others = rng.sample([q for q in people if q != p], 3)
            attempts = [
                lambda: c.put_object(Bucket=b, Key="workshop/room1/_shared/data/mnist/train.gz", Body=b"evil"),
                lambda: c.delete_object(Bucket=b, Key="workshop/room1/_shared/data/mnist/train.gz"),
                lambda: c.put_object(Bucket=b, Key="workshop/room1/ranking.json", Body=b"evil"),
            ]
            for q in others:
                key = f"workshop/room1/{q}/runs/r.json"
                attempts += [
                    lambda key=key: c.put_object(Bucket=b, Key=key, Body=b"forged"),
                    lambda key=key: c.put_object(Bucket=b, Key=key.replace("r.json", "new.json"), Body=b"{}"),
                    lambda key=key: c.delete_object(Bucket=b, Key=key),
                    lambda key=key: c.get_object(Bucket=b, Key=key),
                    lambda key=key, q=q: c.copy_object(Bucket=b, Key=f"workshop/room1/{q}/copy.json",
                                                       CopySource={"Bucket": b, "Key": f"workshop/room1/{p}/runs/r.json"}),
                ]
            for attempt in attempts:
                tried += 1
                allowed += not _denied(attempt)
            # Reading another's object as a CopyObject source: AWS and MinIO check s3:GetObject on the source,
            # moto (1 call per participant here) does not, so this is counted apart, as moto's gap.
            copy_reads += not _denied(lambda: c.copy_object(Bucket=b, Key=f"workshop/room1/{p}/stolen.json",
                                                            CopySource={"Bucket": b, "Key": f"workshop/room1/{others[0]}/runs/r.json"}))
        # nothing changed: every record still holds its owner's name, _shared its data
        for p in people:
            assert admin.get_object(Bucket=b, Key=f"workshop/room1/{p}/runs/r.json")["Body"].read() == p.encode()
        assert admin.get_object(Bucket=b, Key="workshop/room1/_shared/data/mnist/train.gz")["Body"].read() == b"shared data"
        outsider = s3.make_client(srv.config_for(people[0]).__class__(
            bucket=b, endpoint_url=srv.endpoint_url, access_key_id="mnistkit-local", secret_access_key="x",
            use_https=False, verify_ssl=False), max_attempts=1)
        unknown_key_denied = _denied(lambda: outsider.get_object(Bucket=b, Key="workshop/room1/p00/runs/r.json"),
                                     ("InvalidAccessKeyId", "AccessDenied", "403"))
    print(f"FIGURE workshop_isolation participants={N} cross_attempts={tried} allowed={allowed} "
          f"unknown_key_denied={unknown_key_denied} copy_source_reads_moto_allows={copy_reads}")
    assert allowed == 0 and unknown_key_denied


def test_prepare_writes_policies_that_name_only_the_participants_prefix(tmp_path, capsys) -> None:  # noqa: ANN001
    import json

    from mnistkit.cli import main

    assert main(["workshop", "prepare", str(tmp_path), "--no-wheels", "--participants", "ada,bob", "--room", "room1",
                 "--bucket", "mnist"]) == 0
    ada = json.loads((tmp_path / "access" / "policies" / "ada.json").read_text())
    resources = [r for st in ada["Statement"] for r in st["Resource"]]
    assert "arn:aws:s3:::mnist/workshop/room1/ada/*" in resources
    assert not any("bob" in r for r in resources)
    shared = [st for st in ada["Statement"] if "arn:aws:s3:::mnist/workshop/room1/_shared/*" in st["Resource"]]
    assert [st["Action"] for st in shared] == [["s3:GetObject"]]  # _shared is read-only
    assert "mc admin policy create" in (tmp_path / "access" / "README.txt").read_text()
    assert (tmp_path / "access" / "policies" / "instructor.json").exists()
