"""No command injection (issue 9): every hostile value of tests/hostile_values.py, fed into every place
a user can type or import a value, on this computer and on the test bed's cluster alpha.

Each try ends one of two ways: refused with one of EnvDesk's plain errors (no traceback, naming what
was wrong), or accepted and shown to arrive literally where it belongs (a folder named exactly that,
one installer argument, one entry of the plan, the same value read back from clusters.yaml). The
values that would run something create their own canary file if they ever ran; none may exist
afterwards, on this computer or on the cluster, and the roots' listings must change only where the
test made environments on purpose.

How much runs for real (the rest is checked in-process, through the same functions the CLI and the
app call; a refusal happens before any command, which alpha's sshd log confirms):
- one argv-echo command per target (in a few chunks) carrying every value through the runner;
- one agent read per target carrying every path-like value, then every value looked up by name;
- one availability check on alpha running the real uv dry-run on a spread of CHECKED accepted lines;
- a sample of real creates, updates, imports, shows, exports and deletes with accepted values
  (SAMPLE per kind), and one real SSH connection through a hostile ~/.ssh/config.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from envdesk.backend import spec as specs
from envdesk.backend import validate
from envdesk.backend.config import ClusterProfile, ClusterStore, LocalSettings
from envdesk.backend.errors import ConfigError, EnvDeskError
from envdesk.backend.inventory import read_inventory
from envdesk.backend.operations.common import is_path
from envdesk.backend.operations.create import CreateRequest, create_environment
from envdesk.backend.operations.delete import delete_environment
from envdesk.backend.operations.export import export_environment
from envdesk.backend.operations.importing import check_availability, import_environment, plan_import
from envdesk.backend.operations.listing import show_environment
from envdesk.backend.operations.update import Change, update_environment
from envdesk.backend.paths import AppPaths
from envdesk.backend import ssh_config
from envdesk_fixtures import run_cli, unique
from hostile_values import CANARY_PREFIX, Hostile, hostile_values

SAMPLE = 4
CHECKED = 24
ECHO_ARGV = "import json, sys; print(json.dumps(sys.argv[1:]))"


@dataclass
class Corpus:
    """The values, the world-writable folder their canaries would land in, and the counts so far."""

    folder: Path
    values: list[Hostile]
    tries: Counter = field(default_factory=Counter)
    refused: Counter = field(default_factory=Counter)
    accepted: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def strings(self) -> list[str]:
        return [h.value for h in self.values]

    def canaries_found(self, *homes: Path) -> list[str]:
        """Canary files anywhere they could have been made: the canary folder, the homes, this folder."""
        found = [str(p) for p in self.folder.iterdir() if p.name.startswith(CANARY_PREFIX)]
        for place in {*homes, Path.cwd()}:
            found += [str(p) for p in Path(place).glob(CANARY_PREFIX + "*")]
        return found

    def new_canaries(self, *homes: Path) -> list[str]:
        """The canaries that appeared since the last look (each test answers for its own tries)."""
        found = self.canaries_found(*homes)
        new = [path for path in found if path not in self.seen]
        self.seen.update(found)
        return new


@pytest.fixture(scope="module")
def corpus():
    # In /tmp and world-writable, so that a cluster user running a value would leave its canary here too.
    folder = Path(tempfile.mkdtemp(prefix="envdesk-hostile-"))
    folder.chmod(0o1777)
    yield Corpus(folder, hostile_values(str(folder)))
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(autouse=True)
def own_problems(corpus):
    """Each test reports only the failures of its own tries."""
    corpus.problems.clear()


def no_problems(corpus: Corpus) -> None:
    """Every try so far ended plainly; otherwise one line per input and kind of failure, with an example."""
    seen: dict[str, str] = {}
    for problem in corpus.problems:
        seen.setdefault(problem.split(" | ")[0] + problem.rsplit(" | ", 1)[-1][:40], problem)
    corpus.problems.clear()
    assert not seen, f"{len(seen)} kind(s) of failure:\n" + "\n".join(seen.values())


def plain(error: BaseException, words: tuple[str, ...]) -> None:
    """An error a user can read: one of EnvDesk's, no traceback, naming what was wrong."""
    assert isinstance(error, EnvDeskError), f"{type(error).__name__}: {error}"
    text = str(error)
    assert text.strip() and "Traceback" not in text and 'File "' not in text, text
    assert any(word in text.lower() for word in words), (words, text[:300])


