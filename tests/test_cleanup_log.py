"""A clean-up that fails is logged as one plain line on the command line's stderr, never as Python's
'--- Logging error ---' with a traceback (a log call whose %-arguments do not fit its message prints that instead).

The clean-up fails for real: the agent refuses to touch a folder outside the roots the reservation names (one
whose lock it never took is no failure: nothing of it is there). Referees: Python's
own logging, formatting the record with the command line's format without -v (T27: not "WARNING
envdesk.backend.operations.common: …") (an argument mismatch makes it print
'--- Logging error ---' on stderr), and ruff's pylint checks of every log call's arguments (PLE1205, PLE1206)."""
from __future__ import annotations

import io
import logging
import subprocess
import sys

from envdesk.backend.operations.common import Reservation
from envdesk.backend.paths import AppPaths
from envdesk.backend.targets import Session
from envdesk.cli import NOTE_FORMAT
from envdesk_fixtures import ScriptedPrompter, this_computer_with_one_venv


def test_a_failed_clean_up_is_said_in_one_plain_line(tmp_path, capsys):
    config, root = this_computer_with_one_venv(tmp_path)
    env = root / "plain"
    session = Session(AppPaths(config), ScriptedPrompter())
    said = io.StringIO()
    handler = logging.StreamHandler(said)
    handler.setFormatter(logging.Formatter(NOTE_FORMAT))
    logger = logging.getLogger("envdesk")
    logger.addHandler(handler)
    try:
        reservation = Reservation(session.target("local"), str(env), [str(tmp_path / "elsewhere")], "0" * 24, {},
                                  held=True)
        reservation.release()     # not in the roots it names: the agent refuses, the clean-up fails
    finally:
        logger.removeHandler(handler)
        session.close()
    assert reservation.held and reservation.left_behind, reservation
    assert said.getvalue() == f"envdesk: could not clean up {env} on local: {reservation.left_behind}\n", \
        said.getvalue()
    assert "Logging error" not in capsys.readouterr().err


def test_every_log_call_has_the_arguments_its_message_asks_for():
    """ruff's pylint rules for logging calls: too many (PLE1205) or too few (PLE1206) %-arguments."""
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "PLE1205,PLE1206", "backend", "gui"],
                            cwd=root, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]


def test_a_lock_gone_after_begin_answered_is_said_not_taken_for_nothing_made(tmp_path):
    """R22: a release the agent refuses because this token holds no lock there was taken as 'nothing of it was
    made' (right only where begin never answered); a lock removed or taken over after begin answered leaves the
    folder begin made, which is said. Referee: the agent's own refusal, and the folder still there."""
    config, root = this_computer_with_one_venv(tmp_path)
    env = root / "plain"
    session = Session(AppPaths(config), ScriptedPrompter())
    try:
        reservation = Reservation(session.target("local"), str(env), [str(root)], "0" * 24, {"ok": True},
                                  held=True)  # begin answered; its lock is not there (removed by hand, say)
        reservation.release(remove_unfinished=True)
    finally:
        session.close()
    assert reservation.held and reservation.left_behind, reservation
    assert env.is_dir()
