"""The test bed: four fake HPC login nodes on loopback, built from real parts.

    alpha     key login; Lmod modules python/3.11.5, uv/0.13 and scipy-stack/2023b (packages on PYTHONPATH)
    beta      key login (another user); modules GCC/12.3.0 + Python/3.11.3, no uv
    otp       alpha's user and home, key AND a TOTP code (pam_oath)
    password  a third user; keyboard-interactive password only (pam_unix);
              beta's module tree

On request (login_shell_cluster), more clusters like alpha whose user logs in
with another shell (tcsh: edt-tcsh-ID); (hierarchy_cluster) `hier`, whose
Python modules sit behind compilers in a real Lmod hierarchy (user edt-hier-ID,
uv in ~/.local/bin); and (stack_cluster) `cc`, shaped like the Digital Research
Alliance of Canada's: python/3.11.5 and scipy-stack/2023b, no uv, so environments
install with pip (edt-cc-ID). They are in `extra_clusters`, not in `clusters`, so
the four above stay the bed every other test sees.

Everything lives in a fresh world-readable folder /tmp/envdesk-testbed-*.
The users are named edt-alpha-ID, edt-beta-ID, edt-pw-ID (ID: 6 hex digits
per bed) so that two test sessions on one machine never share an account.
A state file in the folder lists what was created outside it (users, the PAM
service file, sshd pids) so that the next bed cleans up after a crashed one.
"""

from __future__ import annotations

import atexit
import glob
import json
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
import zipfile
from pathlib import Path

from . import software, users, util, wheels
from .cluster import FakeCluster, SshdStartError

STATE_FILE = "testbed-state.json"
BASE_PREFIX = "envdesk-testbed-"
PAM_DIR = Path("/etc/pam.d")
PAM_PREFIX = "envdesk-otp-sshd-"
USER_RE = re.compile(r"^edt-(alpha|beta|pw|hier|cc|jup|deb|[a-z]{0,6}sh)-[0-9a-f]{6}$")
PASSPHRASE = "correct horse battery staple"
OTP_WINDOW = 600  # pam_oath accepts codes this many 30 s steps before/after now


class TestBedUnavailable(RuntimeError):
    """The machine cannot run the test bed (not root, no sshd, no Lmod...)."""

    __test__ = False


