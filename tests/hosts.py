"""Hosts on one machine: network namespaces joined by a bridge, each with its own address.

A host is a network namespace (`ip netns`) with a veth pair to a bridge this module creates; the
bridge carries one more address in the test's own namespace, so the test reaches every host and
nothing else. All hosts see the same file system (namespaces separate the network only), as nodes
on a shared file system do. Losing a host is killing every process in its namespace. Needs root
and iproute2.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


def unavailable() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if shutil.which("ip") is None:
        return "needs `ip` from iproute2 (apt-get install iproute2)"
    probe = f"mmprobe{os.getpid()}"
    try:
        _ip("netns", "add", probe)
    except subprocess.CalledProcessError as e:
        return f"`ip netns add` failed (needs root): {e.stderr.strip()}"
    _ip("netns", "del", probe)
    return None


@dataclass
class Hosts:
    """Namespaces named `names`, with addresses `addresses`; `gateway` is the test's own address."""

    tag: str
    names: list[str]
    addresses: list[str]
    gateway: str
    started: list[subprocess.Popen] = field(default_factory=list)

    def popen(self, host: int, argv: list[str], env: dict, log) -> subprocess.Popen:
        """A process on a host (its own session, so it can be ended alone)."""
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.names[host], *argv], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.started.append(process)
        return process

    def run(self, host: int, argv: list[str], env: dict, timeout: float) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.names[host], *argv], env=env, capture_output=True, text=True, timeout=timeout)

    def kill(self, host: int) -> int:
        """SIGKILL every process of a host (the machine is lost); returns how many."""
        listed = subprocess.run(["ip", "netns", "pids", self.names[host]], capture_output=True, text=True, timeout=30)
        pids = [int(p) for p in listed.stdout.split()]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(pids)

    def alive(self, host: int) -> int:
        listed = subprocess.run(["ip", "netns", "pids", self.names[host]], capture_output=True, text=True, timeout=30)
        return len(listed.stdout.split())


def create(n: int) -> Hosts:
    """n hosts on a fresh /24 of 10.0.0.0/8 (random, so two test runs do not share one); tear down
    with destroy() even when this fails half-way."""
    tag = f"{os.getpid() % 100000}"
    subnet = f"10.{random.randint(100, 250)}.{random.randint(0, 255)}"
    hosts = Hosts(tag, [f"mm{tag}h{i}" for i in range(n)], [f"{subnet}.{i + 1}" for i in range(n)], f"{subnet}.254")
    bridge = f"mm{tag}br"
    try:
        _ip("link", "add", bridge, "type", "bridge")
        _ip("addr", "add", f"{hosts.gateway}/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for i, (name, address) in enumerate(zip(hosts.names, hosts.addresses)):
            outside, inside = f"mm{tag}v{i}", f"mm{tag}p{i}"
            _ip("netns", "add", name)
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", inside, "netns", name)
            _ip("link", "set", outside, "master", bridge, "up")
            _ip("-n", name, "addr", "add", f"{address}/24", "dev", inside)
            _ip("-n", name, "link", "set", inside, "up")
            _ip("-n", name, "link", "set", "lo", "up")
    except BaseException:
        destroy(hosts)
        raise
    return hosts


def destroy(hosts: Hosts) -> None:
    """Every process in the namespaces killed, then the namespaces and the bridge removed."""
    for i in range(len(hosts.names)):
        if os.path.exists(f"/run/netns/{hosts.names[i]}"):
            hosts.kill(i)
    for process in hosts.started:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    deadline = time.time() + 30
    for i, name in enumerate(hosts.names):
        while os.path.exists(f"/run/netns/{name}") and hosts.alive(i) and time.time() < deadline:
            hosts.kill(i)
            time.sleep(0.2)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
    subprocess.run(["ip", "link", "del", f"mm{hosts.tag}br"], capture_output=True, timeout=30)
