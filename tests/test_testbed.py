"""The test bed itself, checked for real with plain paramiko."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import paramiko
import pytest

from testbed import WHEELS, totp

# ------------------------------------------------------------------ helpers


def _transport(cluster) -> paramiko.Transport:
    sock = socket.create_connection((cluster.host, cluster.port), timeout=10)
    t = paramiko.Transport(sock)
    t.start_client(timeout=10)
    return t


def _connect(cluster, key_file=None, passphrase=None) -> paramiko.SSHClient:
    """SSHClient that trusts only the host key the bed says the cluster has."""
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    host_keys = client.get_host_keys()
    key_type, key_b64 = cluster.host_key_pub.split()
    host_keys.add(f"[{cluster.host}]:{cluster.port}", key_type,
                  paramiko.PKey.from_type_string(key_type, __import__("base64").b64decode(key_b64)))
    client.connect(cluster.host, port=cluster.port, username=cluster.user,
                   key_filename=str(key_file or cluster.identity_file), passphrase=passphrase,
                   look_for_keys=False, allow_agent=False, timeout=10)
    return client


def _exec(client: paramiko.SSHClient, command: str) -> tuple[int, str, str]:
    _, out, err = client.exec_command(command, timeout=60)
    stdout, stderr = out.read().decode(), err.read().decode()
    return out.channel.recv_exit_status(), stdout, stderr


def _exec_on_transport(t: paramiko.Transport, command: str) -> str:
    ch = t.open_session()
    ch.exec_command(command)
    data = ch.makefile("rb").read().decode()
    assert ch.recv_exit_status() == 0
    ch.close()
    return data


@pytest.fixture(scope="module")
def alpha(testbed):
    client = _connect(testbed.clusters["alpha"])
    yield client
    client.close()


@pytest.fixture(scope="module")
def beta(testbed):
    client = _connect(testbed.clusters["beta"])
    yield client
    client.close()


# ------------------------------------------------------------------ the bed


def test_bed_shape(testbed):
    assert set(testbed.clusters) == {"alpha", "beta", "otp", "password"}
    assert oct(testbed.base.stat().st_mode & 0o777) == "0o755"
    ports = {c.port for c in testbed.clusters.values()}
    assert len(ports) == 4
    a, b, o, p = (testbed.clusters[n] for n in ("alpha", "beta", "otp", "password"))
    assert o.user == a.user and o.home == a.home
    assert len({a.user, b.user, p.user}) == 3
    for c in (a, b, o, p):
        assert c.host == "127.0.0.1"
        assert c.home.is_dir() and c.home.parent.parent == testbed.base
        assert c.host_key_pub.startswith("ssh-ed25519 AAAA")
        assert c.known_hosts_line() == f"[127.0.0.1]:{c.port} {c.host_key_pub}"
        assert c.pip_args == ["--no-index", "--find-links", str(c.wheelhouse)]
        assert c.wheelhouse == testbed.base / c.name / "wheels"
        fields = c.profile_fields()
        assert set(fields) == {"host", "port", "user", "identity_file", "pip_args"}
        assert fields["port"] == c.port and fields["user"] == c.user
    assert a.python_modules == ["python/3.11.5"] and a.has_uv_module
    assert b.python_modules == ["GCC/12.3.0", "Python/3.11.3"] and not b.has_uv_module
    assert p.password and a.password is None
    assert a.profile_fields()["identity_file"] == str(testbed.client_key)
    assert p.profile_fields()["identity_file"] is None


def test_host_key_fingerprint_matches_what_the_server_presents(testbed):
    for c in testbed.clusters.values():
        t = _transport(c)
        try:
            key = t.get_remote_server_key()
        finally:
            t.close()
        assert f"{key.get_name()} {key.get_base64()}" == c.host_key_pub
        assert key.fingerprint == c.host_key_fingerprint  # paramiko: "SHA256:..."


def test_wheelhouses(testbed):
    names = {s.filename for s in WHEELS}
    for name, c in testbed.clusters.items():
        have = {p.name for p in c.wheelhouse.iterdir()}
        if name in ("alpha", "otp"):
            assert have == names
        else:
            assert have == names - {"onlyalpha-1.0-py3-none-any.whl"}


# ------------------------------------------------------------------ logins


@pytest.mark.parametrize("name", ["alpha", "beta"])
def test_key_login(testbed, name):
    c = testbed.clusters[name]
    client = _connect(c)
    try:
        code, out, _ = _exec(client, "id -un; echo $HOME; echo $MODULEPATH")
    finally:
        client.close()
    assert code == 0
    assert out.split() == [c.user, str(c.home), str(c.modulepath)]


def test_passphrase_key_login(testbed):
    c = testbed.clusters["alpha"]
    with pytest.raises(paramiko.PasswordRequiredException):
        paramiko.Ed25519Key.from_private_key_file(str(testbed.passphrase_key))
    client = _connect(c, key_file=testbed.passphrase_key, passphrase=testbed.passphrase)
    try:
        assert _exec(client, "id -un")[1].strip() == c.user
    finally:
        client.close()


def test_beta_refuses_passphrase_key(testbed):
    with pytest.raises(paramiko.AuthenticationException):
        _connect(testbed.clusters["beta"], key_file=testbed.passphrase_key,
                 passphrase=testbed.passphrase)


def test_otp_login_key_then_code(testbed):
    c = testbed.clusters["otp"]
    key = paramiko.Ed25519Key.from_private_key_file(str(testbed.client_key))
    for _ in range(3):  # successive logins in the same 30 s each get a fresh code
        t = _transport(c)
        try:
            assert t.auth_publickey(c.user, key) == ["keyboard-interactive"]  # partial success
            prompts = []

            def handler(title, instructions, prompt_list, prompts=prompts):
                prompts.append(prompt_list)
                return [c.totp_now() for _ in prompt_list]

            assert t.auth_interactive(c.user, handler) == []
            assert t.is_authenticated()
            assert "One-time password" in prompts[0][0][0]
            assert _exec_on_transport(t, "id -un").strip() == c.user
        finally:
            t.close()


def test_otp_refuses_wrong_code_and_key_alone(testbed):
    c = testbed.clusters["otp"]
    key = paramiko.Ed25519Key.from_private_key_file(str(testbed.client_key))
    t = _transport(c)
    try:
        assert t.auth_publickey(c.user, key) == ["keyboard-interactive"]
        assert not t.is_authenticated()
        good = c.totp_now()
        wrong = str((int(good) + 1) % 10**6).zfill(6)
        with pytest.raises(paramiko.AuthenticationException):
            t.auth_interactive(c.user, lambda title, instr, ps: [wrong for _ in ps])
    finally:
        t.close()
    # a code without the key is not enough either
    t = _transport(c)
    try:
        with pytest.raises(paramiko.AuthenticationException):
            t.auth_interactive(c.user, lambda title, instr, ps: [c.totp_now() for _ in ps])
    finally:
        t.close()


def test_totp_helper_is_rfc6238():
    # RFC 6238 appendix B, SHA1, 8 digits
    secret = b"12345678901234567890"
    assert totp(secret, 59, digits=8) == "94287082"
    assert totp(secret, 1111111109, digits=8) == "07081804"
    assert totp(secret, 20000000000, digits=8) == "65353130"


def test_password_login(testbed):
    c = testbed.clusters["password"]
    t = _transport(c)
    try:
        prompts = []

        def handler(title, instructions, prompt_list):
            prompts.append(prompt_list)
            return [c.password for _ in prompt_list]

        assert t.auth_interactive(c.user, handler) == []
        assert prompts[0] == [("Password: ", False)]
        assert _exec_on_transport(t, "id -un").strip() == c.user
    finally:
        t.close()


def test_password_cluster_refuses_wrong_password_and_keys(testbed):
    c = testbed.clusters["password"]
    t = _transport(c)
    try:
        with pytest.raises(paramiko.AuthenticationException):
            t.auth_interactive(c.user, lambda title, instr, ps: ["wrong" for _ in ps])
    finally:
        t.close()
    t = _transport(c)
    key = paramiko.Ed25519Key.from_private_key_file(str(testbed.client_key))
    try:
        with pytest.raises(paramiko.BadAuthenticationType):
            t.auth_publickey(c.user, key)
    finally:
        t.close()


# ------------------------------------------------------------------ modules


def _avail(client) -> list[str]:
    code, out, err = _exec(client, "bash -lc 'module -t avail'")
    assert code == 0, err
    return (out + err).split()  # `module -t` writes to stderr


def test_modules_alpha(alpha):
    avail = _avail(alpha)
    assert "python/3.11.5" in avail and "uv/0.13" in avail
    assert "Python/3.11.3" not in avail and "GCC/12.3.0" not in avail
    code, out, err = _exec(alpha, "bash -lc 'module load python/3.11.5 uv/0.13 && "
                                  "python --version && uv --version && command -v python'")
    assert code == 0, err
    assert "Python 3.11" in out and "uv 0.13" in out
    assert "/alpha/software/python/3.11.5/bin/python" in out


def test_modules_beta(beta):
    avail = _avail(beta)
    assert "GCC/12.3.0" in avail and "Python/3.11.3" in avail
    assert not any(m.startswith("uv") for m in avail)
    assert "python/3.11.5" not in avail
    code, out, err = _exec(beta, "bash -lc 'module load GCC/12.3.0 Python/3.11.3 && "
                                 "python --version && echo $EBROOTPYTHON'")
    assert code == 0, err
    assert "Python 3.11" in out and "Python/3.11.3-GCCcore-12.3.0" in out
    # as on EasyBuild sites, Python needs its toolchain loaded first
    code, _, _ = _exec(beta, "bash -lc 'module load Python/3.11.3'")
    assert code != 0
    code, _, _ = _exec(beta, "bash -lc 'module load uv'")
    assert code != 0


def test_alpha_has_a_stack_module_whose_packages_python_imports_first(testbed, alpha, beta):
    """T20: like the Alliance's scipy-stack, a module that prepends PYTHONPATH with a folder of packages. Referees:
    Python importing them with the modules loaded, and pip list there; the module trees other tests count are
    unchanged (beta has no such module)."""
    from testbed.software import STACK_MODULE, STACK_PACKAGES
    assert STACK_MODULE in _avail(alpha) and not any(m.startswith("scipy-stack") for m in _avail(beta))
    code, out, err = _exec(alpha, f"bash -lc 'module load python/3.11.5 {STACK_MODULE} && python -c \""
                                  "import tinyalpha, tinybeta, tinysci; "
                                  "print(tinyalpha.__version__, tinybeta.__version__, tinysci.__version__, "
                                  "tinysci.__file__)\"'")
    assert code == 0, err
    *versions, where = out.split()
    assert versions == [STACK_PACKAGES["tinyalpha"], STACK_PACKAGES["tinybeta"], STACK_PACKAGES["tinysci"]]
    assert "/scipy-stack/2023b/" in where
    code, out, err = _exec(alpha, f"bash -lc 'module load python/3.11.5 {STACK_MODULE} && python -m pip list "
                                  "--format=freeze --disable-pip-version-check 2>/dev/null'")
    assert {f"{name}=={version}" for name, version in STACK_PACKAGES.items()} <= set(out.split()), out
    code, out, err = _exec(alpha, "bash -lc 'module load python/3.11.5 && python -c \"import tinysci\"'")
    assert code != 0  # only with the stack loaded


def test_the_alliance_shaped_cluster_has_the_stack_and_no_uv(testbed):
    """stack_cluster (cc): python/3.11.5 and the stack, no uv, so environments install with pip, as on the
    Alliance's clusters. Referee: Lmod's own list of what is there."""
    from testbed.software import STACK_MODULE
    cc = testbed.stack_cluster()
    avail = cc.run_as_user("module -t avail 2>&1").stdout.split()
    assert "python/3.11.5" in avail and STACK_MODULE in avail
    assert not any(module.startswith("uv") for module in avail)
    assert cc.python_modules == ["python/3.11.5"] and not cc.has_uv_module


def test_plain_exec_has_no_module_command(alpha):
    # non-login, non-interactive shell: like real clusters, `module` needs bash -l
    code, _, _ = _exec(alpha, "module -t avail")
    assert code != 0


@pytest.mark.parametrize("name", ["alpha", "beta"])
def test_virtualenv_works_offline_as_the_user(testbed, name):
    c = testbed.clusters[name]
    r = c.run_as_user(
        f"module load {' '.join(c.python_modules)} && rm -rf ~/tmp-ve && "
        "virtualenv -q ~/tmp-ve && ~/tmp-ve/bin/python -c 'import sys; print(sys.prefix)' && "
        f"~/tmp-ve/bin/python -m pip install -q {' '.join(c.pip_args)} tinygamma && "
        "~/tmp-ve/bin/python -c 'import tinygamma; print(tinygamma.__version__)'; "
        "rc=$?; rm -rf ~/tmp-ve; exit $rc",
        network=False,
    )
    assert r.stdout.split() == [str(c.home / "tmp-ve"), "0.1"]


def test_run_as_user_without_network(testbed):
    c = testbed.clusters["alpha"]
    r = c.run_as_user("python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", %d), 2)'"
                      % c.port, check=False, network=False)
    assert r.returncode != 0 and "Network is unreachable" in r.stderr
    c.run_as_user("python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", %d), 2)'"
                  % c.port)


def test_run_as_user_environment(testbed):
    c = testbed.clusters["beta"]
    r = c.run_as_user("id -un; echo $HOME; pwd; echo $MODULEPATH")
    user, home, cwd, modulepath = r.stdout.split()
    assert [user, home, cwd] == [c.user, str(c.home), str(c.home)]
    # Debian's /etc/profile.d/lmod.sh appends its own folders, as over SSH
    assert modulepath.split(":")[0] == str(c.modulepath)
    r = c.run_as_user("exit 3", check=False)
    assert r.returncode == 3


def test_sftp(alpha, testbed):
    sftp = alpha.open_sftp()
    try:
        sftp.putfo(__import__("io").BytesIO(b"hello\n"), "sftp-probe.txt")
        assert sftp.open("sftp-probe.txt").read() == b"hello\n"
        sftp.remove("sftp-probe.txt")
    finally:
        sftp.close()


# ------------------------------------------------------------------ the log, faults


def test_session_commands_counts_execs(testbed, alpha):
    c = testbed.clusters["alpha"]
    before = c.session_commands()
    assert _exec(alpha, "echo marker-1")[1] == "marker-1\n"
    assert _exec(alpha, "echo two\necho lines")[1] == "two\nlines\n"
    sftp = alpha.open_sftp()  # a subsystem, not a command: not counted
    sftp.listdir(".")
    sftp.close()
    tricky = "printf '%s\\n' 'back\\slash' \"tab\there\" 'café'"
    code, out, _ = _exec(alpha, tricky)
    assert out == "back\\slash\ntab\there\ncafé\n"
    _, pty_out, _ = alpha.exec_command("echo on-a-pty", get_pty=True)  # "command on pts/N"
    pty_out.read()
    after = c.session_commands()
    assert after[:len(before)] == before
    assert after[len(before):] == ["echo marker-1", "echo two\necho lines", tricky, "echo on-a-pty"]


def test_shell_is_process_group_leader(alpha):
    """sshd (no pty) runs the command's shell in a new session: pid == pgid == sid,
    so `kill -- -PGID` reaches the whole remote command."""
    code, out, _ = _exec(alpha, "echo $$; ps -o pid=,pgid=,sid=,comm= -p $$")
    assert code == 0
    shell_pid, row = out.splitlines()
    pid, pgid, sid, comm = row.split()
    assert pid == shell_pid == pgid == sid
    # bash -c execs its last simple command in place: $$ is now `ps` itself
    assert comm == "ps"
    code, out, _ = _exec(alpha, "echo $$; ps -o pid=,pgid=,sid=,comm= -p $$; true")
    shell_pid, row = out.splitlines()
    pid, pgid, sid, comm = row.split()
    assert pid == shell_pid == pgid == sid and comm == "bash"
    # a login shell inside (bash -lc) and its children stay in that group
    code, out, _ = _exec(alpha, "echo $$; bash -lc 'ps -o pgid= -p $$; sleep 5 & ps -o pgid= -p $!; kill $!'")
    outer, inner, child = out.split()
    assert outer == inner == child


def test_kill_remote_process_group(alpha):
    _, stdout, _ = alpha.exec_command("echo $$; sleep 300 & sleep 301 & wait")
    pgid = stdout.readline().strip()
    code, out, _ = _exec(alpha, f"ps -o stat= -g {pgid} | grep -vc Z")
    assert out.strip() == "3"  # bash and two sleeps
    # (orphans may linger as zombies here: this container's PID 1 does not reap)
    code, out, _ = _exec(alpha, f"kill -- -{pgid}; sleep 0.3; ps -o stat= -g {pgid} | grep -vc Z")
    assert out.strip() == "0"
    assert stdout.channel.recv_exit_status() == -1  # killed: sshd sends exit-signal, no status


def test_kill_sessions_drops_connections(testbed):
    c = testbed.clusters["beta"]
    client = _connect(c)
    assert _exec(client, "echo up")[1] == "up\n"
    assert c.kill_sessions() >= 1
    deadline = time.monotonic() + 5
    while client.get_transport().is_active() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not client.get_transport().is_active()
    with pytest.raises((paramiko.SSHException, EOFError, OSError)):
        _exec(client, "echo again")
    client.close()
    again = _connect(c)  # the listener is still there
    try:
        assert _exec(again, "echo back")[1] == "back\n"
    finally:
        again.close()


def test_rotate_host_key(testbed):
    c = testbed.clusters["password"]
    old_pub, old_fp, port = c.host_key_pub, c.host_key_fingerprint, c.port
    t = _transport(c)  # a connection open across the rotation stays up
    c.rotate_host_key()
    assert c.port == port
    assert c.host_key_pub != old_pub and c.host_key_fingerprint != old_fp
    assert t.is_active()
    t.close()
    t = _transport(c)
    try:
        key = t.get_remote_server_key()
        assert f"{key.get_name()} {key.get_base64()}" == c.host_key_pub
        assert key.fingerprint == c.host_key_fingerprint
        assert t.auth_interactive(c.user, lambda ti, ins, ps: [c.password for _ in ps]) == []
    finally:
        t.close()


# ------------------------------------------------------------------ sample envs


def _py(c, env_python: str, code: str) -> str:
    return c.run_as_user(f"{env_python} -c {json.dumps(code)}").stdout.strip()


IMPORT_VERSIONS = (
    "import importlib.metadata as m, json;"
    "print(json.dumps({d.metadata['Name'].lower(): d.version for d in m.distributions()}))"
)


def test_sample_envs_alpha(testbed, sample_envs):
    c = testbed.clusters["alpha"]
    envs = sample_envs["alpha"]
    assert set(envs) == {"plainvenv", "ve", "uvenv", "foo", "sci", "broken"}
    assert sample_envs["otp"] is envs
    kinds = {n: e["kind"] for n, e in envs.items()}
    assert kinds == {"plainvenv": "venv", "ve": "virtualenv", "uvenv": "uv",
                     "foo": "uv-project", "sci": "conda", "broken": "venv"}
    expected = {
        "plainvenv": {"tinybeta": "1.0", "tinyalpha": "2.0"},
        "ve": {"tinygamma": "0.1"},
        "uvenv": {"tinyalpha": "1.1"},
        "foo": {"tinybeta": "1.0", "tinyalpha": "2.0"},
    }
    for name, pkgs in expected.items():
        env = envs[name]
        assert Path(env["path"]).is_relative_to(c.home)
        assert not env["broken"]
        seen = json.loads(_py(c, env["python"], IMPORT_VERSIONS))  # run by the user, for real
        for pkg, version in pkgs.items():
            assert seen[pkg] == version == env["packages"][pkg]
        assert {k: v for k, v in seen.items() if k.startswith("tiny")} == \
            {k: v for k, v in env["packages"].items() if k.startswith("tiny")}
    assert "pip" in envs["plainvenv"]["packages"] and "pip" not in envs["uvenv"]["packages"]
    assert envs["uvenv"]["pyvenv_cfg"]["uv"].startswith("0.13")
    assert "virtualenv" in envs["ve"]["pyvenv_cfg"]
    foo = Path(envs["foo"]["project_dir"])
    assert (foo / "pyproject.toml").exists() and (foo / "uv.lock").exists()
    assert envs["foo"]["path"] == str(foo / ".venv")


def test_sample_env_broken(testbed, sample_envs):
    c = testbed.clusters["alpha"]
    env = sample_envs["alpha"]["broken"]
    path = Path(env["path"])
    assert env["broken"]
    assert (path / "pyvenv.cfg").exists()
    assert not Path(env["pyvenv_cfg"]["home"]).exists()
    assert (path / "bin" / "python").is_symlink() and not (path / "bin" / "python").exists()
    assert env["packages"] == {"tinyalpha": "1.0"}
    r = c.run_as_user(f"{path}/bin/python -c 1", check=False)
    assert r.returncode != 0


def test_sample_env_conda(testbed, sample_envs):
    c = testbed.clusters["alpha"]
    env = sample_envs["alpha"]["sci"]
    prefix = Path(env["path"])
    assert prefix == c.home / ".conda" / "envs" / "sci"
    records = [json.loads(p.read_text()) for p in (prefix / "conda-meta").glob("*.json")]
    assert {r["name"]: r["version"] for r in records} == env["packages"]
    assert env["packages"]["numpy"] == "1.26.4"
    history = (prefix / "conda-meta" / "history").read_text()
    assert history.startswith("==> ") and "+conda-forge/linux-64::numpy-1.26.4-" in history
    envs_txt = c.run_as_user("cat ~/.conda/environments.txt").stdout.split()
    assert str(prefix) in envs_txt
    owner = c.run_as_user(f"stat -c %U {prefix}/conda-meta/history").stdout.strip()
    assert owner == c.user


def test_sample_envs_beta(testbed, sample_envs):
    c = testbed.clusters["beta"]
    env = sample_envs["beta"]["b1"]
    assert env["kind"] == "venv" and env["path"] == str(c.home / "envs" / "b1")
    assert "Python/3.11.3" in env["pyvenv_cfg"]["home"]
    seen = json.loads(_py(c, env["python"], IMPORT_VERSIONS))
    assert seen["tinyalpha"] == env["packages"]["tinyalpha"] == "1.0"
    assert "tinybeta" not in seen


def test_sample_envs_are_made_once(testbed, sample_envs):
    assert testbed.make_sample_envs() is sample_envs
