"""The `envdesk` console script: the GUI with no arguments, the command line otherwise."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Start the desktop app when called bare, else hand the arguments to the CLI."""
    args = sys.argv[1:] if argv is None else argv
    if args:
        from envdesk.backend.cli import main as cli_main
        return cli_main(args)
    from envdesk.gui.app import run_app
    return run_app()


if __name__ == "__main__":
    sys.exit(main())
