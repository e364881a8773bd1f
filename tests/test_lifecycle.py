"""Create, update, revert, export, import, clone and delete, for real, on the test bed's clusters."""
from __future__ import annotations

import os

import pytest

from envdesk.backend import spec as specs
from envdesk.backend.agent_client import call_action
from envdesk.backend.errors import Busy, Cancelled, CommandFailed, EnvDeskError, InvalidInput, NotFound
from envdesk.backend.inventory import read_inventory
from envdesk.backend.operations.clone import clone_environment
from envdesk.backend.operations.common import Progress, Reservation
from envdesk.backend.operations.create import CreateRequest, create_environment
from envdesk.backend.operations.delete import delete_environment
from envdesk.backend.operations.export import export_environment
from envdesk.backend.operations.history import list_snapshots, revert_environment
from envdesk.backend.operations.importing import import_environment
from envdesk.backend.operations.update import Change, update_environment
from envdesk_fixtures import (canon, freeze, freeze_lines, install_by_hand, make_config, packages_of, session_for,
                              unique)
from testbed.wheels import WheelSpec, build_wheel
from testbed.software import bed_python_version


def on_disk(cluster, env_path: str, modules: list[str]) -> dict[str, str]:
    """Ask the environment's own Python what is importable, with its modules loaded (as a user would)."""
    load = f"module load {' '.join(modules)} && " if modules else ""
    script = ("import importlib.metadata as m; "
              "print('\\n'.join(sorted(d.metadata['Name'] + '==' + d.version for d in m.distributions())))")
    out = cluster.run_as_user(f"{load}{env_path}/bin/python -c \"{script}\"").stdout
    return {canon(line.split("==")[0]): line.split("==")[1] for line in out.split() if "==" in line}


@pytest.mark.parametrize("kind", ["venv", "virtualenv", "uv"])
def test_create_every_kind_with_modules_recorded(testbed, session, kind):
    name = unique(kind)
    created = create_environment(session, "alpha", CreateRequest(name=name, kind=kind, packages=["tinybeta"]))
    env = created.environment
    assert (env.kind, env.state, env.python) == (kind, "ok", bed_python_version())
    assert env.modules == ("python/3.11.5",)
    assert packages_of(env) == {"tinybeta": "1.0", "tinyalpha": "2.0"}
    assert on_disk(testbed.clusters["alpha"], env.path, ["python/3.11.5"]).items() >= {"tinybeta": "1.0"}.items()
    assert env.envdesk["requested"] == ["tinybeta"]


def test_create_on_beta_loads_the_prerequisite_module(session):
    env = create_environment(session, "beta", CreateRequest(name=unique("b"), python="3.11",
                                                            packages=["tinyalpha==1.1"])).environment
    assert env.kind == "venv"  # beta has no uv
    assert env.modules == ("GCC/12.3.0", "Python/3.11.3")
    assert packages_of(env) == {"tinyalpha": "1.1"}


def test_unavailable_python_is_refused_with_the_choices(session):
    with pytest.raises(InvalidInput) as info:
        create_environment(session, "alpha", CreateRequest(name=unique("p"), kind="venv", python="3.12"))
    assert "no Python 3.12" in info.value.message and "3.11" in info.value.message


def test_a_mistyped_module_is_named_with_lmods_reason_and_nothing_is_made(testbed, session):
    """A user trial typed pyhton/3.11.5 and was told '...could not load the modules' then '#%Module', the last
    line of Lmod's help text. Lmod is the referee: the module it calls unknown is the one the message names."""
    lmod = testbed.clusters["alpha"].run_as_user("module load pyhton/3.11.5", check=False)
    assert lmod.returncode != 0 and "unknown" in lmod.stderr and '"pyhton/3.11.5"' in lmod.stderr
    name = unique("typo")
    with pytest.raises(InvalidInput) as info:
        create_environment(session, "alpha", CreateRequest(name=name, modules=["pyhton/3.11.5"]))
    assert info.value.message == "alpha has no module pyhton/3.11.5, so nothing was made."
    assert "#%Module" not in str(info.value) and "module avail" in info.value.hint
    alpha = session.target("alpha")
    assert name not in {env.name for env in read_inventory(alpha.runner, alpha.roots).environments}


