"""Packages a file would download from outside the cluster's package index are shown first and need a yes.

The files are what users bring: a uv project locked by the real uv against a wheel URL on a web server,
the pylock.toml `uv export` writes from it, and a requirements line naming the same URL. The server is a
real HTTP server on loopback that counts what it was asked for: before the user agrees, nothing may be
fetched from it and nothing created on the cluster; after `--yes`, pip's own `pip freeze` in the new
environment says where the package came from.
"""
from __future__ import annotations

import http.server
import json
import re
import shutil
import threading
from pathlib import Path

import pytest

from envdesk_fixtures import canon, freeze, make_config, run_cli, unique
from test_uvproject import run_uv
from testbed import wheels

WHEEL = next(spec for spec in wheels.WHEELS if spec.name == "tinygamma")


class CountingServer(http.server.ThreadingHTTPServer):
    """Serves one folder on loopback and remembers every path asked for."""

    def __init__(self, folder: Path) -> None:
        self.asked: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(folder), **kwargs)

            def do_GET(self):
                server.asked.append(self.path)
                super().do_GET()

            def do_HEAD(self):
                server.asked.append(self.path)
                super().do_HEAD()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The server, and a uv project, a pylock.toml and a requirements file that all name its wheel."""
    base = tmp_path_factory.mktemp("outside")
    served = base / "served"
    served.mkdir()
    wheel = wheels.build_wheel(served, WHEEL)
    server = CountingServer(served)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/{wheel.name}"
    home = base / "home"
    home.mkdir()
    project = base / "project"
    project.mkdir()
    run_uv("init", "--bare", "--no-workspace", "--name", "fromweb", "--python", "3.11", cwd=project, home=home)
    run_uv("add", "--no-sync", f"{WHEEL.name} @ {url}", cwd=project, home=home, offline=False)
    pylock = base / "pylock.toml"
    run_uv("export", "--format", "pylock.toml", "--output-file", str(pylock), cwd=project, home=home)
    requirements = base / "requirements.txt"
    requirements.write_text(f"# fetched straight from a web server\n{WHEEL.name} @ {url}\n")
    server.asked.clear()  # what uv fetched while locking does not count
    try:
        yield {"server": server, "url": url, "project": project, "pylock": pylock, "requirements": requirements}
    finally:
        server.shutdown()


@pytest.fixture
def config(testbed, tmp_path, files):
    """alpha's profile (its index: its own wheel store, --no-index); the server's log starts empty."""
    files["server"].asked.clear()
    return make_config(tmp_path / "cfg", testbed, ["alpha"]).config_dir


def _exists_on_alpha(testbed, name: str) -> bool:
    alpha = testbed.clusters["alpha"]
    return alpha.run_as_user(f"ls -d {alpha.home}/*/{name} {alpha.home}/*/*/{name} 2>/dev/null", check=False
                             ).stdout.strip() != ""


@pytest.mark.parametrize("kind", ["requirements", "pylock", "project"])
def test_a_download_from_outside_the_index_stops_the_import_until_the_user_agrees(testbed, files, config, home,
                                                                                   kind):
    name = unique(f"web-{kind}")
    source = str(files[kind])
    refused = run_cli("env", "import", "alpha", source, "--name", name, config=config, home=home)
    assert refused.returncode != 0
    assert "outside this target's package index" in refused.stderr
    assert "127.0.0.1" in refused.stderr and "Traceback" not in refused.stderr
    assert files["server"].asked == []
    assert not _exists_on_alpha(testbed, name)

    shown = run_cli("env", "import", "alpha", source, "--name", name, "--dry-run", config=config, home=home)
    assert shown.returncode == 0, shown.stderr
    assert "Without --yes the import stops here" in shown.stdout
    first_section = next(line for line in shown.stdout.splitlines()[1:] if line and not line.startswith(" "))
    assert first_section.startswith("Downloaded from outside alpha's package index"), shown.stdout
    assert files["url"] in shown.stdout
    planned = json.loads(run_cli("env", "import", "alpha", source, "--name", name, "--dry-run", "--json",
                                 config=config, home=home).stdout)
    assert [entry["host"] for entry in planned["outside"]] == ["127.0.0.1"]
    assert files["server"].asked == []
    assert not _exists_on_alpha(testbed, name)


def test_a_dry_run_says_when_the_name_is_taken_as_the_import_would(testbed, files, config, home):
    """A user trial's dry run said "Would build" where the import then stopped at the existing folder."""
    alpha = testbed.clusters["alpha"]
    name = unique("taken")
    alpha.run_as_user(f"mkdir -p ~/venvs/{name}")
    source = str(files["requirements"])
    imported = run_cli("env", "import", "alpha", source, "--name", name, "--yes", config=config, home=home)
    assert imported.returncode != 0 and "already exists" in imported.stderr  # the referee: the import itself
    shown = run_cli("env", "import", "alpha", source, "--name", name, "--dry-run", "--yes", config=config, home=home)
    assert shown.returncode == 1, shown.stdout + shown.stderr
    assert f"Blocked: {alpha.home}/venvs/{name} already exists" in shown.stdout
    assert "Without --yes" not in shown.stdout
    free = run_cli("env", "import", "alpha", source, "--name", name + "x", "--dry-run", "--yes", config=config,
                   home=home)
    assert free.returncode == 0 and "already exists" not in free.stdout, free.stdout + free.stderr
    assert not _exists_on_alpha(testbed, name + "x")


