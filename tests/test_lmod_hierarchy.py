"""Python modules behind a compiler in a real Lmod hierarchy (user trial T20, M2), on the test bed's `hier` cluster
(tests/testbed/software.py build_hierarchy_tree: `Python/3.11.3` only once `GCC/12.3.0` is loaded, as EasyBuild's
hierarchical naming makes it on HPC2N and UPPMAX).

The referees are Lmod itself, asked by hand as the cluster's user: `module spider` (which modules exist and what
to load before each), `module load` and $LOADEDMODULES, and the Python those modules put on PATH, against the
`home` of the environment's pyvenv.cfg, which the Python that made it wrote; and pip freeze in the environment.
"""
from __future__ import annotations

import re
import time

from envdesk_fixtures import cli_json, run_cli, session_for, unique
from lmod_fixtures import lmod_spider, pip_freeze, profile_config, python_after, pyvenv_home
from testbed.software import HIERARCHY_BUNDLE, HIERARCHY_PYTHONS


def test_the_test_bed_hides_python_behind_the_compiler_as_lmod_says(hier):
    """The bed itself, by Lmod: no Python without a compiler, spider names the compiler, loading both works."""
    avail = hier.run_as_user("module -t avail 2>&1").stdout
    assert "GCC/12.3.0" in avail and not re.search(r"(?im)^python", avail), avail
    alone = hier.run_as_user("module load Python/3.11.3", check=False)
    assert alone.returncode != 0 and "module spider Python/3.11.3" in alone.stderr, alone.stderr
    assert lmod_spider(hier) == {python: [compiler] for compiler, python in HIERARCHY_PYTHONS.items()}
    loaded, folder = python_after(hier, ["GCC/12.3.0", "Python/3.11.3"])
    assert loaded == "GCC/12.3.0:Python/3.11.3" and "Python/3.11.3-GCCcore-12.3.0" in folder


def test_cluster_test_lists_each_python_module_with_what_lmod_says_to_load_first(hier, testbed, tmp_path, home):
    """`cluster test` said "Python modules: none" on such a cluster. Now each Python module Lmod's spider finds is
    listed with the modules Lmod says to load before it, and the probe is still one remote command."""
    config = profile_config(tmp_path / "cfg", hier)
    tested = run_cli("cluster", "test", "hier", config=config, home=home)
    assert tested.returncode == 0, tested.stderr
    for module, needs in lmod_spider(hier).items():
        assert f"{module} (after {' '.join(needs)})" in tested.stdout, tested.stdout

    from envdesk.backend.paths import AppPaths
    from envdesk.backend.probe import probe
    session = session_for(AppPaths(profile_config(tmp_path / "cfg2", hier)))
    try:
        session.target("hier").runner.connect()
        before = len(hier.session_commands())
        started = time.monotonic()
        caps = probe(session.target("hier"))
        took = time.monotonic() - started
    finally:
        session.close()
    assert len(hier.session_commands()) - before == 1, hier.session_commands()[before:]
    assert not caps.spider_gave_up
    print(f"probe of hier with Lmod's spider: {took:.2f} s")


def test_a_create_without_modules_takes_the_python_behind_its_compiler(hier, tmp_path, home):
    """The newest Python (3.11.3, behind GCC/12.3.0) by default, and 3.11.1 (behind GCC/12.2.0) when asked for:
    each environment's Python is the one Lmod puts on PATH after those modules, and they load by hand."""
    config = profile_config(tmp_path / "cfg", hier)
    for asked, compiler in ((None, "GCC/12.3.0"), ("3.11.1", "GCC/12.2.0")):
        name = unique("hier")
        python = ["--python", asked] if asked else []
        made = run_cli("env", "create", "hier", name, "--kind", "venv", *python, "--package", "tinygamma",
                       config=config, home=home)
        assert made.returncode == 0, made.stderr
        path = str(hier.home / "venvs" / name)
        lmod_says = [compiler, HIERARCHY_PYTHONS[compiler]]
        loaded, folder = python_after(hier, lmod_says)
        assert loaded == ":".join(lmod_says)
        assert pyvenv_home(path) == folder, (pyvenv_home(path), folder)
        assert "tinygamma==0.1" in pip_freeze(hier, path, lmod_says)


def test_a_module_typed_without_its_compiler_gets_it_from_lmods_spider(hier, tmp_path, home):
    """`--module Python/3.11.3` alone: Lmod refuses it and says to ask spider; the create asks, and loads
    GCC/12.3.0 first, as the referee did by hand in T20."""
    config = profile_config(tmp_path / "cfg", hier)
    name = unique("typed")
    made = run_cli("env", "create", "hier", name, "--kind", "venv", "--module", "Python/3.11.3",
                   config=config, home=home)
    assert made.returncode == 0, made.stderr
    assert pyvenv_home(str(hier.home / "venvs" / name)) == python_after(hier, ["GCC/12.3.0", "Python/3.11.3"])[1]


