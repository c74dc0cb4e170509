"""The environment a user's shell hands `minimodel`, for tests that start it as its own process.

An in-process CLI call earlier in the same pytest worker (run_cli("sweep", ...)) leaves the driver's
log knobs (trainables/logs.py, quiet_driver) in os.environ; a subprocess would inherit them, and a test
of what the CLI's own output holds would pass whether or not the CLI sets them itself.
"""

from __future__ import annotations

import os

from trainables import logs


def user_env(**extra: str) -> dict[str, str]:
    """os.environ less the driver's knobs and TQDM_DISABLE (the driver decides: no terminal, no bars)."""
    saved = dict(os.environ)
    try:  # what quiet_driver sets, read from an empty environment
        os.environ.clear()
        logs.quiet_driver(verbose=False)
        knobs = set(os.environ)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return {**{k: v for k, v in os.environ.items() if k not in knobs | {"TQDM_DISABLE"}}, **extra}
