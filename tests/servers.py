"""Throw-away redis-server processes on loopback ports, owned by the tests."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import time

import redis

REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_cluster_port() -> int:
    """A free port whose cluster bus port (the port + 10000) is free and valid too."""
    for _ in range(1000):
        port = random.randrange(20000, 30000)
        if _is_free(port) and _is_free(port + 10000):
            return port
    raise RuntimeError("no free pair of ports for a cluster node")


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class RedisServer:
    """A redis-server on 127.0.0.1 that a test can stop and start again on the same port."""

    started_urls: set[str] = set()  # every server the suite started, for a test of its own

    def __init__(self, port: int | None = None, *extra_args: str) -> None:
        if REDIS_SERVER is None:
            raise RuntimeError("redis-server is not installed")
        self.port = port or free_port()
        self.extra_args = extra_args
        self.directory = tempfile.mkdtemp(prefix="pa-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        assert REDIS_SERVER is not None
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.directory,
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.02)
            finally:
                client.close()
        RedisServer.started_urls.add(self.url)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def reachable(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


class LocalCluster:
    """A Redis Cluster of `masters` redis-server processes on loopback ports, no replicas.

    `start()` returns once every node reports `cluster_state:ok` and agrees on who owns
    each slot; `cleanup()` kills the processes and removes their directories.
    """

    def __init__(self, masters: int = 3, ports: list[int] | None = None) -> None:
        ports = ports or [free_cluster_port() for _ in range(masters)]
        self.nodes = [RedisServer(port, "--cluster-enabled", "yes") for port in ports]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def start(self) -> LocalCluster:
        try:
            for node in self.nodes:
                node.start()
            create_cluster(self.ports)
        except BaseException:
            self.cleanup()
            raise
        return self

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def create_cluster(ports: list[int], timeout: float = 30) -> None:
    """Join fresh cluster-enabled servers into one cluster and wait until it is usable."""
    redis_cli = shutil.which("redis-cli")
    if redis_cli is None:
        raise RuntimeError("redis-cli is not installed")
    addresses = [f"127.0.0.1:{port}" for port in ports]
    subprocess.run(
        [redis_cli, "--cluster", "create", *addresses, "--cluster-yes"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=timeout,
    )
    wait_for_cluster(ports, timeout)


def wait_for_cluster(ports: list[int], timeout: float = 30) -> None:
    """Wait until every node says `cluster_state:ok` and all see the same slot owners."""
    deadline = time.monotonic() + timeout
    while True:
        states, maps = [], []
        for port in ports:
            client = redis.Redis(port=port, decode_responses=True)
            try:
                states.append(client.cluster("INFO")["cluster_state"])
                maps.append(sorted(map(str, client.cluster("SLOTS"))))
            except redis.RedisError:
                states.append("down")
            finally:
                client.close()
        if all(state == "ok" for state in states) and all(m == maps[0] for m in maps):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the cluster on ports {ports} did not become ready: {states}")
        time.sleep(0.1)
