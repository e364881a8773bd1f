"""The `envdesk` command line: the same backend as the app, for scripts and power users."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any, Callable, Sequence

from .config import ClusterProfile
from .errors import EnvDeskError, HostKeyChanged, HostKeyUnknown, InvalidInput
from .inventory import read_inventory
from .paths import AppPaths
from .ssh_runner import SSHRunner
from .targets import Session
from .terminal import TerminalPrompter, ask_yes_no, describe_new_server

Handler = Callable[[argparse.Namespace, Session], int]


def _print_table(rows: list[list[str]], headers: list[str]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    for row in [headers, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=False))


# -- cluster ----------------------------------------------------------------------------------

def cluster_add(args: argparse.Namespace, session: Session) -> int:
    profile = ClusterProfile(name=args.name, host=args.host, port=args.port, user=args.user,
                             identity_file=args.identity_file, jump=args.jump or [],
                             env_roots=args.env_root or [], pip_args=args.pip_arg or [], preset=args.preset)
    session.store.add(profile)
    print(f"Added cluster {profile.name}. Next: envdesk cluster trust {profile.name}")
    return 0


def cluster_list(args: argparse.Namespace, session: Session) -> int:
    profiles = session.store.load()
    if args.json:
        _print_json([p.to_dict() for p in profiles])
        return 0
    if not profiles:
        print("No clusters yet. Add one with: envdesk cluster add NAME --host HOST --user USER")
        print("'local' (this computer) is always available.")
        return 0
    _print_table([[p.name, p.host, p.user or "", str(p.port or ""), ",".join(p.jump)] for p in profiles],
                 ["NAME", "HOST", "USER", "PORT", "JUMP"])
    return 0


def cluster_remove(args: argparse.Namespace, session: Session) -> int:
    session.store.remove(args.name)
    session.forget(args.name)
    print(f"Removed cluster {args.name} (its environments on the cluster are untouched).")
    return 0


def cluster_trust(args: argparse.Namespace, session: Session) -> int:
    target = session.target(args.name)
    runner = target.runner
    if not isinstance(runner, SSHRunner):
        raise InvalidInput("This computer needs no trust.")
    identity = runner.probe_identity()
    try:
        session.hostkeys.verify(identity)
    except HostKeyChanged:
        raise
    except HostKeyUnknown:
        print(describe_new_server(args.name, identity))
        if not (args.yes or ask_yes_no("Trust this server?")):
            print("Not trusted; nothing was recorded.", file=sys.stderr)
            return 1
        session.hostkeys.trust(identity)
        print(f"Trusted {identity.host} ({identity.key_type} {identity.fingerprint}).")
        return 0
    print(f"{identity.host} is already trusted ({identity.key_type} {identity.fingerprint}).")
    return 0


def cluster_test(args: argparse.Namespace, session: Session) -> int:
    target = session.target(args.name)
    runner = target.runner
    if isinstance(runner, SSHRunner):
        hops = [*runner.plan.jumps, runner.plan.target]
        print(f"1. Route: {' -> '.join(h.label for h in hops)}")
        runner.connect()
        print("2. Server identity checked and login accepted.")
    result = runner.run(["sh", "-c", "command -v python3 || command -v python; "
                               "type module >/dev/null 2>&1 && echo 'modules: yes' || echo 'modules: no'"])
    result.check("Running a test command")
    print("3. Commands run: " + "; ".join(line for line in result.stdout.splitlines() if line.strip()))
    inventory = read_inventory(runner, target.roots)
    print(f"4. Environments found: {len(inventory.environments)} (Python {inventory.remote_python} "
          f"on {inventory.host}).")
    print("Connection works.")
    return 0


# -- env --------------------------------------------------------------------------------------

def env_list(args: argparse.Namespace, session: Session) -> int:
    target = session.target(args.cluster)
    inventory = read_inventory(target.runner, target.roots)
    if args.json:
        _print_json([env.summary() for env in inventory.environments])
    elif not inventory.environments:
        print(f"No environments found on {target.label} (looked in {', '.join(target.roots)} and conda's).")
    else:
        _print_table([[env.name, env.kind, env.python or "?",
                       str(env.package_count) if env.state == "ok" else env.state.upper(), env.path]
                      for env in inventory.environments],
                     ["NAME", "KIND", "PYTHON", "PACKAGES", "LOCATION"])
    for problem in [*inventory.errors, *(f"{e.name}: {e.error}" for e in inventory.environments if e.error)]:
        print(f"note: {problem}", file=sys.stderr)
    if inventory.truncated:
        print("note: the search stopped early (too many folders); narrow the environment roots.", file=sys.stderr)
    return 0


def env_show(args: argparse.Namespace, session: Session) -> int:
    target = session.target(args.cluster)
    by_path = args.env.startswith(("/", "~"))
    inventory = read_inventory(target.runner, target.roots, paths=[args.env] if by_path else ())
    if by_path and len(inventory.environments) == 1:
        env = inventory.environments[0]
    else:
        env = inventory.find(args.env)
    if args.json:
        _print_json(env.details())
        return 0
    for label, value in [("Name", env.name), ("Kind", env.kind), ("Python", env.python or "unknown"),
                         ("Location", env.path), ("Modules", " ".join(env.modules) or "none recorded"),
                         ("State", env.state + (f" ({env.error})" if env.error else ""))]:
        print(f"{label + ':':10}{value}")
    print(f"Packages ({env.package_count}):")
    for package in env.packages:
        print(f"  {package.name}=={package.version}")
    return 0


# -- wiring -----------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """argparse with plain-language errors (exit status 2, as usage errors should)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"envdesk: {message}\nTry 'envdesk --help'.\n")


