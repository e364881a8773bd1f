"""The `envdesk` console script: the app when no command is given, the command line otherwise."""
from __future__ import annotations

import sys

INSTALL_OPTION = "--install-desktop-entry"  # Linux: add EnvDesk to the applications menu (desktop_entry.py)
REMOVE_OPTION = "--remove-desktop-entry"


def main(argv: list[str] | None = None) -> int:
    """Open the app (honouring --config-dir) when no subcommand is given; else run the command line.

    The command line is imported without Qt, so it works on a machine with no display.
    `--install-desktop-entry` and `--remove-desktop-entry` (Linux) change the applications menu.
    """
    from envdesk.cli import main as cli_main, parse_app_options

    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) == 1 and args[0] in (INSTALL_OPTION, REMOVE_OPTION):
        from envdesk.desktop_entry import main as desktop_entry_main
        return desktop_entry_main(remove_entry=args[0] == REMOVE_OPTION)
    app_options = parse_app_options(args)
    if app_options is None:
        return cli_main(args)
    from envdesk.display import gui_problem, import_problem

    problem = gui_problem()
    if problem is None:
        try:
            from envdesk.gui.app import run_app
        except ImportError as error:  # e.g. libEGL.so.1 missing: PySide6's own modules fail to load
            problem = import_problem(error)
    if problem is not None:
        print(f"envdesk: {problem}", file=sys.stderr)
        return 1
    return run_app(config_dir=app_options.config_dir)


if __name__ == "__main__":
    sys.exit(main())
