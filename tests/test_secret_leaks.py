"""No secret is ever visible to other users (issue 9, point 7).

A realistic session on the real test bed, with known secrets: a login password (the password cluster),
one-time codes (the otp cluster), a key passphrase (alpha), an index token (every profile's pip arguments
name a find-links page behind HTTP basic auth, served here) and another token inside a requirement's URL
(`tinygamma @ http://user:token@.../tinygamma-0.1-py3-none-any.whl`). pip and uv really fetch with them:
the server answers only requests that carry the right credentials, and records who asked.

While the installs run, every process's command line on this machine (the clusters' login nodes are this
machine; root sees them all) is read, again and again: a secret must not be in any of them, literally or
inside a base64 word. The server holds each file download until two full sweeps of the process list have
passed, so every installer process is seen while it runs. Afterwards every file EnvDesk wrote (its config
folders, the inventory cache, the exports, each environment folder with its `.envdesk/` notes), its log
records, the steps and output an operation shows, and the output of `envdesk env show` are searched too.
"""
from __future__ import annotations

import base64
import binascii
import http.server
import json
import logging
import os
import pwd
import re
import secrets
import stat
import threading
import urllib.parse
from pathlib import Path

import yaml
from packaging.requirements import Requirement

from envdesk.backend.cache import InventoryCache
from envdesk.backend.config import ClusterStore
from envdesk.backend.fileio import write_atomically
from envdesk.backend.operations.common import Progress
from envdesk.backend.operations.create import CreateRequest, create_environment
from envdesk.backend.operations.export import export_environment
from envdesk.backend.operations.listing import list_environments
from envdesk.backend.operations.update import Change, update_environment
from envdesk.backend.spec import FORMATS
from envdesk_fixtures import ScriptedPrompter, make_config, packages_of, run_cli, session_for, unique

SWEEP_WAIT = 120.0  # seconds a download may wait for the process sweeps (a busy machine); a state, not a limit
_BASE64_WORD = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")


def _variants(secret: str) -> set[str]:
    return {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}


def leaked(text: str, known: list[str]) -> list[str]:
    """The secrets `text` holds, literally, URL-encoded, or inside a base64 word (how EnvDesk's scripts
    travelled on command lines). A one-time code counts only as a number of its own, not inside a longer one."""
    decoded = []
    for word in _BASE64_WORD.findall(text):
        for alphabet in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                decoded.append(alphabet(word + "=" * (-len(word) % 4)).decode("utf-8", "replace"))
            except (binascii.Error, ValueError):
                pass
    found = []
    for secret in known:
        for haystack in (text, *decoded):
            if secret.isdigit():
                hit = re.search(rf"(?<!\d){secret}(?!\d)", haystack) is not None
            else:
                hit = any(variant in haystack for variant in _variants(secret))
            if hit:
                found.append(secret)
                break
    return found


class ProcessWatch:
    """Reads every process's command line, sweep after sweep, in a thread; records leaks and installers."""

    def __init__(self, known: list[str], users: set[int]) -> None:
        self.known = known
        self.users = users  # the clusters' users: their processes are the login nodes' (other tests run too)
        self.sweeps = 0
        self.samples = 0
        self.leaks: list[tuple[str, list[str]]] = []
        self.installers: set[str] = set()  # command lines of pip and uv installs seen running
        self.me = str(os.getpid())
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "ProcessWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit() or not self._watched(entry.name):
                    continue
                try:
                    with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                        raw = handle.read()
                except OSError:  # the process ended meanwhile
                    continue
                if not raw:
                    continue
                self.samples += 1
                line = raw.replace(b"\0", b" ").decode("utf-8", "replace")
                found = leaked(line, self.known)
                if found:
                    self.leaks.append((line[:300], found))
                if re.search(r"\bpip install\b", line):
                    self.installers.add(line)
            with self._changed:
                self.sweeps += 1
                self._changed.notify_all()

    def _watched(self, pid: str) -> bool:
        """A process of a cluster's user, or one this test started (on "This computer")."""
        try:
            if os.stat(f"/proc/{pid}").st_uid in self.users:
                return True
            for _ in range(64):
                if pid == self.me:
                    return True
                with open(f"/proc/{pid}/stat", "rb") as handle:
                    pid = handle.read().rsplit(b")", 1)[1].split()[1].decode()
                if pid in ("0", "1"):
                    return False
        except (OSError, IndexError):
            pass
        return False

    def wait_sweeps(self, count: int) -> None:
        """Return once `count` more full sweeps have ended (a process alive meanwhile was read)."""
        with self._changed:
            target = self.sweeps + count
            self._changed.wait_for(lambda: self.sweeps >= target or self._stop.is_set(), SWEEP_WAIT)


