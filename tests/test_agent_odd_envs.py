"""The agent's listing of odd environments a user trial found, against the ecosystem's own answer: pip list and
importlib.metadata run in that environment, and conda's documented rule for a pip install over a conda package.

The environments are real venvs, filled with real (tiny) wheels by pip; conda cannot be installed here, so a
conda prefix is a folder pip installed into, with the conda-meta records conda writes for what it installed.
"""

import json
import os
import subprocess
import sys
import time

import pytest
from packaging.utils import canonicalize_name

from agent_fixtures import PY_XY, PY_XYZ, conda_record, isolated_home, load_agent, make_venv, site_packages
from testbed.wheels import WheelSpec, build_wheel

agent = load_agent(write=False)


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """A fresh, empty HOME; no conda settings from the machine leak in."""
    return isolated_home(tmp_path, monkeypatch, agent)


def wheel(tmp_path, name, version):
    """A tiny real wheel of name==version, built into tmp_path/wheels."""
    folder = tmp_path / "wheels"
    folder.mkdir(exist_ok=True)
    return str(build_wheel(folder, WheelSpec(name, version)))


def pip(env, *arguments):
    """Run pip on the environment at env (pip's --python: the environment needs no pip of its own)."""
    command = [sys.executable, "-m", "pip", "--python", os.path.join(str(env), "bin", "python"),
               "--disable-pip-version-check", "--no-input", *arguments]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def pip_list(env):
    """What `pip list --format json` says the environment holds: {normalized name: version}."""
    listed = json.loads(pip(env, "list", "--format", "json"))
    return {canonicalize_name(item["name"]): item["version"] for item in listed}


def listed(env_name):
    """The agent's environment called env_name, read afresh (no listing cache)."""
    found = {env["name"]: env for env in agent.inventory({"cache": False})["environments"]}
    return found[env_name]


def versions(env):
    """{normalized name: version} of the agent's packages of env."""
    return {canonicalize_name(p["name"]): p["version"] for p in env["packages"]}


def write_conda_records(prefix, records):
    """conda-meta/<name>-<version>-<build>.json of each record, as conda writes them (keys sorted, indent 2)."""
    meta = os.path.join(str(prefix), "conda-meta")
    os.makedirs(meta, exist_ok=True)
    for record in records:
        with open(os.path.join(meta, "%s-%s-%s.json" % (record["name"], record["version"], record["build"])),
                  "w") as handle:
            json.dump(record, handle, indent=2, sort_keys=True)


def conda_installed(prefix, wheel_path, build):
    """Install a wheel into prefix as conda installs its package: its files, INSTALLER 'conda', and a record in
    conda-meta listing every file (paths relative to the prefix)."""
    pip(prefix, "install", "--no-deps", "--no-index", wheel_path)
    site = site_packages(prefix)
    name, version = os.path.basename(wheel_path).split("-")[:2]
    dist_info = os.path.join(site, "%s-%s.dist-info" % (name, version))
    with open(os.path.join(dist_info, "INSTALLER"), "w") as handle:
        handle.write("conda\n")
    short = os.path.relpath(site, str(prefix))
    with open(os.path.join(dist_info, "RECORD")) as handle:
        files = sorted(short + "/" + line.split(",")[0] for line in handle if line.strip())
    record = conda_record(name, version, build)
    record["files"] = files
    return record


def test_a_pip_install_over_a_conda_package_shows_pip_s_version(home, tmp_path):
    """conda's rule (conda/plugins/prefix_data_loaders/pypi load_site_packages): a record whose dist-info is no
    longer in site-packages was clobbered, and the package pip put there is listed instead."""
    prefix = make_venv(home / ".conda" / "envs" / "sci")  # its python installs into the prefix, as conda's does
    numpy = conda_installed(prefix, wheel(tmp_path, "numpy", "1.26.4"), "py311h64a7726_0")
    write_conda_records(prefix, [numpy, conda_record("python", PY_XYZ, "h955ad1f_0")])
    pip(prefix, "install", "--no-deps", "--no-index", wheel(tmp_path, "numpy", "2.0.0"))
    assert pip_list(prefix) == {"numpy": "2.0.0"}
    os.unlink(os.path.join(prefix, "pyvenv.cfg"))  # a conda prefix now, as conda makes them

    env = listed("sci")
    assert env["kind"] == "conda" and env["state"] == "ok"
    assert versions(env) == {"numpy": "2.0.0", "python": PY_XYZ}
    numpy_now = next(p for p in env["packages"] if p["name"] == "numpy")
    assert numpy_now["installer"] == "pip" and "channel" not in numpy_now
    assert os.path.isdir(os.path.join(prefix, "lib", "python" + PY_XY, "site-packages", "numpy-2.0.0.dist-info"))


