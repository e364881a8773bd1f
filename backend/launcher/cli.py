"""The `envdesk` command line: the same backend as the app, for scripts and power users.

This module only parses; the subcommands are in commands.py, loaded once a command was given.
"""
from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from typing import TYPE_CHECKING, Any, Callable, Sequence

from envdesk.backend.kinds import FORMATS, KINDS
from envdesk.resources import preset_ids

if TYPE_CHECKING:
    from envdesk.backend.errors import EnvDeskError
    from envdesk.backend.paths import AppPaths
    from envdesk.backend.targets import Session


class _Parser(argparse.ArgumentParser):
    """argparse with plain-language errors (exit status 2, as usage errors should)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        verbs = [verb for action in self._actions if isinstance(action, argparse._SubParsersAction)
                 for verb in action.choices]
        if verbs and message.endswith(("required: verb", "required: group")):  # say what it does, not a dest
            message = f"'{self.prog}' needs what to do: one of {', '.join(verbs)}."
        self.exit(2, f"envdesk: {message}\nTry '{self.prog} --help'.\n")  # the help of the command given

    def only_with(self, option: str, companion: str) -> None:
        """Make `option` a usage error unless `companion` is given too (a --yes with nothing to agree to did
        nothing, silently: a user trial)."""
        self.set_defaults(_only_with=[*(self.get_default("_only_with") or []), (option, companion)])

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[no-untyped-def, override]
        known, rest = super().parse_known_args(args, namespace)
        if rest and not any(isinstance(action, argparse._SubParsersAction) for action in self._actions):
            self.error(f"unrecognized arguments: {' '.join(rest)}")  # with this command's usage, not envdesk's
        for option, companion in getattr(known, "_only_with", None) or []:
            if getattr(known, _dest(option)) and not getattr(known, _dest(companion)):
                self.error(f"{option} goes with {companion}; without it there is nothing for {option} to do.")
        return known, rest


def _dest(option: str) -> str:
    return option.lstrip("-").replace("-", "_")


class _VersionAction(argparse.Action):
    """--version, with the version read from the package metadata only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        from envdesk.backend.about import version
        print(f"envdesk {version()}")
        parser.exit()


class _AppOptionsParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise argparse.ArgumentError(None, message)


def parse_app_options(args: Sequence[str]) -> argparse.Namespace | None:
    """The app's own options when `args` name no subcommand (so the app opens), else None."""
    if not args:
        return argparse.Namespace(config_dir=None, verbose=False)
    parser = _AppOptionsParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    parser.add_argument("--config-dir")
    parser.add_argument("-v", "--verbose", action="store_true")
    try:
        known, rest = parser.parse_known_args(list(args))
    except argparse.ArgumentError:
        return None  # the command line reports the mistake
    return None if rest else known


CLUSTER_HELP = "the cluster's name, as in 'envdesk cluster list' ('local': this computer)"
ENV_HELP = "the environment's name or absolute path"
JSON_HELP = "print JSON for scripts"
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"  # what -v logs on stderr, one line each
NOTE_FORMAT = "envdesk: %(message)s"  # a warning without -v, in the words of the command line's own messages


