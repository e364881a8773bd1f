"""A kept listing agent sends only what changed since the answer the app holds (SentAnswers in backend/agent/read.py,
HeldAnswers in backend/agent_session.py, read_inventory), on the real test bed: real venvs, real wheels installed
and removed by uv; after each change the app's listing is compared with `uv pip list` on every environment, and
the bytes of the answers are counted (an answer to a listing where nothing changed is small)."""
from __future__ import annotations

import json
import sys

import pytest

from envdesk.backend import agent_session
from envdesk.backend.agent_client import agent_script, run_agent
from envdesk.backend.errors import CommandFailed
from envdesk.backend.inventory import read_inventory
from envdesk.backend.protocol import ANSWER_MARKER
from envdesk.backend.targets import Session
from envdesk_fixtures import ScriptedPrompter, canon, make_config, unique
from test_agent_session import kill_the_serving_agent, servers, wait_until

ROOT = "~/venvs-incremental"


@pytest.fixture
def kept(testbed, tmp_path, home):
    """alpha with three venvs of its own under ROOT (two wheels in one, one in the others), the app's session
    keeping an agent."""
    alpha = testbed.clusters["alpha"]
    folder = unique("inc")
    envs = {name: f"{ROOT}/{folder}/{name}" for name in ("one", "two", "three")}
    alpha.run_as_user(" && ".join(f"python3 -m venv --without-pip {path}" for path in envs.values()))
    uv(alpha, f"pip install --python {envs['one']}/bin/python {wheels(alpha)} tinyalpha==1.0 tinygamma==0.1")
    for name in ("two", "three"):
        uv(alpha, f"pip install --python {envs[name]}/bin/python {wheels(alpha)} tinyold==1.2")
    session = Session(make_config(tmp_path / "cfg", testbed, ["alpha"]), ScriptedPrompter(), keep_agents=True)
    yield session, alpha, envs, f"{ROOT}/{folder}"
    session.close()
    alpha.run_as_user(f"rm -rf {ROOT}/{folder}")


def wheels(cluster) -> str:
    return f"--no-index --find-links {cluster.wheelhouse}"


def uv(cluster, arguments: str) -> str:
    return cluster.run_as_user(f"module load {cluster.uv_module} && uv {arguments}").stdout


def uv_packages(cluster, path: str) -> dict[str, str]:
    """What `uv pip list` says the environment at `path` holds: {normalized name: version}."""
    listed = json.loads(uv(cluster, f"pip list --python {path}/bin/python --format json"))
    return {canon(item["name"]): item["version"] for item in listed}


def listed(session, root: str) -> tuple[dict, int]:
    """The app's listing of `root` (light, as the window's) by absolute path, and the bytes its answer took."""
    target = session.target("alpha")
    server = agent_session.server_for(target.runner)
    before = server.received
    listing = read_inventory(target.runner, [root], light=True)
    assert not listing.errors, listing.errors
    inside = root.replace("~", str(listing.home), 1) + "/"  # (conda's environments are listed too)
    return {env.path: env for env in listing.environments if env.path.startswith(inside)}, server.received - before


def agrees_with_uv(cluster, found: dict, expected_paths: set[str]) -> None:
    """The listing shows exactly the environments expected, each with what uv says it holds."""
    assert set(found) == expected_paths
    for path, env in found.items():
        assert {canon(p.name): p.version for p in env.packages} == uv_packages(cluster, path), path


def test_each_listing_shows_the_truth_and_an_unchanged_one_is_small(kept):
    session, alpha, envs, root = kept
    home = str(alpha.home)
    paths = {name: path.replace("~", home, 1) for name, path in envs.items()}
    listed(session, root)  # the agent stored
    full, full_bytes = listed(session, root)  # the serving agent's first answer: in full
    agrees_with_uv(alpha, full, set(paths.values()))
    assert len(full[paths["one"]].packages) == 2

    same, same_bytes = listed(session, root)
    agrees_with_uv(alpha, same, set(paths.values()))
    assert all(same[path] is full[path] for path in paths.values())  # the records held, not read again
    assert same_bytes * 2 < full_bytes and same_bytes < 1000, (same_bytes, full_bytes)

    uv(alpha, f"pip install --python {envs['two']}/bin/python {wheels(alpha)} tinybeta==1.0")
    changed, _ = listed(session, root)
    agrees_with_uv(alpha, changed, set(paths.values()))
    assert len(changed[paths["two"]].packages) == 3
    assert changed[paths["one"]] is full[paths["one"]]

    uv(alpha, f"pip uninstall --python {envs['one']}/bin/python tinyalpha tinygamma")
    emptied, _ = listed(session, root)
    agrees_with_uv(alpha, emptied, set(paths.values()))
    assert emptied[paths["one"]].packages == ()

    alpha.run_as_user(f"rm -rf {envs['three']} && python3 -m venv --without-pip {root}/four")
    paths.pop("three")
    paths["four"] = f"{root}/four".replace("~", home, 1)
    moved, _ = listed(session, root)
    agrees_with_uv(alpha, moved, set(paths.values()))

    assert agent_session.server_for(session.target("alpha").runner).started == 1