class PrivateIndex:
    """A find-links page and its wheels over HTTP, only for requests with one of the known credentials."""

    def __init__(self, wheelhouse: Path, users: dict[str, str], watch: ProcessWatch) -> None:
        self.wheelhouse = wheelhouse
        self.accepted = {"Basic " + base64.b64encode(f"{user}:{token}".encode()).decode(): user
                         for user, token in users.items()}
        self.watch = watch
        self.served: list[tuple[str, str]] = []  # (user, path)
        self.refused = 0
        index = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:  # uv asks first; a plain GET follows
                self.send_response(405)
                self.end_headers()

            def do_GET(self) -> None:
                user = index.accepted.get(self.headers.get("Authorization", ""))
                if user is None:
                    index.refused += 1
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="private"')
                    self.end_headers()
                    return
                if self.path.rstrip("/") == "/links":
                    kind = "text/html"
                    body = "".join(f'<a href="/files/{p.name}">{p.name}</a>\n'
                                   for p in sorted(index.wheelhouse.glob("*.whl"))).encode()
                elif self.path.startswith("/files/") and (index.wheelhouse / self.path[7:]).is_file():
                    index.watch.wait_sweeps(2)  # the installer asking is alive: it must be seen by a full sweep
                    kind, body = "application/octet-stream", (index.wheelhouse / self.path[7:]).read_bytes()
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                index.served.append((user, self.path))
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Captured(logging.Handler):
    """Every log record EnvDesk emits during the test, formatted as it would be written."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def _files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file() and not path.is_symlink()]


def test_no_secret_in_any_command_line_file_log_or_display(testbed, tmp_path, home):
    alpha, password_cluster, otp = (testbed.clusters[n] for n in ("alpha", "password", "otp"))
    index_token, url_token = "idx" + secrets.token_hex(12), "url" + secrets.token_hex(12)
    codes: list[str] = []
    known = [index_token, url_token, password_cluster.password, testbed.passphrase]

    def answer(request):
        if request.kind == "code":
            codes.append(otp.totp_now())
            known.append(codes[-1])
            return codes[-1]
        return {"password": password_cluster.password, "passphrase": testbed.passphrase}[request.kind]

    root = logging.getLogger()
    captured, level = Captured(), root.level
    root.addHandler(captured)
    root.setLevel(logging.DEBUG)
    shown: list[str] = []
    progress = Progress(on_step=shown.append, on_line=lambda stream, line: shown.append(line))
    users = {pwd.getpwnam(testbed.clusters[name].user).pw_uid for name in ("alpha", "password", "otp")}
    with ProcessWatch(known, users) as watch:
        index = PrivateIndex(alpha.wheelhouse, {"envdesk-index": index_token, "envdesk-direct": url_token}, watch)
        try:
            links = f"http://envdesk-index:{index_token}@127.0.0.1:{index.port}/links/"
            private = (f"tinygamma @ http://envdesk-direct:{url_token}@127.0.0.1:{index.port}"
                       "/files/tinygamma-0.1-py3-none-any.whl")
            pip_args = {"pip_args": ["--no-index", "--find-links", links]}
            # pip also takes the value joined to its short option, and any unique start of a long one (R11)
            joined = {"pip_args": ["--no-index", f"-f{links}"]}
            abbreviated = {"pip_args": ["--no-index", f"--find={links}"]}
            config = tmp_path / "cfg"
            paths = make_config(config, testbed, ["alpha", "password", "otp"],
                        alpha={**joined, "identity_file": str(testbed.passphrase_key)},
                        password=abbreviated, otp=pip_args)
            local_envs = tmp_path / "local-envs"
            profiles = yaml.safe_load((config / "clusters.yaml").read_text())
            write_atomically(config / "clusters.yaml", yaml.safe_dump(
                {**profiles, "local": {"env_roots": [str(local_envs)], **pip_args}}))
            session = session_for(paths, ScriptedPrompter(answer=answer))
            try:
                # uv on alpha (passphrase key): made with one package, then the private one added
                uv_name = unique("secret-uv")
                uv_path = create_environment(session, "alpha", CreateRequest(
                    name=uv_name, kind="uv", packages=["tinybeta"]), progress).environment.path
                update_environment(session, "alpha", uv_name, Change(add=[private]), progress)
                # pip on the password cluster: both at once
                pip_name = unique("secret-pip")
                made = create_environment(session, "password", CreateRequest(
                    name=pip_name, kind="venv", packages=["tinyalpha==1.0", private]), progress).environment
                # this computer, with uv
                local = create_environment(session, "local", CreateRequest(
                    name=unique("secret-local"), kind="uv", packages=[private]), progress).environment
                # the otp cluster (key and code): listed, as the app does, into its inventory cache
                cache = InventoryCache(session.paths)
                for name in ("alpha", "password", "otp"):
                    cache.save(list_environments(session, name, progress).inventory)
                exports = tmp_path / "exports"
                exports.mkdir()
                for fmt in FORMATS:
                    (exports / f"{uv_name}.{fmt}").write_text(export_environment(session, "alpha", uv_name, fmt,
                                                                                 progress))
                uv_env = next(e for e in list_environments(session, "alpha").inventory.environments
                              if e.name == uv_name)
            finally:
                session.close()
        finally:
            index.close()
            root.removeHandler(captured)
            root.setLevel(level)
        # `envdesk env show` as a user runs it, on alpha with its plain key (no prompt needed)
        cli_config = tmp_path / "cli"
        make_config(cli_config, testbed, ["alpha"], alpha=joined)
        shows = [run_cli("env", "show", "alpha", uv_name, *extra, config=cli_config, home=home)
                 for extra in ((), ("--json",))]

    # the credentials were really used: pip and uv fetched with them, and nothing came without them
    assert {"tinygamma", "tinybeta", "tinyalpha"} <= set(packages_of(uv_env))
    assert packages_of(made) == {"tinyalpha": "1.0", "tinygamma": "0.1"}
    assert ("envdesk-direct", "/files/tinygamma-0.1-py3-none-any.whl") in index.served
    assert ("envdesk-index", "/files/tinybeta-1.0-py3-none-any.whl") in index.served
    assert codes, "the otp cluster asked for a code"
    assert any(" -m pip install" in line for line in watch.installers), watch.installers
    assert any("uv pip install" in line for line in watch.installers), watch.installers
    for show in shows:
        assert show.returncode == 0, show.stderr

    files = (_files(config) + _files(cli_config) + _files(exports) + _files(Path(uv_path)) + _files(Path(made.path))
             + _files(Path(local.path)))
    texts = {str(path): path.read_bytes().decode("utf-8", "replace") for path in files}
    texts["log records"] = "\n".join(captured.lines)
    texts["operation steps and output"] = "\n".join(shown)
    texts["env show"] = "\n".join(show.stdout + show.stderr for show in shows)
    # the user typed the index token into the profile: clusters.yaml keeps it, readable by the user alone
    profiles = config / "clusters.yaml"
    assert stat.S_IMODE(profiles.stat().st_mode) == 0o600 and stat.S_IMODE(config.stat().st_mode) == 0o700
    assert ClusterStore(session.paths).get("password").pip_args[-1] == f"--find={links}"
    texts[str(profiles)] = texts[str(profiles)].replace(links, "")
    texts[str(cli_config / "clusters.yaml")] = texts[str(cli_config / "clusters.yaml")].replace(links, "")
    in_files = {where: found for where, text in texts.items() if (found := leaked(text, known))}
    print(f"\n{watch.sweeps} sweeps of the process list, {watch.samples} command lines read, "
          f"{len(watch.installers)} installer command lines seen; {len(files)} files and {len(texts) - len(files)} "
          f"other records searched for {len(known)} secrets; leaks: {len(watch.leaks)} command lines, "
          f"{len(in_files)} files or records")
    assert watch.leaks == [], f"secrets in command lines: {watch.leaks[:5]}"
    assert in_files == {}, f"secrets written or shown: {in_files}"

    # what EnvDesk recorded of the private requirement is still a requirement pip reads, without the token
    assert packages_of(local) == {"tinygamma": "0.1"}
    meta = json.loads((Path(uv_path) / ".envdesk" / "meta.json").read_text())
    recorded = [Requirement(line) for line in meta["requested"] if line.startswith("tinygamma")]
    assert [r.url for r in recorded] == [f"http://127.0.0.1:{index.port}/files/tinygamma-0.1-py3-none-any.whl"]
