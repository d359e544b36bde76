"""A real two-node Ray cluster (head + worker, separate `ray start` processes) on loopback only.

Ray advertises the machine's outward address whenever it has one, so the nodes and the client run
inside a fresh network namespace whose only interface is loopback (`ip netns`, needs root).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

RAY = str(Path(sys.executable).with_name("ray"))


def namespace_or_skip() -> str:
    if shutil.which("ip") is None or os.geteuid() != 0:
        pytest.skip("needs root and iproute2 to make a loopback-only network namespace for Ray")
    name = f"sslaudit-{uuid.uuid4().hex[:8]}"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot create a network namespace ({r.stderr.strip()}): Ray tests need one to stay on loopback")
    subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
    return name


def in_ns(ns: str, *cmd: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *cmd]


class Cluster:
    def __init__(self, tmp: Path, port: int = 6390):
        self.ns = namespace_or_skip()
        self.address = f"127.0.0.1:{port}"
        self.tmp = tmp
        # Ray's socket paths live under --temp-dir and must stay under 107 bytes: a short folder
        self.ray_tmp = Path(tempfile.mkdtemp(prefix="sslray-", dir="/tmp"))
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1", "RAY_DEDUP_LOGS": "0"}
        common = ["--num-cpus", "1", "--object-store-memory", "150000000", "--disable-usage-stats", "--node-ip-address", "127.0.0.1"]
        self.head = subprocess.Popen(
            in_ns(self.ns, RAY, "start", "--head", "--port", str(port), "--include-dashboard", "false", "--temp-dir", str(self.ray_tmp), "--block", *common),
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._wait_nodes(1)
        self.worker = subprocess.Popen(
            in_ns(self.ns, RAY, "start", "--address", self.address, "--temp-dir", str(self.ray_tmp), "--block", *common),
            env=self.env,
            stdout=open(tmp / "worker.log", "w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_nodes(2)

    def _wait_nodes(self, n: int, timeout: float = 240) -> None:
        code = f"import ray; ray.init(address='{self.address}', logging_level='ERROR', log_to_driver=False); print(len([x for x in ray.nodes() if x['Alive']]))"
        deadline = time.time() + timeout
        while time.time() < deadline:
            r = subprocess.run(in_ns(self.ns, sys.executable, "-c", code), capture_output=True, text=True, env=self.env)
            if r.returncode == 0 and r.stdout.strip().splitlines() and int(r.stdout.strip().splitlines()[-1]) >= n:
                return
            time.sleep(1)
        self.stop()
        pytest.fail(f"the Ray cluster did not reach {n} node(s) in {timeout} s")

    def run_client(self, script: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        path = self.tmp / f"client_{uuid.uuid4().hex[:6]}.py"
        path.write_text(script)
        return subprocess.run(in_ns(self.ns, sys.executable, str(path), *args), capture_output=True, text=True, env=self.env, timeout=timeout)

    def stop(self) -> None:
        for proc in (getattr(self, "worker", None), getattr(self, "head", None)):
            if proc is not None and proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        # every process left in the namespace is this cluster's (never `ray stop`: it would also
        # stop other Ray clusters on the machine)
        pids = subprocess.run(["ip", "netns", "pids", self.ns], capture_output=True, text=True).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
        shutil.rmtree(getattr(self, "ray_tmp", ""), ignore_errors=True)