def attempt(corpus: Corpus, name: str, value: Any, call: Callable[[Any], Any],
            words: tuple[str, ...]) -> tuple[bool, Any]:
    """Run one try: (True, what `call` returned) when accepted, (False, None) when plainly refused."""
    corpus.tries[name] += 1
    try:
        result = call(value)
    except Exception as error:
        try:
            plain(error, words)
        except AssertionError as why:
            corpus.problems.append(f"{name} | {value[:70]!r} | {type(error).__name__}: {str(why)[:200]}")
            return False, None
        corpus.refused[name] += 1
        return False, None
    corpus.accepted[name] += 1
    return True, result


def sample(values: list, count: int = SAMPLE) -> list:
    """A fixed spread of `count` items (first, last, and evenly between)."""
    if len(values) <= count:
        return list(values)
    step = (len(values) - 1) / (count - 1)
    return [values[round(i * step)] for i in range(count)]


def tree(*folders: Path) -> set[str]:
    """Every path under the folders (links not followed; installers' caches left out): the before/after listing."""
    found: set[str] = set()
    for folder in folders:
        for top, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if d != ".cache"]
            found.update(os.path.join(top, n) for n in dirs + files)
    return found


# ---------------------------------------------------------------- validators


VALIDATORS: dict[str, tuple[Callable[[str], Any], tuple[str, ...]]] = {
    "cluster name": (validate.cluster_name, ("cluster name", "local")),
    "host": (validate.host, ("host name",)),
    "user": (validate.user, ("username",)),
    "port": (validate.port, ("port",)),
    "jump host": (validate.hop_address, ("jump host", "host name", "username", "port")),
    "cluster folder": (validate.remote_folder, ("folder",)),
    "local folder": (validate.local_folder, ("folder",)),
    "one-line text": (lambda v: validate.plain_text(v, "pip argument"), ("pip argument",)),
    "environment name": (validate.env_name, ("environment name",)),
    "module": (validate.module_name, ("module name",)),
    "package name": (validate.package_name, ("package name",)),
    "package spec": (validate.package_spec, ("package",)),
    "version": (validate.version, ("version",)),
    "conda channel": (validate.conda_channel, ("conda channel",)),
}


def test_every_refusal_is_short_and_readable(corpus):
    """Each check of backend/validate.py refuses with a message that quotes the value briefly and escaped."""
    for name, (check, words) in VALIDATORS.items():
        for hostile in corpus.values:
            try:
                check(hostile.value)
            except EnvDeskError as error:
                plain(error, words)
                assert len(error.message) < 300 and error.message.isprintable(), (name, error.message[:300])


def test_what_the_checks_accept_is_harmless(corpus):
    """Values that are refused because of what they are, checked by their meaning rather than by a list."""
    for hostile in corpus.values:
        text = hostile.value
        for name in ("host", "user", "environment name", "module", "cluster folder", "local folder"):
            check = VALIDATORS[name][0]
            try:
                check(text)
            except EnvDeskError:
                continue
            assert hostile.canary is None or name.endswith("folder"), (name, text)
            assert not text.startswith("-") and "\0" not in text and "\n" not in text, (name, text)
        for name in ("cluster folder", "local folder"):
            try:
                folder = VALIDATORS[name][0](text)
            except EnvDeskError:
                continue
            assert folder.startswith("/") or folder == "~" or folder.startswith("~/"), (name, text)
    # relative on this computer, however they look: a Windows drive, a backslash, '~user', '~-'
    for relative in ("C:\\Windows", "\\", "\\\\server\\share", "~root", "~-", "~+/x", "~nobody/x"):
        with pytest.raises(EnvDeskError, match="full path"):
            validate.local_folder(relative)
    for odd in ("[a-z]*", "[2001:db8::1", "[::1]x", "[host]junk"):
        with pytest.raises(EnvDeskError, match="jump host"):
            validate.hop_address(odd)
    for odd in ("a" * 300, ".", "..", "c:", "[10.0.0.1]", "[a-z]", "::g"):
        with pytest.raises(EnvDeskError, match="host name"):
            validate.host(odd)
    assert validate.hop_address("me@[2001:db8::1]:2222").port == 2222 and validate.host("[::1]") == "::1"


# ---------------------------------------------------------------- cluster fields and ~/.ssh/config


CLUSTER_FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "name": ("name", ("cluster name", "local")),
    "host": ("host", ("host name",)),
    "user": ("user", ("username",)),
    "port": ("port", ("port",)),
    "jump": ("jump", ("jump host", "host name", "username", "port")),
    "env root": ("env_roots", ("folder",)),
    "pip argument": ("pip_args", ("pip argument",)),
    "identity file": ("identity_file", ("identity file",)),
}


