"""~/.ssh/config: aliases, Include (which paramiko leaves to us) and ProxyJump."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from envdesk.backend.config import ClusterProfile
from envdesk.backend.errors import ConfigError
from envdesk.backend.ssh_config import SSHConfiguration, load_ssh_config, plan_connection, profiles_from_ssh_config
from test_ssh_config_include import openssh_settings, resolved_by_openssh


def write_config(home):
    ssh = home / ".ssh"
    (ssh / "config.d").mkdir(parents=True)
    (ssh / "config").write_text(
        "Include config.d/*.conf\n"
        "Host gw\n  HostName gateway.example.org\n  User gwuser\n  Port 2200\n"
        "Host *\n  ServerAliveInterval 30\n  Port 2022\n  User fallback\n")
    (ssh / "config.d" / "clusters.conf").write_text(
        "Host narval\n  HostName narval.alliancecan.ca\n  User jsmith\n  IdentityFile ~/.ssh/alliance\n"
        "  ProxyJump gw\n"
        "Host mila\n  HostName login.server.mila.quebec\n  Port 2222\n  User jdoe\n")
    return ssh / "config"


def hop(resolved) -> tuple[str, str, int]:
    """(user, host name, port) of a host EnvDesk resolved, as resolved_by_openssh gives them."""
    return resolved.user, resolved.host, resolved.port


def test_include_and_proxyjump_resolve(tmp_path, monkeypatch):
    """The referee is OpenSSH: `ssh -G` for the host, and for each jump its ProxyJump names (OpenSSH reads the
    configuration again for the first jump). ssh -G prints an IdentityFile as written: ~ is the home."""
    monkeypatch.setenv("HOME", str(tmp_path))
    config = write_config(tmp_path)
    plan = plan_connection(ClusterProfile(name="narval", host="narval"), load_ssh_config(config))
    said = openssh_settings(config, "narval", tmp_path)
    assert hop(plan.target) == resolved_by_openssh(config, "narval", tmp_path)
    assert list(plan.target.identity_files) == [re.sub(r"^~/", f"{tmp_path}/", path) for path in said["identityfile"]]
    assert [hop(jump) for jump in plan.jumps] == [resolved_by_openssh(config, jump, tmp_path)
                                                  for jump in said["proxyjump"][0].split(",")]


def test_profile_values_win_over_ssh_config(tmp_path, monkeypatch):
    """The profile's user and port win as ssh's -l and -p do over the configuration (`ssh -G -l -p`, the referee)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    config = write_config(tmp_path)
    plan = plan_connection(ClusterProfile(name="m", host="mila", user="other", port=22), load_ssh_config(config))
    assert hop(plan.target) == resolved_by_openssh(config, "mila", tmp_path, "-l", "other", "-p", "22")
    assert "proxyjump" not in openssh_settings(config, "mila", tmp_path) and plan.jumps == ()


