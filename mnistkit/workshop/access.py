"""Per-participant S3 access for a workshop room: each participant's keys write only their own prefix.

Without this everyone shares one set of keys, and isolation exists only in the client: anyone can delete
another's work, write run records under any prefix, or overwrite ``_shared/data``. Here each participant
gets an IAM user (AWS, MinIO, or the embedded moto server, which enforces IAM policies once its
unauthenticated set-up is over) with a policy that allows:

* read, write and delete under ``workshop/<room>/<participant>/``;
* read under ``workshop/<room>/_shared/`` (the dataset the instructor uploaded), never write;
* listing the bucket (S3 cannot limit ``ListBucket`` to a prefix without a ``Condition`` some stores ignore;
  names and sizes are visible, contents are not).

The instructor's policy allows everything under ``workshop/<room>/``. ``participant_policy``/``instructor_policy``
return the policy JSON (``mnistkit workshop prepare --participants`` writes it for MinIO's ``mc admin policy
create`` and AWS's ``aws iam put-user-policy``); ``create_users`` creates the users and keys through the IAM API.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnistkit.workshop.names import SHARED_DIR, validate_participant
from mnistkit.workshop.runs import participant_prefix, room_prefix

if TYPE_CHECKING:
    from mnistkit._types import Boto3Client

__all__ = ["INSTRUCTOR", "Credentials", "create_users", "instructor_policy", "participant_policy", "write_access_kit"]

INSTRUCTOR = "instructor"
_OBJECT_RW = [
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
]


def _bucket_list(bucket: str) -> dict[str, Any]:
    return {
        "Effect": "Allow",
        "Action": ["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"],
        "Resource": [f"arn:aws:s3:::{bucket}"],
    }


def participant_policy(bucket: str, room: str, participant: str) -> dict[str, Any]:
    """The IAM policy of one participant: their own prefix read-write, the room's ``_shared/`` read-only."""
    own = participant_prefix(room, validate_participant(participant))
    shared = f"{room_prefix(room)}{SHARED_DIR}/"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": _OBJECT_RW, "Resource": [f"arn:aws:s3:::{bucket}/{own}*"]},
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [f"arn:aws:s3:::{bucket}/{shared}*"]},
            _bucket_list(bucket),
        ],
    }


def instructor_policy(bucket: str, room: str) -> dict[str, Any]:
    """Everything under the room's prefix (uploading ``_shared/``, reading every participant's work)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [*_OBJECT_RW, "s3:PutObjectTagging"],
                "Resource": [f"arn:aws:s3:::{bucket}/{room_prefix(room)}*"],
            },
            _bucket_list(bucket),
        ],
    }


@dataclass(frozen=True)
class Credentials:
    """One user's keys; ``repr`` masks them (never print the secret)."""

    user: str
    access_key_id: str
    secret_access_key: str

    def __repr__(self) -> str:
        from mnistkit.config import mask_key_id

        return f"Credentials(user={self.user!r}, access_key_id={mask_key_id(self.access_key_id)!r}, secret='***')"


def create_users(
    iam: Boto3Client, bucket: str, room: str, participants: Sequence[str], *, instructor: bool = True
) -> dict[str, Credentials]:
    """Create one IAM user with its policy and access key per participant (and the instructor) through
    ``iam`` (a boto3 IAM client with admin rights: AWS, or the embedded server during its set-up)."""
    import json

    users = {p: participant_policy(bucket, room, p) for p in participants}
    if instructor:
        users[INSTRUCTOR] = instructor_policy(bucket, room)
    out = {}
    for name, policy in users.items():
        user = f"mnistkit-{room}-{name}"
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="mnistkit-workshop", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        out[name] = Credentials(user, key["AccessKeyId"], key["SecretAccessKey"])
    return out


_README = """Per-participant S3 access for room {room} in bucket {bucket}
Each participant's policy (policies/<name>.json) allows their own prefix workshop/{room}/<name>/ and reading
workshop/{room}/_shared/; policies/{instructor}.json allows the whole room. Hand each participant only their keys
(as AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in their notebook's environment), never the instructor's.

MinIO (mc alias set room http://HOST:9000 ADMIN_KEY ADMIN_SECRET), for each NAME:
  mc admin user add room NAME SECRET_OF_AT_LEAST_8_CHARS
  mc admin policy create room mnistkit-{room}-NAME policies/NAME.json
  mc admin policy attach room mnistkit-{room}-NAME --user NAME
AWS, for each NAME:
  aws iam create-user --user-name mnistkit-{room}-NAME
  aws iam put-user-policy --user-name mnistkit-{room}-NAME --policy-name mnistkit-workshop \\
      --policy-document file://policies/NAME.json
  aws iam create-access-key --user-name mnistkit-{room}-NAME
The embedded server (one laptop, loopback only): mnistkit.workshop.room_s3.RoomS3Server(bucket, room, names)
creates the users and keys itself and enforces the policies (see docs/workshop.md).
"""


def write_access_kit(
    directory: str | os.PathLike[str], bucket: str, room: str, participants: Sequence[str]
) -> list[Path]:
    """Write ``access/policies/<name>.json`` (each participant and the instructor) and ``access/README.txt``."""
    import json

    root = Path(directory) / "access"
    (root / "policies").mkdir(parents=True, exist_ok=True)
    policies = {p: participant_policy(bucket, room, p) for p in participants}
    policies[INSTRUCTOR] = instructor_policy(bucket, room)
    written = []
    for name, policy in policies.items():
        path = root / "policies" / f"{name}.json"
        path.write_text(json.dumps(policy, indent=2) + "\n")
        written.append(path)
    readme = root / "README.txt"
    readme.write_text(_README.format(room=room, bucket=bucket, instructor=INSTRUCTOR))
    return [*written, readme]
