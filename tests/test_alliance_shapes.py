"""What a cluster shaped like the Digital Research Alliance of Canada's brings (user trial T20): pins of the site's
own builds, with a local version label (numpy==1.26.4+computecanada), and modules that must load after the Python
module (scipy-stack after python). The referees: PEP 440 as packaging applies it, pip run by hand, Lmod's own
record of what loaded, and the new environment's pip freeze.
"""
from __future__ import annotations

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import Version

from envdesk.backend import spec as specs
from envdesk.backend.operations.importing import allow_newer, import_environment
from envdesk_fixtures import cli_json, freeze, make_config, run_cli, unique

SITE_PINS = ["numpy==1.26.3+computecanada", "tqdm == 4.66.4+computecanada ; python_version >= '3.8'",
             "pandas[excel]==2.0.3+computecanada"]


def test_allowing_newer_versions_of_a_sites_own_builds_gives_requirements_pep_440_admits():
    """T20: 'numpy==1.26.3+computecanada' became 'numpy>=1.26.3+computecanada', which uv refuses ("Operator >= is
    incompatible with versions containing non-empty local segments") and packaging and pip refuse too."""
    with pytest.raises(InvalidRequirement):  # the referee refuses what the old code wrote
        Requirement("numpy>=1.26.3+computecanada")
    for pin, relaxed in zip(SITE_PINS, allow_newer(SITE_PINS)):
        before, after = Requirement(pin.replace(" ", "")), Requirement(relaxed)
        exact = next(iter(before.specifier)).version
        public = Version(exact).public
        assert (after.name, after.extras, after.marker) == (before.name, before.extras, before.marker)
        assert after.specifier.contains(public) and after.specifier.contains(exact)  # the site's build still fits
        assert after.specifier.contains(str(Version(public).major + 1))  # and a newer release
        assert not after.specifier.contains("0.1")


def test_an_import_of_a_sites_own_build_another_cluster_lacks_installs_a_newer_release_on_request(testbed,
                                                                                                  tmp_path):
    """The import with 'allow newer versions' (--top-level) of a pin no wheel of which is here, of that release
    either (where the release is, it is installed as it: test_site_builds.py): a newer one is installed. Referee:
    pip freeze of the environment made."""
    config, home = tmp_path / "cfg", tmp_path / "home"
    home.mkdir()
    make_config(config, testbed, ["alpha"])
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("tinyalpha==1.2+computecanada\n")  # no tinyalpha 1.2 in the test bed's stores
    name = unique("cc")
    done = run_cli("env", "import", "alpha", str(requirements), "--name", name, "--top-level", "--yes",
                   config=config, home=home)
    assert done.returncode == 0, done.stderr
    made = cli_json("env", "show", "alpha", name, config=config, home=home)
    frozen = freeze(testbed.clusters["alpha"], made["path"])  # pip's or uv's own freeze, as it has either
    assert "tinyalpha==2.0" in frozen, frozen  # the newest the test bed's wheel store has


def test_an_import_keeps_the_files_module_order_around_its_python(testbed, session):
    """T20: 'python/3.11 scipy-stack/2023b' became 'scipy-stack/2023b python/3.11.5': a module that needs the
    Python module loaded came before it. Referee: Lmod, loading the recorded modules in their order by hand,
    lists them in the file's order."""
    spec = specs.from_text("tinyalpha==2.0\n", "requirements.txt")
    spec.modules = ["python/3.11.5", "uv/0.13"]
    made = import_environment(session, "alpha", spec, name=unique("order")).environment
    assert made.modules == ("python/3.11.5", "uv/0.13")
    loaded = testbed.clusters["alpha"].run_as_user(f"module load {' '.join(made.modules)} && "
                                                   "echo $LOADEDMODULES").stdout.strip()
    assert loaded == "python/3.11.5:uv/0.13"
