"""What each `envdesk` subcommand does (the parser is in cli.py, which imports this only after parsing,
so `envdesk --help` loads none of the backend)."""
from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import TYPE_CHECKING, Any, Callable, Sequence

from dataclasses import asdict
from pathlib import Path

from envdesk.backend.config import ADD_CLUSTER, ClusterProfile
from envdesk.backend.errors import EnvDeskError, HostKeyUnknown, InvalidInput
from envdesk.backend.fileio import write_atomically
from envdesk.backend.inventory import Environment
from envdesk.backend.operations.common import Progress
from envdesk.backend.targets import Session
from envdesk.backend.wording import counted
from .terminal import ask_yes_no, describe_new_server, interactive

if TYPE_CHECKING:
    from envdesk.backend.hostkeys import ServerIdentity
    from envdesk.backend.operations.diff import Comparison, LikePlan
    from envdesk.backend.operations.importing import Imported

Handler = Callable[[argparse.Namespace, Session], int]


def _print_table(rows: list[list[str]], headers: list[str]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    for row in [headers, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=False))


# -- cluster ----------------------------------------------------------------------------------

def cluster_add(args: argparse.Namespace, session: Session) -> int:
    fields: dict[str, Any] = {"host": args.host, "port": args.port, "user": args.user}
    if args.preset:
        fields = _preset_fields(args)
    elif not args.host:
        print("envdesk: cluster add needs --host HOST (or --preset ID --user USER).\n"
              "Try 'envdesk cluster add --help'.", file=sys.stderr)
        return 2
    overrides = {"port": args.port, "identity_file": args.identity_file, "jump": args.jump,
                 "env_roots": args.env_root, "pip_args": args.pip_arg, "slurm_account": args.account,
                 "auth": args.login or _login_with_key(fields.get("auth"), args.identity_file),
                 **_build_settings(args), **_conda_settings(args)}
    fields.update({key: value for key, value in overrides.items() if value})
    profile = ClusterProfile(name=args.name, **fields)
    session.store.add(profile)
    address, notes = _address(profile)
    print(f"Added cluster {profile.name} ({address}). Next: envdesk cluster trust {profile.name}")
    _print_notes(notes)
    return 0


def _login_with_key(method: str | None, identity_file: str | None) -> str | None:
    """The login method when a key file is given for a preset that logs in by password (HPC2N's): the key first,
    then what the cluster asks; None to keep the method as it is."""
    if not identity_file or not method or not method.startswith("password"):
        return None
    return "auto" if method == "password" else "key+code"


def _address(profile: ClusterProfile) -> tuple[str, list[str]]:
    """Where EnvDesk will log in, as ~/.ssh/config makes it of the profile (an alias's HostName, User, Port), and
    what of that configuration it does not follow or cannot use."""
    from envdesk.backend.ssh_config import plan_connection
    try:
        plan = plan_connection(profile)
    except EnvDeskError as exc:  # saved all the same: the file may be mended before the first connection
        return (f"{profile.user or 'your login name'}@{profile.host}:{profile.port or 22}",
                [f"Your SSH configuration cannot be used for {profile.host}: {exc.message} {exc.hint}".strip()])
    via = f", through {' then '.join(hop.label for hop in plan.jumps)}" if plan.jumps else ""
    return plan.target.label + via, list(plan.notes)


def _build_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The build settings given on the command line (issue 12); '' clears one (cluster edit)."""
    given = {"build_partition": args.partition, "build_time": args.time, "build_cpus": args.cpus,
             "build_memory": args.mem}
    settings: dict[str, Any] = {key: value or None for key, value in given.items() if value is not None}
    if args.build_on_compute_node:
        settings["build_on_compute_node"] = True
    return settings


def _conda_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The conda settings given on the command line: --conda-solver, and the --conda-channel list in order ('' alone
    clears it, so conda's own settings count)."""
    settings: dict[str, Any] = {}
    if args.conda_solver is not None:
        settings["conda_solver"] = args.conda_solver
    if args.conda_channel is not None:
        settings["conda_channels"] = [channel for channel in args.conda_channel if channel]
    return settings


def cluster_edit(args: argparse.Namespace, session: Session) -> int:
    """Change how a cluster logs you in, its Slurm account and where its builds run; the profile is checked again
    as a whole."""
    from dataclasses import replace
    from envdesk.backend.slurm import builds_on_compute_node
    if args.build_on_compute_node and args.build_on_login_node:
        raise InvalidInput("--build-on-compute-node and --build-on-login-node contradict each other.")
    changes = {**_build_settings(args), **_conda_settings(args)}
    if args.build_on_login_node:
        changes["build_on_compute_node"] = False
    if args.account is not None:
        changes["slurm_account"] = args.account or None
    if args.identity_file is not None:
        changes["identity_file"] = args.identity_file or None
    if args.login:
        changes["auth"] = args.login
    roots_changed = bool(args.env_root or args.no_env_root)
    if not changes and not roots_changed:
        session.store.get(args.name)  # a name that is no cluster is said so first
        raise InvalidInput("Nothing to change.", "Give --account, --identity-file, --login, --env-root, --no-env-root, "
                           "--build-on-compute-node, --build-on-login-node, --partition, --time, --cpus, --mem, "
                           "--conda-solver or --conda-channel.")

    def changed(saved: ClusterProfile) -> ClusterProfile:
        """The profile as saved when the file is locked, with this command's changes (another's kept)."""
        roots = ({"env_roots": _env_roots_after(saved.env_roots, args.env_root or [], args.no_env_root or [])}
                 if roots_changed else {})
        return replace(saved, **changes, **roots)

    profile = session.store.edit(args.name, changed)
    where = "on a compute node (Slurm jobs)" if builds_on_compute_node(profile) else "on the login node"
    print(f"Updated cluster {profile.name}: environments are built {where}"
          + (f", account {profile.slurm_account}." if profile.slurm_account else "."))
    if "auth" in changes or "identity_file" in changes:
        print(f"Logging in there: {profile.auth}"
              + (f", with the key {profile.identity_file}." if profile.identity_file else "."))
    if roots_changed:
        print(f"Environments are looked for in {', '.join(profile.roots)}"
              + (" (the usual folders: none of your own is left)." if not profile.env_roots else "."))
    if "conda_solver" in changes or "conda_channels" in changes:
        print(f"conda there: solver {profile.conda_solver}, channels "
              f"{' '.join(profile.conda_channels) or 'as conda is configured there'}.")
    return 0


