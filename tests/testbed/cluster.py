"""One fake cluster login node: a real OpenSSH sshd on 127.0.0.1."""

from __future__ import annotations

import base64
import binascii
import copy
import os
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

from . import tool_settings, util
from .totp import hotp

HOST = "127.0.0.1"

# sshd_config lines shared by every cluster.  LogLevel DEBUG3: OpenSSH 9.2
# logs "Starting session: command for USER from ... id N" at VERBOSE but never
# the command's text; only DEBUG3 has it ("mm_audit_run_command entering
# command TEXT", Debian builds with audit events).  See session_commands().
_COMMON_CONFIG = """\
ListenAddress {host}
Port {port}
HostKey {host_key}
PidFile {pidfile}
AuthorizedKeysFile .ssh/authorized_keys
AllowUsers {user}
PermitRootLogin no
StrictModes yes
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication {kbdint}
UsePAM {use_pam}
AuthenticationMethods {auth_methods}
LogLevel DEBUG3
SetEnv MODULEPATH={modulepath} XDG_CONFIG_DIRS={xdg_config_dirs}
PrintMotd no
PrintLastLog no
MaxStartups 100:30:200
MaxSessions 64
MaxAuthTries 10
Subsystem sftp {sftp_server}
"""


# EnvDesk's command lines carry their script as one base64 word (so that any login
# shell reads them alike): exec SHELL -c '...decode and eval $1...' envdesk BASE64
_ENVDESK_LINE = re.compile(r"^exec [^']*-c '[^']*' envdesk ([A-Za-z0-9+/]*=*)$")