def aged(*folders):
    """Date every file and folder under folders a minute back, so that the listing cache takes them."""
    then = time.time() - 60
    for top in folders:
        for folder, _, files in os.walk(str(top)):
            for name in files + ["."]:
                os.utime(os.path.join(folder, name), (then, then), follow_symlinks=False)


def test_packages_in_folders_a_pth_file_adds_are_listed_as_pip_lists_them(home, tmp_path):
    """site.addpackage: each line of a *.pth in site-packages but comments, blanks and 'import' lines is a folder
    (absolute, or relative to site-packages) put on sys.path after site-packages, if it exists; pip list shows
    the distributions there, the first found of a name winning."""
    env = make_venv(home / "venvs" / "v")
    site = site_packages(env)
    extra = tmp_path / "pkgs" / "extra"
    for name, version in (("extra_pkg", "1.0"), ("tinyalpha", "2.0")):
        pip(env, "install", "--no-deps", "--no-index", "--target", str(extra), wheel(tmp_path, name, version))
    pip(env, "install", "--no-deps", "--no-index", "--target", os.path.join(site, "..", "relpkgs"),
        wheel(tmp_path, "rel_pkg", "3.0"))
    pip(env, "install", "--no-deps", "--no-index", wheel(tmp_path, "tinyalpha", "1.0"))
    with open(os.path.join(site, "extra.pth"), "w") as handle:
        handle.write("# shared packages\nimport os\n%s\n\n../relpkgs\n/no/such/folder\n" % extra)
    referee = pip_list(env)
    assert referee == {"extra-pkg": "1.0", "rel-pkg": "3.0", "tinyalpha": "1.0"}

    found = listed("v")
    assert versions(found) == referee
    assert found["warnings"] == [] and found["state"] == "ok"

    aged(env, tmp_path / "pkgs")
    assert agent.inventory({})["cached"] == 0
    assert agent.inventory({})["cached"] == 1
    pip(env, "install", "--no-deps", "--no-index", "--target", str(extra), wheel(tmp_path, "later_pkg", "0.5"))
    answer = agent.inventory({})
    assert answer["cached"] == 0, "a package added to a folder a .pth file names is seen at once"
    assert versions(answer["environments"][0]) == pip_list(env)


def in_env(env, code):
    """What `code` prints, run by the environment's own python."""
    return subprocess.run([os.path.join(str(env), "bin", "python"), "-c", code], check=True, capture_output=True,
                          text=True).stdout.strip()


def listed_first(folder, names):
    """The one of names that os.listdir(folder) gives first."""
    return next(name for name in os.listdir(folder) if name in names)


def two_versions_out_of_name_order(site):
    """Two versions of gamma whose dist-info folders this file system lists in the other order than their names
    sort in (it lists by a hash of the name, or newest first): tried on empty folders, removed after."""
    for later in ("2.0", "3.0", "4.0", "5.0", "6.0", "7.0", "8.0", "9.0", "1.1", "1.2", "1.3", "1.4", "1.5"):
        names = ["gamma-1.0.dist-info", "gamma-%s.dist-info" % later]
        for name in names:
            os.mkdir(os.path.join(site, name))
        first = listed_first(site, names)
        for name in names:
            os.rmdir(os.path.join(site, name))
        if first != names[0]:
            return "1.0", later
    pytest.skip("this file system lists every pair tried in name order")


def test_a_package_installed_twice_shows_the_copy_python_and_pip_use_and_says_so(home, tmp_path):
    """importlib.metadata.version and pip list take the first dist-info of a name in the folder's listing order
    (os.listdir), not the first by name."""
    env = make_venv(home / "venvs" / "twice")
    site = site_packages(env)
    older, newer = two_versions_out_of_name_order(site)
    pip(env, "install", "--no-deps", "--no-index", wheel(tmp_path, "gamma", older))
    aside = tmp_path / "aside"  # a second copy, as an installer stopped midway leaves it
    pip(env, "install", "--no-deps", "--no-index", "--target", str(aside), wheel(tmp_path, "gamma", newer))
    folder = "gamma-%s.dist-info" % newer
    os.rename(str(aside / folder), os.path.join(site, folder))
    used = in_env(env, "import importlib.metadata as m; print(m.version('gamma'))")
    assert used == newer and pip_list(env) == {"gamma": newer}

    found = listed("twice")
    assert versions(found) == {"gamma": newer}
    assert [w for w in found["warnings"] if "installed twice" in w] == [
        "gamma is installed twice (versions %s and %s); Python and pip use %s, the one they find first."
        % (newer, older, newer)]