def _env_roots_after(roots: list[str], added: list[str], removed: list[str]) -> list[str]:
    """A cluster's environment folders with `added` appended (each once) and `removed` taken out; a folder to
    remove that is not there is refused, naming those that are (a typo would otherwise change nothing unsaid).
    Each is compared as saved ('/p/x/' is '/p/x': R20)."""
    from envdesk.backend.validate import remote_folder
    added, removed = [remote_folder(root) for root in added], [remote_folder(root) for root in removed]
    missing = [root for root in removed if root not in roots]
    if missing:
        raise InvalidInput(f"{', '.join(missing)} is not one of this cluster's environment folders.",
                           f"Its folders: {', '.join(roots) or 'none of your own (the usual ones are searched)'}.")
    kept = [root for root in roots if root not in removed]
    return kept + [root for index, root in enumerate(added) if root not in kept and root not in added[:index]]


def _preset_fields(args: argparse.Namespace) -> dict[str, Any]:
    """What a preset knows (login node, port, login method, roots, pip options), for the user named."""
    from envdesk.backend.presets import get_preset
    preset = get_preset(args.preset)
    if not args.user:
        raise InvalidInput(f"The {preset.label} preset needs your user name on those clusters: --user NAME.",
                           "It is the name your cluster account was given, not this computer's login name.")
    names = [host.name.lower() for host in preset.hosts]
    if args.host and args.host.lower() in names:
        return preset.profile_fields(names.index(args.host.lower()), args.user)
    if args.host:
        return preset.profile_fields(user=args.user, host=args.host)
    if not preset.hosts:
        raise InvalidInput(f"The {preset.label} preset has no login node of its own: add --host HOST.")
    return preset.profile_fields(0, args.user)


def cluster_list(args: argparse.Namespace, session: Session) -> int:
    from envdesk.backend import kept_connection
    profiles = session.store.load()
    kept = {p.name for p in profiles if kept_connection.is_live(session.paths, p)}
    if args.json:
        from envdesk.backend.spec import redact  # a token typed into pip_args stays in clusters.yaml, not in logs
        _print_json([{**p.to_dict(), **({"pip_args": [redact(a) for a in p.pip_args]} if p.pip_args else {}),
                      "kept_connection": p.name in kept} for p in profiles])
        return 0
    if not profiles:
        print(f"No clusters yet. Add one with: {ADD_CLUSTER}")
        print("'local' (this computer) is always available.")
        return 0
    _print_table([[p.name, p.host, p.user or "", str(p.port or ""), ",".join(p.jump), "kept" if p.name in kept else ""]
                  for p in profiles], ["NAME", "HOST", "USER", "PORT", "JUMP", "CONNECTION"])
    if kept:
        print("kept: logged in already (envdesk cluster connect); end it with: envdesk cluster disconnect NAME")
    return 0


def cluster_remove(args: argparse.Namespace, session: Session) -> int:
    from envdesk.backend import kept_connection
    session.store.get(args.name)  # a name that is no cluster is said so before anything is done
    kept_connection.stop(session.paths, args.name)
    session.store.remove(args.name)
    session.forget(args.name)
    print(f"Removed cluster {args.name} (its environments on the cluster are untouched).")
    return 0


def key_create(args: argparse.Namespace, session: Session) -> int:
    """Make a key for someone who has none, and say where to register it."""
    from envdesk.backend.presets import get_preset
    from envdesk.backend.secrets import keyring_problem
    from envdesk.backend.sshkeys import create_key
    problem = keyring_problem() if args.remember else None
    if problem:
        raise InvalidInput(f"The passphrase cannot be remembered: {problem}", "Run again without --remember.")
    passphrase = ""
    if args.passphrase:
        import warnings
        try:
            with warnings.catch_warnings():  # getpass reads the terminal itself (/dev/tty); without one it would
                warnings.simplefilter("error", getpass.GetPassWarning)  # echo what is typed, or read the input
                passphrase = getpass.getpass("Passphrase for the new key: ")
                again = getpass.getpass("The same passphrase again: ")
        except (getpass.GetPassWarning, EOFError) as exc:
            raise InvalidInput("The passphrase is not asked: there is no terminal to type it in unseen. No key was "
                               "made.", "Run the command in a terminal, or leave out --passphrase.") from exc
        if again != passphrase:
            raise InvalidInput("The two passphrases differ; no key was made.")
    made = create_key(local_path(args.file) if args.file else None, passphrase=passphrase,
                      remember=args.remember)
    page = get_preset(args.preset).key_page if args.preset else ""
    print(f"Made {made.path} ({made.fingerprint}). Its public key, to give your cluster's site:")
    print(made.public_line)
    print(f"Paste it at {page}" if page else "Register it where your site asks for SSH keys (its documentation "
          "says where).")
    return 0


def key_status(args: argparse.Namespace, session: Session) -> int:
    from envdesk.backend.ssh_certificates import beside
    from envdesk.backend.sshkeys import find_keys
    found = find_keys()
    profiles = session.store.load()
    config = _ssh_config() if any(not profile.identity_file for profile in profiles) else None
    given = {profile.name: path for profile in profiles if (path := _key_of(profile, config))}
    certified = {str(key): cert for key in [*found.files, *given.values()] if (cert := beside(key))}
    if args.json:
        _print_json({"files": [str(path) for path in found.files], "agent_keys": found.agent_keys,
                     "cluster_keys": given, "certificates": {
                         key: {"file": path, "key_id": cert.key_id, "principals": list(cert.principals),
                               "valid_until": cert.valid_until, "expired": cert.expired()}
                         for key, (path, cert) in certified.items()}})
        return 0
    for path in found.files:
        print(path)
        _print_certificate(certified.get(str(path)))
    for cluster, path in given.items():  # a key a cluster's profile names, wherever it is (a user trial's were
        print(f"{path} (for {cluster})")  # all outside ~/.ssh, and 'No SSH key yet' was said)
        _print_certificate(certified.get(path))
    print(f"ssh-agent: {found.agent_keys} key(s)")
    if not found.files and not found.agent_keys and not given:
        print("No SSH key yet: 'envdesk key create' makes one.")
    return 0


