"""The test bed's own pip and uv run with known settings: a machine's or a contributor's neither help nor break it.

Each test puts settings that break an install in place (a bogus index and require-hashes, in files and in PIP_/UV_
variables), as a contributor's machine may have them, and runs the bed's own install steps; they must still work.
Referee: pip and uv themselves (each refuses the install when those settings reach it: checked first).
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
import uuid


from test_testbed import _connect, _exec
from testbed import tool_settings
from testbed.sample_envs import _alpha_scripts
from testbed.software import STACK_PACKAGES, install_stack

BOGUS_INDEX = "http://bogus.invalid/simple"
PIP_CONF = f"[global]\nindex-url = {BOGUS_INDEX}\nrequire-virtualenv = true\n[install]\nrequire-hashes = true\n"
UV_TOML = f'index-url = "{BOGUS_INDEX}"\n[pip]\nrequire-hashes = true\n'
BOGUS_VARIABLES = {"PIP_INDEX_URL": BOGUS_INDEX, "PIP_REQUIRE_VIRTUALENV": "1", "PIP_REQUIRE_HASHES": "1",
                   "UV_INDEX_URL": BOGUS_INDEX, "UV_REQUIRE_HASHES": "1"}


def _write_user_settings(home) -> None:
    """A user's pip.conf (both places pip reads) and uv.toml, each breaking a plain install."""
    for conf in (home / ".pip" / "pip.conf", home / ".config" / "pip" / "pip.conf"):
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(PIP_CONF)
    (home / ".config" / "uv").mkdir(parents=True, exist_ok=True)
    (home / ".config" / "uv" / "uv.toml").write_text(UV_TOML)


def test_the_beds_pip_here_ignores_the_machines_settings(testbed, tmp_path, monkeypatch):
    """The stack module's folder is filled by this process's pip (`pip install --target`); with a contributor's
    settings in files and variables, and the test process isolated as conftest does it, it still fills."""
    home = tmp_path / "home"
    _write_user_settings(home)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    for name in [*tool_settings.NO_CONFIG_FILES, "ENVDESK_TEST_MACHINE_TOOL_SETTINGS"]:
        monkeypatch.delenv(name, raising=False)
    for name, value in BOGUS_VARIABLES.items():
        monkeypatch.setenv(name, value)
    wheels = testbed.clusters["alpha"].wheelhouse
    refused = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--find-links",
                              str(wheels), "--target", str(tmp_path / "refused"), "tinyalpha"],
                             capture_output=True, text=True, timeout=300)
    # the referee: these settings break it (require-virtualenv where this Python is not a venv's, as here; in a
    # venv, as CI runs the suite, require-hashes)
    assert refused.returncode != 0 and ("virtualenv" in refused.stderr or "--require-hashes" in refused.stderr), \
        refused.stderr

    tool_settings.isolate(os.environ)
    folder = install_stack(tmp_path / "stack" / "site-packages", wheels)
    listed = subprocess.run([sys.executable, "-m", "pip", "list", "--path", str(folder), "--format", "freeze"],
                            capture_output=True, text=True, check=True, timeout=300).stdout
    assert dict(line.split("==") for line in listed.split()) == STACK_PACKAGES
    assert "ENVDESK_TEST_MACHINE_TOOL_SETTINGS" in os.environ
    assert tool_settings.machine_environ()["PIP_INDEX_URL"] == BOGUS_INDEX  # kept for the one real download


def test_the_beds_pip_and_uv_as_a_user_ignore_the_users_settings(testbed):
    """The bed's scripts that make alpha's sample environments with pip and uv, run as alpha's user in a home
    whose pip.conf and uv.toml break a plain install, still make them."""
    alpha = testbed.clusters["alpha"]
    home = testbed.base / f"settings-home-{uuid.uuid4().hex[:6]}"
    home.mkdir()
    _write_user_settings(home)
    st = os.stat(alpha.home)
    for path in [home, *home.rglob("*")]:
        os.chown(path, st.st_uid, st.st_gid)
    user = copy.copy(alpha)
    user.home = home
    try:
        scripts = _alpha_scripts(str(alpha.wheelhouse), " ".join(alpha.python_modules), alpha.uv_module)
        for name in ("plainvenv", "uv"):
            user.run_as_user(scripts[name])
        load = f"module load {' '.join(alpha.python_modules)} {alpha.uv_module}"
        frozen = user.run_as_user(f"{load}; uv pip freeze --python ~/venvs/uvenv/bin/python; "
                                  "~/venvs/plainvenv/bin/python -m pip freeze").stdout.split()
        assert {"tinyalpha==1.1", "tinybeta==1.0"} <= set(frozen)

        find = f"--no-index --find-links {alpha.wheelhouse}"  # the referees: these settings break both installs
        pip = user.run_as_user(f"unset PIP_CONFIG_FILE; ~/venvs/plainvenv/bin/python -m pip install --dry-run "
                               f"{find} tinygamma", check=False)
        uv = user.run_as_user(f"unset UV_NO_CONFIG; {load}; uv pip install --dry-run "
                              f"--python ~/venvs/uvenv/bin/python {find} tinygamma", check=False)
        assert pip.returncode != 0 and "hash" in pip.stderr.lower(), pip.stderr
        assert uv.returncode != 0 and "hash" in uv.stderr.lower(), uv.stderr
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_the_test_process_reads_no_configuration_file():
    """conftest isolated this process: pip's own account of the settings it would use (`pip config list`, which
    names every file's and every PIP_ variable's) holds only the empty configuration file, and uv finds no
    configuration file (it names each one it found with -v). R20: this test compared os.environ with
    tool_settings' own constants."""
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                            check=True, timeout=120).stdout.split()
    assert listed == [f":env:.config-file='{os.devnull}'"], listed
    found = subprocess.run(["uv", "pip", "list", "-v", "--python", sys.executable], capture_output=True, text=True,
                           timeout=120).stderr
    assert not re.search(r"Found \w+ configuration in", found), found


def test_a_login_on_the_bed_reads_the_clusters_machine_wide_config_not_this_machines(testbed):
    """Over SSH, as EnvDesk runs there, pip and uv look for machine-wide settings in the cluster's XDG_CONFIG_DIRS
    (sshd's SetEnv), not in this machine's /etc/xdg; uv takes the cluster's empty uv.toml for the system's, so it
    never reaches /etc/uv/uv.toml. Referees: `pip config debug` (the files pip reads) and `uv -v` (the one it
    found). /etc/pip.conf is read by every pip, whatever the environment says: not hidden, see tool_settings."""
    alpha = testbed.clusters["alpha"]
    client = _connect(alpha)
    try:
        status, pip, _ = _exec(client, "/usr/bin/python3 -m pip config debug")
        assert status == 0, pip
        status, _, uv = _exec(client, f"bash -lc 'module load {alpha.uv_module} && uv pip list -v "
                                      "--python /usr/bin/python3'")
        assert status == 0, uv
    finally:
        client.close()
    assert f"{alpha.xdg_config_dirs}/pip/pip.conf, exists: False" in pip and "/etc/xdg/pip" not in pip
    assert f"Found system configuration in: {alpha.xdg_config_dirs}/uv/uv.toml" in uv
