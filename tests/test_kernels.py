"""Jupyter kernels of environments, for real: ipykernel from PyPI's wheels, kernels started by jupyter_client.

The referees: the kernel itself (what its Python reports when jupyter_client runs code in it, started the way a
Jupyter server starts it), `jupyter kernelspec list --json` run on the cluster, the kernel folder's files.
"""
from __future__ import annotations

import ast
import json
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from envdesk.backend.errors import InvalidInput, NotFound
from envdesk.backend.agent_client import JUPYTER_PART, agent_part
from envdesk.backend.inventory import Environment
from envdesk.backend.operations.create import CreateRequest, create_environment
from envdesk.backend.operations.delete import measure_environment
from envdesk.backend.operations.kernels import (KERNEL_SCRIPT, add_kernel, kernel_name,
                                                launcher_text, list_kernels, remove_kernel, with_ipykernel)
from envdesk_fixtures import cli_json, config_for, make_config, run_cli, session_for, unique

pytest_plugins = ["jupyter_fixtures"]  # jupyter_wheelhouse, jupyter_client_python

# What the kernel reports: its Python, its prefix, and the variables its modules and its activation set.
PROBE = ("import json, os, sys; print(json.dumps({'executable': sys.executable, 'prefix': sys.prefix, "
         "'vars': {k: os.environ.get(k) for k in ('EBVERSIONPYTHON', 'LOADEDMODULES', 'VIRTUAL_ENV')}}))")

CLIENT = r'''
import json, sys
from jupyter_client.manager import start_new_kernel
km, kc = start_new_kernel(kernel_name=sys.argv[1], startup_timeout=240)
try:
    msg_id = kc.execute(sys.stdin.read())
    out = []
    while True:
        msg = kc.get_iopub_msg(timeout=240)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            raise SystemExit("the kernel failed: " + msg["content"]["ename"])
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    sys.stdout.write("KERNEL-SAYS " + "".join(out))
finally:
    kc.stop_channels()
    km.shutdown_kernel(now=True)
'''


def run_in_kernel(cluster, client_python: str, name: str, *, clean: bool, before: str = "",
                  probe: str = PROBE) -> dict:
    """Start the kernel `name` with jupyter_client as the cluster's user (the way a Jupyter server starts it),
    run `probe` in it and return what it printed. `clean`: from an environment with nothing of a login shell
    (no `module` function, no Lmod variables, as a JupyterHub spawner may give), else from a login shell, after
    the shell lines `before` (a server's own `module load`, as Open OnDemand runs)."""
    client = Path(client_python).parent.parent / "client.py"
    if not client.exists():
        client.write_text(CLIENT)
        client.chmod(0o644)
    command = f"{shlex.quote(client_python)} {shlex.quote(str(client))} {shlex.quote(name)}"
    if clean:
        command = ('exec env -i HOME="$HOME" USER="$USER" LOGNAME="$USER" PATH=/usr/bin:/bin LANG=C.UTF-8 '
                   f'MODULEPATH="$MODULEPATH" {command}')
    answer = cluster.run_as_user(before + command, input=probe, timeout=600)
    said = [line for line in answer.stdout.splitlines() if line.startswith("KERNEL-SAYS ")]
    assert said, answer.stdout + answer.stderr
    return json.loads(said[-1][len("KERNEL-SAYS "):])


def kernelspecs(cluster, client_python: str) -> dict:
    """The referee: `jupyter kernelspec list --json` as the cluster's user."""
    tool = Path(client_python).parent / "jupyter-kernelspec"
    return json.loads(cluster.run_as_user(f"{shlex.quote(str(tool))} list --json").stdout)["kernelspecs"]


def kernels_folder(cluster) -> Path:
    return cluster.home / ".local" / "share" / "jupyter" / "kernels"


def config_with_jupyter(tmp_path: Path, testbed, names, wheelhouse: Path, **overrides):
    """Profiles whose package index also holds the real Jupyter wheels (as a site's wheel store would)."""
    extra = {name: {"pip_args": [*testbed.clusters[name].pip_args, "--find-links", str(wheelhouse)],
                    **overrides.get(name, {})} for name in names}
    return make_config(tmp_path / "cfg", testbed, names, **extra)


# -- without the test bed ------------------------------------------------------------------------


def test_kernel_names_follow_jupyters_rule():
    assert kernel_name("My+Env.v2") == "envdesk-my-env.v2"
    assert kernel_name("ml_2024") == "envdesk-ml_2024"
    assert with_ipykernel(["numpy"]) == ["numpy", "ipykernel"]
    assert with_ipykernel(["ipykernel>=6", "numpy"]) == ["ipykernel>=6", "numpy"]
    assert with_ipykernel(["IPyKernel[test]==6.29"]) == ["IPyKernel[test]==6.29"]


def test_the_kernel_script_is_python_36_and_names_only_what_it_is_sent_with():
    """As sent: the agent's Jupyter part, then the script; every name it uses is defined there or built in."""
    import builtins
    sent = agent_part(JUPYTER_PART) + KERNEL_SCRIPT
    tree = ast.parse(sent, feature_version=(3, 6))
    defined = {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    defined |= {target.id for node in ast.walk(tree) if isinstance(node, ast.Assign) for target in node.targets
                if isinstance(target, ast.Name)}
    defined |= {alias.asname or alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}
    defined |= {arg.arg for node in ast.walk(tree) if isinstance(node, ast.arguments)
                for arg in [*node.args, *node.kwonlyargs, node.vararg, node.kwarg] if arg is not None}
    defined |= {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)}
    defined |= {node.name for node in ast.walk(tree) if isinstance(node, ast.ExceptHandler) and node.name}
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
    assert used - defined - set(dir(builtins)) == set()