def _print_certificate(certified: Any) -> None:
    """The certificate beside a listed key (a site's sshproxy writes KEY-cert.pub): whom it is for, until when."""
    if certified is None:
        return
    path, cert = certified
    users = ("no user: a host's certificate" if not cert.user else ", ".join(cert.principals)
             or "no user (a cluster that trusts its authority refuses it)")
    state = f"expired on {cert.expires}: get a new one (e.g. with your site's sshproxy)" if cert.expired() else \
        f"valid until {cert.expires}"
    print(f"  certificate {path}: for {users}, {state}")


def _ssh_config() -> Any:
    """~/.ssh/config, read once for all the clusters (None when it cannot be read: each cluster then has none)."""
    from envdesk.backend.ssh_config import load_ssh_config
    try:
        return load_ssh_config()
    except EnvDeskError:  # cluster add and cluster test say what is wrong with the configuration
        return None


def _key_of(profile: ClusterProfile, config: Any) -> str | None:
    """The key a cluster logs in with: its profile's, else the first IdentityFile `config` (~/.ssh/config) gives
    its host (as OpenSSH tries them, in order); None when neither names one."""
    if profile.identity_file or config is None:
        return profile.identity_file
    from envdesk.backend.ssh_config import plan_connection
    try:
        files = plan_connection(profile, config).target.identity_files
    except EnvDeskError:
        return None
    return files[0] if files else None


def cluster_trust(args: argparse.Namespace, session: Session) -> int:
    from envdesk.backend.presets import DOES_NOT_MATCH, judge_host_key
    target = session.target(args.name)
    if not target.runner.route():
        raise InvalidInput("This computer needs no trust.")

    def decide(identity: ServerIdentity, why: EnvDeskError) -> bool:
        print(describe_new_server(args.name, identity) if isinstance(why, HostKeyUnknown) else why.message)
        verdict = judge_host_key(identity)
        print("\n".join(verdict.lines()))
        if verdict.status == DOES_NOT_MATCH and not args.despite_mismatch:
            print("Not trusted: this key is not one the site publishes. If the site announced a new key, check "
                  "it there, then run again with --despite-mismatch.", file=sys.stderr)
            return False
        if args.yes or ask_yes_no("Replace the recorded key?" if args.replace else "Trust this server?"):
            return True
        print("Not trusted; nothing was recorded for it.", file=sys.stderr)
        return False

    try:
        outcome = target.runner.trust_route(decide, replace=args.replace)
    except HostKeyUnknown:
        return 1
    for identity, what in outcome:
        print(f"{identity.host} (port {identity.port}): {what} ({identity.key_type} {identity.fingerprint}).")
    return 0


def cluster_connect(args: argparse.Namespace, session: Session) -> int:
    """Start (or find) the cluster's kept connection, asking what its login asks here."""
    from envdesk.backend import kept_connection
    from envdesk.backend.errors import InvalidInput
    from envdesk.backend.validate import LOCAL_TARGET
    if not 0 < args.idle <= 7 * 24 * 60:
        raise InvalidInput(f"--idle {args.idle:g} is not a number of minutes EnvDesk can keep a connection for.",
                           "Give more than 0 and at most 10080 (a week), for example --idle 120.")
    if args.name == LOCAL_TARGET:
        raise InvalidInput("This computer ('local') needs no login, so there is no connection to keep.",
                           "Give the name of a cluster, as in 'envdesk cluster list'.")
    profile = session.store.get(args.name)
    record, started = kept_connection.connect(session.paths, profile, session.prompter, args.idle)
    limit = f"{record.idle_minutes:g} minute{'' if record.idle_minutes == 1 else 's'}"
    if started:
        print(f"Connected to {args.name}. Commands for {args.name}, and the app, use this login until it has been "
              f"unused for {limit}.")
    else:
        print(f"Already connected to {args.name}, kept until it has been unused for {limit}.")
        if args.idle != record.idle_minutes:
            print(f"To keep it for --idle {args.idle:g} instead, disconnect first, then connect again.")
    print(f"To end it sooner: envdesk cluster disconnect {args.name}")
    return 0


def cluster_disconnect(args: argparse.Namespace, session: Session) -> int:
    """End the cluster's kept connection (the cluster's settings are untouched)."""
    from envdesk.backend import kept_connection, wording
    session.store.get(args.name)  # a name that is no cluster is said so
    running = kept_connection.stop(session.paths, args.name)
    if running is None:
        print(f"No connection to {args.name} was kept.")
        return 0
    print(f"Disconnected from {args.name}: the next command for it logs in again.")
    if running:
        print(f"{wording.counted(running, 'command')} still running through it will finish first; then the "
              "connection closes.")
    return 0


def cluster_test(args: argparse.Namespace, session: Session) -> int:
    """Each step of the connection test with what it found; exit 1 with the reason at the first failure."""
    from envdesk.backend.operations.check import check_connection
    checked = check_connection(session, args.name, _progress(args))
    for number, step in enumerate(checked.steps, 1):
        print(f"{number}. {step.what}{'' if step.ok else ' FAILED'}: {step.found}")
    if checked.error is not None:
        raise checked.error
    print("Connection works.")
    if getattr(session.target(args.name).runner, "through_keeper", False):
        print(f"note: it went through the connection kept by `envdesk cluster connect`, so logging in itself was not "
              f"tested; run `envdesk cluster disconnect {args.name}` first to test that.")
    return 0


# -- env --------------------------------------------------------------------------------------

def env_list(args: argparse.Namespace, session: Session) -> int:
    from envdesk.backend.operations.listing import list_environments
    listing = list_environments(session, args.cluster)
    if args.json:
        _print_json([env.summary() for env in listing.environments])
    elif not listing.environments:
        from envdesk.backend.validate import LOCAL_TARGET
        how = ("the window's This computer settings" if args.cluster == LOCAL_TARGET
               else f"envdesk cluster edit {args.cluster} --env-root DIR")
        print(f"No environments found on {listing.label} (looked in {', '.join(listing.roots)} and conda's). "
              f"To look in another folder too: {how}.")
    else:
        _print_table([[env.name, env.kind, env.python or "?",
                       (str(env.package_count) + ("+sys" if env.system_site_packages else ""))
                       if env.state == "ok" else env.state.upper(), env.path]
                      for env in listing.environments],
                     ["NAME", "KIND", "PYTHON", "PACKAGES", "LOCATION"])
        if any(env.system_site_packages for env in listing.environments):
            print("+sys: the environment also sees its Python's system site-packages (not counted).")
    _print_notes(listing.problems())
    if listing.inventory.truncated:
        print("note: the search stopped early (too many folders); narrow the environment roots.", file=sys.stderr)
    return 0