def test_profiles_are_suggested_from_aliases(tmp_path, monkeypatch):
    """Each alias's suggested profile has the user, port and jumps `ssh -G` resolves for it (the referee)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    config = write_config(tmp_path)
    profiles = {p.name: p for p in profiles_from_ssh_config(load_ssh_config(config))}
    assert set(profiles) == {"gw", "narval", "mila"}
    for name, profile in profiles.items():
        said = openssh_settings(config, name, tmp_path)
        jumps = said["proxyjump"][0].split(",") if "proxyjump" in said else []
        assert (profile.user, profile.port, profile.jump) == (said["user"][0], int(said["port"][0]), jumps), name


def test_missing_config_is_empty(tmp_path):
    assert profiles_from_ssh_config(load_ssh_config(tmp_path / "nope")) == []


def test_match_exec_is_never_run_and_its_block_never_applies(tmp_path, monkeypatch):
    """A hostile or careless `Match exec` would run a local shell command with %h substituted."""
    import pytest

    from envdesk.backend.errors import InvalidInput
    monkeypatch.setenv("HOME", str(tmp_path))
    canary = tmp_path / "canary"
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text(
        f'Match exec "touch {canary}-%h; true"\n  User attacker\n  Port 2999\n'
        f"Match host narval !exec \"touch {canary}-negated\"\n  IdentityFile ~/.ssh/evil\n"
        "Host narval\n  HostName narval.alliancecan.ca\n  User jsmith\n")
    plan = plan_connection(ClusterProfile(name="narval", host="narval"), load_ssh_config())
    assert (plan.target.user, plan.target.port, plan.target.identity_files) == ("jsmith", 22, ())
    assert list(tmp_path.glob("canary*")) == []
    for hostile in ("x;touch canary;#", "-oProxyCommand=touch canary", "a b", "$(id)", "`id`"):
        with pytest.raises(InvalidInput):
            ClusterProfile(name="evil", host=hostile)


def _closed_port() -> int:
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_jump_hosts_own_proxyjump_is_followed_as_openssh_follows_it(tmp_path):
    """User trial T7: `final` jumps through hopB, whose own ProxyJump is hopA; EnvDesk went to hopB directly.
    OpenSSH reads the configuration again for the first jump of a list (its ProxyJump applies), and gives the
    others the rest of the list (theirs does not). The referee is OpenSSH itself: `ssh -v` says which jump it
    takes for each hop (the connection goes to a closed port, so it stops there)."""
    import re
    import subprocess

    import pytest

    from envdesk.backend.errors import ConfigError

    port = _closed_port()
    hosts = {"final": "hopB", "hopB": "hopA,hopC", "hopA": "hopZ", "hopC": "hopY", "hopZ": None, "hopY": None}
    config = tmp_path / "config"
    config.write_text("".join(f"Host {name}\n  HostName 127.0.0.1\n  Port {port}\n"
                              + (f"  ProxyJump {jump}\n" if jump else "") for name, jump in hosts.items()))
    for profile, given in ((ClusterProfile(name="fin", host="final"), []),
                           (ClusterProfile(name="fin", host="final", jump=["hopB"]), ["-J", "hopB"])):
        said = subprocess.run(["ssh", "-v", "-F", str(config), *given, "-o", "BatchMode=yes",
                               "-o", "UserKnownHostsFile=/dev/null", "final", "true"],
                              capture_output=True, text=True, timeout=60)
        taken = re.findall(r"Setting implicit ProxyCommand from ProxyJump: .* (\S+)$", said.stderr, re.MULTILINE)
        route = list(reversed(taken))  # each hop names the jump it goes through; the innermost connects first
        assert route == ["hopZ", "hopA", "hopC", "hopB"], said.stderr
        assert [jump.alias for jump in plan_connection(profile, load_ssh_config(config)).jumps] == route
    config.write_text("Host final\n  ProxyJump hopA\nHost hopA\n  ProxyJump hopB\nHost hopB\n  ProxyJump hopA\n")
    with pytest.raises(ConfigError, match="circle: final -> hopA -> hopB -> hopA"):
        plan_connection(ClusterProfile(name="fin", host="final"), load_ssh_config(config))


def test_a_proxycommand_that_is_a_jump_is_followed_and_any_other_is_said_not_to_be_run(tmp_path):
    """User trial T7: a ProxyCommand was dropped without a word. `ssh -W %h:%p gw` is what ProxyJump gw does
    (ssh_config(5)); OpenSSH (the referee, `ssh -v`) connects first to gw's address, and so does EnvDesk's route.
    Any other command is not run (a configuration's command, as Match exec is not), and `cluster add` says so."""
    import os
    import re
    import subprocess

    from envdesk_fixtures import envdesk_command

    gw_port, target_port = _closed_port(), _closed_port() + 1
    marker = tmp_path / "ran"
    config = tmp_path / ".ssh" / "config"
    config.parent.mkdir()
    # the jump's address is written out: the ssh the ProxyCommand starts reads the user's own ~/.ssh/config
    config.write_text(f"Host viacmd\n  HostName 127.0.0.1\n  Port {target_port}\n"
                      f"  ProxyCommand ssh -v -l gwuser -p {gw_port} -W %h:%p 127.0.0.1\n"
                      f"Host vianc\n  HostName 127.0.0.1\n  Port {target_port}\n"
                      f"  ProxyCommand sh -c 'touch {marker}; nc %h %p'\n")
    said = subprocess.run(["ssh", "-v", "-F", str(config), "-o", "BatchMode=yes", "viacmd", "true"],
                          capture_output=True, text=True, timeout=60)
    first = re.search(r"Connecting to \S+ \[[^]]+\] port (\d+)", said.stderr)
    assert first and int(first.group(1)) == gw_port, said.stderr
    plan = plan_connection(ClusterProfile(name="c", host="viacmd"), load_ssh_config(config))
    assert [(j.port, j.user) for j in plan.jumps] == [(gw_port, "gwuser")] and plan.target.port == target_port
    assert not plan.notes
    with pytest.raises(ConfigError, match="ProxyCommand that EnvDesk cannot follow") as refused:
        plan_connection(ClusterProfile(name="n", host="vianc"), load_ssh_config(config))
    assert "ProxyJump" in refused.value.hint
    added = subprocess.run([*envdesk_command(), "--config-dir", str(tmp_path / "cfg"), "cluster", "add", "n",
                            "--host", "vianc"], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "HOME": str(tmp_path)})
    assert added.returncode == 0 and "reaches vianc through a ProxyCommand that EnvDesk cannot" in added.stderr
    # T28: every connection is refused, not only the first: `env list` connected directly without a word
    for verb in (["cluster", "test", "n"], ["env", "list", "n"]):
        tried = subprocess.run([*envdesk_command(), "--config-dir", str(tmp_path / "cfg"), *verb],
                               capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)})
        said = tried.stdout + tried.stderr
        assert "cannot follow" in said and "ProxyJump" in said and tried.returncode != 0, (verb, said)
    assert not marker.exists(), "EnvDesk ran the configuration's command"