def build_parser() -> argparse.ArgumentParser:
    """Every subcommand with its exact options."""
    parser = _Parser(prog="envdesk", description="Manage Python environments on HPC clusters. "
                     "Run without arguments to open the app.")
    parser.add_argument("--config-dir", metavar="DIR", help="keep settings here instead of the user config folder")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens on stderr")
    groups = parser.add_subparsers(dest="group", required=True, parser_class=_Parser)

    cluster = groups.add_parser("cluster", help="add, list, remove, trust and test clusters")
    verbs = cluster.add_subparsers(dest="verb", required=True, parser_class=_Parser)
    add = verbs.add_parser("add", help="add a cluster")
    add.add_argument("name")
    add.add_argument("--host", required=True)
    add.add_argument("--port", type=int)
    add.add_argument("--user")
    add.add_argument("--identity-file", metavar="PATH")
    add.add_argument("--jump", action="append", metavar="[USER@]HOST[:PORT]")
    add.add_argument("--env-root", action="append", metavar="DIR")
    add.add_argument("--pip-arg", action="append", metavar="ARG")
    add.add_argument("--preset", metavar="ID")
    add.set_defaults(handler=cluster_add)
    listing = verbs.add_parser("list", help="list clusters")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cluster_list)
    for verb, handler, text in [("remove", cluster_remove, "forget a cluster"),
                                ("trust", cluster_trust, "check and trust a cluster's host key"),
                                ("test", cluster_test, "connect and check that everything works")]:
        sub = verbs.add_parser(verb, help=text)
        sub.add_argument("name")
        sub.set_defaults(handler=handler)
        if verb == "trust":
            sub.add_argument("--yes", action="store_true", help="trust without asking")

    env = groups.add_parser("env", help="list and inspect environments")
    env_verbs = env.add_subparsers(dest="verb", required=True, parser_class=_Parser)
    env_listing = env_verbs.add_parser("list", help="list the environments of a cluster ('local': this computer)")
    env_listing.add_argument("cluster")
    env_listing.add_argument("--json", action="store_true")
    env_listing.set_defaults(handler=env_list)
    show = env_verbs.add_parser("show", help="show one environment's packages")
    show.add_argument("cluster")
    show.add_argument("env", help="the environment's name or absolute path")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=env_show)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; 0 on success, 1 when it fails (message on stderr), 2 for a usage error."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    session = Session(AppPaths.resolve(args.config_dir), TerminalPrompter())
    try:
        return args.handler(args, session)
    except EnvDeskError as exc:
        print(f"envdesk: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("envdesk: interrupted.", file=sys.stderr)
        return 130
    except Exception as exc:  # the edge of the program: never a traceback for users
        if os.environ.get("ENVDESK_DEBUG"):
            raise
        print(f"envdesk: unexpected error ({exc.__class__.__name__}: {exc}). "
              "Run again with ENVDESK_DEBUG=1 for details.", file=sys.stderr)
        return 1
    finally:
        session.close()