@pytest.mark.parametrize("kind", ["venv", "conda"])
def test_a_launcher_quotes_every_value(tmp_path, kind):
    """bash itself reads the launcher: the odd folder arrives as one word, nothing in it runs."""
    canary = tmp_path / "ran"
    odd = f"{tmp_path}/it's \"odd\"; touch {canary} & $(touch {canary}) `touch {canary}`"
    env = Environment(name="odd", path=odd, kind=kind, python="3.11", modules=("GCC/12.3.0", "Python/3.11.3"),
                      created_by="conda 24.7.1" if kind == "conda" else None)
    text = launcher_text(env, f"{odd}/bin/python", f"{tmp_path}/conda dir/bin/conda")
    assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0
    # Run it with stand-ins for what it calls: `module`, the conda hook and exec (the last word it runs).
    stubbed = text.replace("#!/bin/bash\n", "module() { printf 'MODULE %s\\n' \"$@\"; }\n"
                                            "conda() { printf 'CONDA %s\\n' \"$@\"; }\n"
                                            "source() { printf 'SOURCE %s\\n' \"$@\"; }\n"
                                            "exec() { printf 'EXEC %s\\n' \"$@\"; }\n", 1)
    stubbed = stubbed.replace('eval "$(conda shell.bash hook)"', "true")
    ran = subprocess.run(["bash", "-s", "--", "-f", "/run/x.json"], input=stubbed, text=True, capture_output=True)
    assert ran.returncode == 0, ran.stderr
    assert not canary.exists()
    lines = ran.stdout.splitlines()
    assert ["MODULE load", "MODULE GCC/12.3.0", "MODULE Python/3.11.3"] == lines[:3]
    assert lines[-5:] == ["EXEC " + f"{odd}/bin/python", "EXEC -m", "EXEC ipykernel_launcher", "EXEC -f",
                          "EXEC /run/x.json"]
    if kind == "conda":
        assert lines[3:-5] == ["CONDA activate", f"CONDA {odd}"]
    else:
        assert lines[3:-5] == [f"SOURCE {odd}/bin/activate"]


# -- on the test bed -------------------------------------------------------------------------------