def test_a_new_agent_another_request_or_a_stopped_one_gets_a_full_answer(kept):
    session, alpha, envs, root = kept
    target = session.target("alpha")
    home = str(alpha.home)
    paths = {path.replace("~", home, 1) for path in envs.values()}
    for _ in range(3):
        _, small = listed(session, root)
    kill_the_serving_agent(alpha, target)  # a new agent knows no earlier answer
    found, after_restart = listed(session, root)
    agrees_with_uv(alpha, found, paths)
    assert after_restart > 2 * small

    one = read_inventory(target.runner, [root], names=["one"], light=True)  # another kind of request
    assert [env.name for env in one.environments] == ["one"]
    assert {canon(p.name): p.version for p in one.environments[0].packages} == uv_packages(alpha, envs["one"])
    _, small_again = listed(session, root)  # the whole listing's held answer is still the agent's last
    assert small_again * 2 < after_restart

    with pytest.raises(CommandFailed, match="did not finish within"):  # stopped midway: the agent with it
        run_agent(target.runner, {"roots": [root], "settled": True, "light": True, "since": "stale"}, timeout=1e-9)
    wait_until(lambda: len(servers(alpha)) == 0, "the stopped agent's end")
    uv(alpha, f"pip install --python {envs['three']}/bin/python {wheels(alpha)} tinygamma==0.1")
    found, again = listed(session, root)
    agrees_with_uv(alpha, found, paths)
    assert again > 2 * small


def test_an_answer_the_app_did_not_keep_leaves_no_gap(kept):
    """The agent answered a request whose answer the app did not keep (its reading failed or was given up):
    the app's next request names the answer it holds, older than the agent's last, and gets every change since
    that one, not only those since the answer it never kept."""
    session, alpha, envs, root = kept
    target = session.target("alpha")
    for _ in range(2):
        listed(session, root)  # stored, then served: the app holds this answer
    uv(alpha, f"pip install --python {envs['three']}/bin/python {wheels(alpha)} tinygamma==0.1")
    settings = json.dumps({"roots": [root], "settled": True, "light": True})
    unkept = agent_session.ask(target.runner, agent_script(), settings, None, 120)
    assert unkept is not None and "tinygamma" in unkept.stdout  # the agent's last answer has the change
    found, _ = listed(session, root)
    agrees_with_uv(alpha, found, {path.replace("~", str(alpha.home), 1) for path in envs.values()})


def test_a_serving_agent_reads_its_cache_file_again_only_once_another_wrote_it(tmp_path, home):
    """Between requests a serving agent keeps the listing cache it read or wrote, and reads the file again only
    when another agent run has written it meanwhile. The referee is the kernel: strace records every open."""
    import shutil
    import subprocess
    import sys
    assert shutil.which("strace"), "strace is needed (tests/system-deps.sh installs it)"
    import os
    import time
    for number in range(3):
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(home / "venvs" / f"env{number}")],
                       check=True)
    past = time.time() - 60  # older than the agent's RACY_SECONDS, so that it caches them
    for folder, _, files in os.walk(home / "venvs"):
        for name in [*files, "."]:
            os.utime(os.path.join(folder, name), (past, past), follow_symlinks=False)
    cache = home / ".cache" / "envdesk" / "inventory.json"
    program = tmp_path / "agent.py"
    program.write_text(agent_script())
    trace = tmp_path / "trace.txt"
    settings = json.dumps({"roots": [str(home / "venvs")], "light": True})
    environment = {"HOME": str(home), "PATH": "/usr/bin:/bin"}
    agent = subprocess.Popen(["strace", "-f", "-qq", "-e", "trace=open,openat", "-o", str(trace), sys.executable,
                              "-S", str(program), json.dumps({"serve": {"idle": 60}})],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=environment)

    def ask() -> dict:
        agent.stdin.write(settings.encode() + b"\n")
        agent.stdin.flush()
        while True:
            line = agent.stdout.readline().decode()
            assert line, "the serving agent ended"
            if line.startswith(ANSWER_MARKER):
                return json.loads(line[len(ANSWER_MARKER):])

    def reads() -> int:
        return sum(f'"{cache}"' in line and "= -1" not in line for line in trace.read_text().splitlines())
    try:
        assert len(ask()["environments"]) == 3
        assert cache.exists()
        first = reads()
        for _ in range(3):
            assert len(ask()["environments"]) == 3
        assert reads() == first, "the serving agent read its cache file again though nobody wrote it"
        cache.write_bytes(cache.read_bytes().replace(b'"entries"', b'"entries" '))  # as another agent run would
        assert len(ask()["environments"]) == 3
        assert reads() == first + 1
    finally:
        agent.stdin.close()
        agent.wait(60)


def test_a_serving_agent_keeps_little_of_the_answers_it_sent():
    """What the agent keeps to tell an unchanged environment (SentAnswers) is small next to the answers: four
    whole listings of 500 environments of 100 packages, under a tenth of one answer (their texts: 8 MB).
    Referee: Python's own allocation tracing."""
    import tracemalloc

    from agent_fixtures import load_agent

    agent = load_agent(write=False)
    envs = [{"path": f"/home/me/envs/env{i}", "kind": "venv", "python": "3.11.7",
             "packages": [{"name": f"package-{j}", "version": f"1.{j}.0"} for j in range(100)]} for i in range(500)]
    answer_bytes = len(json.dumps(envs, separators=(",", ":")))
    tracemalloc.start()
    try:
        sent = agent.SentAnswers()
        lines = [sent.line({"roots": [f"/root{k}"]}, {"ok": True, "environments": [dict(env) for env in envs]})
                 for k in range(4)]
        # only what the agent's own code allocated: a test worker's other threads allocate meanwhile too
        by_agent = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, agent.__file__)])
        held = sum(trace.size for trace in by_agent.traces) - sum(sys.getsizeof(line) for line in lines)
    finally:
        tracemalloc.stop()
    assert answer_bytes > 2_000_000
    assert 0 < held < answer_bytes / 10, (held, answer_bytes)
    again = sent.line({"roots": ["/root3"], "since": json.loads(lines[3])["answer"]},
                      {"ok": True, "environments": [dict(env) for env in envs]})
    assert json.loads(again)["environments"] == [{"same": env["path"]} for env in envs]