def _shown_details(env: Environment) -> dict:
    """`env show --json` without credentials in URLs, also for environments recorded before EnvDesk left them out."""
    from envdesk.backend.spec import redact
    details = env.details()
    for package in details["packages"]:
        if package.get("url"):
            package["url"] = redact(package["url"])
    meta = details.get("envdesk")
    if isinstance(meta, dict) and isinstance(meta.get("requested"), list):
        details["envdesk"] = {**meta, "requested": [redact(str(line)) for line in meta["requested"]]}
    from envdesk.backend.provided import shadowed
    details["provided"] = [{"module": found.module, "path": found.path,
                            "packages": [{"name": p.name, "version": p.version} for p in found.packages]}
                           for found in env.provided]
    details["shadowed"] = [{"name": shadow.own.name, "version": shadow.own.version, "module": shadow.module,
                            "imported": shadow.imported.version} for shadow in shadowed(env)]
    return details


def env_show(args: argparse.Namespace, session: Session) -> int:
    from envdesk.backend.operations.listing import show_environment
    from envdesk.backend.provided import provided_lines, shadowed
    from envdesk.backend.spec import redact
    env = show_environment(session, args.cluster, args.env)
    if args.json:
        _print_json(_shown_details(env))
        return 0
    for label, value in [("Name", env.name), ("Kind", env.kind), ("Python", env.python or "unknown"),
                         ("Location", env.path), ("Modules", " ".join(env.modules) or "none recorded"),
                         ("State", env.state + (f" ({env.error})" if env.error else "")
                          + (", but it may not work: see the warnings below" if env.state == "ok" and env.cautions()
                             else ""))]:
        print(f"{label + ':':10}{value}")
    if env.owner:
        print(f"{'Owner:':10}{env.owner}" + (f" (group {env.group})" if env.group else ""))
    if env.read_only_reason:
        print(f"{'Access:':10}read-only for you: {env.read_only_reason}")
    if env.system_site_packages:
        print(f"{'Sees:':10}its Python's system site-packages too (not listed below, and not exported)")
    if env.constraints:
        print(f"{'Within:':10}{', '.join(env.constraints)} (its constraints: every install into it follows them)")
    for package in env.made_for_another_python():  # T12: said once after the change, then nowhere
        print(f"{'Warning:':10}{package.name} {package.version} is made for Python {package.requires_python}, not "
              f"{env.python}: it may fail when imported")
    for warning in env.warnings:  # a package it could not read, one installed twice (a user trial saw none)
        print(f"{'Warning:':10}{warning}")
    for shadow in shadowed(env):  # T20: listed as installed, never imported
        print(f"{'Warning:':10}{shadow.sentence()}")
    for line in provided_lines(env):  # T20: what its modules give it was left out of the list
        print(f"{'Provided:':10}by {line} (on PYTHONPATH: Python imports these before its own packages)")
    print(f"Packages ({env.package_count}):")
    for package in env.packages:
        if package.editable:
            print(f"  {package.name}=={package.version} (editable, from {redact(package.url or '')})")
        elif package.url:
            print(f"  {package.name} @ {redact(package.url)}")
        else:
            print(f"  {package.name}=={package.version}")
    return 0


def _progress(args: argparse.Namespace) -> Progress:
    """Steps and command output go to stderr, so stdout stays clean for exports and --json."""
    def step(text: str) -> None:
        print(f"==> {text}", file=sys.stderr, flush=True)

    def line(stream: str, text: str) -> None:
        if not getattr(args, "quiet", False):
            print(f"    {text}", file=sys.stderr, flush=True)
    return Progress(on_step=step, on_line=line)


def _read_requirements_file(args: argparse.Namespace) -> list[str]:
    """The packages of `--requirements FILE` (importing.requirements_to_create), pointing to `env import` for a file
    a create would not install as written."""
    from envdesk.backend.operations.importing import IMPORT_INSTEAD, requirements_to_create
    try:
        if args.requirements == STANDARD_STREAM:
            return requirements_to_create(Path("the standard input"), _read_standard_input())
        return requirements_to_create(local_path(args.requirements))
    except InvalidInput as exc:
        if not exc.hint.startswith(IMPORT_INSTEAD):
            raise
        command = f"envdesk env import {args.cluster} {args.requirements} --name {args.name}"
        raise InvalidInput(f"{exc.message} Nothing was made.",
                           f"Import the file instead ({command}): {exc.hint[len(IMPORT_INSTEAD):]}") from exc


def env_create(args: argparse.Namespace, session: Session) -> int:
    from envdesk.backend.operations.create import CreateRequest, create_environment
    packages = list(args.package or [])
    if args.requirements:
        packages += _read_requirements_file(args)
    if args.jupyter_kernel:
        from envdesk.backend.operations.kernels import with_ipykernel
        packages = with_ipykernel(packages)
    request = CreateRequest(name=args.name, kind=args.kind, python=args.python, modules=args.module or [],
                            system_site_packages=args.system_site_packages, root=args.root, packages=packages,
                            channels=_cluster_channels(session, args.cluster) if args.kind == "conda" else [])
    created = create_environment(session, args.cluster, request, _progress(args))
    _report_built(created.environment, created.notes, "Created")
    if args.jupyter_kernel:
        return _made_kernel(args, session, created.environment.path)
    return 0


def env_update(args: argparse.Namespace, session: Session) -> int:
    from envdesk.backend.operations.update import Change, update_environment
    change = Change(add=args.add or [], remove=args.remove or [], upgrade=args.upgrade or [],
                    upgrade_all=args.upgrade_all)
    updated = update_environment(session, args.cluster, args.env, change, _progress(args))
    _print_notes(updated.notes)
    if updated.snapshot is None and updated.done:  # what was put back is in the notes
        print(f"Updated {updated.environment.name} ({counted(updated.environment.package_count, 'package')}): only "
              "what a change cut off earlier had left was undone; the installer had nothing more to do.")
    elif updated.snapshot is None:
        within = updated.environment.constraints
        print(f"{updated.environment.name} is unchanged ({counted(updated.environment.package_count, 'package')}): the "
              "installer had nothing to do, so no snapshot was kept."
              + (f" Its constraints ({', '.join(within)}) may hold newer versions back." if within else ""))
    else:
        print(f"Updated {updated.environment.name} ({counted(updated.environment.package_count, 'package')}). "
              f"Undo with: {_command('env', 'revert', args.cluster, args.env, updated.snapshot)}")
    return 0