def test_a_pyvenv_cfg_that_is_not_utf8_makes_the_environment_broken(home):
    """Python's site reads pyvenv.cfg as UTF-8 as it starts: the environment's python fails there."""
    env = make_venv(home / "venvs" / "garbled")
    with open(os.path.join(env, "pyvenv.cfg"), "wb") as handle:
        handle.write(b"\x00\xff\xfe garbage\n")
    started = subprocess.run([os.path.join(env, "bin", "python"), "-c", "pass"], capture_output=True, text=True)
    assert started.returncode != 0 and "UnicodeDecodeError" in started.stderr, started.stderr

    found = listed("garbled")
    assert found["state"] == "broken" and "not valid UTF-8" in found["error"], found


def test_packages_of_another_python_s_folder_are_not_listed_and_it_says_why(home, tmp_path):
    """A venv whose pyvenv.cfg says Python X.Y holds packages only in lib/python3.13/site-packages: its python
    never looks there, so pip list shows nothing."""
    env = make_venv(home / "venvs" / "mixed")
    own = site_packages(env)
    pip(env, "install", "--no-deps", "--no-index", wheel(tmp_path, "tinyalpha", "1.0"))
    other = "3.13" if PY_XY != "3.13" else "3.12"
    moved = os.path.join(env, "lib", "python" + other)
    os.makedirs(moved)
    os.rename(own, os.path.join(moved, "site-packages"))
    os.rmdir(os.path.dirname(own))
    assert pip_list(env) == {}
    assert in_env(env, "import importlib.util as u; print(u.find_spec('tinyalpha'))") == "None"

    found = listed("mixed")
    assert found["packages"] == [] and found["state"] == "ok"
    assert any("only for Python " + other in warning for warning in found["warnings"]), found["warnings"]


def test_a_develop_install_s_version_bump_is_seen_though_the_listing_was_cached(home, tmp_path):
    """A legacy 'setup.py develop' install: an egg-link and an easy-install.pth line naming the project, whose
    NAME.egg-info/PKG-INFO `setup.py egg_info` rewrites in place after a version bump (no folder changes)."""
    env = make_venv(home / "venvs" / "dev")
    site = site_packages(env)
    project = tmp_path / "devpkg"
    (project / "devpkg.egg-info").mkdir(parents=True)
    pkg_info = project / "devpkg.egg-info" / "PKG-INFO"
    pkg_info.write_text("Metadata-Version: 2.1\nName: devpkg\nVersion: 1.0\n")
    with open(os.path.join(site, "devpkg.egg-link"), "w") as handle:
        handle.write("%s\n.\n" % project)
    with open(os.path.join(site, "easy-install.pth"), "w") as handle:
        handle.write("%s\n" % project)
    aged(env, project)
    assert agent.inventory({})["cached"] == 0
    assert agent.inventory({})["cached"] == 1
    with open(str(pkg_info), "w") as handle:  # as setuptools' egg_info writes it: the same file, rewritten
        handle.write("Metadata-Version: 2.1\nName: devpkg\nVersion: 1.1\n")
    assert pip_list(env) == {"devpkg": "1.1"}

    answer = agent.inventory({})
    assert versions(answer["environments"][0]) == {"devpkg": "1.1"} and answer["cached"] == 0
    assert answer["environments"][0]["warnings"] == []