def test_a_kernel_runs_the_environment_with_its_modules(testbed, tmp_path, home, jupyter_wheelhouse,
                                                        jupyter_client_python):
    """beta: an environment with the GCC + Python modules, first without ipykernel (said plainly, over the
    command line), then with it installed on request; jupyter_client on the cluster starts the kernel, with
    and without a login shell's module setup, and the kernel runs the environment's Python with the modules
    loaded; list shows it, remove removes it."""
    beta = testbed.clusters["beta"]
    paths = config_with_jupyter(tmp_path, testbed, ["beta"], jupyter_wheelhouse)
    session = session_for(paths)
    name = unique("kern")
    try:
        env = create_environment(session, "beta", CreateRequest(name=name)).environment
        assert env.modules == ("GCC/12.3.0", "Python/3.11.3")

        lacking = run_cli("kernel", "add", "beta", name, config=paths.config_dir, home=home)
        assert lacking.returncode == 1
        assert f"{name} on beta has no ipykernel" in lacking.stderr and "--install-ipykernel" in lacking.stderr
        assert "Traceback" not in lacking.stderr
        assert not (kernels_folder(beta) / kernel_name(name)).exists()

        made = run_cli("kernel", "add", "beta", name, "--install-ipykernel", config=paths.config_dir, home=home)
        assert made.returncode == 0, made.stderr
        assert f"Made the Jupyter kernel {kernel_name(name)}" in made.stdout
        assert "loading GCC/12.3.0 Python/3.11.3 first" in made.stdout

        folder = kernels_folder(beta) / kernel_name(name)
        assert (folder / "launch.sh").stat().st_mode & 0o777 == 0o700
        spec = kernelspecs(beta, jupyter_client_python)[kernel_name(name)]
        assert spec["resource_dir"] == str(folder)
        assert spec["spec"]["display_name"] == f"{name} (EnvDesk)"
        assert spec["spec"]["argv"] == [str(folder / "launch.sh"), "-f", "{connection_file}"]

        for clean in (True, False):
            said = run_in_kernel(beta, jupyter_client_python, kernel_name(name), clean=clean)
            assert said["executable"] == f"{env.path}/bin/python", clean
            assert said["prefix"] == env.path
            assert said["vars"]["EBVERSIONPYTHON"] == "3.11.3"  # set by the Python/3.11.3 module file
            assert {"GCC/12.3.0", "Python/3.11.3"} <= set((said["vars"]["LOADEDMODULES"] or "").split(":"))
            assert said["vars"]["VIRTUAL_ENV"] == env.path

        listed = {k.name: k for k in list_kernels(session, "beta")}
        kernel = listed[kernel_name(name)]
        assert (kernel.env_path, kernel.env_exists, kernel.made_by_envdesk) == (env.path, True, True)
        assert kernel.has_ipykernel is True
        assert kernel.modules == ("GCC/12.3.0", "Python/3.11.3")
        as_json = {k["name"]: k for k in cli_json("kernel", "list", "beta", config=paths.config_dir, home=home)}
        assert as_json[kernel_name(name)]["env_path"] == env.path
        assert as_json[kernel_name(name)]["made_by_envdesk"] is True

        again = add_kernel(session, "beta", name)  # made again in place (EnvDesk's, same environment)
        assert again.folder == str(folder)

        # user trial T7: --name Proj1 was refused; Jupyter takes it, lower-cased (jupyter_client lists it so)
        cased = run_cli("kernel", "add", "beta", name, "--name", "Cased-" + name, config=paths.config_dir, home=home)
        assert cased.returncode == 0, cased.stderr
        assert ("cased-" + name).lower() in kernelspecs(beta, jupyter_client_python)
        remove_kernel(session, "beta", ("cased-" + name).lower())

        # user trial T11: going back to a snapshot from before ipykernel broke the kernel without a word, as a
        # removal did (T7); the environment's own Python is the referee that ipykernel is gone, then back
        def imports_ipykernel() -> bool:
            return beta.run_as_user(f"module load GCC/12.3.0 Python/3.11.3 && {env.path}/bin/python -c "
                                    "'import ipykernel'", check=False).returncode == 0
        (before_ipykernel,) = cli_json("env", "history", "beta", name, config=paths.config_dir, home=home)
        back = run_cli("env", "revert", "beta", name, before_ipykernel["id"], config=paths.config_dir, home=home)
        assert back.returncode == 0, back.stderr
        assert not imports_ipykernel()
        assert "note: Without ipykernel, a Jupyter kernel of this environment no longer starts" in back.stderr
        undone = back.stdout.rsplit("the state before is snapshot ", 1)[1].rstrip(".\n")
        again = run_cli("env", "revert", "beta", name, undone, config=paths.config_dir, home=home)
        assert again.returncode == 0, again.stderr
        assert imports_ipykernel()
        assert "no longer starts" not in again.stderr

        # user trial T7: removing ipykernel broke the kernel without a word; the environment's own Python, with
        # its modules, is the referee that the kernel cannot start
        taken = run_cli("env", "update", "beta", name, "--remove", "ipykernel", config=paths.config_dir, home=home)
        assert taken.returncode == 0, taken.stderr
        assert "note: Without ipykernel, a Jupyter kernel of this environment no longer starts" in taken.stderr
        imported = beta.run_as_user(f"module load GCC/12.3.0 Python/3.11.3 && {env.path}/bin/python -c "
                                    "'import ipykernel'", check=False)
        assert imported.returncode != 0, imported.stdout
        # ... and kernel list says so, where it said "ok" (T7)
        shown = run_cli("kernel", "list", "beta", config=paths.config_dir, home=home)
        row = next(line for line in shown.stdout.splitlines() if line.startswith(kernel_name(name) + " "))
        assert "NO IPYKERNEL" in row and " ok " not in row, shown.stdout
        as_json = {k["name"]: k for k in cli_json("kernel", "list", "beta", config=paths.config_dir, home=home)}
        assert as_json[kernel_name(name)]["has_ipykernel"] is False

        removed = run_cli("kernel", "remove", "beta", kernel_name(name), config=paths.config_dir, home=home)
        assert removed.returncode == 0, removed.stderr
        assert not folder.exists()
        assert kernel_name(name) not in kernelspecs(beta, jupyter_client_python)
        with pytest.raises(NotFound):
            remove_kernel(session, "beta", kernel_name(name))
    finally:
        session.close()