@pytest.mark.parametrize("cluster,kind", [("alpha", "uv"), ("alpha", "venv"), ("alpha", "virtualenv"),
                                          ("beta", "venv"), ("beta", "virtualenv")])
def test_update_add_upgrade_remove_then_revert_downgrades_then_delete(testbed, session, cluster, kind):
    """alpha installs with uv (it has a uv module), beta with pip: both paths, every kind. Referees: after each
    step the environment's own installer (pip freeze, or uv pip freeze), after the delete the folder's absence."""
    on = testbed.clusters[cluster]
    name = unique(f"upd-{kind}")
    path = create_environment(session, cluster, CreateRequest(name=name, kind=kind,
                                                              packages=["tinyalpha==1.0"])).environment.path
    assert freeze(on, path) == {"tinyalpha==1.0"}
    update_environment(session, cluster, name, Change(add=["tinygamma"]))
    assert freeze(on, path) == {"tinyalpha==1.0", "tinygamma==0.1"}
    update_environment(session, cluster, name, Change(upgrade=["tinyalpha"]))
    assert freeze(on, path) == {"tinyalpha==2.0", "tinygamma==0.1"}
    removed = update_environment(session, cluster, name, Change(remove=["tinygamma"])).environment
    assert freeze(on, path) == {"tinyalpha==2.0"}
    assert removed.envdesk["requested"] == ["tinyalpha==1.0"]
    snapshots = list_snapshots(session, cluster, name)
    assert len(snapshots) == 3 and "adding tinygamma" in snapshots[0].reason
    reverted = revert_environment(session, cluster, name, snapshots[0].id).environment
    assert freeze(on, path) == {"tinyalpha==1.0"}
    assert reverted.kind == kind and len(list_snapshots(session, cluster, name)) == 4
    assert delete_environment(session, cluster, name).path == path
    assert not os.path.lexists(path)
    with pytest.raises(NotFound):
        list_snapshots(session, cluster, name)


def test_removing_or_upgrading_a_package_the_environment_lacks_is_refused(testbed, session):
    """A user trial removed 'tinyalhpa' (a typo): the installer said nothing, the command ended well and the
    environment was 'unchanged'; an upgrade of a package not there installed it. Both are refused now, with the
    name meant, and the environment is as it was (the referee: its own Python's importlib.metadata)."""
    name = unique("typo")
    env = create_environment(session, "alpha", CreateRequest(name=name, packages=["tinyalpha==1.0"])).environment
    before = on_disk(testbed.clusters["alpha"], env.path, list(env.modules))
    with pytest.raises(InvalidInput) as removing:
        update_environment(session, "alpha", name, Change(remove=["tinyalhpa"]))
    assert removing.value.message == f"{name} has no package tinyalhpa to remove."
    assert "Did you mean tinyalpha?" in removing.value.hint
    with pytest.raises(InvalidInput) as upgrading:
        update_environment(session, "alpha", name, Change(upgrade=["tinygamma"]))
    assert upgrading.value.message == f"{name} has no package tinygamma to upgrade."
    assert on_disk(testbed.clusters["alpha"], env.path, list(env.modules)) == before
    assert len(list_snapshots(session, "alpha", name)) == 0


