"""`Include` in ~/.ssh/config, read as OpenSSH reads it, and which configuration files it refuses to read. The
referee is OpenSSH's own `ssh -G HOST -F CONFIG` (or without -F, for the user's own ~/.ssh/config)."""
from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

import pytest

from envdesk.backend.config import ClusterProfile
from envdesk.backend.errors import ConfigError
from envdesk.backend.ssh_config import load_ssh_config, plan_connection, profiles_from_ssh_config


def openssh(config: Path, host: str, home: Path, *options: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """`ssh -G` for `host` (with command-line `options`, such as -l USER): what OpenSSH resolves, connecting
    nowhere ($HOME decides where ~/.ssh is)."""
    return subprocess.run(["ssh", "-G", "-F", str(config), *options, host], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, env={**os.environ, "HOME": str(home)})


def openssh_settings(config: Path, host: str, home: Path, *options: str) -> dict[str, list[str]]:
    """Each keyword `ssh -G` prints for `host`, with its values in OpenSSH's order (identityfile has several)."""
    said = openssh(config, host, home, *options)
    assert said.returncode == 0, said.stderr
    settings: dict[str, list[str]] = {}
    for line in said.stdout.splitlines():
        keyword, _, value = line.partition(" ")
        settings.setdefault(keyword, []).append(value)
    return settings


def resolved_by_openssh(config: Path, host: str, home: Path, *options: str) -> tuple[str, str, int]:
    settings = openssh_settings(config, host, home, *options)
    return settings["user"][0], settings["hostname"][0], int(settings["port"][0])


def resolved_by_envdesk(config: Path, host: str) -> tuple[str, str, int]:
    target = plan_connection(ClusterProfile(name="c", host=host), load_ssh_config(config)).target
    return target.user, target.host, target.port


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_an_included_file_is_read_in_the_scope_of_its_block_as_openssh_reads_it(home):
    """User trial: an Include inside `Host siteA` was pasted in place, so the included file's `Host other` swallowed
    siteA's HostName (siteuser@siteA:2300, where OpenSSH says siteuser@sitea.example.org:2300) and `other` got
    siteA's settings. Global lines after a top-level Include went to the included file's last Host."""
    ssh = home / ".ssh"
    write(ssh / "inc" / "site.conf", "User siteuser\nPort 2300\nHost other\n User otheruser\n")
    write(ssh / "inc" / "top.conf", "Host last\n  Port 2400\n")
    write(ssh / "inc" / "nested.conf", "Port 2500\nHost inner\n  User inneruser\n  Include inc/deeper.conf\n"
                                       "  HostName inner.example.org\n")
    write(ssh / "inc" / "deeper.conf", "Port 2600\nHost never\n  User neveruser\n")
    write(ssh / "glob.d" / "b.conf", "Host globbed\n  User fromb\n")
    write(ssh / "glob.d" / "a.conf", "Host globbed\n  User froma\n  Port 2700\n")
    config = write(ssh / "config",
                   "Include inc/top.conf glob.d/*.conf\nUser globaluser\n"
                   "Host siteA\n    Include inc/site.conf\n    HostName sitea.example.org\n"
                   "Host inner outer\n  Include ~/.ssh/inc/nested.conf\n  User outeruser\n"
                   "Match originalhost matched\n  Include inc/site.conf\n  HostName m.example.org\n"
                   "Host notme\n  Include inc/top.conf glob.d/*.conf\n"
                   "Host *\n  User fallback\n")
    hosts = ["siteA", "other", "last", "x", "inner", "outer", "never", "matched", "notme", "globbed"]
    expected = {host: resolved_by_openssh(config, host, home) for host in hosts}
    assert expected["siteA"] == ("globaluser", "sitea.example.org", 2300)
    assert expected["other"] == ("globaluser", "other", 22)
    assert expected["last"] == ("globaluser", "last", 2400) and expected["globbed"][2] == 2700
    assert {host: resolved_by_envdesk(config, host) for host in hosts} == expected
    assert {profile.name for profile in profiles_from_ssh_config(load_ssh_config(config))} >= {"siteA", "globbed"}


def test_an_include_of_something_not_a_configuration_file_is_refused_in_plain_words(home, tmp_path):
    """Review: `Include /dev/zero` ended in MemoryError and an Include of a pipe hung. OpenSSH refuses the device
    (bad owner or permissions) and a file others may write, waits forever on the pipe, and reads a folder or a
    missing file as nothing; EnvDesk refuses the first three at once, in plain words, and skips the others."""
    ssh = home / ".ssh"
    config = ssh / "config"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    shared = write(tmp_path / "shared.conf", "User planted\n")
    shared.chmod(0o666)
    (tmp_path / "folder.conf").mkdir()
    for target, refused in (("/dev/zero", "not an ordinary file"), (str(fifo), "not an ordinary file"),
                            (str(shared), "Bad owner or permissions"), (str(tmp_path / "folder.conf"), None),
                            (str(tmp_path / "missing.conf"), None)):
        write(config, f"Host h\n  Include {target}\n  User kept\n")
        if refused is None:
            assert resolved_by_envdesk(config, "h") == resolved_by_openssh(config, "h", home)
            continue
        with pytest.raises(ConfigError, match=refused):
            load_ssh_config(config)  # at once: a read of /dev/zero or the pipe would never end (the suite's timeout)
        try:
            said = openssh(config, "h", home, timeout=3)
        except subprocess.TimeoutExpired:
            assert target == str(fifo)  # OpenSSH waits for a writer that never comes
        else:
            assert said.returncode != 0 and "Bad owner or permissions" in said.stderr, said


def test_a_file_larger_than_any_configuration_is_not_read(home, tmp_path):
    """A file of several megabytes is not an SSH configuration: refused before it is read whole."""
    from envdesk.backend.ssh_config_files import MAX_CONFIG_BYTES
    huge = write(tmp_path / "huge.conf", "# a comment line of a configuration no one would write\n"
                 * (MAX_CONFIG_BYTES // 50) + "User huge\n")
    assert huge.stat().st_size > MAX_CONFIG_BYTES
    config = write(home / ".ssh" / "config", f"Include {huge}\n")
    with pytest.raises(ConfigError, match="larger"):
        load_ssh_config(config)


def openssh_with_its_own_config(home: Path, host: str) -> subprocess.CompletedProcess:
    """`ssh -G HOST` reading the account's own ~/.ssh/config, with `home` as that home: ssh takes it from the
    password database, not $HOME, so `home` is mounted over it in a mount namespace of this command's own (the
    machine's home is left as it is). Skipped where that cannot be done, except under CI."""
    account = pwd.getpwuid(os.getuid()).pw_dir
    said = subprocess.run(["unshare", "-m", "sh", "-c", 'mount --bind "$1" "$2" || exit 99; exec ssh -G "$3"', "sh",
                           str(home), account, host], capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)
    if said.returncode == 99 or "unshare:" in said.stderr:
        if os.environ.get("CI") == "true":
            pytest.fail(f"could not give ssh a home of the test's own: {said.stderr}")
        pytest.skip(f"could not give ssh a home of the test's own: {said.stderr}")
    return said


@pytest.mark.parametrize("mode, owner, others_may_change_it", [
    (0o600, None, False), (0o644, None, False), (0o664, None, False), (0o646, None, True), (0o602, None, True),
    (0o600, "nobody", True)])
def test_the_users_own_config_that_others_may_change_is_refused_as_openssh_refuses_it(home, mode, owner,
                                                                                      others_may_change_it):
    """OpenSSH refuses ~/.ssh/config ("Bad owner or permissions") when it is not the user's (or root's) or others
    may write it (readconf.c, SSHCONF_CHECKPERM; Debian lets the user's own private group write it). EnvDesk read
    it anyway, so whoever could write it decided where EnvDesk connects and with which key."""
    config = write(home / ".ssh" / "config", "Host h\n  User fromconfig\n  Port 2345\n")
    config.chmod(mode)
    if owner is not None:
        os.chown(config, pwd.getpwnam(owner).pw_uid, -1)
    said = openssh_with_its_own_config(home, "h")
    assert ("Bad owner or permissions" in said.stderr) == others_may_change_it, said  # the referee's verdict
    if others_may_change_it:
        assert said.returncode != 0, said
        with pytest.raises(ConfigError, match="Bad owner or permissions") as info:
            load_ssh_config()
        assert str(config) in info.value.message and "chmod" in info.value.hint
    else:
        assert said.returncode == 0, said.stderr
        values = dict(line.split(" ", 1) for line in said.stdout.splitlines() if " " in line)
        assert (values["user"], int(values["port"])) == ("fromconfig", 2345)
        plan = plan_connection(ClusterProfile(name="c", host="h"), load_ssh_config())
        assert (plan.target.user, plan.target.port) == ("fromconfig", 2345)
    assert load_ssh_config(config).lookup("h")["user"] == "fromconfig"  # a file named outright: not checked, as -F


@pytest.mark.parametrize("shape, others_may_change_it", [("a group of the owner alone, listed", False),
                                                         ("the owner's group, another account's primary too", True)])
def test_a_group_writable_config_is_judged_by_who_is_in_that_group_as_debians_ssh_judges_it(home, shape,
                                                                                            others_may_change_it):
    """R14: Debian's secure_permissions counts a group's members as every account whose primary group it is plus
    its listed members, and lets the group write the file only when that is the owner alone. EnvDesk allowed a
    primary group shared with another account ('users' on many clusters' login nodes: anyone there could rewrite
    the file) and refused a group listing the owner alone. Real accounts and groups are made for it, and removed.
    Referee: ssh -G reading its own ~/.ssh/config."""
    import grp
    import uuid
    config = write(home / ".ssh" / "config", "Host h\n  User fromconfig\n  Port 2345\n")
    name = f"edt{uuid.uuid4().hex[:8]}"
    owner = pwd.getpwuid(os.getuid())
    try:
        if others_may_change_it:  # an account whose primary group is the owner's
            subprocess.run(["useradd", "-M", "-N", "-g", str(owner.pw_gid), "-s", "/usr/sbin/nologin", name],
                           check=True, timeout=60)
            gid = owner.pw_gid
        else:  # a group with the owner as its one listed member, and no account's primary group
            subprocess.run(["groupadd", name], check=True, timeout=60)
            subprocess.run(["gpasswd", "-a", owner.pw_name, name], check=True, capture_output=True, timeout=60)
            gid = grp.getgrnam(name).gr_gid
        os.chown(config, -1, gid)
        config.chmod(0o664)
        said = openssh_with_its_own_config(home, "h")
        assert ("Bad owner or permissions" in said.stderr) == others_may_change_it, said  # the referee's verdict
        if others_may_change_it:
            with pytest.raises(ConfigError, match="Bad owner or permissions"):
                load_ssh_config()
        else:
            assert said.returncode == 0, said.stderr
            plan = plan_connection(ClusterProfile(name="c", host="h"), load_ssh_config())
            assert (plan.target.user, plan.target.port) == ("fromconfig", 2345)
    finally:
        os.chown(config, -1, owner.pw_gid)
        subprocess.run(["userdel", name], capture_output=True, timeout=60)
        subprocess.run(["groupdel", name], capture_output=True, timeout=60)