def test_cluster_fields_are_refused_or_saved_literally(corpus, tmp_path):
    """Through ClusterProfile and ClusterStore, as `envdesk cluster add` and the app's dialog save them;
    what is accepted reads back from clusters.yaml as it was given, and connects to exactly that host."""
    store = ClusterStore(AppPaths(tmp_path / "cfg"))
    no_ssh_config = ssh_config.load_ssh_config(tmp_path / "no-ssh-config")
    for label, (key, words) in CLUSTER_FIELDS.items():
        saved: list[tuple[ClusterProfile, Any]] = []
        for hostile in corpus.values:
            given = [hostile.value] if key in ("jump", "env_roots", "pip_args") else hostile.value
            fields = {"name": f"n{len(saved)}", "host": "h", key: given}

            def build(_: str, fields: dict[str, Any] = fields) -> ClusterProfile:
                return ClusterProfile(**fields)
            ok, profile = attempt(corpus, f"cluster add: {label}", hostile.value, build, words)
            if not ok:
                continue
            if key == "port":
                given = int(hostile.value)
            elif key == "env_roots":
                given = [hostile.value.rstrip("/") or "/"]
            saved.append((profile, given))
            if key == "host":
                assert ssh_config.plan_connection(profile, no_ssh_config).target.host == validate.host(hostile.value)
            elif key == "jump":
                assert ssh_config.plan_connection(profile, no_ssh_config).jumps[0].host == \
                    validate.hop_address(hostile.value).host
        store.save(profile for profile, _ in saved)  # one clusters.yaml holding every accepted value
        assert [p.to_dict()[key] for p in store.load()] == [given for _, given in saved], label
    store.save([])
    no_problems(corpus)
    for hostile in corpus.values:  # "This computer"'s folders, as the local: entry of clusters.yaml holds them
        ok, _ = attempt(corpus, "local env root", hostile.value, lambda v: LocalSettings(env_roots=[v]),
                        ("folder",))
        if ok:
            store.update_local_roots(hostile.value)
            assert store.local_settings().env_roots[-1] == hostile.value
    no_problems(corpus)


def ssh_config_text(field_name: str, value: str) -> str:
    """A ~/.ssh/config whose one setting holds the value (the alias hv is what the profile names)."""
    settings = {"HostName": f"Host hv\n  HostName {value}\n", "User": f"Host hv\n  User {value}\n",
                "Port": f"Host hv\n  Port {value}\n", "ProxyJump": f"Host hv\n  ProxyJump {value}\n",
                "IdentityFile": f"Host hv\n  IdentityFile {value}\n", "Host": f"Host {value}\n  User u\n",
                "ProxyCommand": f"Host hv\n  ProxyCommand {value}\n",
                "Match exec": f"Match exec {value}\n  User attacker\nHost hv\n  User u\n"}
    return settings[field_name]


def openssh_says(config: Path) -> dict[str, str]:
    """What OpenSSH resolves for hv from this file (`ssh -G` connects nowhere and runs no ProxyCommand)."""
    result = subprocess.run(["ssh", "-G", "-F", str(config), "hv"], capture_output=True, text=True, timeout=30)
    if result.returncode:
        return {}
    return dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)


def _usable(check: Callable[[str], Any], text: str) -> bool:
    try:
        check(text)
    except EnvDeskError:
        return False
    return True


def test_ssh_config_values_never_run_and_resolve_as_openssh_does(corpus, tmp_path):
    """Every value in every setting of ~/.ssh/config, read through backend/ssh_config.py."""
    config = tmp_path / "ssh_config"
    words = ("ssh configuration", "host name", "username", "port", "jump host", "identity file")
    for field_name in ("HostName", "User", "Port", "ProxyJump", "IdentityFile", "Host", "ProxyCommand",
                       "Match exec"):
        for hostile in corpus.values:
            if "\0" in hostile.value or any(0xD800 <= ord(c) <= 0xDFFF for c in hostile.value):
                continue  # a file cannot hold these (UTF-8); other inputs try them
            text = ssh_config_text(field_name, hostile.value)
            config.write_text(text, encoding="utf-8")

            def resolve(_: str) -> Any:
                loaded = ssh_config.load_ssh_config(config)
                plan = ssh_config.plan_connection(ClusterProfile(name="c", host="hv"), loaded)
                ssh_config.profiles_from_ssh_config(loaded)  # "import from ~/.ssh/config"
                return plan
            ok, plan = attempt(corpus, f"ssh_config: {field_name}", hostile.value, resolve, words)
            if ok and "exec" not in text.lower() and field_name in ("HostName", "User", "Port"):
                # the referee: OpenSSH's own reading of the same file (exec-free, so ssh -G runs nothing)
                referee = openssh_says(config)
                # Compared where OpenSSH's answer is one it could use: for 'numpy\xa0' it keeps the
                # no-break space (and would fail), paramiko strips it as Python's str.strip() does.
                for ours, key, check in ((plan.target.host, "hostname", validate.host),
                                         (str(plan.target.port), "port", validate.port),
                                         (plan.target.user, "user", validate.user)):
                    if key in referee and _usable(check, referee[key]):
                        assert ours == referee[key], (field_name, hostile.value[:80], key)
    assert corpus.new_canaries(tmp_path) == []
    no_problems(corpus)


