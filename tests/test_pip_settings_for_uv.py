"""uv installs from where pip would: the machine's, the user's and the cluster's pip settings apply.

uv reads no pip.conf nor PIP_ variable (astral-sh/uv#1404), yet clusters say there where packages come from:
the Alliance's modules set PIP_CONFIG_FILE to a file whose [install] section lists the clusters' own
wheelhouses (find-links), a constraints file and packages that must come as wheels. The referee is pip
itself: in each layout of settings below, what `pip install --dry-run --report` would install is what
EnvDesk's environment made with uv holds (`uv pip freeze`).

Three sources offer tinyalpha at different versions, so the version installed tells which settings took:
wheelhouse A has 1.0, wheelhouse B 1.1, and a package index (a PEP 503 folder, a local stand-in for PyPI) 2.0.
"""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from envdesk_fixtures import envdesk_command, make_config, unique
from testbed import WheelSpec, build_wheel


def _clean_environ(**extra: str) -> dict[str, str]:
    """This process's environment without the machine's own pip settings (PIP_ variables), plus `extra`."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "XDG_CONFIG"))}, **extra}


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pip-sources")
    wheelhouse_a, wheelhouse_b, index = root / "wheelhouse-a", root / "wheelhouse-b", root / "index"
    for folder in (wheelhouse_a, wheelhouse_b, index):
        folder.mkdir()
    build_wheel(wheelhouse_a, WheelSpec("tinyalpha", "1.0"))
    build_wheel(wheelhouse_b, WheelSpec("tinyalpha", "1.1"))
    wheel = build_wheel(index, WheelSpec("tinyalpha", "2.0"))
    project = index / "simple" / "tinyalpha"
    project.mkdir(parents=True)
    (project / "index.html").write_text(f'<html><body><a href="../../{wheel.name}">{wheel.name}</a></body></html>\n')
    (root / "below-1.1.txt").write_text("# the site's pins\ntinyalpha<1.1\n")
    referee = root / "referee"
    subprocess.run([sys.executable, "-m", "venv", str(referee)], check=True)
    return {"a": wheelhouse_a, "b": wheelhouse_b, "index": (index / "simple").as_uri(),
            "constraints": root / "below-1.1.txt", "referee": referee / "bin" / "python", "root": root}


def _layout(name: str, sources: dict[str, Path], folder: Path) -> dict[str, str]:
    """Write one layout of pip settings under `folder` (its HOME and machine folder); return its variables."""
    home, machine = folder / "home", folder / "etc-xdg"
    a, b, index, constraints = sources["a"], sources["b"], sources["index"], sources["constraints"]
    files: dict[Path, str] = {}
    variables = {"HOME": str(home), "XDG_CONFIG_DIRS": str(machine)}
    if name == "alliance-module":
        # The shape of the Alliance's pip-*.conf (ComputeCanada/software-stack-config), with PyPI as `index`.
        site = folder / "cvmfs" / "pip-x86-64-v3.conf"
        files[site] = ("[global]\ndisable-pip-version-check = true\n"
                       f"index-url = {index}\n\n"
                       f"[download]\nfind-links = {a} {b}\n\n"
                       f"[install]\nfind-links = {a} {b} {folder / 'wheelhouse' / 'not-on-this-node'}\n"
                       f"constraint = {constraints}\nonly-binary = numpy,scipy,tinyalpha\nprefer-binary = true\n")
        variables["PIP_CONFIG_FILE"] = str(site)
    elif name == "user-file-over-legacy-file":
        files[home / ".pip" / "pip.conf"] = f"[global]\nno-index = true\nfind-links = {a}\n"
        files[home / ".config" / "pip" / "pip.conf"] = f"[global]\nno-index = false\nindex-url = {index}\n"
    elif name == "install-section-over-later-global":
        files[machine / "pip" / "pip.conf"] = f"[install]\nno-index = yes\nfind-links = {a}\n"
        files[home / ".config" / "pip" / "pip.conf"] = f"[global]\nfind-links = {b}\n"
    elif name == "variables-over-files":
        files[machine / "pip" / "pip.conf"] = f"[install]\nno-index = on\nfind-links = {a}\n"
        variables.update(PIP_FIND_LINKS=str(b), PIP_NO_INDEX="1")
    elif name == "config-file-devnull":
        files[home / ".config" / "pip" / "pip.conf"] = f"[global]\nno-index = true\nfind-links = {a}\n"
        variables.update(PIP_CONFIG_FILE=os.devnull, PIP_INDEX_URL=index)
    elif name == "config-file-hides-user-file":
        named = folder / "site.conf"
        files[named] = f"[global]\nindex-url = {index}\n"
        files[home / ".config" / "pip" / "pip.conf"] = f"[global]\nno-index = true\nfind-links = {a}\n"
        variables["PIP_CONFIG_FILE"] = str(named)
    elif name == "empty-variable-and-tilde":  # pip skips empty settings and expands ~ in find-links
        (home / "wheels").mkdir(parents=True)
        for wheel in b.glob("*.whl"):
            (home / "wheels" / wheel.name).write_bytes(wheel.read_bytes())
        files[home / ".config" / "pip" / "pip.conf"] = "[global]\nno-index = true\nfind-links = ~/wheels\n"
        variables.update(PIP_INDEX_URL="", PIP_ONLY_BINARY="")
    else:
        raise AssertionError(name)
    home.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return variables


LAYOUTS = ["alliance-module", "user-file-over-legacy-file", "install-section-over-later-global",
           "variables-over-files", "config-file-devnull", "config-file-hides-user-file", "empty-variable-and-tilde"]


def _what_pip_installs(python: Path, environ: dict[str, str], requirement: str) -> dict[str, str]:
    """The referee: what pip, with these settings, would install for `requirement` (its --report)."""
    result = subprocess.run([str(python), "-m", "pip", "install", "--dry-run", "--quiet", "--report", "-",
                             "--ignore-installed", requirement], capture_output=True, text=True, env=environ)
    assert result.returncode == 0, result.stderr
    return {item["metadata"]["name"]: item["metadata"]["version"] for item in json.loads(result.stdout)["install"]}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_uv_here_installs_what_pip_would(layout, sources, tmp_path):
    environ = _clean_environ(**_layout(layout, sources, tmp_path), UV_OFFLINE="1",
                             UV_CACHE_DIR=str(sources["root"] / "uv-cache"))
    expected = _what_pip_installs(sources["referee"], environ, "tinyalpha")
    root = tmp_path / "envs"
    made = subprocess.run([*envdesk_command(), "--config-dir", str(tmp_path / "cfg"), "env", "create", "local",
                           "demo", "--kind", "uv", "--root", str(root), "--package", "tinyalpha"],
                          capture_output=True, text=True, env=environ, stdin=subprocess.DEVNULL, timeout=300)
    assert made.returncode == 0, made.stdout + made.stderr
    assert _frozen(root / "demo", environ) == expected


def _frozen(env: Path, environ: dict[str, str]) -> dict[str, str]:
    """What uv pip freeze says the environment holds, without what its maker seeds (as pip freeze leaves out)."""
    frozen = subprocess.run(["uv", "pip", "freeze", "--python", str(env / "bin" / "python")],
                            capture_output=True, text=True, env=environ, check=True).stdout
    return {name: version for name, version in (line.split("==") for line in frozen.split())
            if name not in ("pip", "setuptools", "wheel")}


def test_a_hashed_file_installs_under_the_sites_range_constraints(sources, tmp_path):
    """pip checks hashes with the Alliance's constraints file (ranges) in force; uv refuses ranges as constraints
    in that mode, so a hashed import there must not hand them to it, and installs what pip installs."""
    environ = _clean_environ(**_layout("alliance-module", sources, tmp_path), UV_OFFLINE="1",
                             UV_CACHE_DIR=str(sources["root"] / "uv-cache"))
    wheel = next(sources["a"].glob("tinyalpha-1.0-*.whl"))
    hashed = tmp_path / "requirements.txt"
    hashed.write_text(f"tinyalpha==1.0 \\\n    --hash=sha256:{hashlib.sha256(wheel.read_bytes()).hexdigest()}\n")
    expected = _what_pip_installs(sources["referee"], environ, "-r" + str(hashed))
    root = tmp_path / "envs"
    made = subprocess.run([*envdesk_command(), "--config-dir", str(tmp_path / "cfg"), "env", "import", "local",
                           str(hashed), "--name", "demo", "--root", str(root), "--yes"],
                          capture_output=True, text=True, env=environ, stdin=subprocess.DEVNULL, timeout=300)
    assert made.returncode == 0, made.stdout + made.stderr
    assert "Installing packages with uv" in made.stdout + made.stderr
    assert _frozen(root / "demo", environ) == expected == {"tinyalpha": "1.0"}


def test_an_environments_own_pip_conf_counts_and_a_flag_is_not_given_twice(sources, tmp_path):
    """pip in a venv reads the venv's own pip.conf (the review found the reader, started with -S, looking in the
    base Python's folder instead); and no-index from pip's settings beside the target's own --no-index is given
    to uv once (uv refuses it twice, pip takes it). pip in that venv is the referee for an update."""
    env = tmp_path / "envs" / "own"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True, timeout=300)
    (env / "pip.conf").write_text(f"[install]\nfind-links = {sources['b']}\n")
    environ = _clean_environ(HOME=str(tmp_path / "home"), XDG_CONFIG_DIRS=str(tmp_path / "etc-xdg"),
                             PIP_NO_INDEX="yes", UV_OFFLINE="1", UV_CACHE_DIR=str(sources["root"] / "uv-cache"))
    expected = _what_pip_installs(env / "bin" / "python", {**environ, "PIP_NO_INDEX": "yes"}, "tinyalpha")
    config = tmp_path / "cfg"
    config.mkdir()
    (config / "clusters.yaml").write_text(json.dumps({"local": {"env_roots": [str(env.parent)],
                                                                "pip_args": ["--no-index"]}}))
    done = subprocess.run([*envdesk_command(), "--config-dir", str(config), "env", "update", "local", str(env),
                           "--add", "tinyalpha"], capture_output=True, text=True, env=environ,
                          stdin=subprocess.DEVNULL, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Installing packages with uv" in done.stdout + done.stderr
    assert expected == {"tinyalpha": "1.1"} and _frozen(env, environ) == expected


def test_a_setting_pip_refuses_stops_the_install_in_plain_words(sources, tmp_path):
    """pip refuses `no-index = maybe`; the install with uv stops with the setting named, and nothing is made."""
    home = tmp_path / "home"
    (home / ".config" / "pip").mkdir(parents=True)
    (home / ".config" / "pip" / "pip.conf").write_text("[global]\nno-index = maybe\n")
    environ = _clean_environ(HOME=str(home), XDG_CONFIG_DIRS=str(tmp_path / "etc-xdg"), UV_OFFLINE="1")
    pip = subprocess.run([str(sources["referee"]), "-m", "pip", "install", "--dry-run", "tinyalpha"],
                         capture_output=True, text=True, env=environ)
    assert pip.returncode != 0 and "no-index" in pip.stderr  # the referee refuses it too
    made = subprocess.run([*envdesk_command(), "--config-dir", str(tmp_path / "cfg"), "env", "create", "local",
                           "demo", "--kind", "uv", "--root", str(tmp_path / "envs"), "--package", "tinyalpha"],
                          capture_output=True, text=True, env=environ, stdin=subprocess.DEVNULL, timeout=300)
    assert made.returncode != 0
    assert "no-index = maybe" in made.stderr and str(home / ".config" / "pip" / "pip.conf") in made.stderr
    assert not (tmp_path / "envs" / "demo").exists()


def test_a_cluster_login_that_sets_pip_config_file_is_followed(testbed, tmp_path, home):
    """The Alliance's way: the login environment names the site's pip.conf (PIP_CONFIG_FILE); alpha has uv.
    The cluster's profile gives no pip arguments of its own, so only the site's settings say where to look."""
    from envdesk_fixtures import run_cli
    alpha = testbed.clusters["alpha"]
    site = Path("/tmp") / unique("site-pip")  # the site's files (root's, readable by all, as on /cvmfs)
    (site / "wheelhouse").mkdir(parents=True)
    build_wheel(site / "wheelhouse", WheelSpec("tinyalpha", "1.0"))
    build_wheel(site / "wheelhouse", WheelSpec("tinyalpha", "1.1"))
    (site / "constraints.txt").write_text("tinyalpha<1.1\n")
    (site / "pip.conf").write_text(f"[global]\nno-index = true\n[install]\nfind-links = {site / 'wheelhouse'}\n"
                                   f"constraint = {site / 'constraints.txt'}\n")
    for path in [site, *site.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    profile = shlex.quote(f"{alpha.home}/.bash_profile")
    saved = alpha.run_as_user(f"cat {profile} 2>/dev/null", check=False).stdout
    alpha.run_as_user(f"echo {shlex.quote(f'export PIP_CONFIG_FILE={site}/pip.conf')} >> {profile}")
    try:
        config = tmp_path / "cfg"
        make_config(config, testbed, ["alpha"], alpha={"pip_args": []})
        name = unique("site")
        made = run_cli("env", "create", "alpha", name, "--kind", "uv", "--package", "tinyalpha",
                       config=config, home=home)
        assert made.returncode == 0, made.stdout + made.stderr
        shown = run_cli("env", "show", "alpha", name, "--json", config=config, home=home)
        python = shlex.quote(json.loads(shown.stdout)["path"] + "/bin/python")
        frozen = alpha.run_as_user(f"module load {alpha.uv_module} && uv pip freeze --python {python}").stdout
        assert dict(line.split("==") for line in frozen.split()) == {"tinyalpha": "1.0"}
    finally:
        alpha.run_as_user(f"cat > {profile}", input=saved, check=False)
        subprocess.run(["rm", "-rf", str(site)], check=False)


def test_the_log_of_a_failed_install_shows_the_command_not_envdesks_program(tmp_path, monkeypatch):
    """The install runs through a Python program of EnvDesk's (pip_settings): a failure's raw log names it in
    one word, and shows uv's command as it ran."""
    from envdesk.backend.errors import InstallFailed
    from envdesk.backend.operations.create import CreateRequest, create_environment
    from envdesk.backend.paths import AppPaths
    from envdesk_fixtures import session_for
    home = tmp_path / "home"
    (home / ".config" / "pip").mkdir(parents=True)
    (home / ".config" / "pip" / "pip.conf").write_text("[global]\nno-index = maybe\n")
    for name in [name for name in os.environ if name.startswith(("PIP_", "XDG_CONFIG"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    session = session_for(AppPaths(tmp_path / "cfg"))
    try:
        with pytest.raises(InstallFailed) as failed:
            create_environment(session, "local", CreateRequest(name="demo", kind="uv", root=str(tmp_path / "envs"),
                                                               packages=["tinyalpha"]))
    finally:
        session.close()
    command = failed.value.log.splitlines()[0]
    assert " pip install " in command and "tinyalpha" in command and "<EnvDesk program>" in command
    assert "def main" not in failed.value.log


def test_uv_here_starts_no_python_for_settings_where_pip_has_none(tmp_path, monkeypatch):
    """On this computer EnvDesk looks for itself: with no pip settings (PIP_CONFIG_FILE=os.devnull, as pip
    documents for 'none'), uv is run as it is, one process; with a user's pip.conf, through the reader."""
    from envdesk.backend.capabilities import Capabilities
    from envdesk.backend.recipes import Installer
    for name in [name for name in os.environ if name.startswith("PIP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    caps = Capabilities(tools={"uv": "/opt/uv/bin/uv"})
    python = str(tmp_path / "env" / "bin" / "python")
    plain = Installer.for_env(caps, python, [], [], here=True).install(["tinyalpha"])
    monkeypatch.delenv("PIP_CONFIG_FILE")
    (tmp_path / ".config" / "pip").mkdir(parents=True)
    (tmp_path / ".config" / "pip" / "pip.conf").write_text("[global]\nindex-url = https://mirror.example/simple\n")
    read = Installer.for_env(caps, python, [], [], here=True).install(["tinyalpha"])
    on_cluster = Installer.for_env(caps, python, [], [], here=False).install(["tinyalpha"])
    assert plain.argv[0] == "/opt/uv/bin/uv"
    assert read.argv[:4] == on_cluster.argv[:4] == (python, "-I", "-S", "-c")
