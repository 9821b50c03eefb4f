"""Checks the workshop notebook calls after each exercise: pass/fail with a sentence and a hint.

Each check looks for the mistakes people actually make (pixels left at 0-255, a flattened ``[n, 784]``
array, one-hot labels, no softmax, dark-on-light drawings, digits not centred) and says how to fix
them, e.g. "your images are 0-255: divide by 255". Nothing here raises at the participant: a check
that cannot even run (wrong type, a model that crashes) fails with the error as its message.

A participant's results can be stored for the teacher with ``Workspace.record_check(result)``; the
instructor's leaderboard shows them as a grid (``Leaderboard.check_grid()``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from mnistkit.workshop.exercises.data import check_data
from mnistkit.workshop.exercises.model import check_model, check_prediction
from mnistkit.workshop.exercises.preprocess import check_preprocess
from mnistkit.workshop.exercises.result import PASS_SCORE, CheckResult

if TYPE_CHECKING:
    from mnistkit._types import UserValue

__all__ = [
    "CheckResult",
    "check_data",
    "check_model",
    "check_prediction",
    "check_preprocess",
    "run_all",
    "report",
    "PASS_SCORE",
]


def run_all(
    *,
    data: object = None,
    labels: object = None,
    model: object = None,
    preprocess: Callable[[np.ndarray], object] | None = None,
    predictions: UserValue = None,
    prediction_labels: object = None,
) -> list[CheckResult]:
    """Every check whose input is given, in the workshop's order."""
    results = []
    if data is not None:
        results.append(check_data(data, labels))
    if preprocess is not None:
        results.append(check_preprocess(preprocess))
    if model is not None:
        results.append(check_model(model))
    if predictions is not None:
        results.append(check_prediction(predictions, prediction_labels))
    return results


def report(results: Sequence[CheckResult]) -> str:
    """One block per check, and a last line counting the passes."""
    lines = [str(r) for r in results]
    lines.append(f"{sum(r.passed for r in results)}/{len(results)} checks passed")
    return "\n".join(lines)