def test_a_python_module_typed_without_a_version_is_the_one_lmods_default_would_load(hier, tmp_path, home):
    """`--module Python` alone failed with Lmod's words ('exist but cannot be loaded as requested: "Python"'). It
    is now the newest version Lmod's spider lists, in Lmod's own order, loaded after what spider says to load
    first; with that compiler loaded, Lmod's own default for the name is the same module."""
    refused = hier.run_as_user("module load Python", check=False)
    assert refused.returncode != 0 and 'cannot be loaded as requested: "Python"' in refused.stderr, refused.stderr
    newest = hier.run_as_user("module -t spider Python 2>&1").stdout.split()[-1]
    needs = lmod_spider(hier)[newest]
    loaded, folder = python_after(hier, [*needs, "Python"])  # Lmod's default, once the compiler is loaded
    assert loaded == ":".join([*needs, newest]), loaded
    config = profile_config(tmp_path / "cfg", hier)
    name = unique("bare")
    made = run_cli("env", "create", "hier", name, "--kind", "venv", "--module", "Python", config=config, home=home)
    assert made.returncode == 0, made.stderr
    assert pyvenv_home(str(hier.home / "venvs" / name)) == folder
    assert cli_json("env", "show", "hier", name, config=config, home=home)["modules"] == [*needs, newest]


def test_an_import_maps_a_module_behind_the_compiler_or_says_why_not(hier, tmp_path, home):
    """T20: a file's SciPy-bundle/2023.07, which sits behind GCC/12.3.0 as its Python does, was dropped as 'not
    available here'. It is kept, after what Lmod's spider says to load first; beside a Python behind another
    compiler it is said to be not mapped, as loading its compiler would swap that Python. Referees: Lmod's spider
    and `module load` by hand ($LOADEDMODULES), and the Python the environment was made with."""
    compiler, bundle = HIERARCHY_BUNDLE
    python = HIERARCHY_PYTHONS[compiler]
    assert bundle not in hier.run_as_user("module -t avail 2>&1").stdout.split()
    said = hier.run_as_user(f"module spider {bundle} 2>&1").stdout.splitlines()
    start = next(i for i, line in enumerate(said) if "module is available to load" in line)
    assert next(line.split() for line in said[start + 1:] if line.strip()) == [compiler]
    lmod_says = [compiler, python, bundle]
    loaded, folder = python_after(hier, lmod_says)
    assert loaded == ":".join(lmod_says), loaded
    other = next(c for c in HIERARCHY_PYTHONS if c != compiler)
    swapped, _ = python_after(hier, [other, HIERARCHY_PYTHONS[other], compiler, bundle])
    assert HIERARCHY_PYTHONS[other] not in swapped.split(":"), swapped  # Lmod swapped the other Python out
    config = profile_config(tmp_path / "cfg", hier)
    for version, expected in ((python, lmod_says), (HIERARCHY_PYTHONS[other], None)):
        spec = tmp_path / f"{version.replace('/', '-')}.yaml"
        spec.write_text(f"envdesk: 1\nname: bundle\nkind: venv\npython: \"{version.split('/')[1]}\"\n"
                        f"modules: [{compiler}, {python}, {bundle}]\nrequirements: [tinygamma]\n")
        plan = cli_json("env", "import", "hier", str(spec), "--dry-run", config=config, home=home)
        if expected is None:
            assert bundle not in plan["modules"], plan
            assert any(note.startswith(f"Not mapped: {bundle}") and other in note for note in plan["notes"]), plan
            continue
        assert plan["modules"] == expected, plan
        name = unique("bundle")
        done = run_cli("env", "import", "hier", str(spec), "--name", name, config=config, home=home)
        assert done.returncode == 0, done.stderr
        assert pyvenv_home(str(hier.home / "venvs" / name)) == folder
        assert cli_json("env", "show", "hier", name, config=config, home=home)["modules"] == expected
        assert "tinygamma==0.1" in pip_freeze(hier, str(hier.home / "venvs" / name), expected)


def test_a_clone_maps_the_python_module_to_the_one_behind_the_compiler(hier, testbed, tmp_path, home):
    """T20: a copy mapped python/3.11 to '(none) ... Python 3.11.2', the system's Python. A clone of alpha's
    python/3.11.5 environment now gets the 3.11 Lmod finds behind GCC/12.3.0, with the same packages."""
    config = profile_config(tmp_path / "cfg", hier, testbed=testbed, also=["alpha"])
    name = unique("src")
    made = run_cli("env", "create", "alpha", name, "--kind", "venv", "--module", "python/3.11.5", "--package",
                   "tinyalpha==1.1", config=config, home=home)
    assert made.returncode == 0, made.stderr
    cloned = run_cli("env", "clone", "alpha", name, "hier", config=config, home=home)
    assert cloned.returncode == 0, cloned.stderr
    path = str(hier.home / "venvs" / name)
    lmod_says = ["GCC/12.3.0", "Python/3.11.3"]
    assert pyvenv_home(path) == python_after(hier, lmod_says)[1]
    assert "tinyalpha==1.1" in pip_freeze(hier, path, lmod_says)
    shown = cli_json("env", "show", "hier", name, config=config, home=home)
    assert shown["modules"] == lmod_says, shown  # what a kernel or a job script loads: it loads by hand (above)