def build_parser(words: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """Every subcommand with its exact options. Given the command line's words, only the subcommand they name
    plainly (see named_command), which reads them as the whole parser does: building every subcommand takes
    longer (~5 ms) than the rest of parsing a command."""
    named = named_command(words) if words is not None else None
    parser = _Parser(prog="envdesk", description="Manage Python environments on HPC clusters. "
                     "Run without arguments to open the app.")
    parser.add_argument("--version", action=_VersionAction)
    parser.add_argument("--config-dir", metavar="DIR", help="keep settings here instead of the user config folder")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens on stderr")
    parser.add_argument("--install-desktop-entry", action="store_true",
                        help="Linux: add EnvDesk to your applications menu")
    parser.add_argument("--remove-desktop-entry", action="store_true", help="Linux: take it out of the menu again")
    groups = parser.add_subparsers(dest="group", required=True, parser_class=_Parser)
    for name, (help_text, description, verbs) in _GROUPS.items():
        group = groups.add_parser(name, help=help_text, description=description)
        if named is not None and named[0] != name:
            continue  # listed (in usage and help), never parsed with
        if not verbs:
            _disk_options(group)
            continue
        actions = group.add_subparsers(dest="verb", required=True, parser_class=_Parser)
        for verb, add_verb in verbs.items():
            if named is None or named[1] in (None, verb):
                add_verb(actions)
    return parser


def named_command(words: Sequence[str]) -> tuple[str, str | None] | None:
    """(group, verb) of a command line written plainly: the app's own options written out (`--config-dir DIR`,
    `--config-dir=DIR`, `-v`, `--verbose`), then a group and one of its verbs; the verb is None when no verb of the
    group follows it (or the group has none). None for anything else (help, abbreviated or unknown options, a
    mistake): the whole parser reads those."""
    position = 0
    while position < len(words):
        word = words[position]
        if word in ("-v", "--verbose") or word.startswith("--config-dir="):
            position += 1
        elif word == "--config-dir" and position + 1 < len(words) and not words[position + 1].startswith("-"):
            position += 2
        else:
            break
    group = words[position] if position < len(words) else None
    if group not in _GROUPS:
        return None
    verb = words[position + 1] if position + 1 < len(words) else None
    return group, verb if verb in _GROUPS[group][2] else None


def _cluster_add(verbs: Any) -> None:
    add = verbs.add_parser("add", help="add a cluster")
    add.add_argument("name", help="a short name for it, used in every other command")
    add.add_argument("--host", help="the login node; with --preset, also one of its login nodes by name "
                                     "(e.g. narval)")
    add.add_argument("--port", type=int, help="the SSH port (default: as ~/.ssh/config says, else 22)")
    add.add_argument("--user", help="your user name there (default: as ~/.ssh/config says, else yours here)")
    add.add_argument("--identity-file", metavar="PATH", help="the SSH key to log in with")
    _login_option(add)
    add.add_argument("--jump", action="append", metavar="[USER@]HOST[:PORT]",
                     help="a host to go through first (ProxyJump); repeat for several, in order")
    add.add_argument("--env-root", action="append", metavar="DIR",
                     help="a folder holding environments there (repeat for several; default ~/venvs)")
    add.add_argument("--pip-arg", action="append", metavar="ARG",
                     help="an option every install there is given, such as --index-url URL (repeat for several)")
    add.add_argument("--account", metavar="ALLOCATION",
                     help="the Slurm account batch scripts use (e.g. def-yourpi on the Alliance's clusters)")
    add.add_argument("--preset", metavar="ID", help="fill in what a cluster family needs: one of "
                     + ", ".join(preset_ids()))
    _build_options(add)
    _conda_options(add)
    add.set_defaults(handler="cluster_add")


def _cluster_edit(verbs: Any) -> None:
    edit = verbs.add_parser("edit", help="change how a cluster logs you in, its Slurm account and where its "
                                         "builds run",
                            description="Change a saved cluster: how it logs you in (--login, --identity-file), "
                                        "the folders searched for environments (--env-root, --no-env-root), "
                                        "the account its jobs use, and whether environments are built on a "
                                        "compute node (a Slurm job) rather than on the login node. An empty value "
                                        "('') clears a setting.")
    edit.add_argument("name", help="the cluster's name")
    edit.add_argument("--account", metavar="ALLOCATION", help="the Slurm account jobs and batch scripts use")
    edit.add_argument("--identity-file", metavar="PATH", help="the SSH key to log in with ('' for the ones "
                                                              "~/.ssh/config and your SSH agent offer)")
    _login_option(edit)
    edit.add_argument("--env-root", action="append", metavar="DIR",
                      help="add a folder holding environments there, such as a lab's shared folder (repeat for "
                           "several; the usual ~/venvs ... are searched only while none is given)")
    edit.add_argument("--no-env-root", action="append", metavar="DIR",
                      help="stop searching this folder for environments (repeat for several)")
    _build_options(edit)
    _conda_options(edit)
    edit.add_argument("--build-on-login-node", action="store_true",
                      help="build on the login node, even where the cluster's preset suggests a compute node")
    edit.set_defaults(handler="cluster_edit")


def _cluster_list(verbs: Any) -> None:
    listing = verbs.add_parser("list", help="list clusters")
    listing.add_argument("--json", action="store_true", help=JSON_HELP)
    listing.set_defaults(handler="cluster_list")


def _cluster_named(verb: str, text: str) -> Callable[[Any], Any]:
    """cluster remove, trust and test: a verb on one cluster, given by name."""
    def add_verb(verbs: Any) -> Any:
        sub = verbs.add_parser(verb, help=text)
        sub.add_argument("name")
        sub.set_defaults(handler=f"cluster_{verb}")
        return sub
    return add_verb


def _cluster_connect(verbs: Any) -> None:
    sub = verbs.add_parser(
        "connect", help="log in once and keep the connection for the commands that follow",
        description="Log in to a cluster (two-factor code and all) and keep that connection open in the background: "
                    "the envdesk commands that follow, and the app, use it instead of logging in again, until it has "
                    "been unused for a while or `envdesk cluster disconnect NAME` ends it. As OpenSSH's "
                    "ControlPersist, it serves only you: its key and one-off password are in a file only you can "
                    "read.")
    sub.add_argument("name")
    sub.add_argument("--idle", type=float, default=30.0, metavar="MINUTES",
                     help="end it once it has been unused this long (default 30)")
    sub.set_defaults(handler="cluster_connect")


def _cluster_trust(verbs: Any) -> None:
    sub = _cluster_named("trust", "check and trust a cluster's host key")(verbs)
    sub.add_argument("--yes", action="store_true", help="trust without asking")
    sub.add_argument("--replace", action="store_true",
                     help="replace a recorded key that changed (only after checking with the cluster)")
    sub.add_argument("--despite-mismatch", action="store_true",
                     help="trust a key that differs from the fingerprints the site publishes (only after "
                          "the site announced a new one)")


def _key_create(verbs: Any) -> None:
    make = verbs.add_parser("create", help="make an ed25519 key (never over an existing file)")
    make.add_argument("--file", metavar="PATH", help="where to write it (default ~/.ssh/id_ed25519)")
    make.add_argument("--passphrase", action="store_true", help="ask for a passphrase to protect the key")
    make.add_argument("--remember", action="store_true", help="keep the passphrase in the system keyring")
    make.add_argument("--preset", metavar="ID", help="say where that site registers public keys")
    make.set_defaults(handler="key_create")


def _key_status(verbs: Any) -> None:
    status = verbs.add_parser("status", help="list the SSH keys EnvDesk can use")
    status.add_argument("--json", action="store_true", help=JSON_HELP)
    status.set_defaults(handler="key_status")


def _quiet_option(parser: argparse.ArgumentParser) -> None:
    """-q: the commands that run installers show their steps, not the installers' output."""
    parser.add_argument("-q", "--quiet", action="store_true", help="show steps only, not command output")


def _env_list(verbs: Any) -> None:
    env_listing = verbs.add_parser("list", help="list the environments of a cluster ('local': this computer)")
    env_listing.add_argument("cluster", help=CLUSTER_HELP)
    env_listing.add_argument("--json", action="store_true", help=JSON_HELP)
    env_listing.set_defaults(handler="env_list")


def _env_show(verbs: Any) -> None:
    show = verbs.add_parser("show", help="show one environment's packages")
    show.add_argument("cluster", help=CLUSTER_HELP)
    show.add_argument("env", help=ENV_HELP)
    show.add_argument("--json", action="store_true", help=JSON_HELP)
    show.set_defaults(handler="env_show")


def _env_diff(verbs: Any) -> None:
    diff = verbs.add_parser(
        "diff", help="compare two environments package by package (on one cluster or two)",
        description="Compare two environments package by package: what only A has, what only B has, and what "
                    "both have at another version or from another source (editable, URL/VCS, conda). Exit "
                    "status 0 when they were compared, whether or not they differ (--json's 'identical' says "
                    "which); 1 when something went wrong; 2 for a usage error.")
    diff.add_argument("a", metavar="A", help="TARGET:ENV, e.g. local:myenv ('local' is this computer) or "
                                             "alpha:/project/me/envs/x")
    diff.add_argument("b", metavar="B", help="TARGET:ENV, the environment compared with A")
    diff.add_argument("--json", action="store_true", help="the differences as one JSON object")
    diff.add_argument("--make-like", action="store_true",
                      help="then make B like A in one update of B (a snapshot of B is saved first, so "
                           "'envdesk env revert' undoes it); packages that cannot be pinned by version are left "
                           "alone and listed")
    diff.add_argument("--yes", action="store_true", help="with --make-like: change B without asking")
    diff.only_with("--yes", "--make-like")
    _quiet_option(diff)
    diff.set_defaults(handler="env_diff")


def _env_create(verbs: Any) -> None:
    create = verbs.add_parser("create", help="create an environment")
    create.add_argument("cluster", help=CLUSTER_HELP)
    create.add_argument("name", help="the new environment's name (its folder's)")
    create.add_argument("--kind", choices=KINDS, help="what makes it (default: the kind the cluster's preset "
                        "names, else uv where the cluster has it, else venv)")
    create.add_argument("--python", metavar="VERSION",
                        help="the Python version, such as 3.11 (default: the newest there)")
    create.add_argument("--module", action="append", metavar="MODULE",
                        help="a module to load for it, such as python/3.11.5 (repeat for several; default: "
                             "chosen for --python)")
    create.add_argument("--system-site-packages", action="store_true",
                        help="let it see the packages of its Python's own installation (a module's numpy, say)")
    create.add_argument("--root", metavar="DIR", help="the folder to make it in (default: the first of the cluster's)")
    create.add_argument("--package", action="append", metavar="SPEC",
                        help="a package to install, such as numpy or 'numpy>=1.26' (repeat for several)")
    create.add_argument("--requirements", metavar="FILE",
                        help="install the packages a requirements file lists ('-': read it from standard input)")
    create.add_argument("--jupyter-kernel", action="store_true",
                        help="also install ipykernel and register the environment as a Jupyter kernel (see kernel add)")
    create.set_defaults(handler="env_create")
    _quiet_option(create)


def _env_update(verbs: Any) -> None:
    update = verbs.add_parser("update", help="add, remove or upgrade packages")
    update.add_argument("cluster", help=CLUSTER_HELP)
    update.add_argument("env", help=ENV_HELP)
    update.add_argument("--add", action="append", metavar="SPEC",
                        help="install a package, such as 'numpy>=1.26' (repeat for several)")
    update.add_argument("--remove", action="append", metavar="NAME", help="uninstall a package (repeat for several)")
    update.add_argument("--upgrade", action="append", metavar="NAME",
                        help="upgrade a package to its newest version (repeat for several)")
    update.add_argument("--upgrade-all", action="store_true", help="upgrade every package installed with pip or uv")
    update.set_defaults(handler="env_update")
    _quiet_option(update)


def _env_history(verbs: Any) -> None:
    history = verbs.add_parser("history", help="list the snapshots taken before each change")
    history.add_argument("cluster", help=CLUSTER_HELP)
    history.add_argument("env", help=ENV_HELP)
    history.add_argument("--json", action="store_true", help=JSON_HELP)
    history.set_defaults(handler="env_history")


def _env_revert(verbs: Any) -> None:
    revert = verbs.add_parser("revert", help="go back to a snapshot")
    revert.add_argument("cluster", help=CLUSTER_HELP)
    revert.add_argument("env", help=ENV_HELP)
    revert.add_argument("snapshot", help="the snapshot's id, as 'envdesk env history' lists it")
    revert.set_defaults(handler="env_revert")
    _quiet_option(revert)


def _env_jobscript(verbs: Any) -> None:
    jobscript = verbs.add_parser(
        "jobscript", help="write a ready Slurm batch script (job.sh) that runs a Python program in an environment",
        description="Write a batch script for sbatch: #SBATCH lines (with the cluster's account), the "
                    "environment's modules, its activation, and 'python my_script.py' to replace with your "
                    "program. Printed unless -o.")
    jobscript.add_argument("cluster", help=CLUSTER_HELP)
    jobscript.add_argument("env", help=ENV_HELP)
    jobscript.add_argument("-o", "--output", metavar="FILE",
                           help="write it to FILE (e.g. job.sh), made executable ('-': print it)")
    jobscript.set_defaults(handler="env_jobscript")


def _env_export(verbs: Any) -> None:
    export = verbs.add_parser("export", help="export an environment (stdout unless -o)")
    export.add_argument("cluster", help=CLUSTER_HELP)
    export.add_argument("env", help=ENV_HELP)
    export.add_argument("--format", choices=[*FORMATS, CONDA_HISTORY],
                        help="default: from -o's name (*.txt: requirements, environment*.yml: conda, "
                             "pylock*.toml: pylock), else envdesk. "
                             f"{CONDA_HISTORY}: an environment.yml of only what was asked for, without builds "
                             "(conda env export --from-history, with the pip section), which travels between "
                             "platforms")
    export.add_argument("-o", "--output", metavar="FILE", help="write it to FILE (default, or '-': print it)")
    export.set_defaults(handler="env_export")


OTHER_BUILDS_HELP = ("where a pinned build (torch==2.1.0+cu118, +cpu, +rocm5.6) is missing but its release is "
                     "there, install that release: a different build (PyPI's), which is why it needs this flag")


def _env_import(verbs: Any) -> None:
    importing = verbs.add_parser("import", help="build an environment from an exported file")
    importing.add_argument("cluster", help=CLUSTER_HELP)
    importing.add_argument("file", help="the environment file, a uv project's folder, or - for a file given on "
                                        "standard input")
    importing.add_argument("--name", help="the new environment's name (default: the one the file gives, else one "
                           "made from the file's or its folder's name)")
    importing.add_argument("--root", metavar="DIR", help="the folder to make it in (default: the first of the "
                           "cluster's)")
    importing.add_argument("--top-level", action="store_true",
                           help="if exact versions are missing, install the top-level requirements instead; a conda "
                                "file's builds are dropped, its versions kept (builds are made for one platform)")
    importing.add_argument("--other-builds", action="store_true", help=OTHER_BUILDS_HELP)
    importing.add_argument("--python", metavar="X.Y",
                           help="make it with this Python (one the cluster has) in place of the file's")
    importing.add_argument("--dry-run", action="store_true",
                           help="print what would be installed, adapted and refused, and which pins the cluster "
                                "lacks; change nothing (exit 1 when the cluster cannot build it)")
    importing.add_argument("--json", action="store_true",
                           help="the plan (with --dry-run), or the environment made, as one JSON object")
    importing.add_argument("--yes", action="store_true",
                           help="agree to the plan: lines it refuses are left out, packages it names from outside "
                                "the cluster's package index are downloaded")
    importing.set_defaults(handler="env_import")
    _quiet_option(importing)


def _env_clone(verbs: Any) -> None:
    clone = verbs.add_parser("clone", help="copy an environment to another cluster")
    clone.add_argument("src_cluster", help="the cluster the environment is on ('local': this computer)")
    clone.add_argument("env", help=ENV_HELP)
    clone.add_argument("dst_cluster", help="the cluster to make the copy on")
    clone.add_argument("--name", help="the copy's name (default: the environment's)")
    clone.add_argument("--top-level", action="store_true",
                       help="if exact versions are missing, install the top-level requirements instead")
    clone.add_argument("--other-builds", action="store_true", help=OTHER_BUILDS_HELP)
    clone.add_argument("--yes", action="store_true",
                       help="agree to the plan: what the cluster cannot hold is left out (a conda environment's "
                            "libraries where it has no conda), what its package index has is installed from it")
    clone.set_defaults(handler="env_clone")
    _quiet_option(clone)


def _env_doctor(verbs: Any) -> None:
    doctor = verbs.add_parser(
        "doctor", help="check what around the environments changes what runs in them",
        description="Check every environment of the cluster (or one): packages in your ~/.local that Python "
                    "puts first, modules or a base Python that are gone, conda's base switched on at login, "
                    "uv's cache on another file system, environments on scratch. Each finding says what to "
                    "do; --fix applies a safe fix it offers. Exit status 0 when the check ran, whatever it "
                    "found (--json's 'findings' lists them); 1 when something went wrong.")
    doctor.add_argument("cluster", help=CLUSTER_HELP)
    doctor.add_argument("env", nargs="?", help="only this environment (name or absolute path)")
    doctor.add_argument("--json", action="store_true", help="the findings as one JSON object")
    doctor.add_argument("--fix", metavar="ID", help="apply the fix a finding offers (its 'fix' id)")
    doctor.add_argument("--yes", action="store_true", help="with --fix: apply it without asking")
    doctor.only_with("--yes", "--fix")
    doctor.set_defaults(handler="env_doctor")


def _env_delete(verbs: Any) -> None:
    delete = verbs.add_parser("delete", help="delete an environment")
    delete.add_argument("cluster", help=CLUSTER_HELP)
    delete.add_argument("env", help=ENV_HELP)
    delete.add_argument("--yes", action="store_true", help="delete without being asked (a script must give it)")
    delete.set_defaults(handler="env_delete")
    _quiet_option(delete)


def _kernel_add(verbs: Any) -> None:
    kernel_add = verbs.add_parser(
        "add", help="register an environment as a Jupyter kernel of your user (its modules loaded first)",
        description="Register the environment as a Jupyter kernel of your user on the cluster: its launcher loads "
                    "the environment's modules and activates it, so Jupyter in Open OnDemand or JupyterHub there "
                    "runs it as a terminal would. Made again when EnvDesk made it before.")
    kernel_add.add_argument("cluster", help=CLUSTER_HELP)
    kernel_add.add_argument("env", help=ENV_HELP)
    kernel_add.add_argument("--name", help="the kernel's name (default envdesk-ENV)")
    kernel_add.add_argument("--display-name", metavar="TEXT", help="what Jupyter shows (default 'ENV (EnvDesk)')")
    kernel_add.add_argument("--install-ipykernel", action="store_true",
                            help="install ipykernel first if the environment lacks it (a snapshot is saved first)")
    kernel_add.add_argument("--force", action="store_true", help="replace another kernel of that name")
    _quiet_option(kernel_add)
    kernel_add.set_defaults(handler="kernel_add")


def _kernel_list(verbs: Any) -> None:
    kernel_list = verbs.add_parser("list", help="list your Jupyter kernels on a cluster")
    kernel_list.add_argument("cluster", help=CLUSTER_HELP)
    kernel_list.add_argument("--json", action="store_true", help=JSON_HELP)
    kernel_list.set_defaults(handler="kernel_list")


def _kernel_remove(verbs: Any) -> None:
    kernel_remove = verbs.add_parser("remove", help="remove a Jupyter kernel EnvDesk made (the environment "
                                                    "stays)")
    kernel_remove.add_argument("cluster", help=CLUSTER_HELP)
    kernel_remove.add_argument("name", help="the kernel's name, as kernel list shows it")
    kernel_remove.add_argument("--force", action="store_true", help="also remove a kernel EnvDesk did not make")
    kernel_remove.set_defaults(handler="kernel_remove")


def _disk_options(disk: _Parser) -> None:
    disk.add_argument("cluster", help="a cluster's name ('local': this computer)")
    disk.add_argument("--json", action="store_true", help="the report (or what was cleaned) as one JSON object")
    disk.add_argument("--clean", choices=["pip", "uv", "conda", "all"],
                      help="empty that installer's cache (pip cache purge, uv cache clean, conda clean --all)")
    disk.add_argument("--yes", action="store_true", help="with --clean: clean without asking")
    disk.only_with("--yes", "--clean")
    _quiet_option(disk)
    disk.set_defaults(handler="disk")


_GROUPS: dict[str, tuple[str, str | None, dict[str, Callable[[Any], Any]]]] = {
    "cluster": ("add, list, remove, trust, test and connect to clusters", None, {
        "add": _cluster_add, "edit": _cluster_edit, "list": _cluster_list,
        "remove": _cluster_named("remove", "forget a cluster"), "trust": _cluster_trust,
        "test": _cluster_named("test", "connect and check that everything works"),
        "connect": _cluster_connect,
        "disconnect": _cluster_named("disconnect", "end a connection kept by cluster connect")}),
    "key": ("make an SSH key, or see which keys this computer has", None, {
        "create": _key_create, "status": _key_status}),
    "env": ("list, create, update, export, import, copy and delete environments", None, {
        "list": _env_list, "show": _env_show, "diff": _env_diff, "create": _env_create, "update": _env_update,
        "history": _env_history, "revert": _env_revert, "jobscript": _env_jobscript, "export": _env_export,
        "import": _env_import, "clone": _env_clone, "doctor": _env_doctor, "delete": _env_delete}),
    "kernel": ("make, list and remove Jupyter kernels of environments", None, {
        "add": _kernel_add, "list": _kernel_list, "remove": _kernel_remove}),
    "disk": ("what the environments take on disk, what is left, and emptying the installers' caches",
             "List a cluster's environments by size and files (measured there; the cluster keeps the "
             "figures until an environment changes), each environment folder's free space and free files, "
             "and the cluster's own quota report (diskusage_report, uquota, lfs quota or quota). With "
             "--clean, empty pip's, uv's or conda's download cache there and say what it freed.", {}),
}
"""The command groups: their help, their description (shown by --help), and how each of their verbs is added in
order (disk has none: its options are its own)."""


CONDA_SOLVERS = ("auto", "libmamba", "classic", "mamba")  # validate.CONDA_SOLVERS, without loading the backend
CONDA_HISTORY = "conda-history"  # spec.CONDA_HISTORY, likewise


def _conda_options(parser: argparse.ArgumentParser) -> None:
    """How a cluster's conda commands run: the options of cluster add and cluster edit."""
    parser.add_argument("--conda-solver", choices=CONDA_SOLVERS,
                        help="auto (default): mamba where installed, else conda's libmamba solver where conda has it "
                             "and its settings name no other; or always libmamba, classic or mamba")
    parser.add_argument("--conda-channel", action="append", metavar="CHANNEL",
                        help="a conda channel to use there (repeat, in order; conda gets --override-channels); "
                             "'' alone clears them, so conda's own settings count")


def _login_option(parser: argparse.ArgumentParser) -> None:
    """How a cluster logs you in: an option of cluster add and cluster edit."""
    from envdesk.backend.config import AUTH_METHODS
    parser.add_argument("--login", choices=AUTH_METHODS, help="how you log in: auto (a key, then what the cluster "
                        "asks), key, password, or either with a one-time code (default: the preset's, else auto)")


def _build_options(parser: argparse.ArgumentParser) -> None:
    """Where a cluster's builds run (issue 12): the options of cluster add and cluster edit."""
    parser.add_argument("--build-on-compute-node", action="store_true",
                        help="build environments (create, import, large updates) as Slurm jobs on a compute node, "
                             "for clusters whose login nodes stop long processes")
    parser.add_argument("--partition", metavar="NAME", help="the Slurm partition of build jobs (default: the site's)")
    parser.add_argument("--time", metavar="HH:MM:SS", help="the time limit of build jobs (default 01:00:00)")
    parser.add_argument("--cpus", metavar="N", help="CPUs of a build job (default: the site's)")
    parser.add_argument("--mem", metavar="SIZE", help="memory of a build job, e.g. 8G (default: the site's)")


# Commands whose first step is reading `args.cluster`: they log in before loading the rest of the program.
_CONNECT_FIRST = ("env_list", "env_show", "env_export")


def _cluster_read_first(args: argparse.Namespace) -> str | None:
    """The cluster a command reads first (see _CONNECT_FIRST), if it is one (not this computer)."""
    from envdesk.backend.validate import LOCAL_TARGET

    name = getattr(args, "cluster", None)
    return name if args.handler in _CONNECT_FIRST and name and name != LOCAL_TARGET else None


def _begin_key_exchange(paths: AppPaths) -> None:
    """Load paramiko, then begin the key exchange on the connection dialled early (if any): the server answers
    while the cluster's settings are read (YAML) and the rest of the program loads."""
    from envdesk.backend.errors import EnvDeskError
    from envdesk.backend.hostkeys import HostKeyStore
    from envdesk.backend.ssh_runner import begin_key_exchanges

    try:
        begin_key_exchanges(HostKeyStore(paths.known_hosts_file))  # the store a Session reads (Session.hostkeys)
    except (EnvDeskError, OSError) as exc:  # an unreadable known_hosts, say: the login says so in plain words
        logging.getLogger(__name__).info("no key exchange begun early: %s", exc)


def _kept(paths: AppPaths, cluster: str) -> bool:
    """Whether a kept connection serves the cluster (see kept_connection): then nothing is dialled early."""
    from envdesk.backend.kept_connection import is_kept
    return is_kept(paths, cluster)  # False for a name no file can have: the command says what is wrong


def _connect_early(args: argparse.Namespace, session: Session) -> None:
    """Start logging in to the command's cluster on a thread of its own, if its first step is reading it."""
    from envdesk.backend.errors import EnvDeskError

    name = _cluster_read_first(args)
    if name is None:
        return
    try:
        runner = session.target(name).runner
    except EnvDeskError:
        return  # the command itself says what is wrong
    runner.connect_early()


def _hint_kept_connection(exc: Exception, args: argparse.Namespace) -> None:
    """A login nobody could answer (no terminal): say how a script gets by without one."""
    from envdesk.backend.errors import LoginCancelled

    from .terminal import interactive
    name = getattr(args, "cluster", None) or (args.name if args.handler == "cluster_test" else None)
    if isinstance(exc, LoginCancelled) and not exc.hint and name and not interactive():
        exc.hint = (f"A script can go through a connection kept for it: run `envdesk cluster connect {name}` in a "
                    "terminal first (it asks once, then commands need no login until it has been unused a while).")


def _hint_where_none(exc: EnvDeskError, args: argparse.Namespace) -> None:
    """Give a failure that came without a hint one saying where to look next: every failure is a message and a
    hint (README), on stderr and in --json's {"error", "hint"}, where an empty hint was written as "" (a user
    trial)."""
    from envdesk.backend.errors import AuthenticationFailed, Busy, ConfigError, ConnectionFailed, InvalidInput, NotFound
    from envdesk.backend.validate import LOCAL_TARGET
    if exc.hint:
        return
    if isinstance(exc, Busy):  # its words say who holds it and how to tell it is done (T27 MED-4: the hint was "")
        exc.hint = "When the other operation has finished (or its lock is gone, as said), run the same command again."
        return
    cluster = getattr(args, "cluster", None) or (getattr(args, "name", None) if args.handler.startswith("cluster_")
                                                 else None)
    if isinstance(exc, (ConnectionFailed, AuthenticationFailed)) and cluster and cluster != LOCAL_TARGET:
        exc.hint = f"envdesk cluster test {cluster} tries each step of the connection and says which one fails."
    elif isinstance(exc, (InvalidInput, NotFound, ConfigError)):
        exc.hint = f"envdesk {args.handler.replace('_', ' ')} --help says what it accepts."
    else:
        exc.hint = (f"Run it again as envdesk -v {args.handler.replace('_', ' ')} … to log what happens (-v before "
                    "the command's words).")


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, taken as Ctrl-C is: what EnvDesk started is stopped and the change undone."""

    def __init__(self, signal_number: int, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_number = signal_number
        self.signal_name = {"SIGTERM": "stopped (SIGTERM)", "SIGHUP": "stopped: its terminal closed (SIGHUP)"
                            }.get(signal_name, signal_name)


def _stop_on_termination() -> None:
    """Make SIGTERM (timeout, a batch job's time limit, a CI's cancel) and SIGHUP (a closed terminal or SSH
    session) stop a command as Ctrl-C does, instead of ending it at once with an installer left running and a
    half-made environment (a user trial). Exit status 128 + the signal's number, as a shell reports it."""
    import signal

    def stop(number: int, frame: object) -> None:
        name = signal.Signals(number).name
        for other in watched:  # one is enough: a closed terminal sends SIGHUP twice (bash's, then the kernel's),
            signal.signal(other, signal.SIG_IGN)  # and a second must not cut the undo short as a second Ctrl-C does
        if name == "SIGHUP" and sys.stderr is not None and sys.stderr.isatty():
            devnull = os.open(os.devnull, os.O_WRONLY)  # the terminal is gone: what the undo says goes nowhere
            for stream in (sys.stdout, sys.stderr):
                if stream is not None and stream.isatty():
                    os.dup2(devnull, stream.fileno())
        raise Terminated(number, name)

    watched = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]  # Windows: no HUP
    watched = [number for number in watched if signal.getsignal(number) is not signal.SIG_IGN]  # nohup's stays
    for number in watched:
        signal.signal(number, stop)