def test_a_proxycommand_whose_ssh_only_prints_its_version_is_not_taken_for_a_jump(tmp_path):
    """R22: `ssh -V -W %h:%p gw` connects nowhere (ssh prints its version and ends: the referee), yet EnvDesk read
    it as a jump through gw."""
    import subprocess
    config = tmp_path / ".ssh" / "config"
    config.parent.mkdir()
    config.write_text("Host viav\n  HostName 127.0.0.1\n  ProxyCommand ssh -V -W %h:%p gw.example.org\n")
    said = subprocess.run(["ssh", "-V", "-W", "127.0.0.1:22", "gw.example.org"], capture_output=True, text=True,
                          timeout=60)
    assert said.returncode == 0 and "OpenSSH" in said.stderr, said.stderr  # a version, no connection
    with pytest.raises(ConfigError, match="ProxyCommand that EnvDesk cannot follow"):
        plan_connection(ClusterProfile(name="v", host="viav"), load_ssh_config(config))


def test_cluster_add_says_when_the_ssh_configuration_cannot_be_used(tmp_path):
    """User trial T7: `cluster add` showed 'your login name@badport:22' for a Host whose Port is 99999, and the
    reason came only at `cluster test`. OpenSSH (the referee) refuses that configuration outright."""
    import os
    import subprocess

    from envdesk_fixtures import envdesk_command

    config = tmp_path / ".ssh" / "config"
    config.parent.mkdir()
    config.write_text("Host badport\n  HostName h.example.org\n  Port 99999\n")
    openssh = subprocess.run(["ssh", "-G", "-F", str(config), "badport"], capture_output=True, text=True, timeout=30)
    assert openssh.returncode != 0, openssh.stdout
    added = subprocess.run([*envdesk_command(), "--config-dir", str(tmp_path / "cfg"), "cluster", "add", "xb",
                            "--host", "badport"], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "HOME": str(tmp_path)})
    assert added.returncode == 0, added.stderr
    assert "note: Your SSH configuration cannot be used for badport: '99999' is not a port number" in added.stderr


def test_whichever_of_proxyjump_and_proxycommand_comes_first_wins_as_in_openssh(tmp_path):
    """Review R4: `ProxyCommand none` for gw before `Host * / ProxyJump gw` turns the jump off for gw itself in
    OpenSSH (`ssh -G`, the referee), and EnvDesk called the route a circle; a ProxyCommand before a ProxyJump wins.
    A note about a ProxyCommand it does not run never repeats the command, which may hold a proxy's password."""
    import subprocess

    def openssh(host: str) -> dict[str, str]:
        said = subprocess.run(["ssh", "-G", "-F", str(config), host], capture_output=True, text=True, timeout=30,
                              check=True).stdout
        return dict(line.split(" ", 1) for line in said.splitlines() if " " in line)

    config = tmp_path / "config"
    config.write_text("Host gw\n  ProxyCommand none\nHost viacmd\n  ProxyCommand ssh -W %h:%p gw2\n"
                      "Host secret\n  ProxyCommand sshpass -p S3cret nc %h %p\nHost *\n  ProxyJump gw\n")
    loaded = load_ssh_config(config)
    assert "proxyjump" not in openssh("gw") and openssh("cl")["proxyjump"] == "gw"
    assert "proxyjump" not in openssh("viacmd") and openssh("viacmd")["proxycommand"].endswith("gw2")
    assert plan_connection(ClusterProfile(name="g", host="gw"), loaded).jumps == ()
    assert [j.alias for j in plan_connection(ClusterProfile(name="c", host="cl"), loaded).jumps] == ["gw"]
    # the ssh that ProxyCommand starts for gw2 reads the file too, where gw2 jumps through gw (Host *)
    assert [j.alias for j in plan_connection(ClusterProfile(name="v", host="viacmd"), loaded).jumps] == ["gw", "gw2"]
    with pytest.raises(ConfigError) as refused:
        plan_connection(ClusterProfile(name="s", host="secret"), loaded)
    assert "ProxyCommand" in refused.value.message and "S3cret" not in refused.value.message + refused.value.hint