def test_a_hostile_ssh_config_runs_nothing_on_a_real_connection(testbed, session, home, corpus):
    """ProxyCommand, LocalCommand, KnownHostsCommand and every spelling of `Match exec` in front of a
    real login: EnvDesk runs only its own command. A ProxyCommand it cannot follow stops the connection (T28: going
    without it is not the way ssh goes); without it, EnvDesk logs in and runs nothing else."""
    alpha = testbed.clusters["alpha"]
    canaries = [f"{corpus.folder}/{CANARY_PREFIX}ssh-{n}" for n in range(9)]
    matches = [f'Match {keyword} "touch {canaries[n]}"' for n, keyword in enumerate(
        ["exec", '"exec"', "'exec'", 'e"x"ec', '!"exec"', '"!exec"', "ex\\ec", 'host hv "exec"'])]
    (home / ".ssh").mkdir(exist_ok=True)
    profile = session.store.get("alpha")
    profile.host = "hv"
    session.store.replace(profile)
    for proxy in (f"  ProxyCommand touch {canaries[8]}\n", ""):
        (home / ".ssh" / "config").write_text(
            "".join(f"{line}\n  User attacker\n" for line in matches)
            + f"Host hv\n  HostName {alpha.host}\n  Port {alpha.port}\n{proxy}"
            f"  LocalCommand touch {canaries[8]}\n  PermitLocalCommand yes\n"
            f"  KnownHostsCommand /bin/sh -c 'touch {canaries[8]}'\n")
        session.close()
        try:
            result, error = session.target("alpha").runner.run(["python3", "-c", ECHO_ARGV, "$(id)"]), None
        except EnvDeskError as failed:
            result, error = None, failed
        ran = [c for c in canaries if os.path.exists(c)]
        corpus.seen.update(ran)
        assert ran == [], "these Match lines ran their command"
        if proxy:
            assert isinstance(error, ConfigError) and "ProxyCommand" in error.message, error
        else:
            assert error is None and result is not None and json.loads(result.stdout) == ["$(id)"], error


# ---------------------------------------------------------------- the runners


def test_every_value_reaches_a_command_as_one_literal_argument(testbed, session, corpus):
    """The referee is the command's own sys.argv: on this computer, and on alpha through the login shell
    with a module loaded (the way installers run), in chunks below Linux's 128 KiB argument limit."""
    values = [v for v in corpus.strings() if "\0" not in v and not any(0xD800 <= ord(c) <= 0xDFFF for c in v)]
    chunks: list[list[str]] = [[]]
    for value in values:
        if sum(len(v.encode()) for v in chunks[-1]) + len(value.encode()) > 60_000 and chunks[-1]:
            chunks.append([])
        chunks[-1].append(value)
    for target, modules in (("local", ()), ("alpha", ("python/3.11.5",))):
        runner = session.target(target).runner
        for chunk in chunks:
            if len(chunk) == 1 and len(chunk[0]) > 100_000:
                continue  # one argument past Linux's MAX_ARG_STRLEN cannot reach any program
            result = runner.run(["python3", "-c", ECHO_ARGV, *chunk], modules=modules)
            assert result.ok, result.stderr[-500:]
            assert json.loads(result.stdout.strip().splitlines()[-1]) == chunk
            corpus.tries[f"runner argv ({target})"] += len(chunk)
            corpus.accepted[f"runner argv ({target})"] += len(chunk)
    assert corpus.new_canaries(testbed.clusters["alpha"].home) == []


# ---------------------------------------------------------------- create, update, show, export, delete