def test_failed_update_rolls_back_exactly(testbed, session):
    """The referee: pip freeze of the environment, the same after the failed change as before it."""
    beta = testbed.clusters["beta"]
    name = unique("rb")
    path = create_environment(session, "beta", CreateRequest(name=name, packages=["tinybeta"])).environment.path
    before = freeze(beta, path)
    with pytest.raises(CommandFailed) as info:
        update_environment(session, "beta", name, Change(add=["tinygamma", "doesnotexist==9.9"],
                                                         remove=["tinybeta"]))
    assert "rolled back" in info.value.message
    assert freeze(beta, path) == before
    assert read_inventory(session.target("beta").runner, session.target("beta").roots).find(name).state == "ok"



def test_an_update_that_fails_after_installing_some_packages_is_rolled_back_exactly(testbed, tmp_path, home):
    """pip installs a command's packages one by one: tinyunsafe holds a file outside the environment, which pip
    refuses as it installs it, after it upgraded tinyalpha and added tinygamma for it (pip's own lines say so).
    The referee: pip freeze of the environment, the same after the failed change as before it."""
    beta = testbed.clusters["beta"]
    wheels = testbed.base / unique("unsafe-wheel")  # a folder the cluster's user can read
    wheels.mkdir(mode=0o755)
    build_wheel(wheels, WheelSpec("tinyunsafe", "1.0", ("tinyalpha>=2.0", "tinygamma")),
                {"../../../../outside-the-environment.txt": "pip refuses to write this\n"})
    session = session_for(make_config(tmp_path / "unsafe-cfg", testbed, ["beta"], beta={
        "pip_args": [*beta.pip_args, "--find-links", str(wheels)]}))
    try:
        name = unique("partial")
        path = create_environment(session, "beta", CreateRequest(name=name, packages=["tinyalpha==1.0"])
                                  ).environment.path
        before = freeze(beta, path)
        said: list[str] = []
        with pytest.raises(CommandFailed) as info:
            update_environment(session, "beta", name, Change(add=["tinyunsafe"]),
                               Progress(on_line=lambda stream, line: said.append(line.strip())))
        assert "Successfully uninstalled tinyalpha-1.0" in said, said  # pip changed it before failing
        assert "rolled back" in info.value.message
        assert freeze(beta, path) == before
    finally:
        session.close()

def test_export_every_format_and_import_each(testbed, session):
    """Referee: pip freeze (uv pip freeze) of the source, which the requirements export and every copy equal."""
    name = unique("exp")
    source = create_environment(session, "alpha", CreateRequest(name=name, kind="venv", packages=[
        "tinybeta", "tinyalpha==1.1"])).environment
    before = freeze(testbed.clusters["alpha"], source.path)
    assert before == {"tinyalpha==1.1", "tinybeta==1.0"}
    exported = {fmt: export_environment(session, "alpha", name, fmt) for fmt in specs.FORMATS}
    assert freeze_lines(exported["requirements"]) == before
    assert "python/3.11.5" in exported["envdesk"]
    for fmt, text in exported.items():
        spec = specs.from_text(text, {"envdesk": "e.yaml", "requirements": "r.txt", "conda": "environment.yml",
                                      "pylock": "pylock.toml"}[fmt])
        if fmt == "conda":
            spec.kind = "venv"  # conda cannot be had on beta; the pins are what matter here
        imported = import_environment(session, "beta", spec, name=unique(f"imp-{fmt}")).environment
        assert freeze(testbed.clusters["beta"], imported.path) == before, fmt
        assert imported.modules == ("GCC/12.3.0", "Python/3.11.3")


def test_clone_to_a_cluster_with_other_module_names(testbed, session):
    """The copy holds what the source holds, as their installers say (uv pip freeze of the source, pip freeze of
    the copy). The source's user then pinned an older tinyalpha by hand, which its requirements do not name."""
    alpha, name = testbed.clusters["alpha"], unique("cl")
    source = create_environment(session, "alpha", CreateRequest(name=name, kind="uv",
                                                                packages=["tinybeta", "tinygamma"])).environment
    install_by_hand(alpha, source.path, "tinyalpha==1.0")
    before = freeze(alpha, source.path)
    assert before == {"tinyalpha==1.0", "tinybeta==1.0", "tinygamma==0.1"}
    imported = clone_environment(session, "alpha", name, "beta")
    copy = imported.environment
    assert freeze(testbed.clusters["beta"], copy.path) == before
    assert copy.modules == ("GCC/12.3.0", "Python/3.11.3")
    assert copy.kind == "venv" and any("cannot make uv" in n for n in imported.notes)
    assert any("python/3.11.5" in n and "Python/3.11.3" in n for n in imported.notes)


