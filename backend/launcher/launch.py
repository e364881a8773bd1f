"""The `envdesk` console script: the app when no command is given, the command line otherwise."""
from __future__ import annotations

import sys

INSTALL_OPTION = "--install-desktop-entry"  # Linux: add EnvDesk to the applications menu (desktop_entry.py)
REMOVE_OPTION = "--remove-desktop-entry"
APP_FLAGS = ("-v", "--verbose")  # the app's own options (see plain_app_options)
CONFIG_DIR_OPTION = "--config-dir"


def plain_app_options(args: list[str]) -> tuple[bool, str | None]:
    """(True, the --config-dir given or None) when `args` are only the app's own options, written plainly
    (`--config-dir DIR`, `--config-dir=DIR`, `-v`), as the command line's parse_app_options reads them; else
    (False, None), and that parser decides. Read without argparse: loading the command line's parser is
    ~15 ms of the window's start."""
    config_dir, rest = None, list(args)
    while rest:
        word = rest.pop(0)
        if word in APP_FLAGS:
            continue
        if word.startswith(CONFIG_DIR_OPTION + "=") and len(word) > len(CONFIG_DIR_OPTION) + 1:
            config_dir = word[len(CONFIG_DIR_OPTION) + 1:]
        elif word == CONFIG_DIR_OPTION and rest and not rest[0].startswith("-"):
            config_dir = rest.pop(0)
        else:
            return False, None
    return True, config_dir


def main(argv: list[str] | None = None) -> int:
    """Open the app (honouring --config-dir) when no subcommand is given; else run the command line.

    The command line is imported without Qt, so it works on a machine with no display.
    `--install-desktop-entry` and `--remove-desktop-entry` (Linux) change the applications menu.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) == 1 and args[0] in (INSTALL_OPTION, REMOVE_OPTION):
        from envdesk.desktop_entry import main as desktop_entry_main
        return desktop_entry_main(remove_entry=args[0] == REMOVE_OPTION)
    opens_app, config_dir = plain_app_options(args)
    if not opens_app:
        import gc
        gc.disable()  # loading the command line makes no garbage: no collection walks it (cli.main turns them on)
        try:
            from envdesk.cli import main as cli_main, named_command, parse_app_options

            app_options = None if named_command(args) is not None else parse_app_options(args)
            if app_options is None:
                return cli_main(args)
        finally:
            gc.enable()
        config_dir = app_options.config_dir
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
    return run_app(config_dir=config_dir)


if __name__ == "__main__":
    sys.exit(main())
