"""A TCP proxy on loopback that delays every chunk by half a round trip in each direction.

The kernel here has no netem, so latency is injected in user space, in front of sshd. LatencyProxy runs in
the caller's process (on a thread); ProxyProcess runs one in a Python process of its own, so that a benchmark
of the app's own CPU does not count the proxy's (a real network costs the app no CPU):

    python latency_proxy.py TARGET_PORT RTT_SECONDS   # prints its port, serves until its stdin ends
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


class LatencyProxy:
    """Forwards 127.0.0.1:<port> to a target port, adding `rtt` seconds of round-trip delay."""

    def __init__(self, target_port: int, rtt: float) -> None:
        self.target_port = target_port
        self.delay = rtt / 2
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "LatencyProxy":
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            self._server.close()
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
        self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                await asyncio.sleep(max(0.0, due - self._loop.time()))
                if data is None:
                    writer.close()
                    return
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(deliver())
        while True:
            try:
                data = await reader.read(65536)
            except OSError:  # the peer reset the connection (a client ending at once): pass its end on
                data = b""
            await queue.put((self._loop.time() + self.delay, data or None))
            if not data:
                break
        await sender

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer),
                                 return_exceptions=True)
        except (asyncio.CancelledError, OSError):
            writer.close()


class ProxyProcess:
    """A LatencyProxy in a process of its own (this file run as a script): start, port and stop as its."""

    def __init__(self, target_port: int, rtt: float) -> None:
        self.target_port = target_port
        self.rtt = rtt
        self.port = 0
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> "ProxyProcess":
        self._process = subprocess.Popen([sys.executable, __file__, str(self.target_port), repr(self.rtt)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        self.port = int(self._process.stdout.readline())
        return self

    def stop(self) -> None:
        if self._process is None:
            return
        assert self._process.stdin is not None
        self._process.stdin.close()  # its end of input stops it
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def serve(argv: list[str]) -> int:
    """Run one proxy (TARGET_PORT RTT_SECONDS) until standard input ends; its port first on stdout."""
    proxy = LatencyProxy(int(argv[0]), float(argv[1])).start()
    print(proxy.port, flush=True)
    sys.stdin.read()
    proxy.stop()
    return 0


@contextmanager
def slow_cluster(rtt: float) -> Iterator[tuple[Any, Any]]:
    """The test bed with alpha reachable as the profile "slow" through the proxy: yields (bed, AppPaths)."""
    from envdesk.backend.config import ClusterProfile, ClusterStore
    from envdesk.backend.paths import AppPaths
    from testbed import TestBed

    bed = TestBed.start()
    alpha = bed.clusters["alpha"]
    proxy = LatencyProxy(alpha.port, rtt).start()
    try:
        paths = AppPaths(Path(os.environ["HOME"]) / "config")
        ClusterStore(paths).add(ClusterProfile(name="slow", **{**alpha.profile_fields(), "port": proxy.port}))
        paths.known_hosts_file.write_text(f"[127.0.0.1]:{proxy.port} {alpha.host_key_pub}\n")
        yield bed, paths
    finally:
        proxy.stop()
        bed.close()


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1:]))