def test_after_yes_the_package_comes_from_that_server(testbed, files, config, home):
    name = unique("web-yes")
    built = run_cli("env", "import", "alpha", str(files["requirements"]), "--name", name, "--yes",
                    config=config, home=home)
    assert built.returncode == 0, built.stderr
    assert any(WHEEL.name in path for path in files["server"].asked)
    path = re.search(r" at (\S+)$", built.stdout.strip()).group(1)
    held = freeze(testbed.clusters["alpha"], path)  # pip's or uv's own freeze, as the environment has either
    assert f"{canon(WHEEL.name)} @ {files['url']}" in held, held


def test_a_lock_made_against_another_index_downloads_nothing_from_it(testbed, files, config, home, tmp_path):
    """Registry packages are installed from the cluster's own index; the plan says where the lock came from."""
    project = tmp_path / "pypi-project"
    shutil.copytree(files["project"], project)
    lock = project / "uv.lock"
    text = lock.read_text()
    text = text.replace(f'source = {{ url = "{files["url"]}" }}', 'source = { registry = "https://pypi.org/simple" }')
    text = re.sub(r'\{ name = "tinygamma", url = "[^"]+" \}', '{ name = "tinygamma" }', text)
    lock.write_text(text)
    (project / "pyproject.toml").write_text((project / "pyproject.toml").read_text().replace(
        f"{WHEEL.name} @ {files['url']}", WHEEL.name))
    planned = run_cli("env", "import", "alpha", str(project), "--dry-run", "--json", config=config, home=home)
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    assert plan["outside"] == []
    assert any("https://pypi.org/simple" in note and "downloads nothing from there" in note for note in plan["notes"])
    assert f"{WHEEL.name}=={WHEEL.version}" in " ".join(plan["install"])
    assert files["server"].asked == []  # the lock's wheel URL still points at the server: never used



def test_the_apps_availability_check_downloads_nothing_the_user_has_not_agreed_to(testbed, files, tmp_path, session):
    """Review R3: the window checks what the target can provide before the user reads the plan; it dry-ran
    every line, so a wheel on another host was fetched (and a ${VARIABLE} filled in and sent) before any yes.
    The server counts what it is asked for."""
    from envdesk.backend.operations.importing import check_availability, plan_import, read_spec_file
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(files["requirements"].read_text() + "tinygamma\n"
                            f"{WHEEL.name} @ {files['url'].replace(WHEEL.name, '${HOME}/' + WHEEL.name)}\n")
    plan = plan_import(session, "alpha", read_spec_file(requirements), unique("avail"))
    assert [o.host for o in plan.outside] == ["127.0.0.1", "127.0.0.1"]
    files["server"].asked.clear()
    assert check_availability(session, "alpha", plan) == []  # tinygamma alone was checked, and is there
    assert files["server"].asked == []


def test_a_download_address_that_cannot_be_reached_is_named_not_the_index(testbed, config, home, tmp_path):
    """T15: a direct URL whose server did not answer was reported as 'the package index could not be reached',
    with advice to check the index's address in pip's settings, which was not the problem. Referee: pip on the
    cluster, refused a connection to that address (a closed port on loopback)."""
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: nothing listens there
    url = f"http://127.0.0.1:{port}/{WHEEL.filename}"
    alpha = testbed.clusters["alpha"]
    pip = alpha.run_as_user(f"python3 -m pip download --no-deps -d \"$(mktemp -d)\" '{WHEEL.name} @ {url}'",
                            check=False)
    assert pip.returncode != 0 and "Connection refused" in pip.stdout + pip.stderr, pip
    (tmp_path / "requirements.txt").write_text(f"{WHEEL.name} @ {url}\ntinyalpha==1.0\n")
    built = run_cli("env", "import", "alpha", str(tmp_path / "requirements.txt"), "--name", unique("unreached"),
                    "--yes", config=config, home=home)
    assert built.returncode == 1, built.stdout
    assert "127.0.0.1, where it is downloaded from, could not be reached" in built.stderr, built.stderr
    assert "index address" not in built.stderr and "check the address" in built.stderr, built.stderr
