"""Sift's runtime core: what every stage runs on, and nothing that knows a stage.

Lake I/O, the one atomic writer (`atomic`), work folders with manifests and completion markers, output locks,
engine sessions, the side-worker helper, shared hashing primitives, errors and config loading. Imports no stage,
no CLI and no Dagster (an import-linter contract in pyproject.toml holds this).
"""