def test_a_kernel_forgets_the_servers_modules_and_pythonpath(testbed, tmp_path, jupyter_wheelhouse,
                                                              jupyter_client_python):
    """User trial T23: Open OnDemand loads modules for the Jupyter server (scipy-stack/2023b among them, which puts
    tinyalpha 1.1 on PYTHONPATH), and the kernel of an environment holding tinyalpha 2.0 imported the stack's 1.1
    and showed the server's modules. Started by jupyter_client from such a shell, the kernel imports the
    environment's own tinyalpha (the kernel's import system is the referee), has only the environment's modules
    (Lmod's LOADEDMODULES) and a sticky module the site loaded stays, as `module purge` keeps it in a new login;
    R20: a site default that is not sticky (LMOD_SYSTEM_DEFAULT_MODULES, a Cray PrgEnv say) is there too, as Lmod's
    own `module reset` (what a new login has) loads it."""
    from testbed.software import STACK_MODULE
    alpha = testbed.clusters["alpha"]
    paths = config_with_jupyter(tmp_path, testbed, ["alpha"], jupyter_wheelhouse)
    session = session_for(paths)
    name = unique("srv")
    sticky = alpha.home / f"sticky-{name}"
    alpha.run_as_user(f"mkdir -p {sticky}/site && printf '%s\\n' 'add_property(\"lmod\", \"sticky\")' "
                      f"'setenv(\"SITE_STICKY\", \"kept\")' > {sticky}/site/1.0.lua")
    default = f"sitedef{name.replace('-', '')}/1.0"  # in the site's own module tree, where reset finds it
    default_file = Path(str(alpha.modulepath).split(":")[0]) / f"{default}.lua"
    default_file.parent.mkdir()
    default_file.write_text('setenv("SITE_DEFAULT", "loaded")\n')
    default_file.parent.chmod(0o755)
    default_file.chmod(0o644)
    probe = ("import json, os, importlib.metadata as md, tinyalpha; print(json.dumps({'file': tinyalpha.__file__, "
             "'version': md.version('tinyalpha'), 'loaded': os.environ.get('LOADEDMODULES', ''), "
             "'sticky': os.environ.get('SITE_STICKY'), 'site_default': os.environ.get('SITE_DEFAULT'), "
             "'pythonpath': os.environ.get('PYTHONPATH')}))")
    try:
        env = create_environment(session, "alpha", CreateRequest(
            name=name, packages=["tinyalpha==2.0", "ipykernel"])).environment
        assert STACK_MODULE not in env.modules
        kernel = add_kernel(session, "alpha", name)
        server = (f"export LMOD_SYSTEM_DEFAULT_MODULES={default} && module use {sticky} && "
                  f"module load site/1.0 {default} {' '.join(env.modules)} {STACK_MODULE} && "
                  "export PYTHONPATH=/server/own${PYTHONPATH:+:$PYTHONPATH} && ")
        seen = alpha.run_as_user(server + "python3 -c 'import tinyalpha; print(tinyalpha.__version__)'")
        assert seen.stdout.strip() == "1.1", "the server's shell imports the stack's tinyalpha"
        reset = alpha.run_as_user(server + "module reset >/dev/null 2>&1; echo $LOADEDMODULES").stdout.split(":")
        assert default in [m.strip() for m in reset], reset  # Lmod: a new login has the site's default
        said = run_in_kernel(alpha, jupyter_client_python, kernel.name, clean=False, before=server, probe=probe)
        assert said["file"].startswith(env.path + "/"), said
        assert said["version"] == "2.0"
        loaded = said["loaded"].split(":")
        assert STACK_MODULE not in loaded and set(env.modules) <= set(loaded), said
        assert "site/1.0" in loaded and said["sticky"] == "kept", said
        assert default in loaded and said["site_default"] == "loaded", said
        assert not said["pythonpath"], said
        remove_kernel(session, "alpha", kernel.name)
    finally:
        session.close()
        shutil.rmtree(default_file.parent, ignore_errors=True)


IPYKERNEL_MODULE = "ipyk/7.4"
"""A module that gives ipykernel on PYTHONPATH, as the Alliance's `ipykernel` module (or a stack bundling it) does."""


def test_a_module_that_gives_ipykernel_is_enough(testbed, tmp_path, home, jupyter_wheelhouse, jupyter_client_python):
    """User trial T23: an environment whose module gives ipykernel was refused ("has no ipykernel"), its own
    packages judged alone, so the user was told to install a second, shadowed copy. The environment's Python with
    its modules loaded imports ipykernel (the referee, by hand), so the kernel is made as it is, and the kernel,
    started by jupyter_client, runs the module's ipykernel."""
    cluster = testbed.own_user_cluster("jup")
    site = cluster.home / "ipyk-site"
    cluster.run_as_user("echo 'export MODULEPATH=\"$HOME/mods:$MODULEPATH\"' > ~/.bash_profile && "
                        f"mkdir -p ~/mods/ipyk && printf 'prepend_path(\"PYTHONPATH\", \"%s\")\\n' {site} "
                        f"> ~/mods/{IPYKERNEL_MODULE}.lua")
    if not (site / "ipykernel").is_dir():
        cluster.run_as_user(f"module load uv/0.13 && uv pip install --quiet --python /usr/bin/python3 --no-index "
                            f"--find-links {jupyter_wheelhouse} --target {site} ipykernel", timeout=600)
    modules = [*cluster.python_modules, IPYKERNEL_MODULE]
    paths = config_for(tmp_path / "cfg", cluster)
    session = session_for(paths)
    name = unique("modk")
    try:
        env = create_environment(session, cluster.name, CreateRequest(name=name, kind="venv",
                                                                      modules=modules)).environment
        assert env.modules == tuple(modules)
        by_hand = cluster.run_as_user(f"module load {' '.join(modules)} && {env.path}/bin/python -c "
                                      "'import ipykernel; print(ipykernel.__file__)'")
        assert by_hand.stdout.strip().startswith(f"{site}/"), by_hand.stdout
        made = run_cli("kernel", "add", cluster.name, name, config=paths.config_dir, home=home)
        assert made.returncode == 0, made.stderr
        assert f"loading {' '.join(modules)} first" in made.stdout and "installed" not in made.stdout + made.stderr
        probe = "import ipykernel, sys; import json; print(json.dumps({'file': ipykernel.__file__}))"
        said = run_in_kernel(cluster, jupyter_client_python, kernel_name(name), clean=True, probe=probe)
        assert said["file"].startswith(f"{site}/"), said
        listed = {k.name: k for k in list_kernels(session, cluster.name)}[kernel_name(name)]
        assert (listed.has_ipykernel, listed.module_gone, listed.modules_checked) == (True, None, True)
        from envdesk.gui.dialogs.kernels_dialog import kernel_state
        assert kernel_state(listed)[0] == "Ready"

        # user trial T23: a kernel whose module was retired was listed "ok"; Lmod refuses to load it, and the
        # kernel's own launcher fails so (the referees), and kernel list says which module is gone
        module_file = f"~/mods/{IPYKERNEL_MODULE}.lua"
        cluster.run_as_user(f"mv {module_file} {module_file}.retired")
        try:
            by_lmod = cluster.run_as_user(f"module load {IPYKERNEL_MODULE}", check=False)
            assert by_lmod.returncode != 0 and "unknown" in by_lmod.stderr, by_lmod.stderr
            launcher = kernels_folder(cluster) / kernel_name(name) / "launch.sh"
            started = cluster.run_as_user(f"{launcher} -f /nonexistent.json", check=False)
            assert started.returncode != 0 and "unknown" in started.stderr, started.stderr
            shown = run_cli("kernel", "list", cluster.name, config=paths.config_dir, home=home)
            row = next(line for line in shown.stdout.splitlines() if line.startswith(kernel_name(name) + " "))
            assert f"MODULE GONE ({IPYKERNEL_MODULE})" in row and " ok " not in row, shown.stdout
            retired = {k.name: k for k in list_kernels(session, cluster.name)}[kernel_name(name)]
            assert kernel_state(retired)[0] == "Module gone"  # the window's State column, where it said Ready
        finally:
            cluster.run_as_user(f"mv {module_file}.retired {module_file}")
        remove_kernel(session, cluster.name, kernel_name(name))
    finally:
        session.close()


