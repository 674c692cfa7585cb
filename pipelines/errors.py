"""Errors that end a CLI command with one line and exit code 2, in a module that imports nothing heavy (the CLI
catches them before it knows which command runs)."""

from __future__ import annotations


class InputError(Exception):
    """An input that cannot be read at all (missing path, unknown format, missing required column)."""
