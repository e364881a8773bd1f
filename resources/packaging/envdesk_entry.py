"""The standalone app's entry point: the `envdesk` command, and `envdesk -` as the bundle's own Python.

In a PyInstaller bundle `sys.executable` is this program, not a Python. EnvDesk runs its helper
on "This computer" as `sys.executable - ARGS` with the script on stdin (see
`LocalRunner.run_python`), so the bundle answers that one form as `python -` does: it runs what
stdin holds as the `__main__` module, on the Python built into the bundle. Every other command
line goes to the `envdesk` console script's own `main`, except `envdesk -m envdesk.backend.keeper ARGS`, the
form in which `envdesk cluster connect` starts the process that keeps a connection (see kept_connection.start).
"""
from __future__ import annotations

import os
import sys

SMOKE_TEST = "ENVDESK_SMOKE_TEST"  # set by tests/test_bundle.py: report what the window shows, then close it


def run_stdin_as_python(args: list[str]) -> None:
    """`python - ARGS`: compile stdin (bytes, so a coding line is honoured as Python does) and run it."""
    source = sys.stdin.buffer.read()
    sys.argv = ["-", *args]
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    exec(compile(source, "<stdin>", "exec"), namespace)


def main() -> int:
    if sys.argv[1:2] == ["-"]:
        run_stdin_as_python(sys.argv[2:])
        return 0
    if sys.argv[1:3] == ["-m", "envdesk.backend.keeper"]:
        from envdesk.backend import keeper
        return keeper.main(sys.argv[3:])
    if os.environ.get(SMOKE_TEST):
        import envdesk_smoke
        envdesk_smoke.arm()
    from envdesk.launch import main as envdesk_main
    return envdesk_main()


if __name__ == "__main__":
    sys.exit(main())