def test_clone_reports_every_missing_package_and_leaves_nothing(testbed, session):
    name = unique("miss")
    create_environment(session, "alpha", CreateRequest(name=name, kind="uv", packages=["onlyalpha", "tinybeta"]))
    with pytest.raises(CommandFailed) as info:
        clone_environment(session, "alpha", name, "beta")
    assert "onlyalpha==1.0" in info.value.message and "1 package(s)" in info.value.message
    assert "tinybeta" not in info.value.message.split("installed on")[1].split("Nothing")[0]
    # a copy has no file to leave it out of (user trial T7)
    assert "file" not in info.value.hint and "remove it from the environment before copying" in info.value.hint
    beta = testbed.clusters["beta"]
    assert beta.run_as_user(f"ls -d ~/venvs/{name}* ~/envs/{name}* 2>/dev/null", check=False).stdout == ""
    assert name not in {e.name for e in read_inventory(session.target("beta").runner,
                                                       session.target("beta").roots).environments}


def test_top_level_fallback_when_pins_are_missing(testbed, session):
    spec = specs.EnvSpec(kind="venv", python="3.11.5", requirements=["tinyalpha>=1"],
                         pins=[specs.Pin("tinyalpha", "3.0")], name=unique("top"))
    with pytest.raises(CommandFailed) as info:
        import_environment(session, "beta", spec)
    assert "tinyalpha==3.0" in info.value.message and "--top-level" in info.value.hint
    imported = import_environment(session, "beta", spec, top_level=True)
    assert imported.used_top_level  # the newest tinyalpha beta has, by pip freeze
    assert freeze(testbed.clusters["beta"], imported.environment.path) == {"tinyalpha==2.0"}


def test_cancel_during_install_leaves_no_environment(testbed, session):
    name = unique("cancel")
    progress = Progress()

    def on_line(stream, line):
        if "Looking in links" in line or "Processing" in line:
            progress.cancel.cancel()

    progress.on_line = on_line
    with pytest.raises(Cancelled):
        create_environment(session, "beta", CreateRequest(name=name, packages=["tinybeta"]), progress)
    beta = testbed.clusters["beta"]
    assert beta.run_as_user(f"ls -d ~/venvs/{name}* ~/envs/{name}* 2>/dev/null", check=False).stdout == ""


def test_second_writer_is_told_the_environment_is_busy(session):
    name = unique("busy")
    env = create_environment(session, "alpha", CreateRequest(name=name, kind="uv")).environment
    target = session.target("alpha")
    other = Reservation.take(target, env.path, list(target.roots), operation="another laptop")
    try:
        with pytest.raises(Busy) as info:
            update_environment(session, "alpha", name, Change(add=["tinygamma"]))
        assert "another laptop" in info.value.message
        with pytest.raises(Busy):  # nobody but the holder can release it
            call_action(target.runner, "abort", env.path, list(target.roots), token="not-the-token")
    finally:
        other.release()
    update_environment(session, "alpha", name, Change(add=["tinygamma"]))


