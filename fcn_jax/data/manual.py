"""Manually downloaded datasets: check the directory before a builder reads it."""

import os


def require_manual_dir(directory: str, dataset: str, instructions: str) -> str:
    """Return ``directory`` if it exists and is not empty; else say where to put what."""
    if not os.path.isdir(directory) or not os.listdir(directory):
        state = "does not exist" if not os.path.exists(directory) else (
            "is not a directory" if not os.path.isdir(directory) else "is empty")
        raise FileNotFoundError(
            f"dataset {dataset!r} needs a manual download, but {directory} {state}. "
            f"{instructions} Then put the files in {directory} and run again")
    return directory