def test_an_egg_info_listed_before_a_dist_info_of_the_same_name_is_the_copy_python_and_pip_use(home, tmp_path):
    """importlib.metadata's Lookup keeps a folder's *.dist-info and *.egg-info of a name together, in os.listdir's
    order (pip lists what it finds): where the file system lists X-1.0.egg-info first, Python and pip use 1.0."""
    env = make_venv(home / "venvs" / "mixed_meta")
    site = site_packages(env)
    names = ["tiny%s" % letter for letter in "abcdef"]
    for name in names:
        pip(env, "install", "--no-deps", "--no-index", wheel(tmp_path, name, "2.0"))
        with open(os.path.join(site, "%s-1.0.egg-info" % name), "w") as handle:  # a distutils install's file
            handle.write("Metadata-Version: 1.1\nName: %s\nVersion: 1.0\n" % name)
    order = os.listdir(site)
    egg_first = [name for name in names
                 if order.index("%s-1.0.egg-info" % name) < order.index("%s-2.0.dist-info" % name)]
    if not egg_first:
        pytest.skip("this file system lists every dist-info ahead of its egg-info")
    used = json.loads(in_env(env, "import importlib.metadata as m, json; print(json.dumps({n: m.version(n) for n in "
                                  "%r}))" % names))
    assert used == pip_list(env) and all(used[name] == "1.0" for name in egg_first)

    found = listed("mixed_meta")
    assert versions(found) == used
    for name in names:
        assert "%s is installed twice (versions %s and %s); Python and pip use %s, the one they find first." % (
            name, used[name], "2.0" if used[name] == "1.0" else "1.0", used[name]) in found["warnings"]


def test_egg_info_metadata_is_read_as_pip_reads_it_and_one_without_a_name_is_left_out(home, tmp_path):
    """R16: an *.egg-info folder without PKG-INFO was listed as 'nopkginfo 7.0' from its folder's name (and exported
    as nopkginfo==7.0), where pip lists nothing of it ("invalid metadata entry 'name'"): the folder's name is no
    stand-in for its metadata. The referee: pip list of the same real venv, and what pip skips (its warnings)."""
    env = make_venv(home / "venvs" / "eggs")
    site = site_packages(env)
    pip(env, "install", "--no-deps", "--no-index", wheel(tmp_path, "tinyalpha", "2.0"))
    layout = {  # a distutils install's file; setuptools' folders, whole and broken
        "distfile-0.5-py%s.egg-info" % PY_XY: "Metadata-Version: 1.0\nName: distfile\nVersion: 0.5\n",
        "legacy_pkg-2.1-py%s.egg-info/PKG-INFO" % PY_XY: "Metadata-Version: 1.1\nName: legacy-pkg\nVersion: 2.1\n",
        "renamed-9.9.egg-info/PKG-INFO": "Metadata-Version: 1.1\nName: realname\nVersion: 1.2\n",
        # (not a PKG-INFO with a Version and no Name: pip 23 skips it, newer pip lists it by its folder's name)
        "nopkginfo-7.0.egg-info/": None,
        "emptypkginfo-3.0.egg-info/PKG-INFO": "",
    }
    for name, text in layout.items():
        path = os.path.join(site, name)
        os.makedirs(os.path.dirname(path) if text is not None else path, exist_ok=True)
        if text is not None:
            with open(path, "w") as handle:
                handle.write(text)
    # what pip skips ("invalid metadata entry 'name'": some versions of pip say it, newer ones do not): the
    # distributions whose metadata has no Name, as the environment's own importlib.metadata reads them
    nameless = in_env(env, "import importlib.metadata as m, os; print(sorted(os.path.basename(str(d._path)) for d in "
                           "m.distributions() if not d.metadata['Name']))")
    assert nameless == str(["emptypkginfo-3.0.egg-info", "nopkginfo-7.0.egg-info"]), nameless

    found = listed("eggs")
    named = json.loads(in_env(env, "import importlib.metadata as m, json; print(json.dumps({d.metadata['Name']: "
                                   "d.version for d in m.distributions(path=[%r]) if d.metadata['Name'] and "
                                   "d.version}))" % site))
    # pip's own list differs by version for folders without a Name (pip 23 skips them, newer pip lists them by
    # their folder's name, even without a version): the environment's importlib.metadata is the referee
    assert versions(found) == {canonicalize_name(name): version for name, version in named.items()}
    # what pip skips 'due to invalid metadata' is half installed (T19: uv pip check calls it broken): the
    # environment is listed broken, naming each
    assert sorted(os.path.basename(path) for path in found["incomplete_packages"]) == [
        "emptypkginfo-3.0.egg-info", "nopkginfo-7.0.egg-info"], found
    assert found["state"] == "broken" and all(path in found["error"] for path in found["incomplete_packages"])


def test_a_pth_line_with_a_nul_byte_is_skipped_as_site_skips_it(home, tmp_path):
    """site.addpackage asks os.path.exists of each line, which is False for one with a NUL byte: the line adds
    nothing, the lines after it still count, and the environment's python starts."""
    env = make_venv(home / "venvs" / "nul")
    extra = tmp_path / "pkgs" / "extra"
    pip(env, "install", "--no-deps", "--no-index", "--target", str(extra), wheel(tmp_path, "extra_pkg", "1.0"))
    with open(os.path.join(site_packages(env), "nul.pth"), "w") as handle:
        handle.write("/opt/a\0b\n%s\n" % extra)
    assert in_env(env, "print('started')") == "started"
    referee = pip_list(env)
    assert referee == {"extra-pkg": "1.0"}

    found = listed("nul")
    assert found["state"] == "ok", found["error"]
    assert versions(found) == referee


