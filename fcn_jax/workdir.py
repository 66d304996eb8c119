"""The run directory: created and checked for writing before any work starts; JSON files
written into it atomically."""

import json
import os
import uuid


def ensure_writable(workdir: str) -> str:
    """Create ``workdir`` if needed and prove a file can be written there; else say why."""
    path = os.path.abspath(workdir)
    probe = os.path.join(path, f".write-test-{uuid.uuid4().hex}")
    try:
        os.makedirs(path, exist_ok=True)
        with open(probe, "w", encoding="utf-8") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as error:
        raise PermissionError(
            f"workdir {path} is not a writable directory ({type(error).__name__}: "
            f"{error.strerror or error}); pass a --workdir you can write to, or fix its "
            "permissions") from error
    return path


def write_text(path: str, text: str) -> None:
    """Write text atomically (a temporary file renamed into place)."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def write_json(path: str, payload) -> None:
    """Write JSON atomically (a temporary file renamed into place)."""
    write_text(path, json.dumps(payload, indent=2) + "\n")