def _failure_as_json(args: argparse.Namespace, error: str, hint: str) -> None:
    """Under --json, a failure as {"error", "hint"} on stdout too, whatever ended the command (an EnvDeskError, an
    unexpected error, Ctrl-C): a script reading the JSON gets one (T27 LOW: the last two printed nothing there)."""
    if getattr(args, "json", False):
        import json
        print(json.dumps({"error": error, "hint": hint}), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; 0 on success, 1 when it fails (message on stderr), 2 for a usage error."""
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(words)
    try:
        args = parser.parse_args(words)
    except SystemExit as exc:
        return int(exc.code or 0)
    from .terminal import guard_terminal_output, write_utf8_where_read_as_data
    write_utf8_where_read_as_data()
    guard_terminal_output()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format=LOG_FORMAT if args.verbose else NOTE_FORMAT)  # T27: "WARNING envdesk.backend…"
    logging.getLogger("paramiko").setLevel(logging.INFO if args.verbose else logging.CRITICAL)
    from envdesk.backend.paths import AppPaths

    paths = AppPaths.resolve(args.config_dir)
    cluster = _cluster_read_first(args)
    if cluster is not None and not _kept(paths, cluster):
        from envdesk.backend import ssh_predial
        ssh_predial.start(paths.cache_dir, cluster)  # its connection opens while paramiko loads
        _begin_key_exchange(paths)
    from envdesk.backend.errors import EnvDeskError
    from envdesk.backend.targets import Session

    from .terminal import TerminalPrompter
    session = Session(paths, TerminalPrompter())
    _stop_on_termination()
    try:
        _connect_early(args, session)
        from envdesk import commands  # loaded while the cluster answers
        gc.freeze()  # the code just loaded is never garbage: no collection walks it again, nor the one at exit
        gc.enable()  # off while it loaded (see launch.main)
        code = getattr(commands, args.handler)(args, session)
        sys.stdout.flush()  # a reader gone (`| head`) shows here, not as a message at exit
        return code
    except BrokenPipeError:
        # The reader of the output left: end quietly, as a program ended by SIGPIPE (whose status shells show).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except EnvDeskError as exc:
        _hint_kept_connection(exc, args)
        _hint_where_none(exc, args)
        print(f"envdesk: {exc}", file=sys.stderr)
        _failure_as_json(args, exc.message, exc.hint)
        return 1
    except KeyboardInterrupt as exc:
        from envdesk.backend.runner import left_running
        still = left_running(exc)  # the cluster stopped answering: what ran there was not stopped (T19)
        stopped_by = exc.signal_name if isinstance(exc, Terminated) else "interrupted"
        print(f"envdesk: {stopped_by}.{' ' + still if still else ''}", file=sys.stderr)
        _failure_as_json(args, f"{stopped_by.capitalize()}.{' ' + still if still else ''}",
                         "Run the same command again to have it done.")
        return 128 + exc.signal_number if isinstance(exc, Terminated) else 130
    except Exception as exc:  # the edge of the program: never a traceback for users
        if os.environ.get("ENVDESK_DEBUG"):
            raise
        print(f"envdesk: unexpected error ({exc.__class__.__name__}: {exc}). "
              "Run again with ENVDESK_DEBUG=1 for details.", file=sys.stderr)
        _failure_as_json(args, f"Unexpected error ({exc.__class__.__name__}: {exc}).",
                         "Run it again with ENVDESK_DEBUG=1 set for the details (a traceback), to report them.")
        return 1
    finally:
        session.close()
