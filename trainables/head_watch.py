"""The Ray head lost mid-sweep: one line naming it and how to continue, exit 2, instead of Ray's abort.

A driver whose GCS (the head) stops answering is ended by Ray's core worker after
gcs_rpc_server_reconnect_timeout_s (60 s by default) with a C++ log line that points at a log file on
the lost head, exit 1. By then a sweep's state is on its storage already (finished trials in Tune's
experiment state and the stage cache, running ones at their last checkpoint), as after a killed
driver, and `--resume` continues from there. So the driver need not wait for Ray: this watcher
probes the GCS port and, once it has been unreachable for half of Ray's timeout, prints the line and
exits. A shorter outage (a network blip) is not reported.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time

from minimodel.errors import one_line

PROBE_EVERY_S = 5.0


def grace_s() -> float:
    """How long the GCS may be away before the driver stops: half of what Ray's processes wait for it
    (gcs_rpc_server_reconnect_timeout_s) before they end themselves."""
    return float(os.environ.get("RAY_gcs_rpc_server_reconnect_timeout_s", 60)) / 2


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=PROBE_EVERY_S):
            return True
    except OSError:
        return False


def watch(gcs_address: str, message: str) -> threading.Event:
    """Watch the GCS at host:port from a daemon thread; set the returned event to stop (before
    ray.shutdown, which stops a local head on purpose)."""
    stop = threading.Event()
    host, port = gcs_address.rsplit(":", 1)
    grace = grace_s()

    def loop() -> None:
        seen = time.monotonic()
        while not stop.wait(PROBE_EVERY_S):
            if _answers(host, int(port)):
                seen = time.monotonic()
            elif time.monotonic() - seen >= grace and not stop.is_set():
                sys.stdout.flush()
                sys.stderr.write(one_line(message) + "\n")
                sys.stderr.flush()
                os._exit(2)  # Ray's threads would wait for the GCS; everything kept is on the storage

    threading.Thread(target=loop, name="head-watch", daemon=True).start()
    return stop