def test_a_second_environment_of_the_same_name_gets_a_kernel_name_of_its_own(testbed, tmp_path, home,
                                                                              jupyter_wheelhouse,
                                                                              jupyter_client_python):
    """User trial T23: kv in ~/other had envdesk-kv, so a kernel for ~/third/kv was refused, with a hint naming
    --name (an option the window and `env create` do not have). Now the next free name is chosen and said:
    `env create --jupyter-kernel` makes envdesk-third-kv, Jupyter lists both (jupyter kernelspec list, the
    referee) and each kernel, started by jupyter_client, runs its own environment."""
    alpha = testbed.clusters["alpha"]
    first, second = f"~/other-{unique('r')}", f"~/third-{unique('r')}"
    paths = config_with_jupyter(tmp_path, testbed, ["alpha"], jupyter_wheelhouse,
                                alpha={"env_roots": [first, second]})
    session = session_for(paths)
    name = unique("kv")
    try:
        one = create_environment(session, "alpha", CreateRequest(name=name, kind="uv", root=first,
                                                                 packages=["ipykernel"])).environment
        mine = add_kernel(session, "alpha", one.path)
        assert mine.name == kernel_name(name)
        made = run_cli("env", "create", "alpha", name, "--kind", "uv", "--root", second, "--jupyter-kernel",
                       config=paths.config_dir, home=home)
        assert made.returncode == 0, made.stderr
        other = kernel_name(f"{second[2:]}-{name}")
        assert f"Made the Jupyter kernel {other}" in made.stdout, made.stdout
        assert (f"note: A Jupyter kernel called {kernel_name(name)} (made by EnvDesk for {one.path}) is already "
                f"there, so this one is called {other}.") in made.stderr, made.stderr
        specs = kernelspecs(alpha, jupyter_client_python)
        assert specs[kernel_name(name)]["spec"]["display_name"] == f"{name} (EnvDesk)"
        assert specs[other]["spec"]["display_name"] == f"{name} ({other}, EnvDesk)"
        two = f"{alpha.home}/{second[2:]}/{name}"
        assert run_in_kernel(alpha, jupyter_client_python, other, clean=True)["executable"] == f"{two}/bin/python"
        assert run_in_kernel(alpha, jupyter_client_python, mine.name, clean=True)["prefix"] == one.path
        assert add_kernel(session, "alpha", two).name == other, "made again in place, not a third"
        assert set(kernelspecs(alpha, jupyter_client_python)) >= {mine.name, other}
        with pytest.raises(InvalidInput, match="already there") as refused:
            add_kernel(session, "alpha", two, name=mine.name)  # a name the user gives is theirs: refused
        assert "--name" in (refused.value.hint or "")
        remove_kernel(session, "alpha", mine.name)
        remove_kernel(session, "alpha", other)
    finally:
        session.close()