def create_inputs(root_base: str) -> dict[str, tuple[Callable[[str], CreateRequest], tuple[str, ...]]]:
    return {
        "create: name": (lambda v: CreateRequest(name=v), ("environment name",)),
        "create: module": (lambda v: CreateRequest(name="h", modules=[v]), ("module name",)),
        "create: package": (lambda v: CreateRequest(name="h", packages=[v]), ("package",)),
        "create: conda package": (lambda v: CreateRequest(name="h", conda_packages=[v]), ("conda package",)),
        "create: conda channel": (lambda v: CreateRequest(name="h", channels=[v]), ("conda channel",)),
        "create: python": (lambda v: CreateRequest(name="h", python=v), ("version",)),
        "create: root": (lambda v: CreateRequest(name="h", root=v), ("folder",)),
        "create: root in a test folder": (lambda v: CreateRequest(name="h", root=f"{root_base}/{v}"), ("folder",)),
    }


CHANGES: dict[str, tuple[Callable[[str], Change], tuple[str, ...]]] = {
    "update: add": (lambda v: Change(add=[v]), ("package",)),
    "update: remove": (lambda v: Change(remove=[v]), ("package name",)),
    "update: upgrade": (lambda v: Change(upgrade=[v]), ("package name",)),
}


def local_wheels(session, testbed) -> None:
    """This computer installs from the test bed's wheelhouse (there is no network here)."""
    path = session.paths.clusters_file
    data = yaml.safe_load(path.read_text())
    data["local"] = {"pip_args": ["--no-index", "--find-links", str(testbed.clusters["alpha"].wheelhouse)]}
    path.write_text(yaml.safe_dump(data))


def test_create_and_update_inputs_on_both_targets(testbed, session, home, corpus):
    alpha = testbed.clusters["alpha"]
    local_wheels(session, testbed)
    session.target("alpha").runner.connect()
    accepted: dict[tuple[str, str], list[CreateRequest | Change]] = {}
    bases = {"local": f"{corpus.folder}/local", "alpha": f"{corpus.folder}/alpha"}
    before = len(alpha.session_commands())
    for target in ("local", "alpha"):
        for input_name, (make, words) in create_inputs(bases[target]).items():
            for hostile in corpus.values:
                def refuse_for_real(v: str, make=make) -> CreateRequest:
                    make(v).validate()  # raises when refused; then the real call must refuse the same way
                    return make(v)
                ok, request = attempt(corpus, f"{input_name} ({target})", hostile.value, refuse_for_real, words)
                if ok:
                    accepted.setdefault((target, input_name), []).append(request)
                    continue
                with pytest.raises(EnvDeskError) as refused:
                    create_environment(session, target, make(hostile.value))
                plain(refused.value, words)
        for input_name, (change, words) in CHANGES.items():
            for hostile in corpus.values:
                def check(v: str, change: Callable[[str], Change] = change) -> None:
                    change(v).validate()
                ok, _ = attempt(corpus, f"{input_name} ({target})", hostile.value, check, words)
                if ok:
                    accepted.setdefault((target, input_name), []).append(change(hostile.value))
                    continue
                with pytest.raises(EnvDeskError) as refused:
                    update_environment(session, target, "h", change(hostile.value))
                plain(refused.value, words)
    assert len(alpha.session_commands()) == before, "a refused value must not run anything on the cluster"
    no_problems(corpus)

    # Accepted: the roots in the test folders are built for real (a sample), the folder named exactly so.
    os.makedirs(bases["local"])
    subprocess.run(["install", "-d", "-o", alpha.user, bases["alpha"]], check=True)
    watched = [Path(home), alpha.home / "venvs"]
    listing = tree(*watched)
    made = []
    for target in ("local", "alpha"):
        for request in sample(accepted.get((target, "create: root in a test folder"), [])):
            assert request.root is not None and request.root.startswith(bases[target] + "/")
            request.kind = "uv"
            env = create_environment(session, target, request).environment
            assert env.path == f"{request.root}/h" and os.path.isdir(env.path), (env.path, request.root)
            assert os.stat(env.path).st_uid == (os.getuid() if target == "local" else os.stat(alpha.home).st_uid)
            made.append((target, env.path))
        # names, modules and packages that pass the checks (their commands fail plainly or succeed)
        for kind in ("create: name", "create: module", "create: package"):
            for request in sample(accepted.get((target, kind), []), 2):
                request.kind, request.root = "uv", f"{bases[target]}/sampled"
                if kind != "create: name":
                    request.name = unique("h")
                if kind == "create: name" and target == "alpha":
                    request.root = None
                try:
                    env = create_environment(session, target, request).environment
                except EnvDeskError as error:
                    plain(error, ("module", "install", "package", "failed"))
                    continue
                assert env.name == request.name
                made.append((target, env.path))
    for target, path in made:
        assert delete_environment(session, target, path).path == path and not os.path.exists(path)
    # an update with an accepted package line, on an environment made for it
    victim = create_environment(session, "alpha", CreateRequest(name=unique("hostile"), kind="uv")).environment
    for change in sample(accepted.get(("alpha", "update: add"), []), 2):
        try:
            update_environment(session, "alpha", victim.path, change)
        except EnvDeskError as error:
            plain(error, ("install", "package", "failed", "rolled back"))
    delete_environment(session, "alpha", victim.path)
    assert tree(*watched) == listing, "something outside the environments made on purpose changed"
    assert corpus.new_canaries(home, alpha.home) == []


