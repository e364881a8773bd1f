#!/usr/bin/env bash
# Test what users install: build the wheel, install it (not editable) with its test extra into a
# fresh virtual environment, import every module from that copy, then run the suite against it.
# Arguments are passed to pytest. The venv is .venv-test unless ENVDESK_TEST_VENV names another.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${ENVDESK_TEST_VENV:-$PWD/.venv-test}"
dist="$(mktemp -d)"
trap 'rm -rf "$dist"' EXIT
python3 -m venv --clear "$venv"
python="$venv/bin/python"
constraints="$PWD/tests/ci-constraints.txt"
"$python" -m pip install -q --disable-pip-version-check -c "$constraints" pip
"$python" -m pip wheel -q --disable-pip-version-check --no-deps -w "$dist" .
rm -rf build ./*.egg-info
wheel=("$dist"/envdesk-*.whl)
"$python" -m pip install -q --disable-pip-version-check -c "$constraints" "${wheel[0]}[test]"
"$python" tests/tools/import_all.py
export PATH="$venv/bin:$PATH" ENVDESK_TESTS_ON_WHEEL=1
# one worker more than the cores (at most five), each with its own test bed; a file's tests stay together.
# Most tests wait on the test bed (sshd, installers, Slurm), not on the CPU: on 2 cores, 3 workers took
# 12.5 minutes where 2 took 16 in the same conditions.
# A worker that crashes ends the run (--max-worker-restart 0): pytest-xdist 3.8 can otherwise wait forever
# after replacing it under --dist loadfile (pytest-dev/pytest-xdist#1378), as a CI run did until its time ran out.
workers=$("$python" -c 'import os; print(min((os.cpu_count() or 1) + 1, 5))')
exec "$python" -m pytest -n "$workers" --dist loadfile --max-worker-restart 0 "$@"
