"""Errors that end a CLI command with one line and exit code 2, in a module that imports nothing heavy (the CLI
catches them before it knows which command runs), and the checks of command-line paths that raise them."""

from __future__ import annotations

import os


class InputError(Exception):
    """An input that cannot be read at all (missing path, unknown format, missing required column)."""


def check_output_folder(path: str | os.PathLike[str], option: str = "--output") -> None:
    """Refuse an output folder that cannot be one: the path, or a folder above it, is an existing file."""
    here = os.path.abspath(path)
    while True:
        if os.path.exists(here) and not os.path.isdir(here):
            where = "is" if here == os.path.abspath(path) else f"is inside {here}, which is"
            raise InputError(
                f"{option} {path} {where} an existing file, not a folder: choose another {option} "
                "or move the file away"
            )
        parent = os.path.dirname(here)
        if parent == here:
            return
        here = parent


def check_output_file(
    path: str | os.PathLike[str], suffixes: tuple[str, ...], option: str = "--output"
) -> None:
    """Refuse an output file whose extension is not one of `suffixes`, or that names an existing folder."""
    name = os.fspath(path)
    if not name.endswith(suffixes):
        raise InputError(
            f"{option} {name}: unknown file type; the name must end in {' or '.join(suffixes)} "
            "(the format written)"
        )
    if os.path.isdir(name):
        raise InputError(
            f"{option} {name} is an existing folder: name a file ending in {' or '.join(suffixes)}"
        )
    check_output_folder(os.path.dirname(os.path.abspath(name)), option)