def test_show_export_delete_refer_only_to_what_exists(testbed, session, home, corpus):
    """Every value as the environment a verb names: paths read by the agent (one read), names looked up."""
    alpha = testbed.clusters["alpha"]
    watched = [Path(home), alpha.home]
    listing = tree(*watched)
    for target in ("local", "alpha"):
        t = session.target(target)
        paths = [v for v in corpus.strings() if is_path(v) and "\0" not in v]
        inventory = read_inventory(t.runner, t.roots, paths=paths)
        whole = read_inventory(t.runner, t.roots)
        for hostile in corpus.values:
            ok, found = attempt(corpus, f"show/export/delete: environment ({target})", hostile.value,
                                (inventory if is_path(hostile.value) else whole).find, ("environment",))
            assert not ok or found.path in (hostile.value, os.path.expanduser(hostile.value)), hostile.value
        no_problems(corpus)
        # the verbs themselves, for a sample of values (system folders are deleted only as the cluster's
        # unprivileged user: on this computer the tests run as root)
        for hostile in sample([h for h in corpus.values if "\0" not in h.value], 2 * SAMPLE):
            for verb in (show_environment, lambda s, n, ref: export_environment(s, n, ref, "requirements")):
                with pytest.raises(EnvDeskError) as refused:
                    verb(session, target, hostile.value)
                plain(refused.value, ("environment",))
        deletable = [h.value for h in corpus.values if target == "alpha" or not h.value.startswith("/")]
        for value in sample([v for v in deletable if "\0" not in v], 2 * SAMPLE) + ["~", "/", "~/venvs", "/etc"]:
            if target == "local" and value.startswith("/"):
                continue
            with pytest.raises(EnvDeskError) as refused:
                delete_environment(session, target, value)
            plain(refused.value, ("environment", "not inside", "folder"))
    assert tree(*watched) == listing
    assert corpus.new_canaries(home, alpha.home) == []


# ---------------------------------------------------------------- imported files


