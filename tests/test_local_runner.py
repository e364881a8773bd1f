"""The local runner: streaming, exit status, stdin, cancel and timeouts on this computer."""
from __future__ import annotations

import sys
import threading
import time

import pytest

from envdesk.backend.errors import Cancelled, CommandFailed
from envdesk.backend.local_runner import LocalRunner
from envdesk.backend.runner import CancelToken

PY = sys.executable


def test_lines_stream_in_order_with_exit_status():
    lines = []
    result = LocalRunner().run([PY, "-c", "import sys\nprint('a'); print('b', file=sys.stderr); print('c')\n"
                                          "sys.exit(3)"], on_line=lambda s, text: lines.append((s, text)))
    assert result.exit_status == 3
    assert [line for line in lines if line[0] == "stdout"] == [("stdout", "a"), ("stdout", "c")]
    assert ("stderr", "b") in lines
    with pytest.raises(CommandFailed) as info:
        result.check("The test command")
    assert "b" in info.value.message


def test_arguments_are_never_shell_interpreted(tmp_path):
    canary = tmp_path / "canary"
    result = LocalRunner().run([PY, "-c", "import sys; print(sys.argv[1])", f"$(touch {canary}); `id`"])
    assert result.stdout.strip() == f"$(touch {canary}); `id`"
    assert not canary.exists()


def test_python_script_on_stdin():
    result = LocalRunner().run_python("import sys\nprint('hello', sys.argv[1:])\n", ["x y"])
    assert result.stdout.strip() == "hello ['x y']"


def test_cancel_stops_the_process_tree(tmp_path):
    marker = tmp_path / "still-running"
    finished = tmp_path / "parent-finished"
    child = f"import time; time.sleep(3); open({str(marker)!r}, 'w')"
    script = ("import subprocess, sys, time\n"
              f"subprocess.Popen([sys.executable, '-c', {child!r}])\n"
              f"print('started', flush=True); time.sleep(30); open({str(finished)!r}, 'w')\n")
    token = CancelToken()
    seen = threading.Event()

    def on_line(stream, line):
        if line == "started":
            seen.set()
            token.cancel()

    with pytest.raises(Cancelled):
        LocalRunner().run([PY, "-c", script], on_line=on_line, cancel=token)
    assert seen.is_set()
    assert not finished.exists(), "the cancelled command ran to its end"
    time.sleep(3.5)
    assert not marker.exists(), "a child of the cancelled command kept running"


def test_timeout_stops_the_command():
    with pytest.raises(CommandFailed) as info:
        LocalRunner().run([PY, "-c", "import time; time.sleep(30)"], timeout=0.5)
    assert "did not finish" in info.value.message


def test_a_time_limit_ends_a_command_that_does_not_read_its_input():
    """R10, on this computer: input larger than a pipe holds, to a command that neither reads it nor ends, held
    the wait past its time limit (and past a cancel). The command runs in a thread, so that a hang fails the test
    instead of stopping the run; the time limit's own message is the referee."""
    outcome: list = []

    def run() -> None:
        try:
            LocalRunner().run([PY, "-c", "import time; time.sleep(600)"], stdin=b"x" * 8_000_000, timeout=1)
        except CommandFailed as exc:
            outcome.append(exc)
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(300)  # a hang, not a speed
    assert outcome and "did not finish within 1 seconds" in outcome[0].message, outcome


def test_a_command_that_answers_as_it_reads_gets_all_its_input():
    """10 MB through a copy of stdin to stdout, more than any pipe holds: the copy itself is the referee."""
    import os
    payload = os.urandom(5_000_000).hex()
    copy = "import sys, shutil; shutil.copyfileobj(sys.stdin.buffer, sys.stdout.buffer)"
    echoed = LocalRunner().run([PY, "-c", copy], stdin=payload.encode())
    assert echoed.ok and echoed.stdout == payload
