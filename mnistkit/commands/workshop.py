"""``mnistkit workshop``: prepare a room's offline folder, check a laptop, show the leaderboard, reset a workspace."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("workshop", help="run a workshop: offline folder, laptop check, leaderboard, workspaces")
    wsub = p.add_subparsers(dest="workshop_command", metavar="ACTION")

    pr = wsub.add_parser(
        "prepare",
        help="fill DIR with wheels, the offline dataset, notebooks, README.txt and manifest.json",
        description="Everything a room needs offline in one folder. Downloads wheels with pip (needs the internet "
        "once, on the instructor's machine); the laptops then install with --no-index.",
    )
    pr.add_argument("dir", help="the folder to fill (created if missing)")
    pr.add_argument("--no-wheels", action="store_true", help="skip the pip download (data, notebooks, README only)")
    pr.add_argument("--extras", default="ml,notebook", help="mnistkit extras to download for (default ml,notebook)")
    pr.add_argument("--requirements", default=None, help="download this requirements file instead of mnistkit's deps")
    pr.add_argument("--platform", default=None, help="wheels for another platform, e.g. macosx_11_0_arm64, win_amd64")
    pr.add_argument("--python-version", default=None, help="with --platform: the laptops' Python, e.g. 3.12")
    pr.add_argument("--no-t10k", action="store_true", help="leave out the official test set even when found")
    pr.add_argument("--notebooks", default=None, help="where the notebooks are (default: the checkout's notebooks/)")
    pr.add_argument(
        "--participants",
        default=None,
        help="comma-separated names: also write per-participant S3 policies (access/policies/*.json) "
        "and how to create their keys on MinIO or AWS (access/README.txt)",
    )
    pr.add_argument("--room", default=None, help="with --participants: the room (default $MNISTKIT_WORKSHOP_ROOM)")
    pr.add_argument("--bucket", default=None, help="with --participants: the bucket (default $BUCKET_NAME or mnist)")
    pr.set_defaults(func=prepare)

    ck = wsub.add_parser("check", help="check this laptop: Python, disk, ports, kernel, widgets, folder, TensorFlow")
    ck.add_argument(
        "dir", nargs="?", default=None, help="the workshop folder to verify (default: this folder if it is one)"
    )
    ck.add_argument("--quick", action="store_true", help="skip the TensorFlow import (slow)")
    ck.add_argument("--min-free-gb", type=float, default=4.0, help="free disk needed (default 4)")
    ck.set_defaults(func=check)

    lb = wsub.add_parser("leaderboard", help="print the room's leaderboard from the shared bucket")
    lb.add_argument("--room", default=None, help="room name (default $MNISTKIT_WORKSHOP_ROOM)")
    lb.add_argument(
        "--as",
        dest="as_participant",
        default=None,
        help="show what this participant sees (own runs, aggregates of others)",
    )
    lb.add_argument("--top", type=int, default=None, help="show only the first N")
    lb.add_argument(
        "--verify",
        action="store_true",
        help="score every participant's latest export on held-back digits (sandboxed) and rank by that",
    )
    lb.add_argument(
        "--rank-reported",
        action="store_true",
        help="rank by the scores participants recorded themselves (only where the room trusts itself)",
    )
    lb.set_defaults(func=leaderboard)

    rs = wsub.add_parser("reset", help="delete YOUR workspace (your prefix in the bucket and your local folder)")
    rs.add_argument("--room", default=None, help="room name (default $MNISTKIT_WORKSHOP_ROOM)")
    rs.add_argument("--participant", default=None, help="your name (default from $JUPYTERHUB_USER)")
    rs.add_argument("--yes", action="store_true", help="do it (without --yes, only say what would be deleted)")
    rs.set_defaults(func=reset)

    sc = wsub.add_parser("score", help="drawing-pad score of an exported model (optionally recorded as a run)")
    sc.add_argument("export_dir", help="a SavedModel dir or a base dir of numbered versions")
    sc.add_argument("--record", action="store_true", help="record the score as a run in your workspace")
    sc.add_argument("--room", default=None, help="room name (default $MNISTKIT_WORKSHOP_ROOM)")
    sc.add_argument("--job-name", default="", help="the job that made the model (kept in the record)")
    sc.set_defaults(func=score)

    wh = wsub.add_parser("whoami", help="the participant name, room, namespace and S3 state this notebook has")
    wh.set_defaults(func=whoami)
    p.set_defaults(func=lambda a: p.print_help() or 2)


def prepare(args: argparse.Namespace) -> int:
    from mnistkit.workshop.prepare import prepare as run

    extras = tuple(e.strip() for e in args.extras.split(",") if e.strip())
    report = run(
        args.dir,
        wheels=not args.no_wheels,
        extras=extras,
        requirements=args.requirements,
        platform=args.platform,
        python_version=args.python_version,
        include_t10k=not args.no_t10k,
        notebooks_dir=args.notebooks,
    )
    print(report)
    if args.participants:
        from mnistkit.workshop.access import write_access_kit
        from mnistkit.workshop.names import validate_participant, validate_room

        room = validate_room(args.room or os.environ.get("MNISTKIT_WORKSHOP_ROOM", ""))
        names = [validate_participant(n.strip()) for n in args.participants.split(",") if n.strip()]
        bucket = args.bucket or os.environ.get("BUCKET_NAME") or "mnist"
        written = write_access_kit(args.dir, bucket, room, names)
        print(f"access: {len(written) - 1} policies and README.txt in {Path(args.dir) / 'access'}")
    return 0


def check(args: argparse.Namespace) -> int:
    from mnistkit.workshop.preflight import format_checks, run_checks

    checks = run_checks(args.dir, quick=args.quick, min_free_gb=args.min_free_gb)
    print(format_checks(checks))
    return 1 if any(c.essential_failure for c in checks) else 0


def _workspace(room: str | None, participant: str | None = None):
    from mnistkit.workshop.workspace import Workspace

    return Workspace.from_env(room, participant)


def leaderboard(args: argparse.Namespace) -> int:
    import os

    from mnistkit.config import S3Config
    from mnistkit.errors import ConfigError
    from mnistkit.workshop.leaderboard import Leaderboard

    room = args.room or os.environ.get("MNISTKIT_WORKSHOP_ROOM", "")
    if not room:
        raise ConfigError("no room: pass --room or set MNISTKIT_WORKSHOP_ROOM", field="room")
    board = Leaderboard(S3Config.from_env(), room, rank_reported=args.rank_reported)
    board.refresh(checks=False)
    if board.error:
        print(f"mnistkit: error: {board.error}", file=sys.stderr)
        return 1
    if args.verify:
        board.verify()
        for person, why in sorted(board.verify_errors.items()):
            print(f"not scored: {person}: {why}", file=sys.stderr)
    if args.as_participant:
        view = board.participant_view(args.as_participant)
        print(
            f"{view.participant}: best score {view.best_score if view.best_score is not None else '-'}"
            + (f", rank {view.rank} of {view.of}" if view.rank else "")
        )
        for r in view.runs:
            print(f"  {r.created}  {r.job_name:<40} {r.state:<10} test {r.test_accuracy}  pad {r.drawing_pad_score}")
        o = view.others
        print(f"others: {o.participants} people, {o.runs} runs, median best {o.median_best_score}, best {o.best_score}")
        return 0
    print(board.format_table(args.top))
    print(board.summary())
    return 0


def reset(args: argparse.Namespace) -> int:
    ws = _workspace(args.room, args.participant)
    if not args.yes:
        where = ws.url() if ws.s3 else ws.prefix
        print(f"would delete everything under {where} and {ws.local_dir}; run again with --yes to do it")
        return 0
    print(ws.reset())
    return 0


def score(args: argparse.Namespace) -> int:
    from mnistkit.workshop.digits import drawing_pad_score, fixed_digit_set

    digits = fixed_digit_set()
    value = drawing_pad_score(args.export_dir, digits)
    print(f"drawing-pad score {value:.3f} on {digits.id}")
    if args.record:
        record = _workspace(args.room).record_run(
            {
                "job_name": args.job_name,
                "state": "Succeeded",
                "drawing_pad_score": value,
                "digit_set": digits.id,
                "export": str(args.export_dir),
            }
        )
        print(f"recorded run {record.run_id}")
    return 0


def whoami(args: argparse.Namespace) -> int:
    from mnistkit.workshop.hub import hub_context

    ctx = hub_context()
    print(ctx)
    return 1 if ctx.problems else 0