def test_a_match_exec_line_that_may_apply_to_a_host_is_named_in_its_plan_and_by_the_cli(tmp_path):
    """User trial: a `Match exec` block was dropped with only a log line, though the README says `cluster add`
    says so. The referee is OpenSSH: `ssh -G` runs a Match line's exec only for a host that meets the criteria
    before it, so the markers it leaves name the lines that may apply to each host; EnvDesk names the same
    lines in the host's plan (and never runs them), and `cluster add` prints the note."""
    import os
    import subprocess

    from envdesk_fixtures import envdesk_command

    config = tmp_path / ".ssh" / "config"
    config.parent.mkdir()
    config.write_text(f'Match originalhost narval exec "touch {tmp_path}/ran-1-%n"\n  User execuser\n'
                      f'Match originalhost other !exec "touch {tmp_path}/ran-3-%n"\n  Port 2999\n'
                      "Host narval\n  HostName narval.alliancecan.ca\n  ProxyJump gw\n"
                      f"Host gw\n  Match exec \"touch {tmp_path}/ran-9-%n\"\n")
    env = {**os.environ, "HOME": str(tmp_path)}
    for host in ("narval", "other", "gw", "plain"):
        subprocess.run(["ssh", "-G", "-F", str(config), host], capture_output=True, timeout=30, env=env, check=True)
    ran = {(marker.name.split("-")[2], int(marker.name.split("-")[1])) for marker in tmp_path.glob("ran-*")}
    assert ran == {("narval", 1), ("other", 3), ("narval", 9), ("other", 9), ("gw", 9), ("plain", 9)}
    for marker in tmp_path.glob("ran-*"):
        marker.unlink()
    loaded = load_ssh_config(config)
    for host in ("narval", "other", "gw", "plain"):
        notes = plan_connection(ClusterProfile(name="c", host=host), loaded).notes
        named = {int(note.split(f"{config} line ")[1].split(")")[0]) for note in notes if "'Match exec'" in note}
        # narval's route goes through gw: its plan names line 9 for gw as well as for narval
        assert named == {line for name, line in ran if name == host}, (host, notes)
    added = subprocess.run([*envdesk_command(), "--config-dir", str(tmp_path / "cfg"), "cluster", "add", "n",
                            "--host", "narval"], capture_output=True, text=True, timeout=60, env=env)
    assert added.returncode == 0, added.stderr
    assert f"note: Your SSH configuration has a 'Match exec' line ({config} line 1) that may apply to narval" \
        in added.stderr
    assert list(tmp_path.glob("ran-*")) == [], "EnvDesk ran a Match exec command"