def missing_prerequisites() -> list[str]:
    problems = []
    if os.geteuid() != 0:
        problems.append("the test bed needs root (it runs sshd and adds users)")
    if not os.path.exists(util.SSHD):
        problems.append(f"no {util.SSHD} (apt-get install openssh-server)")
    if not os.path.exists("/etc/profile.d/lmod.sh"):
        problems.append("no Lmod (/etc/profile.d/lmod.sh; apt-get install lmod)")
    if not glob.glob("/lib/*/security/pam_oath.so") + glob.glob("/usr/lib/*/security/pam_oath.so"):
        problems.append("no pam_oath.so (apt-get install libpam-oath)")
    for tool in ("ssh-keygen", "useradd", "usermod", "userdel", "runuser", "openssl"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            problems.append(f"no {tool}")
    try:
        import uv  # noqa: F401
        import virtualenv  # noqa: F401
    except ImportError as exc:
        problems.append(f"test dependency missing: {exc.name} (pip install -e .[test])")
    return problems


# ---------------------------------------------------------------- stale beds


def _remove_pam_file(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _clean_state(base: Path, state: dict) -> None:
    for pidfile in state.get("pidfiles", []):
        try:
            pid = int(Path(pidfile).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if util.is_sshd(pid):
            util.kill_and_wait([pid])
    for pid in state.get("sshd_pids", []):
        if util.is_sshd(pid) and util.start_time(pid) is not None:
            util.kill_and_wait([pid])
    for name in state.get("users", []):
        if USER_RE.match(name):
            users.delete_user(name)
    for pam in state.get("pam_files", []):
        if Path(pam).parent == PAM_DIR and Path(pam).name.startswith(PAM_PREFIX):
            _remove_pam_file(Path(pam))
    shutil.rmtree(base, ignore_errors=True)


def cleanup_stale_beds() -> list[str]:
    """Remove what crashed test beds (their owner process is gone) left behind."""
    cleaned = []
    for base in Path(tempfile.gettempdir()).glob(BASE_PREFIX + "*"):
        state_path = base / STATE_FILE
        try:
            state = json.loads(state_path.read_text())
        except (OSError, ValueError):
            # no state yet (just created) or unreadable: only remove old ones
            try:
                if time.time() - base.stat().st_mtime > 3600:
                    shutil.rmtree(base, ignore_errors=True)
            except OSError:
                pass
            continue
        pid, start = state.get("owner_pid"), state.get("owner_start")
        if pid and util.start_time(pid) == start and util.is_alive(pid):
            continue  # its pytest is still running
        _clean_state(base, state)
        cleaned.append(str(base))
    # users and PAM files whose bed folder is gone
    import pwd

    for entry in pwd.getpwall():
        if USER_RE.match(entry.pw_name) and not Path(entry.pw_dir).parent.parent.exists():
            users.delete_user(entry.pw_name)
            cleaned.append(entry.pw_name)
    for pam in PAM_DIR.glob(PAM_PREFIX + "*"):
        try:
            first = pam.read_text().splitlines()[0]
        except (OSError, IndexError):
            continue
        m = re.match(r"# envdesk test bed: (\S+)", first)
        if m and not Path(m.group(1)).exists():
            _remove_pam_file(pam)
            cleaned.append(str(pam))
    return cleaned


# ---------------------------------------------------------------- the bed


class TestBed:
    """Handle on a running test bed.  See the module docstring."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, base: Path, bed_id: str):
        self.base = base
        self.id = bed_id
        self.clusters: dict[str, FakeCluster] = {}
        self.extra_clusters: dict[str, FakeCluster] = {}  # made on request: see login_shell_cluster
        self._extra_lock = threading.Lock()
        self.client_key = base / "client" / "id_ed25519"
        self.passphrase_key = base / "client" / "id_ed25519_passphrase"
        self.site_wheelhouse = base / "site-wheels"  # a site's own builds (wheels.SITE_WHEELS), made with the bed
        self.passphrase = PASSPHRASE
        self.timings: dict[str, float] = {}
        self.build_seconds = 0.0
        self._state = {
            "owner_pid": os.getpid(),
            "owner_start": util.start_time(os.getpid()),
            "bed_id": bed_id,
            "users": [],
            "pam_files": [],
            "pidfiles": [],
            "sshd_pids": [],
        }
        self._closed = False
        self._samples: dict | None = None
        self._samples_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<TestBed {self.base} {sorted(self.clusters)}>"

    # ------------------------------------------------------------ lifecycle

    @classmethod
    def start(cls) -> "TestBed":
        """Build and start a bed; TestBedUnavailable if this machine cannot."""
        problems = missing_prerequisites()
        if problems:
            raise TestBedUnavailable("; ".join(problems))
        t0 = time.monotonic()
        cleanup_stale_beds()
        base = Path(tempfile.mkdtemp(prefix=BASE_PREFIX, dir="/tmp"))
        base.chmod(0o755)
        bed = cls(base, secrets.token_hex(3))
        bed._save_state()
        atexit.register(bed.close)
        try:
            bed._build()
        except BaseException:
            bed.close()
            raise
        bed.build_seconds = time.monotonic() - t0
        return bed

    def _save_state(self) -> None:
        tmp = self.base / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(self._state, indent=1))
        tmp.replace(self.base / STATE_FILE)

    def _step(self, name: str, t: float) -> float:
        now = time.monotonic()
        self.timings[name] = round(now - t, 3)
        return now

    def _build(self) -> None:
        t = time.monotonic()
        base = self.base
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir

        # client keys: one for every user, one with a passphrase for alpha's
        (base / "client").mkdir(mode=0o700)
        util.ssh_keygen(self.client_key, comment="envdesk-testbed-client")
        util.ssh_keygen(self.passphrase_key, passphrase=self.passphrase,
                        comment="envdesk-testbed-passphrase")
        client_pub = self.client_key.with_name(self.client_key.name + ".pub").read_text()
        pass_pub = self.passphrase_key.with_name(self.passphrase_key.name + ".pub").read_text()
        t = self._step("client keys", t)

        # wheels
        built = wheels.build_all(base / "wheels-src")
        wheels.build_site_store(self.site_wheelhouse)  # named by no cluster's pip arguments: see SITE_WHEELS
        t = self._step("wheels", t)

        # software and module trees
        shared = base / "shared"
        venv_lib = shared / "virtualenv-lib"
        software.install_virtualenv_lib(venv_lib)
        alpha_tree = software.build_alpha_tree(base / "alpha", venv_lib, base / "wheels-src")
        beta_tree = software.build_beta_tree(base / "beta", venv_lib)
        t = self._step("software", t)

        # users
        names = {k: f"edt-{k}-{self.id}" for k in ("alpha", "beta", "pw")}
        self._state["users"] = list(names.values())
        self._save_state()
        homes = {}
        password = "pw-" + secrets.token_urlsafe(9)
        for key, name in names.items():
            home = base / "home" / name
            if key == "pw":
                hashed = util.run(["openssl", "passwd", "-6", "-stdin"],
                                  input=password).stdout.strip()
                info = users.ensure_user(name, home, hashed)
            else:
                info = users.ensure_user(name, home)
            keys = client_pub + (pass_pub if key == "alpha" else "")
            ssh_dir = home / ".ssh"
            ssh_dir.mkdir(mode=0o700, exist_ok=True)
            (ssh_dir / "authorized_keys").write_text(keys)
            for p in (ssh_dir, ssh_dir / "authorized_keys"):
                os.chown(p, info.pw_uid, info.pw_gid)
            (ssh_dir / "authorized_keys").chmod(0o600)
            ssh_dir.chmod(0o700)
            homes[key] = home
        (base / "home").chmod(0o755)
        t = self._step("users", t)

        # OTP: pam_oath through a PAM service named after the sshd program name
        otp_dir = base / "otp"
        otp_dir.mkdir(mode=0o755)
        secret = secrets.token_bytes(20)
        usersfile = otp_dir / "users.oath"
        usersfile.write_text(f"HOTP/T30/6\t{names['alpha']}\t-\t{secret.hex()}\n")
        usersfile.chmod(0o600)
        service = f"{PAM_PREFIX}{self.id}"
        sshd_link = otp_dir / service
        sshd_link.symlink_to(util.SSHD)
        pam_file = PAM_DIR / service
        self._state["pam_files"].append(str(pam_file))
        self._save_state()
        pam_file.write_text(
            f"# envdesk test bed: {base}\n"
            "# Second factor of the test bed's 'otp' cluster (sshd runs as\n"
            f"# {sshd_link}, so PAM uses this service name).\n"
            f"auth     required pam_oath.so usersfile={usersfile} window={OTP_WINDOW} digits=6\n"
            "account  required pam_permit.so\n"
            "session  required pam_permit.so\n"
            "password required pam_deny.so\n"
        )
        t = self._step("pam", t)

        # clusters
        def cluster(name, **kw):
            workdir = base / name
            workdir.mkdir(mode=0o755, exist_ok=True)
            wheelhouse = wheels.fill_wheelhouse(workdir / "wheels", built, name)
            c = FakeCluster(name=name, workdir=workdir, wheelhouse=wheelhouse, **kw)
            c.new_host_key()
            self.clusters[name] = c
            return c

        tree_kw = lambda tree: dict(  # noqa: E731
            modulepath=tree.modulepath, python_modules=tree.python_modules,
            has_uv_module=tree.has_uv_module, uv_module=tree.uv_module)
        cluster("alpha", user=names["alpha"], home=homes["alpha"], auth_methods="publickey",
                identity_file=self.client_key, **tree_kw(alpha_tree))
        cluster("beta", user=names["beta"], home=homes["beta"], auth_methods="publickey",
                identity_file=self.client_key, **tree_kw(beta_tree))
        cluster("otp", user=names["alpha"], home=homes["alpha"],
                auth_methods="publickey,keyboard-interactive", identity_file=self.client_key,
                totp_secret=secret, sshd_argv0=str(sshd_link), **tree_kw(alpha_tree))
        cluster("password", user=names["pw"], home=homes["pw"],
                auth_methods="keyboard-interactive", identity_file=None,
                password=password, **tree_kw(beta_tree))
        t = self._step("host keys", t)

        self._start_sshds(list(self.clusters.values()))
        self._step("sshd start", t)

    def _start_sshds(self, todo: list[FakeCluster]) -> None:
        used: set[int] = set()
        for attempt in range(5):
            ports = util.free_ports(len(todo), exclude=used)
            for c, port in zip(todo, ports):
                used.add(port)
                c.spawn(port)
                self._state["pidfiles"].append(str(c.pidfile))
                self._state["sshd_pids"].append(c.sshd_pid)
            self._save_state()
            failed = []
            for c in todo:
                try:
                    c.wait_ready()
                except SshdStartError:
                    if attempt == 4:
                        raise
                    c.stop()
                    failed.append(c)  # most likely the port was taken meanwhile
            if not failed:
                return
            todo = failed

    def close(self) -> None:
        """Stop the sshds, delete the users and the PAM file, remove the folder."""
        if self._closed:
            return
        self._closed = True
        errors = []
        for c in [*self.clusters.values(), *self.extra_clusters.values()]:
            try:
                c.stop()
            except Exception as exc:  # keep tearing down
                errors.append(exc)
        for name in self._state["users"]:
            try:
                users.delete_user(name)
            except Exception as exc:
                errors.append(exc)
        for pam in self._state["pam_files"]:
            _remove_pam_file(Path(pam))
        shutil.rmtree(self.base, ignore_errors=True)
        try:
            atexit.unregister(self.close)
        except Exception:
            pass
        if errors:
            raise errors[0]

    # ------------------------------------------------------------ extra clusters

    def login_shell_cluster(self, shell: str = "/bin/tcsh") -> FakeCluster:
        """A cluster like alpha (its module tree and wheelhouse, key login) whose user's login
        shell is `shell`, so sshd runs every command through it; named after the shell ("tcsh"),
        made and started on first request, kept in `extra_clusters`."""
        name = Path(shell).name
        with self._extra_lock:
            if name in self.extra_clusters:
                return self.extra_clusters[name]
            if not os.path.exists(shell):
                raise TestBedUnavailable(f"no {shell} (apt-get install {name})")
            return self._alpha_like(name, shell)

    def own_user_cluster(self, name: str) -> FakeCluster:
        """A cluster like alpha (bash) whose user is its own, named `name` (USER_RE lists it): for a test that
        changes the user's login files or home where no other test's cluster sees it. Made on first request."""
        with self._extra_lock:
            return self.extra_clusters.get(name) or self._alpha_like(name, "/bin/bash")

    def _alpha_like(self, name: str, shell: str) -> FakeCluster:
        """An extra cluster with alpha's module tree (the caller holds the lock)."""
        alpha = self.clusters["alpha"]
        return self._extra_cluster(name, shell, software.ModuleTree(
            alpha.modulepath, alpha.python_modules, alpha.has_uv_module, alpha.uv_module))

    def stack_cluster(self) -> FakeCluster:
        """`cc`, a cluster shaped like the Alliance's (user trial T20): modules python/3.11.5 and scipy-stack/2023b
        (software.STACK_MODULE, packages on PYTHONPATH) and no uv, so environments install with pip; alpha's
        wheelhouse, key login. Made and started on first request, kept in `extra_clusters`."""
        with self._extra_lock:
            if "cc" not in self.extra_clusters:
                tree = software.build_stack_tree(self.base / "cc-software", self.base / "shared" / "virtualenv-lib",
                                                 self.base / "wheels-src")
                self._extra_cluster("cc", "/bin/bash", tree)
            return self.extra_clusters["cc"]

    def _extra_cluster(self, name: str, shell: str, tree: software.ModuleTree) -> FakeCluster:
        """A cluster named `name` with a user of its own whose login shell is `shell`, module tree `tree`, alpha's
        wheelhouse and key login, started and kept in `extra_clusters` (the caller holds the lock)."""
        user = f"edt-{name}-{self.id}"
        if not USER_RE.match(user):
            raise ValueError(f"no test bed user name for {name}")
        self._state["users"].append(user)
        self._save_state()
        home = self.base / "home" / user
        info = users.ensure_user(user, home, shell=shell)
        ssh_dir = home / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        keys = ssh_dir / "authorized_keys"
        keys.write_text(self.client_key.with_name(self.client_key.name + ".pub").read_text())
        for p in (ssh_dir, keys):
            os.chown(p, info.pw_uid, info.pw_gid)
        keys.chmod(0o600)
        alpha = self.clusters["alpha"]
        workdir = self.base / name
        workdir.mkdir(mode=0o755, exist_ok=True)
        c = FakeCluster(name=name, user=user, home=home, workdir=workdir, modulepath=tree.modulepath,
                        python_modules=tree.python_modules, has_uv_module=tree.has_uv_module,
                        uv_module=tree.uv_module, wheelhouse=alpha.wheelhouse, auth_methods="publickey",
                        identity_file=self.client_key)
        c.new_host_key()
        self.extra_clusters[name] = c
        self._start_sshds([c])
        return c

    def hierarchy_cluster(self) -> FakeCluster:
        """`hier`, made and started on first request (kept in `extra_clusters`): key login as a user of its own,
        whose MODULEPATH is an EasyBuild hierarchy (software.build_hierarchy_tree: Python/3.11.3 only once
        GCC/12.3.0 is loaded), with uv in ~/.local/bin and alpha's wheelhouse. The scipy-stack module's folder
        holds tinyalpha 1.1, installed (its wheel unpacked, as an installer lays it out)."""
        name = "hier"
        with self._extra_lock:
            if name in self.extra_clusters:
                return self.extra_clusters[name]
            user = f"edt-{name}-{self.id}"
            self._state["users"].append(user)
            self._save_state()
            alpha = self.clusters["alpha"]
            workdir = self.base / name
            workdir.mkdir(mode=0o755, exist_ok=True)
            packages = workdir / "software" / "scipy-stack" / "2023b" / "site-packages"
            packages.mkdir(parents=True)
            with zipfile.ZipFile(alpha.wheelhouse / "tinyalpha-1.1-py3-none-any.whl") as wheel:
                wheel.extractall(packages)
            tree = software.build_hierarchy_tree(workdir, self.base / "shared" / "virtualenv-lib", packages)
            for folder, _dirs, _files in os.walk(workdir):
                os.chmod(folder, 0o755)  # the cluster's user reads the tree and the unpacked packages
            home = self.base / "home" / user
            info = users.ensure_user(user, home)
            ssh_dir = home / ".ssh"
            ssh_dir.mkdir(mode=0o700, exist_ok=True)
            keys = ssh_dir / "authorized_keys"
            keys.write_text(self.client_key.with_name(self.client_key.name + ".pub").read_text())
            keys.chmod(0o600)
            local_bin = home / ".local" / "bin"
            software.install_uv(local_bin)
            for owned in (ssh_dir, keys, home / ".local", local_bin):  # not uv itself: maybe a link to the runner's
                os.chown(owned, info.pw_uid, info.pw_gid)
            c = FakeCluster(name=name, user=user, home=home, workdir=workdir, modulepath=tree.modulepath,
                            python_modules=tree.python_modules, has_uv_module=False, uv_module=None,
                            wheelhouse=alpha.wheelhouse, auth_methods="publickey", identity_file=self.client_key)
            c.new_host_key()
            self.extra_clusters[name] = c
            self._start_sshds([c])
            return c

    # ------------------------------------------------------------ sample envs

    def make_sample_envs(self) -> dict:
        """Make the pre-made environments (once per bed) and describe them."""
        with self._samples_lock:
            if self._samples is None:
                from .sample_envs import make_sample_envs

                t = time.monotonic()
                self._samples = make_sample_envs(self)
                self.timings["sample envs"] = round(time.monotonic() - t, 3)
            return self._samples