def import_files(value: str) -> dict[str, tuple[str, str]]:
    """(file name, text) per place of each supported file format that can carry the value."""
    def dump(data: Any) -> str:
        return yaml.safe_dump(data, allow_unicode=True)

    def toml(text: str) -> str:
        return json.dumps(text)  # a TOML basic string is JSON's string syntax

    envdesk = {"envdesk": 1, "kind": "venv"}
    pin = {"name": "tinyalpha", "version": "1.0"}
    return {
        "requirements.txt: line": ("requirements.txt", value + "\n"),
        "requirements.txt: -r": ("requirements.txt", f"-r {value}\n"),
        "requirements.txt: header": ("requirements.txt", f"# envdesk: kind=venv modules={value}\n"),
        "environment.yml: dependency": ("environment.yml", dump({"dependencies": [value]})),
        "environment.yml: channel": ("environment.yml", dump({"channels": [value], "dependencies": ["numpy"]})),
        "environment.yml: pip": ("environment.yml", dump({"dependencies": [{"pip": [value]}]})),
        "environment.yml: prefix": ("environment.yml", dump({"prefix": value, "dependencies": []})),
        "environment.yml: name": ("environment.yml", dump({"name": value, "dependencies": []})),
        "envdesk.yaml: name": ("envdesk.yaml", dump({**envdesk, "name": value})),
        "envdesk.yaml: kind": ("envdesk.yaml", dump({"envdesk": 1, "kind": value})),
        "envdesk.yaml: python": ("envdesk.yaml", dump({**envdesk, "python": value})),
        "envdesk.yaml: modules": ("envdesk.yaml", dump({**envdesk, "modules": [value]})),
        "envdesk.yaml: requirements": ("envdesk.yaml", dump({**envdesk, "requirements": [value]})),
        "envdesk.yaml: conda_requirements": ("envdesk.yaml", dump({**envdesk, "conda_requirements": [value]})),
        "envdesk.yaml: channels": ("envdesk.yaml", dump({**envdesk, "channels": [value]})),
        "envdesk.yaml: pin name": ("envdesk.yaml", dump({**envdesk, "pins": [{**pin, "name": value}]})),
        "envdesk.yaml: pin version": ("envdesk.yaml", dump({**envdesk, "pins": [{**pin, "version": value}]})),
        "envdesk.yaml: pin url": ("envdesk.yaml", dump({**envdesk, "pins": [{**pin, "url": value}]})),
        "envdesk.yaml: editable url": ("envdesk.yaml", dump({**envdesk, "pins": [
            {**pin, "url": value, "editable": True}]})),
        "envdesk.yaml: pip_args": ("envdesk.yaml", dump({**envdesk, "pip_args": [value]})),
        "envdesk.yaml: source": ("envdesk.yaml", dump({**envdesk, "source": {"cluster": value}})),
        "pylock.toml: name": ("pylock.toml", f'lock-version = "1.0"\ncreated-by = "x"\n[[packages]]\n'
                                             f'name = {toml(value)}\nversion = "1.0"\n'),
        "pylock.toml: version": ("pylock.toml", f'lock-version = "1.0"\ncreated-by = "x"\n[[packages]]\n'
                                                f'name = "tinyalpha"\nversion = {toml(value)}\n'),
        "pylock.toml: marker": ("pylock.toml", f'lock-version = "1.0"\ncreated-by = "x"\n[[packages]]\n'
                                               f'name = "tinyalpha"\nversion = "1.0"\nmarker = {toml(value)}\n'),
        "pylock.toml: archive url": ("pylock.toml", f'lock-version = "1.0"\ncreated-by = "x"\n[[packages]]\n'
                                                    f'name = "tinyalpha"\n[packages.archive]\n'
                                                    f'url = {toml(value)}\nhashes = {{sha256 = "{"0" * 64}"}}\n'),
    }


IMPORT_WORDS = ("pip", "file", "environment", "module", "package", "version", "kind", "python", "channel",
                "requirement", "pin", "folder", "name", "yaml", "toml", "lock", "line", "list", "mapping")


