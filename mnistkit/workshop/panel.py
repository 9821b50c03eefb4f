"""``InstructorPanel``: the room on the projector, an ipywidgets view over ``Leaderboard``.

It shows the leaderboard (best drawing-pad score first), every participant's runs with state, test
accuracy and drawing-pad score, the exercise-check grid, and a Refresh button with how long the read
took. ``ParticipantPanel`` is the participant's side: their own runs and only aggregates of others.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import ipywidgets as w

from mnistkit.workshop.leaderboard import Leaderboard, _fmt

if TYPE_CHECKING:
    from mnistkit.config import S3Config

__all__ = ["InstructorPanel", "ParticipantPanel"]

_CHECKS = ("data", "preprocess", "model", "prediction")


class InstructorPanel(w.VBox):
    """``InstructorPanel(s3_config, room)`` or ``InstructorPanel(leaderboard=Leaderboard(...))``."""

    def __init__(
        self,
        cfg: S3Config | None = None,
        room: str | None = None,
        *,
        leaderboard: Leaderboard | None = None,
        refresh: bool = True,
    ) -> None:
        if leaderboard is None:
            from mnistkit.errors import ConfigError

            if cfg is None or room is None:
                raise ConfigError("give InstructorPanel an S3 config and a room, or leaderboard=", field="room")
            leaderboard = Leaderboard(cfg, room)
        self.leaderboard = leaderboard
        self.title = w.HTML(f"<h3>Room {html.escape(leaderboard.room)}</h3>")
        self.refresh_button = w.Button(description="Refresh", icon="refresh", button_style="primary")
        self.timing = w.HTML()
        self.board = w.HTML()
        self.runs = w.HTML()
        self.checks = w.HTML()
        self.error = w.HTML()
        self.tabs = w.Tab([self.board, self.runs, self.checks])
        for i, title in enumerate(("Leaderboard", "All runs", "Exercise checks")):
            self.tabs.set_title(i, title)
        self.refresh_button.on_click(lambda _b: self.refresh())
        super().__init__([self.title, w.HBox([self.refresh_button, self.timing]), self.tabs, self.error])
        self.add_class("mnistkit-instructor-panel")
        leaderboard.on_change(lambda _lb: self._show())
        if refresh:
            self.refresh()
        else:
            self._show()

    def refresh(self) -> None:
        self.refresh_button.disabled = True
        try:
            self.leaderboard.refresh()
        finally:
            self.refresh_button.disabled = False

    def _show(self) -> None:
        lb = self.leaderboard
        self.timing.value = f"<span class='mnistkit-timing'>{html.escape(lb.summary())}</span>"
        rows = "".join(
            f"<tr><td>{s.rank or '–'}</td><td>{html.escape(s.participant)}</td><td>{s.runs}</td>"
            f"<td>{_fmt(s.best_score)}</td><td>{_fmt(s.best_test_accuracy)}</td><td>{html.escape(s.last_state)}</td></tr>"
            for s in lb.standings()
        )
        self.board.value = (
            "<table class='mnistkit-leaderboard'><tr><th>#</th><th>participant</th><th>runs</th>"
            f"<th>best drawing-pad score</th><th>best test accuracy</th><th>last state</th></tr>{rows}</table>"
        )
        runs = "".join(
            f"<tr><td>{html.escape(r.participant)}</td><td>{html.escape(r.created)}</td><td>{html.escape(r.job_name)}</td>"
            f"<td>{html.escape(r.state)}</td><td>{_fmt(r.test_accuracy)}</td><td>{_fmt(r.drawing_pad_score)}</td></tr>"
            for r in sorted(lb.runs(), key=lambda r: (r.participant, r.created))
        )
        self.runs.value = (
            "<table class='mnistkit-runs'><tr><th>participant</th><th>time</th><th>job</th><th>state</th>"
            f"<th>test accuracy</th><th>drawing-pad score</th></tr>{runs}</table>"
        )
        grid = lb.check_grid()
        names = list(_CHECKS) + sorted({c for v in grid.values() for c in v} - set(_CHECKS))
        mark = {True: "✓", False: "✗", None: "·"}
        cells = "".join(
            f"<tr><td>{html.escape(p)}</td>" + "".join(f"<td>{mark[grid[p].get(c)]}</td>" for c in names) + "</tr>"
            for p in sorted(grid)
        )
        header = "".join(f"<th>{html.escape(c)}</th>" for c in names)
        self.checks.value = f"<table class='mnistkit-checks'><tr><th>participant</th>{header}</tr>{cells}</table>"
        self.error.value = (
            f"<span class='mnistkit-error' style='color:#b00'>✗ {html.escape(lb.error)}</span>" if lb.error else ""
        )


class ParticipantPanel(w.VBox):
    """A participant's own runs in full and the rest of the room as aggregates only."""

    def __init__(self, leaderboard: Leaderboard, participant: str, *, refresh: bool = True) -> None:
        self.leaderboard = leaderboard
        self.participant = participant
        self.view = w.HTML()
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.refresh_button.on_click(lambda _b: self.refresh())
        super().__init__([self.refresh_button, self.view])
        if refresh:
            self.refresh()
        else:
            self._show()

    def refresh(self) -> None:
        self.leaderboard.refresh(checks=False)
        self._show()

    def _show(self) -> None:
        self.view.value = self.leaderboard.participant_view(self.participant).to_html()
