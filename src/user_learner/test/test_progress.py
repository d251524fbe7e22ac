"""Progress of long CLI work: plain lines where stderr is a log, a bar on a terminal, nothing when disabled."""

from __future__ import annotations

import io

from user_learner.progress import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_plain_lines_every_period_with_count_unit_and_status() -> None:
    log = io.StringIO()
    with progress("training", 3, "epochs", every_s=0.0, stream=log) as report:
        report.advance()
        report.update(advance=1, status="loss 0.250")
        report.update(3, status="loss 0.125")
    lines = log.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("training: 1/3 epochs 0m0") and lines[0].endswith("s")
    assert lines[1].startswith("training: 2/3 epochs") and lines[1].endswith("loss 0.250")
    assert lines[2].startswith("training: 3/3 epochs") and lines[2].endswith("loss 0.125")

    quiet = io.StringIO()
    with progress("training", 3, "epochs", stream=quiet) as report:  # the default period: not yet
        report.advance()
    with progress("reading", 3, "messages", enabled=False, every_s=0.0, stream=quiet) as report:
        report.advance()
    assert quiet.getvalue() == ""

    unitless = io.StringIO()
    with progress("episodes", 3, every_s=0.0, stream=unitless) as report:
        report.update(2, status="success(20)=0.50")
    assert unitless.getvalue().startswith("episodes: 2/3 0m") and unitless.getvalue().endswith("s success(20)=0.50\n")


def test_a_terminal_gets_a_bar_not_lines() -> None:
    tty = Terminal()
    with progress("training", 2, "epochs", every_s=0.0, stream=tty) as report:
        report.advance()
        report.advance()
    assert tty.getvalue() and "training: 1/2" not in tty.getvalue()
    assert report.completed == 2