def _identity_files_openssh_tries(config, host: str, env: dict) -> list[str] | str:
    """The identity files `ssh -v` says it loads for `host` (after it has connected: to a socket here that
    accepts and then closes, so it logs in nowhere); its error when it refuses the configuration."""
    import re
    import socket
    import subprocess
    import threading

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def accept_then_close() -> None:
            listener.settimeout(30)
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            connection.settimeout(5)
            try:
                connection.recv(1024)
            except OSError:
                pass
            connection.close()

        threading.Thread(target=accept_then_close, daemon=True).start()
        said = subprocess.run(["ssh", "-v", "-F", str(config), "-o", "BatchMode=yes", "-o", f"Port={port}",
                               "-o", "UserKnownHostsFile=/dev/null", host, "true"],
                              capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
    files = re.findall(r"^debug1: identity file (.*) type -?\d+$", said.stderr, re.MULTILINE)
    return [name for name in files if not name.endswith("-cert")] or said.stderr


def test_identityfile_tokens_and_variables_are_expanded_as_openssh_expands_them(tmp_path, monkeypatch):
    """Review: paramiko's table misses %p, %n, %i, %k and ${VAR} in IdentityFile, and takes %l for the DNS name of
    this computer. The referee is OpenSSH: `ssh -v` names each identity file it loads once it has connected. An
    unknown token or an unset variable is refused, by OpenSSH and in plain words by EnvDesk."""
    import os

    import pytest

    from envdesk.backend.errors import ConfigError
    from envdesk_fixtures import openssh_home

    openssh_home(monkeypatch)
    monkeypatch.setenv("ENVDESK_KEYS", str(tmp_path / "keys"))
    config = tmp_path / "config"
    config.write_text("Host myalias other\n  HostName 127.0.0.1\n  User bob\n"
                      "  IdentityFile ~/.ssh/id_%h_%p_%r_%n_%l_%L_%i_%u_%%_${ENVDESK_KEYS}\n"
                      "  IdentityFile ${ENVDESK_KEYS}/%k/%d/%C\n"
                      "Host other\n  HostKeyAlias keyalias.example.org\n")
    env = dict(os.environ)
    for host in ("myalias", "other"):
        expected = _identity_files_openssh_tries(config, host, env)
        assert isinstance(expected, list) and len(expected) == 2, expected
        port = int(expected[0].split("_")[2])  # the listener's: the file is read with that port
        plan = plan_connection(ClusterProfile(name="c", host=host, port=port), load_ssh_config(config))
        assert list(plan.target.identity_files) == expected
    for bad, openssh_says in (("%Z", "unknown key %Z"), ("${ENVDESK_UNSET_VARIABLE}", "has no value")):
        config.write_text(f"Host bad\n  HostName 127.0.0.1\n  IdentityFile /k/{bad}\n")
        assert openssh_says in _identity_files_openssh_tries(config, "bad", env)
        with pytest.raises(ConfigError, match="OpenSSH"):
            plan_connection(ClusterProfile(name="c", host="bad"), load_ssh_config(config))


def ssh_g(config: Path, host: str) -> dict[str, str] | str:
    """`ssh -G`'s values for `host` under `config`, or its error."""
    done = subprocess.run(["ssh", "-G", "-F", str(config), host], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        return done.stderr.strip()
    return dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)


@pytest.mark.skipif(shutil.which("ssh") is None, reason="OpenSSH's ssh is the referee")
@pytest.mark.parametrize("interval,count", [("30", "2"), ("1m30s", "0"), ("1M", "+5"), ("2h", "05"), ("0", "3"),
                                            ("+5", "7"), ("1s2", "1"), ("00012", "4"), ("5x", "3"), ("-1", "3"),
                                            ("1w1d", "x"), ("15", "-1"), ("99999999999", "3")])
def test_server_alive_settings_are_read_as_ssh_reads_them(tmp_path, interval, count):
    config = tmp_path / "config"
    config.write_text(f"Host stuck\n  ServerAliveInterval {interval}\n  ServerAliveCountMax {count}\n"
                      "  TCPKeepAlive no\n\nHost *\n  ServerAliveInterval 99\n")
    expected = ssh_g(config, "stuck")
    profile = ClusterProfile(name="stuck", host="stuck", user="someone")
    try:
        hop = plan_connection(profile, SSHConfiguration.from_text(config.read_text())).target
    except ConfigError as exc:
        assert isinstance(expected, str), f"ssh takes it ({expected}), EnvDesk refused it: {exc}"
        return
    assert isinstance(expected, dict), f"ssh refuses it ({expected}), EnvDesk took it"
    assert (hop.server_alive_interval, hop.server_alive_count_max, hop.tcp_keep_alive) == (
        int(expected["serveraliveinterval"]), int(expected["serveralivecountmax"]), expected["tcpkeepalive"] == "yes")


def test_unset_server_alive_settings_are_left_to_envdesk(tmp_path):
    """Not set: None (EnvDesk's own default applies, see ssh_alive); ssh -G shows its own default, 0 (never)."""
    hop = plan_connection(ClusterProfile(name="plain", host="plain", user="someone"),
                          SSHConfiguration.from_text("Host other\n  ServerAliveInterval 5\n")).target
    assert (hop.server_alive_interval, hop.server_alive_count_max, hop.tcp_keep_alive) == (None, None, True)