def env_history(args: argparse.Namespace, session: Session) -> int:
    from envdesk.backend.operations.history import list_snapshots
    snapshots = list_snapshots(session, args.cluster, args.env)
    if args.json:
        _print_json([asdict(s) for s in snapshots])
    elif not snapshots:
        print("No snapshots yet: one is saved before every change.")
    else:
        _print_table([[s.id, s.local_time(), str(s.package_count), s.reason] for s in snapshots],
                     ["SNAPSHOT", "TAKEN", "PACKAGES", "BEFORE"])
    return 0


def env_revert(args: argparse.Namespace, session: Session) -> int:
    from envdesk.backend.operations.history import revert_environment
    updated = revert_environment(session, args.cluster, args.env, args.snapshot, _progress(args))
    if updated.snapshot is None and not updated.done:
        print(f"{updated.environment.name} already held the packages of {args.snapshot}; nothing changed.")
    elif updated.snapshot is None:  # what was put back is in the notes (T19 was told 'nothing changed')
        print(f"{updated.environment.name} holds the packages of {args.snapshot} again.")
    else:
        print(f"Reverted {updated.environment.name} to {args.snapshot}; the state before is snapshot "
              f"{updated.snapshot}.")
    _print_notes(updated.notes)
    return 0


def env_jobscript(args: argparse.Namespace, session: Session) -> int:
    """A ready Slurm batch script for an environment, printed or saved (-o)."""
    from envdesk.backend.slurm import job_script, write_job_script
    from envdesk.backend.operations.listing import show_environment
    from envdesk.backend.snippets import place_of
    env = show_environment(session, args.cluster, args.env)
    target = session.target(args.cluster)
    text = job_script(env, place_of(target))
    if args.output in (None, STANDARD_STREAM):
        print(text, end="")
        return 0
    write_job_script(local_path(args.output), text)
    name = local_path(args.output).name
    where = "" if target.profile is None else f" Copy it to {target.label} (it is not there yet), then run there:"
    print(f"Wrote {args.output} on this computer. Replace my_script.py with your program.{where} sbatch {name}",
          file=sys.stderr)
    return 0


def format_for(output: str | None) -> str:
    """The export format a file's name asks for (a user trial's `-o requirements.txt` got EnvDesk's YAML,
    which nothing else reads); EnvDesk's own where the name says nothing."""
    name = Path(output).name.lower() if output else ""
    if name.endswith((".txt", ".in")):
        return "requirements"
    if name.startswith("environment") and name.endswith((".yml", ".yaml")):
        return "conda"
    if name.startswith("pylock") and name.endswith(".toml"):
        return "pylock"
    if name.endswith((".json", ".toml", ".cfg", ".lock")):  # a format EnvDesk does not write: not YAML under its name
        from envdesk.backend.errors import InvalidInput
        raise InvalidInput(f"EnvDesk writes no {Path(name).suffix} file: {output} would hold YAML.",
                           "Name it *.txt (requirements), environment.yml (conda), pylock.toml or *.envdesk.yaml, or "
                           "give --format.")
    return "envdesk"


