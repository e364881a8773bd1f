"""The baseline of the SSH benchmarks: what a script-savvy user writes without EnvDesk. One SSH connection
(paramiko, key login), then one exec per environment of a listing command, each answer parsed as JSON.

    python tests/bench/ssh_lister.py --port P --user U --key KEY --known-hosts FILE \
        --command '{env}/bin/python -m pip list --format json' ENV [ENV ...]

Prints one JSON line: {"connect": seconds, "execs": seconds, "packages": [count per env]}. Run it as a
process and time that too, and you have its whole-process figure (Python, paramiko, login included).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Listed:
    """What one baseline run did: seconds to log in, seconds for all the execs, packages per environment."""

    connect: float
    execs: float
    packages: list[int]


def list_over_ssh(port: int, user: str, key: str, known_hosts: str, command: str, envs: list[str]) -> Listed:
    """Connect once, run `command` (with {env} filled in) once per environment; times and package counts."""
    import paramiko

    began = time.perf_counter()
    client = paramiko.SSHClient()
    client.load_host_keys(known_hosts)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect("127.0.0.1", port=port, username=user, key_filename=key, allow_agent=False,
                   look_for_keys=False)
    connected = time.perf_counter()
    counts = []
    for env in envs:
        _stdin, stdout, stderr = client.exec_command(command.format(env=env))
        out = stdout.read()
        if stdout.channel.recv_exit_status() != 0:
            raise SystemExit(f"{command.format(env=env)} failed: {stderr.read().decode(errors='replace')}")
        counts.append(len(json.loads(out)))
    done = time.perf_counter()
    client.close()
    return Listed(connected - began, done - connected, counts)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--known-hosts", required=True)
    parser.add_argument("--command", required=True, help="shell command with {env} for the environment path")
    parser.add_argument("envs", nargs="+")
    args = parser.parse_args()
    print(json.dumps(asdict(list_over_ssh(args.port, args.user, args.key, args.known_hosts, args.command, args.envs))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
