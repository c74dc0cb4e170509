"""The one base of every error the user can fix (a bad key, a missing file, an unreachable server).

Its message is one line that names the culprit; the CLI prints it as `minimodel: error: ...` and exits 2.
Nothing else lives here (but how that line is written), so any layer (the MLflow glue too) can raise one without importing torch.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input: one line naming the key, file or address at fault."""


def one_line(message: str) -> str:
    """How the CLI prints a user error (and what a process that cannot raise one prints itself)."""
    return f"minimodel: error: {message}"