def env_export(args: argparse.Namespace, session: Session) -> int:
    from envdesk.backend.operations.export import export_environment
    output = None if args.output == STANDARD_STREAM else args.output
    text = export_environment(session, args.cluster, args.env, args.format or format_for(output))
    if output:
        write_atomically(local_path(output), text, private=False)  # a file to give to colleagues
        print(f"Exported to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _command(*words: str) -> str:
    """An envdesk command line to paste into a shell, each word quoted: an environment's name may hold
    spaces or shell text (a user trial's 'my env' pasted as two words)."""
    from envdesk.backend.runner import join_command
    return join_command(["envdesk", *words])


def _report_import(imported: Imported, action: str, as_json: bool = False) -> int:
    """What an import made: as text (see _report_built), or with --json the environment as `env show --json`
    gives it, with the import's notes."""
    if as_json:
        _print_json({**_shown_details(imported.environment), "notes": list(imported.notes)})
        return 0
    return _report_built(imported.environment, imported.notes, action)


def _print_notes(notes: Sequence[str]) -> None:
    """What the user should know about an operation's result, on stderr (stdout stays the result)."""
    for note in notes:
        print(f"note: {note}", file=sys.stderr)


def _report_built(env: Environment, notes: Sequence[str], action: str) -> int:
    """What a create, import or copy made: notes on stderr, the environment on stdout."""
    _print_notes(notes)
    print(f"{action} {env.name} ({env.kind}, Python {env.python}, {counted(env.package_count, 'package')}) "
          f"at {env.path}")
    if env.shared is not None:
        print(env.shared.sentence())
    return 0


def env_import(args: argparse.Namespace, session: Session) -> int:
    from envdesk.backend.operations.importing import import_environment
    path = Path(args.file) if args.file == STANDARD_STREAM else local_path(args.file)
    uv_project = path.is_dir() or path.name in ("pyproject.toml", "uv.lock")
    if uv_project and args.python:
        raise InvalidInput("--python is for environment files: a uv project's Python is the one its "
                           "requires-python allows.", "Leave --python out.")
    if args.dry_run:
        return _print_plan(args, session, path, uv_project)
    if uv_project:
        from envdesk.backend.operations.uvimport import import_uv_project
        imported = import_uv_project(session, args.cluster, path, name=args.name, root=args.root,
                                     top_level=args.top_level, agreed=args.yes,
                                     progress=_progress(args))
        return _report_import(imported, "Imported", args.json)
    spec = _read_for(session, args.cluster, path, args.python)
    imported = import_environment(session, args.cluster, spec, name=args.name, root=args.root,
                                  top_level=args.top_level, agreed=args.yes, progress=_progress(args),
                                  other_builds=args.other_builds, check_first=True)  # as the window's plan
    return _report_import(imported, "Imported", args.json)


def _cluster_channels(session: Session, cluster: str, own: Sequence[str] = ()) -> list[str]:
    """The conda channels of a build on `cluster`: its profile's, in order, then `own` (a file's) not among them;
    given to the operation so the environment's notes record them (the commands use them in any case)."""
    profile = session.target(cluster).profile
    chosen = list(profile.conda_channels) if profile is not None else []
    return chosen + [channel for channel in own if channel not in chosen]


STANDARD_STREAM = "-"
"""A file argument that means standard input (an environment file) or standard output (-o), as for pip and uv."""


def local_path(text: str) -> Path:
    """A file of this computer named on the command line, `~` being your home folder as for --root and
    --config-dir (a script's quoted '~/x.yml' made a folder named ~: a user trial)."""
    return Path(text).expanduser()


def _read_standard_input() -> Any:
    """The environment file on standard input, `-r` files beside it taken from the current folder."""
    from envdesk.backend.operations.importing import LARGEST_FILE, read_spec_bytes
    if interactive():
        print("Reading the environment file from what you type or paste; end it with Ctrl-D (Ctrl-Z, then "
              "Enter, on Windows).", file=sys.stderr)
    return read_spec_bytes(sys.stdin.buffer.read(LARGEST_FILE + 1), "The standard input", Path.cwd())


def _read_for(session: Session, cluster: str, path: Path, python: str | None = None) -> Any:
    """An environment file read for an import on `cluster`: a conda one gets the cluster's channels too; `python`
    (--python) in place of the file's Python."""
    from envdesk.backend.operations.importing import read_spec_file
    if str(path) == STANDARD_STREAM:
        spec = _read_standard_input()
    else:
        spec = read_spec_file(path, pipe_ok=True)  # `<(…)` is a pipe
    if spec.kind == "conda":
        spec.channels = _cluster_channels(session, cluster, spec.channels)
    if python:
        from envdesk.backend.operations.importing import with_python
        spec = with_python(spec, python)
    return spec


def _print_plan(args: argparse.Namespace, session: Session, path: Path, uv_project: bool) -> int:
    """--dry-run: what the import would install, adapt and refuse; nothing is created. It ends with 1 where the
    import could not build at all (blocked, or the name taken); what --yes would agree to is said, not failed."""
    from envdesk.backend.operations.importing import (check_availability, plan_import, settle_modules, taken_folder,
                                                      without_builds)
    from envdesk.backend.recipes import NO_DEFAULTS
    if uv_project:
        from envdesk.backend.operations.uvimport import plan_uv_project
        plan = plan_uv_project(session, args.cluster, path.parent if path.is_file() else path, name=args.name,
                               progress=_progress(args))
    else:
        plan = plan_import(session, args.cluster, _read_for(session, args.cluster, path, args.python), args.name,
                           _progress(args))
    if not plan.blocked:  # the modules shown are those the import will load, prerequisites and all
        settle_modules(session.target(args.cluster), plan, _progress(args))
    if args.top_level and not uv_project:
        without_builds(plan)
    taken = None if plan.blocked else taken_folder(session, args.cluster, plan.name, args.root, _progress(args))
    if taken:
        plan.blocked = f"{taken} already exists. Pick another name (--name) or delete it first."
    missing = [] if plan.blocked else check_availability(session, args.cluster, plan, _progress(args),
                                                                    args.other_builds)
    needs_yes = plan.needs_agreement
    plan = plan.shown()  # never a token of the file's lines or channels on the screen
    if args.json:
        _print_json({**plan.to_json(), "needs_yes": needs_yes,
                     "unavailable": [{"line": m.spec, "reason": m.reason} for m in missing]})
        return _blocked_said(plan.blocked) or _unavailable_said(args, session, plan, missing)
    if plan.channels:
        named = [channel for channel in plan.channels if channel != NO_DEFAULTS]
        print(f"conda channels, in order: {' '.join(named) or 'none named'}"
              + (" (nodefaults: conda's default channels are not used)" if NO_DEFAULTS in plan.channels else ""))
    print(f"Would build {plan.name} ({plan.kind}, Python {plan.python or 'any'}) on {args.cluster}"
          + (f" with modules {' '.join(plan.modules)}" if plan.modules else "") + ".")
    if plan.blocked:
        print(f"Blocked: {plan.blocked}")
    if plan.outside:
        print(f"Downloaded from outside {args.cluster}'s package index, only with --yes ({len(plan.outside)}):")
        print("\n".join(f"  {o.line}\n    from {o.host}" for o in plan.outside))
    unavailable = {m.spec.split(" --hash=")[0] for m in missing}  # listed once, below (T24 saw them twice)
    for title, pins in (("Install with pip/uv", plan.pins), ("Install with conda", plan.conda_pins)):
        lines = [line for line in pins if line.split(" --hash=")[0] not in unavailable]
        if lines:
            print(f"{title} ({len(lines)}):")
            print("\n".join(f"  {_short_hashes(line)}" for line in lines))
    if plan.constraints:
        print(f"Within these constraints, which the environment keeps for later installs ({len(plan.constraints)}):")
        print("\n".join(f"  {line}" for line in plan.constraints))
    if plan.adapted:
        print(f"Installed in another form ({len(plan.adapted)}):")
        print("\n".join(f"  {a.line}\n    -> {a.as_}: {a.reason}" for a in plan.adapted))
    if plan.refused:
        print(f"Not installed ({len(plan.refused)}):")
        print("\n".join(f"  {r.line}\n    {r.reason}" for r in plan.refused))
    if missing:
        print(f"Not available on {args.cluster} ({len(missing)}):")
        print("\n".join(f"  {m.spec}\n    {m.reason}" for m in missing))
    for note in plan.notes:
        print(f"Note: {note}")
    if not args.yes and not plan.blocked and needs_yes:
        print("Without --yes the import stops here, before anything is made: read the lines above, then add --yes "
              "to build the rest.")
    return _blocked_said(plan.blocked) or _unavailable_said(args, session, plan, missing)


def _unavailable_said(args: argparse.Namespace, session: Session, plan: Any, missing: list[Any]) -> int:
    """A dry run's exit status where its check found pins the cluster cannot install: 1, with what the import
    would say (on stderr), unless --top-level would install the top-level requirements in their place (said on
    stdout); 0 where nothing is missing. T20: a dry run said "Would build" and ended with 0 where the window's plan
    listed the same pins as unavailable."""
    from envdesk.backend.operations.common import capabilities
    from envdesk.backend.operations.importing import allow_newer, cannot_install, newer_versions_may_help
    if not missing:
        return 0
    if args.top_level and plan.requirements and newer_versions_may_help(missing):
        if not args.json:
            print(f"With --top-level: {', '.join(allow_newer(plan.requirements))} in their place, the installer "
                  f"choosing versions {args.cluster} has (their dependencies may be older or newer).")
        return 0
    target = session.target(args.cluster)
    failure = cannot_install(target, missing, plan, capabilities(session, target, _progress(args)))
    print(f"envdesk: {failure}", file=sys.stderr)
    return 1


def _blocked_said(blocked: str | None) -> int:
    """A dry run's exit status: 1 where the import could not build, said on stderr as every failure is (its plan
    on stdout is for reading or a script; a user trial's blocked dry run failed with nothing on stderr)."""
    if not blocked:
        return 0
    print(f"envdesk: {blocked}", file=sys.stderr)
    return 1


def _short_hashes(line: str) -> str:
    """A hashed line as a plan shows it: 'name==1.0 (checked against 130 file hashes)', not every hash."""
    count = line.count(" --hash=")
    return f"{line.split(' --hash=')[0]} (checked against {count} file hash{'es' if count > 1 else ''})" \
        if count else line


def env_clone(args: argparse.Namespace, session: Session) -> int:
    from envdesk.backend.operations.clone import clone_environment
    imported = clone_environment(session, args.src_cluster, args.env, args.dst_cluster, name=args.name,
                                 top_level=args.top_level, progress=_progress(args),
                                 other_builds=args.other_builds, check_first=True, agreed=args.yes)
    return _report_import(imported, "Copied to")


def env_doctor(args: argparse.Namespace, session: Session) -> int:
    """The health check (exit 0 whatever it finds); with --fix, one safe fix after asking (or --yes)."""
    from envdesk.backend.operations.doctor import check_health, fix_finding, offered_fix
    progress = _progress(args)
    if args.fix:
        offered_fix(args.fix)
        if args.json and not args.yes:
            raise InvalidInput("--fix with --json needs --yes (a question would mix with the JSON).")
        if not args.yes and not ask_yes_no(f"Apply the fix {args.fix} on {args.cluster}?"):
            print("Nothing was changed.", file=sys.stderr)
            return 1
        done = fix_finding(session, args.cluster, args.fix, progress)
        if args.json:
            _print_json({"fix": args.fix, "done": done})
        else:
            print(done)
        return 0
    health = check_health(session, args.cluster, args.env, progress)
    if args.json:
        _print_json(health.to_json())
        return 0
    print(f"Checked {len(health.checked)} environment(s) on {args.cluster}: "
          + (f"{len(health.findings)} finding(s)." if health.findings else "nothing wrong found."))
    for finding in health.findings:
        print(f"\n* {finding.title}" + (f" [{finding.env}]" if finding.env else ""))
        print(f"  {finding.detail}\n  What to do: {finding.advice}")
        if finding.fix:
            print(f"  EnvDesk can do it: envdesk env doctor {args.cluster} --fix {finding.fix}")
    return 0


def env_delete(args: argparse.Namespace, session: Session) -> int:
    """Delete an environment after asking at the terminal (or with --yes): it cannot be undone."""
    from envdesk.backend.operations.delete import delete_environment, to_delete
    found = None
    question = f"Delete {args.env} on {args.cluster}? It cannot be undone."
    if not args.yes and interactive():  # the question names the folder and what it holds, as the window's does
        found, measured = to_delete(session, args.cluster, args.env, _progress(args))
        question = " ".join(filter(None, (
            f"Delete {args.env} on {args.cluster}, the folder {found.path} ({measured.amount()})?",
            measured.kernels_going(), "It cannot be undone.")))
    if not args.yes and not ask_yes_no(question):
        print("Nothing was deleted.", file=sys.stderr)
        return 1
    try:
        deleted = delete_environment(session, args.cluster, args.env, _progress(args), found=found)
    except KeyboardInterrupt:  # T19: 'envdesk: interrupted.' said nothing of what a stopped delete leaves
        from envdesk.backend.operations.delete import stopped_delete
        print(f"envdesk: {stopped_delete(found.path if found else args.env)}", file=sys.stderr)
        return 130
    said, *notes = deleted.notes  # what was deleted is the result; what went with it, notes (on stderr)
    print(said)
    _print_notes(notes)
    return 0


def env_diff(args: argparse.Namespace, session: Session) -> int:
    """Compare two environments (exit 0 whether or not they differ); with --make-like, make B like A in one
    update of B, after asking (or with --yes)."""
    from envdesk.backend.operations.diff import diff_environments, make_like, parse_reference
    target_a, env_a = parse_reference(args.a)
    target_b, env_b = parse_reference(args.b)
    if args.make_like and args.json and not args.yes:
        raise InvalidInput("--make-like with --json needs --yes (a question would mix with the JSON).")
    progress = _progress(args)
    compared = diff_environments(session, target_a, env_a, target_b, env_b, progress)
    _print_notes(compared.notes)
    if not args.json:
        _print_drift(compared)
    if not args.make_like:
        if args.json:
            _print_json(compared.to_json())
        return 0
    plan = compared.plan()
    if not args.json:
        _print_like_plan(compared, plan)
    if not plan.empty and not args.yes and not ask_yes_no(f"Change {compared.there.reference()} as listed?"):
        print("Nothing was changed (run again with --yes to change it without being asked).", file=sys.stderr)
        return 1
    made = make_like(session, target_a, env_a, target_b, env_b, progress, comparison=compared)
    if args.json:
        _print_json({**compared.to_json(), "made_like": {**plan.to_json(), "snapshot": made.snapshot}})
    elif made.snapshot is None:
        print(f"{compared.there.reference()} is unchanged, so no snapshot was kept.")
    else:
        print(f"Made {compared.there.reference()} like {compared.here.reference()}. Undo with: "
              f"{_command('env', 'revert', target_b, env_b, made.snapshot)}")
    return 0


def _print_drift(compared: Comparison) -> None:
    for letter, side in (("A", compared.here), ("B", compared.there)):
        env = side.environment
        print(f"{letter}: {side.reference()} ({env.kind}, Python {env.python or '?'}, "
              f"{counted(env.package_count, 'package')}) at {env.path}")
    drift = compared.drift
    if not drift.identical:
        _print_table([list(row) for row in drift.table()], ["PACKAGE", "A", "B"])
    print(drift.summary("in A", "in B"))


def _print_like_plan(compared: Comparison, plan: LikePlan) -> None:
    if plan.empty:
        print(f"Making B like A: nothing to change in {compared.there.reference()}"
              + (" (what differs is left alone):" if plan.left_alone else "."))
    else:
        print(f"Making B like A changes {compared.there.reference()} in one update (a snapshot is saved first):")
    for title, items in (("install", plan.add), ("remove", plan.remove)):
        if items:
            print(f"  {title}: {' '.join(items)}")
    if plan.left_alone:
        print(f"  left alone ({len(plan.left_alone)}):")
        print("\n".join(f"    {item.name} {item.why}" for item in plan.left_alone))


# -- kernel -----------------------------------------------------------------------------------

def kernel_add(args: argparse.Namespace, session: Session) -> int:
    """Register an environment as a Jupyter kernel; without ipykernel, say so (and how to install it)."""
    return _made_kernel(args, session, args.env, name=args.name, display_name=args.display_name,
                        install_ipykernel=args.install_ipykernel, force=args.force)


def _made_kernel(args: argparse.Namespace, session: Session, env: str, **options: Any) -> int:
    from envdesk.backend.operations.kernels import add_kernel
    kernel = add_kernel(session, args.cluster, env, _progress(args), **options)
    _print_notes(kernel.notes)
    loads = f", loading {' '.join(kernel.modules)} first" if kernel.modules else ""
    print(f"Made the Jupyter kernel {kernel.name} (\"{kernel.display_name}\"){loads}: it runs {kernel.env_path}. "
          f"Jupyter on {session.target(args.cluster).label} offers it in new notebooks (reload the page of a "
          "running server).")
    return 0


def kernel_list(args: argparse.Namespace, session: Session) -> int:
    from envdesk.backend.operations.kernels import Kernel, list_kernels
    kernels = list_kernels(session, args.cluster)
    if args.json:
        _print_json([kernel.to_json() for kernel in kernels])
    elif not kernels:
        print(f"No Jupyter kernels of your own on {args.cluster}. Make one: envdesk kernel add {args.cluster} ENV")
    else:
        def state(kernel: Kernel) -> str:
            if kernel.error:
                return "unreadable"
            if kernel.env_exists and kernel.module_gone:
                return f"MODULE GONE ({kernel.module_gone})"  # T23: a retired module, and it does not start
            if kernel.env_exists and kernel.has_ipykernel is False:
                return "NO IPYKERNEL"  # Jupyter lists it, and it does not start
            if kernel.env_exists and not kernel.modules_checked:
                return "ok (modules not checked)"
            return {True: "ok", False: "ENV GONE", None: "?"}[kernel.env_exists]
        _print_table([[k.name, k.display_name, "EnvDesk" if k.made_by_envdesk else "other",
                       state(k), k.env_path or " ".join(k.argv)] for k in kernels],
                     ["NAME", "SHOWN AS", "MADE BY", "STATE", "ENVIRONMENT"])
    return 0


def kernel_remove(args: argparse.Namespace, session: Session) -> int:
    from envdesk.backend.operations.kernels import remove_kernel
    kernel = remove_kernel(session, args.cluster, args.name, _progress(args), force=args.force)
    print(f"Removed the Jupyter kernel {kernel.name} ({kernel.folder}). {kernel.what_stays()}".rstrip())
    return 0


# -- disk -------------------------------------------------------------------------------------

def disk(args: argparse.Namespace, session: Session) -> int:
    """What the environments take, what is left (space, files, quota); with --clean, empty a cache."""
    from envdesk.backend.operations.disk import disk_report
    if args.clean:
        return _disk_clean(args, session)
    report = disk_report(session, args.cluster, progress=_progress(args))
    _print_notes(report.notes)
    if args.json:
        _print_json(report.to_json())
        return 0
    _print_disk(report)
    return 0


def _count_text(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def _print_disk(report: Any) -> None:
    from envdesk.backend.sizes import size_text
    if report.environments:
        print(f"Environments on {report.label}, the most files first ('+': still more, measuring was cut short):")
        _print_table([[env.name, env.kind, size_text(env.usage.bytes) + ("" if env.usage.complete else "+"),
                       f"{env.usage.files:,}" + ("" if env.usage.complete else "+"), env.path]
                      for env in report.environments if env.usage is not None],
                     ["NAME", "KIND", "SIZE", "FILES", "LOCATION"])
    else:
        print(f"No environments found on {report.label}.")
    print("\nFree on the file systems of the environment folders and the home folder:")
    _print_table([[space.path, size_text(space.free_bytes), size_text(space.total_bytes),
                   _count_text(space.free_files), _count_text(space.total_files)] for space in report.space],
                 ["FOLDER", "FREE", "OF", "FILES LEFT", "OF"])
    for found in report.quotas:
        print(f"\nQuota, as {found.command} reports it:")
        if found.quotas:
            _print_table([[quota.filesystem + (f" ({quota.owner})" if quota.owner else ""),
                           size_text(quota.used_bytes), "none" if quota.limit_bytes is None
                           else size_text(quota.limit_bytes), _count_text(quota.used_files),
                           "none" if quota.limit_files is None else _count_text(quota.limit_files),
                           "OVER" if quota.over else ""] for quota in found.quotas],
                         ["FILE SYSTEM", "USED", "LIMIT", "FILES", "FILE LIMIT", ""])
        else:
            print("\n".join(f"  {line}" for line in found.raw.splitlines()) or "  No quota set.")
    if not report.quotas:
        print(f"\n{report.label} has no quota report EnvDesk knows (diskusage_report, uquota, lfs quota, quota).")


def _disk_clean(args: argparse.Namespace, session: Session) -> int:
    from envdesk.backend.operations.disk import clean_caches
    what = "pip's, uv's and conda's caches" if args.clean == "all" else f"{args.clean}'s cache"
    if not args.yes:
        if args.json:
            raise InvalidInput("--clean with --json needs --yes (a question would mix with the JSON).")
        if not ask_yes_no(f"Empty {what} on {args.cluster}? Environments are not touched; later installs "
                          "download what they need again."):
            print("Nothing was cleaned (run again with --yes to clean without being asked).", file=sys.stderr)
            return 1
    cleaned = clean_caches(session, args.cluster, args.clean, _progress(args))
    if args.json:
        _print_json({"target": args.cluster, "cleaned": [item.to_json() for item in cleaned]})
        return 0
    for item in cleaned:
        print(item.summary() + (f" ({', '.join(item.folders)})" if item.folders else ""))
    return 0


# -- wiring -----------------------------------------------------------------------------------