def test_a_pth_file_edited_in_place_is_seen_though_the_listing_was_cached(home, tmp_path):
    """A line added to or removed from a .pth file in place (as conda develop edits conda.pth) changes no folder:
    the next listing still shows what pip list shows; so does a folder a line names that comes later."""
    env = make_venv(home / "venvs" / "edited")
    site = site_packages(env)
    pkgs = tmp_path / "pkgs"
    for name in ("one", "two"):
        pip(env, "install", "--no-deps", "--no-index", "--target", str(pkgs / name), wheel(tmp_path, name + "_pkg",
                                                                                           "1.0"))
    pth = os.path.join(site, "zz.pth")
    with open(pth, "w") as handle:
        handle.write("%s\n%s\n" % (pkgs / "one", pkgs / "later"))

    def cached_then_changed(change):
        aged(env, pkgs)
        assert agent.inventory({})["cached"] == 0
        assert agent.inventory({})["cached"] == 1
        change()
        answer = agent.inventory({})
        assert versions(answer["environments"][0]) == pip_list(env)
        assert answer["cached"] == 0

    def append():
        with open(pth, "a") as handle:
            handle.write("%s\n" % (pkgs / "two"))
    cached_then_changed(append)
    assert pip_list(env) == {"one-pkg": "1.0", "two-pkg": "1.0"}

    def remove_first():
        with open(pth, "r+") as handle:
            lines = handle.readlines()[1:]
            handle.seek(0)
            handle.truncate()
            handle.writelines(lines)
    cached_then_changed(remove_first)
    assert pip_list(env) == {"two-pkg": "1.0"}

    cached_then_changed(lambda: pip(env, "install", "--no-deps", "--no-index", "--target", str(pkgs / "later"),
                                    wheel(tmp_path, "later_pkg", "1.0")))
    assert pip_list(env) == {"two-pkg": "1.0", "later-pkg": "1.0"}


def test_pth_lines_on_a_stuck_file_system_stop_at_the_environment_s_time_budget(home, monkeypatch):
    """Each .pth line costs a stat, which a hung mount can hold for long: the environment's time budget stops
    them as it stops every other read, saying where."""
    env = make_venv(home / "venvs" / "stuck")
    with open(os.path.join(site_packages(env), "many.pth"), "w") as handle:
        handle.write("".join("/stuck/mount/pkgs%d\n" % number for number in range(40)))
    real_stat = agent._stat

    stuck: list[str] = []

    def slow_stat(path):
        if path.startswith("/stuck/"):
            stuck.append(path)
            time.sleep(0.1)     # as a lookup on a hung NFS mount, timing out
        return real_stat(path)
    monkeypatch.setattr(agent, "_stat", slow_stat)
    found = agent.read_env(str(env), "stuck", str(home / "venvs"), 1.0)
    assert 0 < len(stuck) < 40, len(stuck)  # stopped within the budget, not after every line's stat
    assert found["state"] == "broken" and "stopped reading this environment after 1 seconds, at /stuck/mount/pkgs" \
        in found["error"], found["error"]


def test_a_pth_file_too_large_to_read_is_said(home, tmp_path):
    """site reads a .pth file whatever its size; one past EnvDesk's bound on a text file is not read, and the
    listing says so rather than leave out the folders it names unsaid."""
    env = make_venv(home / "venvs" / "bigpth")
    extra = tmp_path / "pkgs" / "extra"
    pip(env, "install", "--no-deps", "--no-index", "--target", str(extra), wheel(tmp_path, "extra_pkg", "1.0"))
    with open(os.path.join(site_packages(env), "big.pth"), "w") as handle:
        handle.write("# %s\n" % ("x" * 100) * 11000 + "%s\n" % extra)
    assert os.path.getsize(os.path.join(site_packages(env), "big.pth")) > 1024 * 1024
    assert pip_list(env) == {"extra-pkg": "1.0"}

    found = listed("bigpth")
    assert found["state"] == "ok"
    assert [w for w in found["warnings"] if "big.pth" in w], found["warnings"]