def test_imported_files_are_refused_or_planned_literally(testbed, session, home, corpus, tmp_path):
    """Every value in every place of requirements.txt, environment.yml, envdesk.yaml and pylock.toml,
    planned on this computer one file at a time; every accepted install line checked on alpha by the
    real installer in one command, and a sample imported for real."""
    alpha = testbed.clusters["alpha"]
    folder = tmp_path / "files"
    folder.mkdir()
    merged: dict[str, specs.EnvSpec] = {}
    plans = []
    for hostile in corpus.values:
        if "\0" in hostile.value or any(0xD800 <= ord(c) <= 0xDFFF for c in hostile.value):
            continue  # cannot be written to a UTF-8 file; the in-process inputs try them
        for input_name, (filename, text) in import_files(hostile.value).items():
            # read as read_spec_file reads a file's text (`folder` is where `-r` lines are looked up)
            def read(_: str, text: str = text, filename: str = filename, one_by_one: bool = input_name in (
                    "environment.yml: name", "envdesk.yaml: name", "envdesk.yaml: python")) -> Any:
                spec = specs.from_text(text, filename, folder)
                return plan_import(session, "local", spec) if one_by_one else spec
            ok, made = attempt(corpus, f"import {input_name}", hostile.value, read, IMPORT_WORDS)
            if not ok:
                continue
            if isinstance(made, specs.EnvSpec):  # planned together with the other files of this place
                into = merged.setdefault(input_name, specs.EnvSpec())
                for key in ("modules", "requirements", "conda_requirements", "pins", "channels", "adapted",
                            "refused", "hashed"):
                    getattr(into, key).extend(getattr(made, key))
            else:
                plans.append(made)
    plans += [plan_import(session, "local", spec) for spec in merged.values()]
    to_install: list[str] = []
    refused_lines = 0
    for made in plans:
        for refused in made.refused:
            assert refused.reason and "Traceback" not in refused.reason
        refused_lines += len(made.refused)
        for line in made.to_install:
            assert "\n" not in line and "\0" not in line
            if line.startswith("-") and not line.startswith("-e "):
                pytest.fail(f"an option reached the install list: {line!r}")
        to_install += [line for line in made.to_install if line not in to_install]
        for line in made.conda_pins:
            assert validate.plain_text(line, "conda package") == line
    no_problems(corpus)
    corpus.tries["import: lines refused inside accepted files"] += refused_lines
    corpus.refused["import: lines refused inside accepted files"] += refused_lines

    # The real installer on alpha checks a spread of CHECKED accepted lines (uv, one dry run each, one
    # command), the plan's modules loaded (one command: the plan leaves them to what first needs them loaded).
    checked = sample([line for line in to_install if not line.startswith("-e ")], CHECKED)
    plan_import(session, "alpha", specs.EnvSpec(requirements=checked), "h")  # alpha probed, as the app has it
    before = len(alpha.session_commands())
    plan = plan_import(session, "alpha", specs.EnvSpec(requirements=checked), "h")
    assert plan.to_install == checked
    missing = check_availability(session, "alpha", plan)
    assert len(alpha.session_commands()) - before == 2
    reported = {m.spec for m in missing}
    assert reported <= {specs.without_hashes(line) for line in plan.to_install}, reported - set(plan.to_install)

    # A sample imported for real: option-looking editable URLs and hostile markers among them.
    listing = tree(alpha.home / "venvs")
    for value in [f"--target={corpus.folder}/{CANARY_PREFIX}imp"]:
        text = import_files(value)["envdesk.yaml: editable url"][1]
        with pytest.raises(EnvDeskError) as failed:
            import_environment(session, "alpha", specs.from_text(text, "envdesk.yaml"), name=unique("imp"))
        plain(failed.value, ("not a url or folder", "install", "failed", "editable", "nothing was created"))
    marker = next(h.value for h in corpus.values if h.value.startswith("tinyalpha ; os_name == '$("))
    built = import_environment(session, "alpha", specs.from_text(f"tinyalpha==1.0\n{marker}\n", "requirements.txt"),
                               name=unique("imp")).environment
    assert {p.name for p in built.packages} >= {"tinyalpha"}
    delete_environment(session, "alpha", built.path)
    assert tree(alpha.home / "venvs") == listing
    assert corpus.new_canaries(home, alpha.home) == []


# ---------------------------------------------------------------- the CLI's own arguments


def test_the_cli_refuses_hostile_arguments_plainly(corpus, tmp_path, home):
    """A handful of real `envdesk` runs: the console script's own argument handling."""
    config = tmp_path / "cfg"
    shell = next(h for h in corpus.values if h.family == "shell" and h.value.startswith("$("))
    option = next(h.value for h in corpus.values if h.value.startswith("--index-url="))
    runs = [("cluster", "add", "evil", "--host", "h", "--user", option), ("cluster", "add", shell.value, "--host", "h"),
            ("cluster", "add", "evil", "--host", "h",
            "--env-root", shell.value), ("env", "create", "local", shell.value)]
    for args in runs:
        result = run_cli(*args, config=config, home=home)
        assert result.returncode in (1, 2) and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.strip(), args
        corpus.tries["envdesk command line"] += 1
        corpus.refused["envdesk command line"] += 1
    assert not (config / "clusters.yaml").exists() or "evil" not in (config / "clusters.yaml").read_text()
    assert corpus.new_canaries(home) == []


# ---------------------------------------------------------------- the counts


def test_no_canary_anywhere_and_the_counts(testbed, corpus, capsys):
    alpha = testbed.clusters["alpha"]
    assert corpus.canaries_found(alpha.home, Path(os.path.expanduser("~"))) == []
    inputs = sorted(corpus.tries)
    rows = [(name, corpus.tries[name], corpus.refused[name], corpus.accepted[name]) for name in inputs]
    with capsys.disabled():
        print(f"\nhostile corpus: {len(corpus.values)} values ({len({h.family for h in corpus.values})} families, "
              f"{sum(1 for h in corpus.values if h.canary)} with a canary)")
        width = max(len(name) for name in inputs)
        print(f"{'input':{width}}  {'tries':>6}  {'refused':>7}  {'accepted':>8}")
        for name, tries, refused, accepted in rows:
            print(f"{name:{width}}  {tries:6}  {refused:7}  {accepted:8}")
        print(f"{'total (' + str(len(inputs)) + ' inputs)':{width}}  {sum(corpus.tries.values()):6}  "
              f"{sum(corpus.refused.values()):7}  {sum(corpus.accepted.values()):8}   canaries found: 0")
    assert len(corpus.values) >= 300 and len(inputs) >= 40
