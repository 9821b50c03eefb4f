"""A check's answer: ``CheckResult`` (passed, what was found, what to try next), and the pass mark."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["CheckResult", "PASS_SCORE", "guard", "fail", "ok"]

PASS_SCORE = 0.5  # drawing-pad accuracy a first model should reach (chance is 0.1)


@dataclass(frozen=True)
class CheckResult:
    """``passed``; ``message`` says what was found; ``hint`` what to try next (empty when nothing to fix)."""

    passed: bool
    message: str
    hint: str = ""
    name: str = ""

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        mark = "PASS" if self.passed else "FAIL"
        hint = f"\n  hint: {self.hint}" if self.hint else ""
        return f"{mark} {self.name}: {self.message}{hint}"

    def _repr_html_(self) -> str:
        colour, mark = ("#2d6a2d", "✓") if self.passed else ("#b00", "✗")
        hint = f"<br><i>hint:</i> {html.escape(self.hint)}" if self.hint else ""
        return (
            f"<div class='mnistkit-check'><b style='color:{colour}'>{mark} {html.escape(self.name)}</b>: "
            f"{html.escape(self.message)}{hint}</div>"
        )


def fail(name: str, message: str, hint: str) -> CheckResult:
    return CheckResult(False, message, hint, name)


def ok(name: str, message: str, hint: str = "") -> CheckResult:
    return CheckResult(True, message, hint, name)


def guard(name: str, fn: Callable[[], CheckResult]) -> CheckResult:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - the participant sees a sentence, the notebook keeps running
        return fail(
            name,
            f"the check could not run: {type(exc).__name__}: {exc}",
            "read the error above; ask a helper if it is not about your code",
        )