def test_delete_only_environments_inside_the_roots(testbed, session):
    alpha = testbed.clusters["alpha"]
    name = unique("del")
    env = create_environment(session, "alpha", CreateRequest(name=name, kind="uv")).environment
    outside = f"{alpha.home}/elsewhere/{name}"
    alpha.run_as_user(f"mkdir -p ~/elsewhere && python3 -m venv --without-pip {outside} && "
                      f"ln -s {outside} ~/venvs/{name}-link && touch {outside}/canary")
    with pytest.raises(InvalidInput):
        delete_environment(session, "alpha", outside)
    with pytest.raises((InvalidInput, NotFound)):
        delete_environment(session, "alpha", f"{alpha.home}/venvs/{name}-link")
    assert alpha.run_as_user(f"test -e {outside}/canary", check=False).returncode == 0
    assert delete_environment(session, "alpha", name).path == env.path
    assert alpha.run_as_user(f"test -e {env.path}", check=False).returncode != 0


CANARY = f"/tmp/{unique('envdesk-canary')}"
"""The file a hostile value below would make if it ran: this process's own (two sessions or workers at once)."""
HOSTILE = [f"a;touch {CANARY}", f"$(touch {CANARY})", "../..", "with space", "quo'te",
           "new\nline", "`id`", "/etc"]


def test_hostile_input_is_refused_before_anything_runs(testbed, session):
    alpha = testbed.clusters["alpha"]
    alpha.run_as_user(f"rm -f {CANARY}")
    session.target("alpha").runner.connect()
    before = len(alpha.session_commands())
    for bad in HOSTILE:
        with pytest.raises(InvalidInput):
            create_environment(session, "alpha", CreateRequest(name=bad))
        with pytest.raises(InvalidInput):
            create_environment(session, "alpha", CreateRequest(name="fine", packages=[bad]))
        with pytest.raises(InvalidInput):
            update_environment(session, "alpha", "fine", Change(add=[f"tinyalpha; {bad}"]))
        with pytest.raises(InvalidInput):
            create_environment(session, "alpha", CreateRequest(name="fine", modules=[bad]))
        if not bad.startswith("/"):
            with pytest.raises(InvalidInput):
                create_environment(session, "alpha", CreateRequest(name="fine", root=bad))
    assert len(alpha.session_commands()) == before, "a refused input must not run anything"
    assert alpha.run_as_user(f"test -e {CANARY}", check=False).returncode != 0


def test_a_folder_the_user_cannot_write_is_a_plain_error_and_not_remembered(session):
    with pytest.raises(EnvDeskError) as info:
        create_environment(session, "alpha", CreateRequest(name=unique("x"), root="/etc/envdesk-test"))
    assert "denied" in str(info.value).lower()
    assert "/etc/envdesk-test" not in session.store.get("alpha").roots


def test_what_an_operation_records_never_shows_in_the_process_list(testbed, session):
    alpha = testbed.clusters["alpha"]
    before = len(alpha.session_commands())
    create_environment(session, "alpha", CreateRequest(name=unique("ps"), kind="uv", packages=["tinygamma"]))
    commands = alpha.session_commands()[before:]
    assert commands and not any("requested" in command or "created_with" in command for command in commands)


def test_a_module_given_without_a_version_is_recorded_with_the_one_that_loaded(testbed, session):
    """A user trial's `--module python` was recorded as `python`, so the environment would follow the cluster's
    next default. Lmod's own `module -t list` after the same load is the referee for the full name."""
    alpha = testbed.clusters["alpha"]
    said = alpha.run_as_user("module load python && module -t list 2>&1", check=False).stdout.split()
    full = next(name for name in said if name.startswith("python/"))
    made = create_environment(session, "alpha", CreateRequest(name=unique("modver"), kind="venv", modules=["python"]))
    assert made.environment.modules == (full,), made.environment.modules
    # T20: part of a version (python/3.11) was recorded as given, with the same drift; Lmod loads the newest 3.11
    partial = full.rsplit(".", 1)[0]
    said = alpha.run_as_user(f"module load {partial} && module -t list 2>&1", check=False).stdout.split()
    assert full in said, said
    made = create_environment(session, "alpha", CreateRequest(name=unique("modver"), kind="venv", modules=[partial]))
    assert made.environment.modules == (full,), made.environment.modules
