"""The driver's watch on its Ray head (trainables/head_watch.py), against a real listening socket:
a head that stops answering ends the process with one line and exit 2; a head that answers does not."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

WATCHER = """
import sys, time
from trainables import head_watch
head_watch.PROBE_EVERY_S = 0.2
head_watch.watch(sys.argv[1], "ray: the head at " + sys.argv[1] + " stopped answering")
print("watching", flush=True)
time.sleep(float(sys.argv[2]))
print("outlived the watch", flush=True)
"""


def watcher(address: str, seconds: float) -> subprocess.Popen:
    # Ray's reconnect timeout of 2 s: the watch gives up after 1 s without the head
    return subprocess.Popen(
        [sys.executable, "-c", WATCHER, address, str(seconds)],
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"RAY_gcs_rpc_server_reconnect_timeout_s": "2", "PATH": ""},
    )


def test_a_head_that_stops_answering_ends_the_driver_with_one_line():
    head = socket.create_server(("127.0.0.1", 0))
    address = f"127.0.0.1:{head.getsockname()[1]}"
    process = watcher(address, 30)
    assert process.stdout.readline() == "watching\n"
    time.sleep(1.5)  # answering all along: nothing happens
    assert process.poll() is None
    head.close()
    out, err = process.communicate(timeout=20)
    assert process.returncode == 2 and "outlived" not in out
    assert err.strip().splitlines() == [f"minimodel: error: ray: the head at {address} stopped answering"]


def test_a_head_that_answers_is_left_alone():
    with socket.create_server(("127.0.0.1", 0)) as head:
        process = watcher(f"127.0.0.1:{head.getsockname()[1]}", 3)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0 and out.endswith("outlived the watch\n") and not err