def their_kernel(cluster, name: str, python: str) -> None:
    """A kernel another tool made, named `name`, that runs `python` (as `ipython kernel install` writes one)."""
    spec = json.dumps({"argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                       "display_name": "Theirs", "language": "python"})
    folder = kernels_folder(cluster) / name
    cluster.run_as_user(f"mkdir -p {shlex.quote(str(folder))} && "
                        f"printf %s {shlex.quote(spec)} > {shlex.quote(str(folder / 'kernel.json'))}")


def test_remove_takes_the_exact_name_and_says_rightly_what_stays(testbed, tmp_path, home, jupyter_wheelhouse,
                                                                  jupyter_client_python):
    """User trial T23: with EnvDesk's kernel myk and another tool's MYK, `kernel remove myk --force` removed MYK;
    and removing another tool's kernel said "its environment ... is untouched" of a folder that was gone and of
    /usr. Jupyter's own listing is the referee of what is left under each name, the file system of what is gone."""
    alpha = testbed.clusters["alpha"]
    paths = config_with_jupyter(tmp_path, testbed, ["alpha"], jupyter_wheelhouse)
    session = session_for(paths)
    name = unique("ex")
    mine = f"myk-{name}"
    try:
        env = create_environment(session, "alpha", CreateRequest(name=name, kind="uv",
                                                                 packages=["ipykernel"])).environment
        add_kernel(session, "alpha", name, name=mine)
        their_kernel(alpha, mine.upper(), "/usr/bin/python3")
        removed = run_cli("kernel", "remove", "alpha", mine, config=paths.config_dir, home=home)
        assert removed.returncode == 0, removed.stderr
        assert removed.stdout == (f"Removed the Jupyter kernel {mine} ({kernels_folder(alpha) / mine}). "
                                  f"Its environment {env.path} is untouched.\n")
        left = kernelspecs(alpha, jupyter_client_python)
        assert left[mine]["resource_dir"] == str(kernels_folder(alpha) / mine.upper()), "the other tool's stays"
        assert left[mine]["spec"]["display_name"] == "Theirs"

        system = run_cli("kernel", "remove", "alpha", mine.upper(), "--force", config=paths.config_dir, home=home)
        assert system.returncode == 0, system.stderr
        assert "Its environment" not in system.stdout
        assert "The Python it ran, /usr/bin/python3, is no environment's and is untouched." in system.stdout
        assert alpha.run_as_user("test -e /usr/pyvenv.cfg || test -d /usr/conda-meta", check=False).returncode
        assert mine not in kernelspecs(alpha, jupyter_client_python)

        gone = f"{alpha.home}/gone-{name}"
        their_kernel(alpha, f"gone-{name}", f"{gone}/bin/python")
        assert alpha.run_as_user(f"test -e {gone}", check=False).returncode
        forced = run_cli("kernel", "remove", "alpha", f"gone-{name}", "--force", config=paths.config_dir, home=home)
        assert forced.returncode == 0, forced.stderr
        assert f"Its environment {gone} was gone already." in forced.stdout
        assert "untouched" not in forced.stdout
    finally:
        session.close()


def test_odd_folders_arrive_literally_and_other_kernels_are_left_alone(testbed, tmp_path, home, jupyter_wheelhouse,
                                                                       jupyter_client_python):
    """alpha (uv): an environment made with `env create --jupyter-kernel` in a folder with quotes, a ';', '&',
    '|' and '*' becomes a kernel that runs it, and nothing in its path ever runs. A kernel EnvDesk did not
    make keeps its name and stays unless forced."""
    alpha = testbed.clusters["alpha"]
    canary = alpha.home / f"edcanary-kernel-{unique('k')}"  # where the cluster's user could make it
    root = f"~/k envs {unique('r')}/it's \"odd\"; touch {canary} & a|b*"
    paths = config_with_jupyter(tmp_path, testbed, ["alpha"], jupyter_wheelhouse,
                                alpha={"env_roots": [root]})
    session = session_for(paths)
    name = unique("odd")
    other = unique("other")
    try:
        created = run_cli("env", "create", "alpha", name, "--kind", "uv", "--jupyter-kernel",
                          config=paths.config_dir, home=home)
        assert created.returncode == 0, created.stderr
        assert f"Made the Jupyter kernel {kernel_name(name)}" in created.stdout
        path = f"{alpha.home}{root[1:]}/{name}"
        kernel = {k.name: k for k in list_kernels(session, "alpha")}[kernel_name(name)]
        assert kernel.env_path == path
        said = run_in_kernel(alpha, jupyter_client_python, kernel.name, clean=True)
        assert said["executable"] == f"{path}/bin/python"
        assert said["vars"]["VIRTUAL_ENV"] == path
        assert not canary.exists()

        theirs = kernels_folder(alpha) / other
        spec = json.dumps({"argv": ["/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                           "display_name": "Theirs", "language": "python"})
        alpha.run_as_user(f"mkdir -p {shlex.quote(str(theirs))} && "
                          f"printf %s {shlex.quote(spec)} > {shlex.quote(str(theirs / 'kernel.json'))}")
        listed = {k.name: k for k in list_kernels(session, "alpha")}
        assert listed[other].made_by_envdesk is False and listed[other].display_name == "Theirs"
        assert listed[kernel.name].made_by_envdesk is True
        with pytest.raises(InvalidInput, match="already there"):
            add_kernel(session, "alpha", name, name=other)
        with pytest.raises(InvalidInput, match="not made by EnvDesk"):
            remove_kernel(session, "alpha", other)
        assert other in kernelspecs(alpha, jupyter_client_python)
        remove_kernel(session, "alpha", other, force=True)
        assert other not in kernelspecs(alpha, jupyter_client_python)

        # user trial T11: deleting the environment left its kernels behind, kernels that could no longer start.
        # EnvDesk's go with it, in the same command; another tool's kernel of the same Python stays.
        second = add_kernel(session, "alpha", name, name=f"second-{name}")
        shown_as = {spec["spec"]["display_name"] for spec in kernelspecs(alpha, jupyter_client_python).values()}
        assert {f"{name} (EnvDesk)", f"{name} (second-{name}, EnvDesk)"} <= shown_as  # T12: both read the same
        spec = json.dumps({"argv": [f"{path}/bin/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                           "display_name": "Theirs too", "language": "python"})
        alpha.run_as_user(f"mkdir -p {shlex.quote(str(theirs))} && "
                          f"printf %s {shlex.quote(spec)} > {shlex.quote(str(theirs / 'kernel.json'))}")
        going = measure_environment(session, "alpha", path)
        assert sorted(going.kernels) == sorted([kernel.name, second.name])
        assert going.kernels_broken == (other,)  # T12: another tool's kernel of it, left broken without a word
        deleted = run_cli("env", "delete", "alpha", name, "--yes", config=paths.config_dir, home=home)
        assert deleted.returncode == 0, deleted.stderr
        left = kernelspecs(alpha, jupyter_client_python)
        assert kernel.name not in left and second.name not in left
        assert other in left, "a kernel EnvDesk did not make stays, even one of the deleted environment"
        assert alpha.run_as_user(f"test -e {shlex.quote(left[other]['spec']['argv'][0])}", check=False).returncode
        assert (f"note: The Jupyter kernel {other}, made by another tool, ran it and can no longer start"
                in deleted.stderr), deleted.stderr
        assert deleted.stdout == f"Deleted {path}.\n"
        assert (f"note: Its Jupyter kernels {kernel.name} and {second.name} were removed too" in deleted.stderr
                or f"note: Its Jupyter kernels {second.name} and {kernel.name} were removed too" in deleted.stderr)
        assert alpha.run_as_user(f"test -e {shlex.quote(path)}", check=False).returncode != 0
        assert not canary.exists()
    finally:
        session.close()


HOSTILE_NAMES = ["k$(touch {C})", "k;touch {C}", "k`touch {C}`", "k'\"$(touch {C})\"'"]


def test_a_hostile_environment_name_is_refused_plainly(testbed, tmp_path, home, session):
    """Environment folders whose names could run something are found, and refused by name before anything is
    written; no canary appears (in the home, where every command starts) and no kernel folder is made, through
    the backend and the command line."""
    alpha = testbed.clusters["alpha"]
    before = set(kernelspecs_names(alpha))
    for number, template in enumerate(HOSTILE_NAMES):
        canary = alpha.home / f"edcanary-kname-{number}-{unique('c')}"
        bad = template.replace("{C}", canary.name)  # a folder name has no '/': relative to the home, where commands run
        alpha.run_as_user('IFS= read -r name && python3 -m venv --without-pip "$HOME/venvs/$name"', input=bad + "\n")
        path = f"{alpha.home}/venvs/{bad}"
        with pytest.raises(InvalidInput, match="does not make Jupyter kernels for an environment called"):
            add_kernel(session, "alpha", path)
        refused = run_cli("kernel", "add", "alpha", path, config=session.paths.config_dir, home=home)
        assert refused.returncode == 1 and "does not make Jupyter kernels" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert not canary.exists()
        alpha.run_as_user('IFS= read -r name && rm -rf "$HOME/venvs/$name"', input=bad + "\n")
    assert set(kernelspecs_names(alpha)) == before


def kernelspecs_names(cluster) -> list[str]:
    folder = kernels_folder(cluster)
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_the_window_makes_a_kernel_and_offers_ipykernel_first(qtbot, testbed, tmp_path, home, monkeypatch,
                                                               jupyter_wheelhouse, jupyter_client_python):
    """Environment ▸ Make a Jupyter kernel on an environment without ipykernel: the window asks to install it,
    then makes the kernel; the New environment dialog's checkbox makes one along with the environment."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QMessageBox

    from envdesk.gui.dialogs.new_env_dialog import NewEnvironmentDialog
    from test_gui import finish, open_window, select_env, select_target

    alpha = testbed.clusters["alpha"]
    paths = config_with_jupyter(tmp_path, testbed, ["alpha"], jupyter_wheelhouse)
    asked: list[str] = []

    def question(parent, title, text, *args, **kwargs):
        asked.append(text)
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", question)
    session = session_for(paths)
    plain = unique("gk")
    try:
        create_environment(session, "alpha", CreateRequest(name=plain, kind="uv"))
    finally:
        session.close()
    window = open_window(qtbot, paths)
    started: list = []
    window.controller.runner.started.connect(started.append)
    select_target(qtbot, window, "alpha")
    select_env(qtbot, window, plain)
    assert window.kernel_action.isEnabled()
    assert window.kernel_action in window.menuBar().actions()[1].menu().actions()
    window.kernel_action.trigger()
    # its module may give ipykernel (T23), so the cluster is asked first (in the background), then the user
    qtbot.waitUntil(lambda: len(asked) == 1, timeout=180_000)
    assert f"{plain} on alpha has no ipykernel" in asked[0]
    finish(qtbot, [t for t in started if t.title == f"Make a Jupyter kernel of {plain}"][-1])
    spec = kernelspecs(alpha, jupyter_client_python)[kernel_name(plain)]
    assert spec["spec"]["display_name"] == f"{plain} (EnvDesk)"
    said = run_in_kernel(alpha, jupyter_client_python, kernel_name(plain), clean=True)
    assert said["executable"].endswith(f"/venvs/{plain}/bin/python")

    dialog = NewEnvironmentDialog(window.controller, "alpha", parent=window)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.caps is not None, timeout=180_000)
    made = unique("gk")
    dialog.name.setText(made)
    dialog.jupyter_kernel.setChecked(True)
    finish(qtbot, dialog.start())
    qtbot.waitUntil(lambda: any(t.title == f"Make a Jupyter kernel of {made}" for t in started), timeout=180_000)
    finish(qtbot, next(t for t in started if t.title == f"Make a Jupyter kernel of {made}"))
    assert kernel_name(made) in kernelspecs(alpha, jupyter_client_python)
    assert len(asked) == 1, "nothing was asked: the dialog's choice was the answer"

    # another tool's kernel, of a Python that is not there (the file system is the referee)
    theirs = unique("theirs")
    gone = f"{alpha.home}/gone-{theirs}/bin/python"
    spec_text = json.dumps({"argv": [gone, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                            "display_name": "Theirs", "language": "python"})
    folder = kernels_folder(alpha) / theirs
    alpha.run_as_user(f"mkdir -p {shlex.quote(str(folder))} && "
                      f"printf %s {shlex.quote(spec_text)} > {shlex.quote(str(folder / 'kernel.json'))}")
    assert alpha.run_as_user(f"test -e {shlex.quote(gone)}", check=False).returncode != 0

    # Cluster > Jupyter kernels…: the list jupyter-kernelspec gives, whether each starts, and Remove
    window.show_kernels()
    listed = window.kernels_dialog

    def shown() -> set[str]:
        return {listed.table.item(row, 0).text() for row in range(listed.table.rowCount())}

    def row_of(name: str) -> int:
        return next(row for row in range(listed.table.rowCount()) if listed.table.item(row, 0).text() == name)

    qtbot.waitUntil(lambda: {kernel_name(made), theirs} <= shown(), timeout=180_000)
    assert shown() == set(kernelspecs(alpha, jupyter_client_python))
    assert listed.table.item(row_of(kernel_name(plain)), listed.STATE).text() == "Ready"  # it ran above
    assert listed.table.item(row_of(theirs), listed.STATE).text() == "Environment gone"
    listed.table.cellWidget(row_of(kernel_name(plain)), listed.REMOVE).click()
    qtbot.waitUntil(lambda: kernel_name(plain) not in shown(), timeout=180_000)
    assert kernel_name(plain) not in kernelspecs(alpha, jupyter_client_python)
    assert len(asked) == 1, "EnvDesk's own kernel is removed without a question"

    # user trial T11: a kernel another tool made could not be removed in the window; it can, after a question,
    # whose words are plain text (R9: a display name is another tool's, and could be markup)
    def answer_yes(box: QMessageBox) -> QMessageBox.StandardButton:
        assert box.textFormat() == Qt.TextFormat.PlainText
        asked.append(box.text())
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "exec", answer_yes)
    listed.table.cellWidget(row_of(theirs), listed.REMOVE).click()
    assert len(asked) == 2 and f"{theirs} (\"Theirs\") was not made by EnvDesk" in asked[1]
    assert asked[1].endswith("Its environment is gone already."), asked[1]  # T12: not "stays" (its Python is gone)
    qtbot.waitUntil(lambda: theirs not in shown(), timeout=180_000)
    assert theirs not in kernelspecs(alpha, jupyter_client_python)
    remove_kernel(window.controller.session, "alpha", kernel_name(made))


def test_the_window_names_a_second_environments_kernel_itself(qtbot, testbed, tmp_path, home, jupyter_wheelhouse,
                                                              jupyter_client_python):
    """User trial T23: in the window, Make a Jupyter kernel for ~/third/kv failed because ~/other/kv had envdesk-kv,
    with a hint naming --name, which the window has no field for. Now it makes envdesk-third-kv and says so in the
    status bar; Jupyter's own listing (jupyter kernelspec list) is the referee of both kernels."""
    from test_gui import finish, open_window, select_target

    alpha = testbed.clusters["alpha"]
    first, second = f"~/other-{unique('w')}", f"~/third-{unique('w')}"
    paths = config_with_jupyter(tmp_path, testbed, ["alpha"], jupyter_wheelhouse,
                                alpha={"env_roots": [first, second]})
    name = unique("kv")
    session = session_for(paths)
    try:
        envs = [create_environment(session, "alpha", CreateRequest(name=name, kind="uv", root=root,
                                                                   packages=["ipykernel"])).environment
                for root in (first, second)]
        add_kernel(session, "alpha", envs[0].path)
    finally:
        session.close()
    window = open_window(qtbot, paths)
    started: list = []
    window.controller.runner.started.connect(started.append)
    select_target(qtbot, window, "alpha")
    qtbot.waitUntil(lambda: sum(env.name == name for env in window.env_model.environments) == 2, timeout=180_000)
    for row in range(window.env_proxy.rowCount()):
        window.env_table.setCurrentIndex(window.env_proxy.index(row, 0))
        current = window.current_environment()
        if current is not None and current.path == envs[1].path:
            break
    assert window.current_environment().path == envs[1].path
    window.kernel_action.trigger()
    finish(qtbot, [t for t in started if t.title == f"Make a Jupyter kernel of {name}"][-1])
    other = kernel_name(f"{second[2:]}-{name}")
    assert f"Jupyter kernel {other} made" in window.statusBar().currentMessage()
    specs = kernelspecs(alpha, jupyter_client_python)
    assert specs[other]["resource_dir"] == str(kernels_folder(alpha) / other)
    assert json.loads((kernels_folder(alpha) / other / "kernel.json").read_text())["metadata"]["envdesk"]["env"] \
        == envs[1].path
    assert kernel_name(name) in specs
    remove_kernel(window.controller.session, "alpha", other)
    remove_kernel(window.controller.session, "alpha", kernel_name(name))