def decode_envdesk_line(text: str) -> str:
    """The script an EnvDesk command line carries (what it runs, readable); other text as is.
    A line cut short by sshd's log gives the part of the script it still holds."""
    match = _ENVDESK_LINE.match(text)
    if match is None:
        return text
    word = match.group(1)
    try:
        return base64.b64decode(word[:len(word) // 4 * 4]).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return text


class SshdStartError(RuntimeError):
    pass


class FakeCluster:
    """A login node: its own Unix user, home, sshd, module tree and wheelhouse.

    Attributes used by tests: name, host, port, user, home, host_key_pub,
    host_key_fingerprint, wheelhouse, pip_args, python_modules, has_uv_module,
    password, identity_file, log_path, modulepath, auth_methods.
    """

    __test__ = False

    def __init__(
        self,
        *,
        name: str,
        user: str,
        home: Path,
        workdir: Path,
        modulepath: Path,
        python_modules: list[str],
        has_uv_module: bool,
        uv_module: str | None,
        wheelhouse: Path,
        auth_methods: str,
        identity_file: Path | None,
        password: str | None = None,
        totp_secret: bytes | None = None,
        totp_period: int = 30,
        sshd_argv0: str = util.SSHD,
    ):
        self.name = name
        self.host = HOST
        self.port = 0
        self.user = user
        self.home = Path(home)
        self.workdir = Path(workdir)  # this cluster's sshd files
        self.modulepath = Path(modulepath)
        self.python_modules = list(python_modules)
        self.has_uv_module = has_uv_module
        self.uv_module = uv_module
        self.wheelhouse = Path(wheelhouse)
        self.pip_args = ["--no-index", "--find-links", str(self.wheelhouse)]
        self.auth_methods = auth_methods  # sshd's AuthenticationMethods
        self.identity_file = identity_file
        self.password = password
        self.totp_secret = totp_secret
        self.totp_period = totp_period
        self._totp_last_step = -1
        self._totp_lock = threading.Lock()
        self._sshd_argv0 = sshd_argv0
        self.config_path = self.workdir / "sshd_config"
        # The cluster's machine-wide config folder (XDG_CONFIG_DIRS, set by sshd and run_as_user), instead of this
        # machine's /etc/xdg: its pip.conf, and uv's system uv.toml, are not the cluster's. It holds an empty
        # uv/uv.toml, which uv takes for the system's (it would look at /etc/uv/uv.toml if it found none there);
        # pip has none there. /etc/pip.conf still counts: pip always reads it.
        self.xdg_config_dirs = self.workdir / "xdg-config"
        self.log_path = self.workdir / "sshd.log"
        self.pidfile = self.workdir / "sshd.pid"
        self.host_key_path = self.workdir / "ssh_host_ed25519_key"
        self.host_key_pub = ""
        self.host_key_fingerprint = ""
        self._proc: subprocess.Popen | None = None
        self._old_session_pids: set[int] = set()  # sessions of listeners replaced by rotate_host_key
        self.rotations = 0

    def __repr__(self) -> str:
        return f"<FakeCluster {self.name} {self.user}@{self.host}:{self.port}>"

    # ---------------------------------------------------------------- keys

    def new_host_key(self, key_type: str = "ed25519") -> None:
        util.ssh_keygen(self.host_key_path, comment=f"root@envdesk-testbed-{self.name}", key_type=key_type)
        self.host_key_path.chmod(0o600)
        line = self.host_key_path.with_name(self.host_key_path.name + ".pub").read_text()
        self.host_key_pub = util.pubkey_fields(line)
        self.host_key_fingerprint = util.fingerprint(self.host_key_pub)

    def known_hosts_line(self) -> str:
        return f"[{self.host}]:{self.port} {self.host_key_pub}"

    # ---------------------------------------------------------------- sshd

    def write_config(self) -> None:
        sftp = "/usr/lib/openssh/sftp-server"
        (self.xdg_config_dirs / "uv").mkdir(parents=True, exist_ok=True)
        (self.xdg_config_dirs / "uv" / "uv.toml").touch()
        for path in (self.xdg_config_dirs, self.xdg_config_dirs / "uv", self.xdg_config_dirs / "uv" / "uv.toml"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        uses_kbdint = "keyboard-interactive" in self.auth_methods
        self.config_path.write_text(
            _COMMON_CONFIG.format(
                host=self.host,
                port=self.port,
                host_key=self.host_key_path,
                pidfile=self.pidfile,
                user=self.user,
                kbdint="yes" if uses_kbdint else "no",
                use_pam="yes" if uses_kbdint else "no",
                auth_methods=self.auth_methods,
                modulepath=self.modulepath,
                xdg_config_dirs=self.xdg_config_dirs,
                sftp_server=sftp if os.path.exists(sftp) else "internal-sftp",
            )
        )

    def twin(self, name: str, workdir: Path, settings: str) -> FakeCluster:
        """This cluster's user and home behind an sshd of its own, called `name`, started on a free port, whose
        sshd_config starts with `settings` (lines): sshd takes a keyword's first value, so they win over the
        common ones (`AuthorizedKeysFile none` with `TrustedUserCAKeys FILE`: a cluster that takes only
        certificates). The caller stops it."""
        twin = copy.copy(self)
        twin.name = name
        twin.workdir = Path(workdir)
        twin.workdir.mkdir(parents=True, exist_ok=True)
        twin.workdir.chmod(0o755)
        twin.config_path = twin.workdir / "sshd_config"
        twin.log_path = twin.workdir / "sshd.log"
        twin.pidfile = twin.workdir / "sshd.pid"
        twin._proc = None
        twin._old_session_pids = set()

        def write_config() -> None:
            FakeCluster.write_config(twin)
            twin.config_path.write_text(settings + twin.config_path.read_text())
        twin.write_config = write_config  # type: ignore[method-assign]
        twin.spawn(util.free_ports(1)[0])
        twin.wait_ready()
        return twin

    def spawn(self, port: int) -> None:
        """Write the config for port and start sshd (returns at once; see wait_ready)."""
        self.port = port
        self.write_config()
        # -D: stay in the foreground (we own the process); it still forks one
        # child per connection.  argv[0] must be absolute (sshd re-executes
        # itself) and its basename is the PAM service name.
        self._proc = subprocess.Popen(
            [self._sshd_argv0, "-D", "-f", str(self.config_path), "-E", str(self.log_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until sshd answers with its banner; SshdStartError if it died."""
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is None or self._proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
                raise SshdStartError(f"sshd of {self.name} exited on port {self.port}:\n{tail}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as s:
                    if s.recv(64).startswith(b"SSH-"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SshdStartError(f"sshd of {self.name} not answering on port {self.port}")
            time.sleep(0.01)

    @property
    def sshd_pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def _session_sshd_pids(self) -> list[int]:
        """sshd processes serving connections (children of the listener, and of
        listeners replaced by rotate_host_key), not the listener itself."""
        table = util.process_table()
        pids = set()
        if self._proc is not None and self._proc.poll() is None:
            pids.update(p for p in util.descendants(self._proc.pid, table) if util.is_sshd(p, table))
        for p in list(self._old_session_pids):
            if p in table and util.is_sshd(p, table) and table[p]["state"] != "Z":
                pids.add(p)
                pids.update(d for d in util.descendants(p, table) if util.is_sshd(d, table))
            else:
                self._old_session_pids.discard(p)
        return sorted(p for p in pids if table.get(p, {}).get("state") != "Z")

    def kill_sessions(self) -> int:
        """Kill (SIGKILL) the sshd processes of every open connection to this
        cluster, as a dropped network would; the listener keeps running.
        Returns how many processes were killed."""
        pids = self._session_sshd_pids()
        util.kill_and_wait(pids)
        self._old_session_pids.difference_update(pids)
        return len(pids)

    def stop(self, kill_sessions: bool = True) -> None:
        sessions = self._session_sshd_pids() if kill_sessions else []
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(5)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(5)
            self._proc = None
        if sessions:
            util.kill_and_wait(sessions)

    def rotate_host_key(self, key_type: str = "ed25519") -> None:
        """New host key (of `key_type`), sshd restarted on the same port.  Open connections
        stay up (served by the old listener's children)."""
        if self._proc is not None:
            table = util.process_table()
            self._old_session_pids.update(
                p for p in util.descendants(self._proc.pid, table)
                if util.is_sshd(p, table) and table[p]["ppid"] == self._proc.pid
            )
        self.stop(kill_sessions=False)
        self.new_host_key(key_type)
        self.rotations += 1
        last: Exception | None = None
        for _ in range(50):  # the port may take a moment to be free again
            self.spawn(self.port)
            try:
                self.wait_ready()
                return
            except SshdStartError as exc:
                last = exc
                self.stop(kill_sessions=False)
                time.sleep(0.1)
        raise SshdStartError(f"could not restart sshd of {self.name} on port {self.port}: {last}")

    # ---------------------------------------------------------------- log

    def _log_messages(self) -> list[str]:
        # With -E, sshd ends each message with "\r\n"; a command's own newlines
        # stay bare "\n" inside the message.
        try:
            data = self.log_path.read_bytes()
        except FileNotFoundError:
            return []
        return [m.decode("utf-8", errors="replace") for m in data.split(b"\r\n")]

    @staticmethod
    def _unvis(text: str) -> str:
        """Undo sshd's log escaping (strnvis VIS_SAFE|VIS_OCTAL): a backslash is
        written as two, other unprintable bytes (and non-ASCII) as \\ooo."""
        raw = text.encode("utf-8", errors="surrogateescape")
        out = bytearray()
        i = 0
        while i < len(raw):
            c = raw[i]
            if c == 0x5C and raw[i + 1:i + 2] == b"\\":
                out.append(0x5C)
                i += 2
            elif c == 0x5C and re.fullmatch(rb"[0-7]{3}", raw[i + 1:i + 4]):
                out.append(int(raw[i + 1:i + 4], 8) & 0xFF)
                i += 4
            else:
                out.append(c)
                i += 1
        return out.decode("utf-8", errors="replace")

    def session_commands(self) -> list[str]:
        """The commands sshd ran for exec requests so far, oldest first.

        One entry per "Starting session: command [on TTY] for ..." line
        (VERBOSE) of the log; its text comes from the DEBUG3 line
        "mm_audit_run_command entering command TEXT" that follows it (sshd
        cuts messages at about 1000 bytes, so very long commands are
        truncated).  Subsystems (sftp) and shells are not counted.  The script of an
        EnvDesk command line is shown decoded (see decode_envdesk_line).
        """
        out: list[str | None] = []
        pending: list[int | None] = []  # index in out, None for non-command sessions
        start = "Starting session: "
        audit = "debug3: mm_audit_run_command entering command "
        for msg in self._log_messages():
            if msg.startswith(start):
                if msg[len(start):].split(" ", 1)[0] == "command":
                    out.append(None)
                    pending.append(len(out) - 1)
                else:
                    pending.append(None)
            elif msg.startswith(audit):
                text = decode_envdesk_line(self._unvis(msg[len(audit):]))
                if pending:
                    index = pending.pop(0)
                    if index is not None:
                        out[index] = text
        # A "command" session without its audit line (sshd built without audit
        # events): counted, text unknown.
        return [text if text is not None else "<command: text not logged>" for text in out]

    def log_text(self) -> str:
        return "\n".join(self._log_messages())

    # ---------------------------------------------------------------- the user

    def run_as_user(self, script: str, check: bool = True, timeout: float = 300,
                    input: str | None = None, network: bool = True) -> subprocess.CompletedProcess:
        """Run script with `bash -lc` as the cluster's user, with a clean
        login-like environment and this cluster's MODULEPATH and
        XDG_CONFIG_DIRS (as sshd's SetEnv gives them), and no pip or uv configuration file of the
        machine's or the user's (tool_settings; a login file may still set
        its own, as a test of EnvDesk following one does).  Text output; CommandError if check and it fails.
        network=False runs it in a new network namespace with no network at
        all (`unshare -n`: not even loopback)."""
        argv = [
            "runuser", "-u", self.user, "--",
            "env", "-i",
            f"HOME={self.home}", f"USER={self.user}", f"LOGNAME={self.user}",
            "SHELL=/bin/bash", "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8",
            f"MODULEPATH={self.modulepath}", f"XDG_CONFIG_DIRS={self.xdg_config_dirs}",
            *(f"{name}={value}" for name, value in tool_settings.NO_CONFIG_FILES.items()),
            "bash", "-lc", script,
        ]
        if not network:
            argv = ["unshare", "-n", *argv]
        kwargs = {"input": input} if input is not None else {}
        return util.run(argv, check=check, cwd=str(self.home), timeout=timeout, **kwargs)

    # ---------------------------------------------------------------- OTP

    def totp_now(self) -> str:
        """A valid one-time code for the otp cluster (RFC 6238, 30 s, 6 digits).

        pam_oath refuses a code whose time step is not newer than the last one
        accepted (replay protection), so each call returns the code of a new
        time step: the current one, or the next unused one after it (pam_oath
        is configured with a wide window so that future steps are accepted).
        """
        if self.totp_secret is None:
            raise AttributeError(f"cluster {self.name} has no one-time codes")
        with self._totp_lock:
            step = max(int(time.time() // self.totp_period), self._totp_last_step + 1)
            self._totp_last_step = step
            return hotp(self.totp_secret, step)

    # ---------------------------------------------------------------- profile

    def profile_fields(self) -> dict:
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "identity_file": None if self.identity_file is None else str(self.identity_file),
            "pip_args": list(self.pip_args),
        }