def test_doctor_finds_nothing_gone_for_modules_behind_a_compiler(hier, tmp_path, home):
    """`module is-avail Python/3.11.3` fails until GCC/12.3.0 is loaded, so the doctor called such an environment's
    module gone; Lmod's spider finds it, and `module load` by hand works."""
    config = profile_config(tmp_path / "cfg", hier)
    name = unique("doc")
    assert run_cli("env", "create", "hier", name, "--kind", "venv", config=config, home=home).returncode == 0
    assert hier.run_as_user("module is-avail Python/3.11.3", check=False).returncode != 0
    python_after(hier, ["GCC/12.3.0", "Python/3.11.3"])  # loads by hand
    found = cli_json("env", "doctor", "hier", name, config=config, home=home)
    assert not [f for f in found["findings"] if f["code"] == "module-gone"], found


def test_the_probe_reads_lmods_answer_as_older_and_newer_lmod_word_it():
    """Lmod 8.6 writes the sentence on one line, the documentation's (newer) Lmod wraps it; both are read, the way
    with the fewest modules is taken, shell text is never taken for a module, and a spider given up is told."""
    from envdesk.backend.probe import parse_probe
    answer = """@@modules yes
@@avail GCC/12.3.0
@@avail Python/3.10.4
@@spider
@@spider   Python: Python/3.11.3
@@spider     You will need to load all module(s) on any one of the lines below before the "Python/3.11.3" module is \
available to load.
@@spider
@@spider       GCC/13.2.0  OpenMPI/4.1.6
@@spider       GCCcore/12.3.0
@@spider
@@spider   Python: Python/3.12.3
@@spider     You will need to load all module(s) on any one of the lines below
@@spider     before the "Python/3.12.3" module is available to load.
@@spider
@@spider       GCCcore/13.3.0
@@spider   evil: evil/1.0
@@spider     You will need to load all module(s) on any one of the lines below before the "python/1.0" module is \
available to load.
@@spider       $(touch /tmp/x)
@@spider_timeout 30
"""
    caps = parse_probe(answer)
    assert [m.load for m in caps.python_modules] == [("Python/3.10.4",), ("GCCcore/12.3.0", "Python/3.11.3"),
                                                     ("GCCcore/13.3.0", "Python/3.12.3")]
    assert caps.spider_gave_up


ENVIRONMENT_MODULES = """module() {  # STAND-IN for Environment Modules (Tcl), not Lmod: it records what it is asked
  echo "$*" >> ~/module-calls
  case "$*" in "-t avail") echo "/opt/modulefiles:"; echo "python/3.9.18" ;; esac >&2
}
unset LMOD_CMD BASH_ENV
"""


def test_a_site_without_lmod_is_asked_only_module_avail_as_before(hier, tmp_path):
    """Environment Modules has no spider of Lmod's kind: the probe asks it `module -t avail` alone, and offers what
    that lists. Referee: the stand-in module's own record of what it was asked."""
    from envdesk.backend.paths import AppPaths
    from envdesk.backend.probe import probe
    hier.run_as_user("cp -p ~/.bash_profile ~/.bash_profile.kept 2>/dev/null; rm -f ~/module-calls; "
                     "cat > ~/.bash_profile", input=ENVIRONMENT_MODULES)
    session = session_for(AppPaths(profile_config(tmp_path / "cfg", hier)))
    try:
        caps = probe(session.target("hier"))
    finally:
        session.close()
        hier.run_as_user("rm -f ~/.bash_profile; mv ~/.bash_profile.kept ~/.bash_profile 2>/dev/null; true")
    assert hier.run_as_user("cat ~/module-calls").stdout.splitlines() == ["-t avail"]
    assert [m.load for m in caps.python_modules] == [("python/3.9.18",)] and not caps.spider_gave_up


def test_the_spider_is_asked_only_where_module_avail_lists_no_python(hier, testbed, tmp_path):
    """A spider of a big tree costs every probe up to seconds: where `module avail` already lists a Python module
    (alpha's python/3.11.5) Lmod is not asked for it. The referee: Lmod's own command, wrapped to note each call
    it is given, as the probe runs by hand on each cluster."""
    from envdesk.backend.probe import PROBE_SCRIPT
    calls = {}
    for cluster in (testbed.clusters["alpha"], hier):
        log = f"{cluster.home}/lmod-calls.txt"
        wrap = (f'real_lmod=$LMOD_CMD; printf \'%s\\n\' \'#!/bin/sh\' "echo \\"\\$*\\" >> {log}" '
                f'"exec $real_lmod \\"\\$@\\"" > ~/lmod-wrap && chmod +x ~/lmod-wrap && LMOD_CMD=~/lmod-wrap; '
                f"rm -f {log}; ")
        cluster.run_as_user(wrap + PROBE_SCRIPT)
        calls[cluster.name] = cluster.run_as_user(f"cat {log}").stdout
    assert "avail" in calls["alpha"] and "spider" not in calls["alpha"], calls["alpha"]
    assert "spider" in calls["hier"], calls["hier"]
