"""Typed configuration, one model per stage, read the same way by the CLI, the Dagster assets and the tests.

A stage's model subclasses `StageConfig` and names its stage once, in its class statement
(`class DedupConfig(StageConfig, stage="dedup")`): defining the class registers it, and `load_config(DedupConfig)`
returns a `DedupConfig`. The core knows a stage only once its config module has been imported; the `sift` command
and the Dagster Definitions import every installed stage (pipelines/stages.py), so their checks of TOML tables and
environment variables, and `sift config show`, see every stage.

Precedence, lowest first: the model's defaults (which follow the papers) < a TOML file (`sift.toml` in the working
directory, or `SIFT_CONFIG`, or `--config`), one table per stage (`[ingest]`, `[dedup]`, ...) < environment variables
`SIFT_<STAGE>__<FIELD>` (e.g. `SIFT_DEDUP__THRESHOLD=0.85`) < CLI flags or Dagster run config.
Every value is validated by pydantic; a bad value, an unknown key or an unknown stage stops with a message naming
the stage, the field, the source (file, environment variable or flag) and, for numbers, the allowed range. Every
stage's model forbids unknown keys and non-finite numbers (NaN, inf).
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import annotated_types
import pydantic
from pydantic import BaseModel, Field

from sift.pipelines.core.engines import ENGINES


class ConfigError(ValueError):
    """A configuration value that does not validate; the message says where it came from."""


_STAGES: dict[str, type[StageConfig]] = {}


class StageConfig(BaseModel):
    """Base of every stage's config model: unknown keys and non-finite numbers (NaN, inf) are refused, and a
    subclass that names its stage (`class XConfig(StageConfig, stage="x")`) is registered under that name: its
    TOML table `[x]`, its environment variables `SIFT_X__<FIELD>` and its section of `sift config show`."""

    # an unknown key is a typo that would otherwise run with the default; NaN/inf pass no range check
    model_config = pydantic.ConfigDict(extra="forbid", allow_inf_nan=False)

    stage: ClassVar[str] = ""

    def __init_subclass__(cls, stage: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if stage is not None:
            cls.stage = stage
            _STAGES[stage] = cls


C = TypeVar("C", bound=StageConfig)


def stages() -> dict[str, type[StageConfig]]:
    """The registered stages by name, in the order their config models were defined."""
    return dict(_STAGES)


class LakeConfig(StageConfig, stage="lake"):
    """Where the lake lives and which engine runs the plans."""

    root: str = Field(".sift/lake", description="Lake root: a local folder or any fsspec URL.")
    engine: Literal["polars", "spark"] = Field("polars", description="Engine for the plans: polars or spark.")
    spark_master: str | None = Field(
        None, description="Spark master: local[*], spark://host:7077 or sc://host:15002 (default local[*])."
    )


class SparkConfig(StageConfig, stage="spark"):
    """Spark settings of the sessions Sift starts (runtime, not a stage): they override the cluster's
    `spark-defaults.conf` and are overridden by `--spark-conf key=value` flags; Sift's own two (Arrow on, UTC) win."""

    conf: dict[str, str] = Field(
        default_factory=dict,
        description='Spark properties, e.g. {"spark.executor.memory" = "8g"} or a [spark.conf] table.',
    )

    @pydantic.field_validator("conf", mode="before")
    @classmethod
    def _flatten(cls, value: Any) -> Any:
        """Accept a TOML table (nested by unquoted dotted keys: `spark.sql.x = 3` under `[spark.conf]`), and from
        the environment (`SIFT_SPARK__CONF`) a JSON object or comma-separated `key=value` pairs; numbers and
        booleans become the strings Spark reads."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("{"):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"not a JSON object ({exc})") from exc
            else:
                value = dict(spark_pair(part) for part in text.split(",") if part.strip())
        if not isinstance(value, dict):
            return value
        flat: dict[str, Any] = {}

        def walk(prefix: str, node: dict[str, Any]) -> None:
            for key, item in node.items():
                name = f"{prefix}.{key}" if prefix else str(key)
                if isinstance(item, dict):
                    walk(name, item)
                elif isinstance(item, bool):
                    flat[name] = "true" if item else "false"
                elif isinstance(item, int | float):
                    flat[name] = str(item)
                else:
                    flat[name] = item

        walk("", value)
        return flat


def spark_pair(text: str) -> tuple[str, str]:
    """`key=value` as (key, value), both stripped; anything else is a ValueError saying what is expected."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"{text.strip()!r} is not key=value (e.g. spark.executor.memory=8g)")
    return key.strip(), value.strip()


def config_file(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The TOML file in force: `explicit`, else SIFT_CONFIG, else ./sift.toml if it exists."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        return path
    env = os.environ.get("SIFT_CONFIG")
    if env:
        return config_file(env)
    local = Path("sift.toml")
    return local if local.is_file() else None


def _read_toml(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc


def _check_stages(path: Path | None, data: dict[str, Any]) -> None:
    """A TOML table or `SIFT_<STAGE>__<FIELD>` variable for a stage that does not exist is a typo, not a no-op."""
    known = ", ".join(f"[{s}]" for s in _STAGES)
    for name in data:
        if name not in _STAGES:
            raise ConfigError(f"{path}: unknown table [{name}] (stages: {known})")
    for key in os.environ:
        if key.startswith("SIFT_") and "__" in key:
            name = key[len("SIFT_") :].split("__", 1)[0].lower()
            if name not in _STAGES:
                raise ConfigError(f"{key}: unknown stage '{name}' (stages: {known})")


def _env_values(stage: str, model: type[BaseModel]) -> dict[str, Any]:
    prefix = f"SIFT_{stage.upper()}__"
    values: dict[str, Any] = {}
    for key, value in os.environ.items():
        if key.startswith(prefix):
            name = key[len(prefix) :].lower()
            if name not in model.model_fields:
                raise ConfigError(
                    f"{key}: [{stage}] {name} is an unknown key (fields: {', '.join(model.model_fields)})"
                )
            values[name] = value
    return values


def load_config(
    model: type[C], overrides: dict[str, Any] | None = None, *, file: str | os.PathLike[str] | None = None
) -> C:
    """The effective config of one stage: defaults < TOML < environment < overrides (None values ignored)."""
    stage = model.stage
    if _STAGES.get(stage) is not model:
        raise ConfigError(f"{model.__name__} is not a registered stage config (stages: {', '.join(_STAGES)})")
    path = config_file(file)
    toml = _read_toml(path)
    _check_stages(path, toml)
    layers = [
        (str(path) if path else "config file", toml.get(stage, {})),
        ("environment", _env_values(stage, model)),
        ("command line", {k: v for k, v in (overrides or {}).items() if v is not None}),
    ]
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for where, layer in layers:
        if not isinstance(layer, dict):
            raise ConfigError(f"{where}: [{stage}] must be a table")
        for k, v in layer.items():
            merged[k] = v
            origin[k] = where
    try:
        return model.model_validate(merged)
    except pydantic.ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else ""
            name = ".".join(str(p) for p in err["loc"]) or stage
            where = origin.get(field, "default")
            if where == "command line":
                where = f"command line --{field.replace('_', '-')}"
            if err["type"] == "extra_forbidden":
                problems.append(
                    f"[{stage}] {name} ({where}): unknown key (fields: {', '.join(model.model_fields)})"
                )
                continue
            allowed = _allowed(model.model_fields.get(field))
            if allowed and err["type"] in _BOUND_ERRORS:
                why = f"must be {allowed}"
            elif allowed:
                why = f"must be {allowed} ({err['msg']})"
            else:
                why = err["msg"]
            problems.append(f"[{stage}] {name} = {err.get('input')!r} ({where}): {why}")
        raise ConfigError("; ".join(problems)) from exc


_BOUND_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def _allowed(info: pydantic.fields.FieldInfo | None) -> str:
    """The range of a numeric field in words ("a number between 0 and 1, 0 excluded"), or "" for other fields."""
    if info is None:
        return ""
    args = getattr(info.annotation, "__args__", (info.annotation,))
    if float in args:
        kind, fmt = "a number", (lambda v: f"{v:g}")
    elif int in args and bool not in args:
        kind, fmt = "an integer", str
    else:
        return ""
    low: annotated_types.SupportsGt | annotated_types.SupportsGe | None = None
    high: annotated_types.SupportsLt | annotated_types.SupportsLe | None = None
    low_open = high_open = False
    for m in info.metadata:
        if isinstance(m, annotated_types.Gt):
            low, low_open = m.gt, True
        elif isinstance(m, annotated_types.Ge):
            low = m.ge
        elif isinstance(m, annotated_types.Lt):
            high, high_open = m.lt, True
        elif isinstance(m, annotated_types.Le):
            high = m.le
    if low is not None and high is not None:
        excluded = [fmt(v) for v, is_open in ((low, low_open), (high, high_open)) if is_open]
        tail = f", {' and '.join(excluded)} excluded" if excluded else ""
        return f"{kind} between {fmt(low)} and {fmt(high)}{tail}"
    if low is not None:
        return f"{kind} {'>' if low_open else '>='} {fmt(low)}"
    if high is not None:
        return f"{kind} {'<' if high_open else '<='} {fmt(high)}"
    return "a finite number" if kind == "a number" else ""


def effective_config(file: str | os.PathLike[str] | None = None) -> dict[str, dict[str, Any]]:
    """Every registered stage's effective config, for `sift config show`."""
    return {stage: load_config(model, file=file).model_dump(mode="json") for stage, model in stages().items()}


def engine_choice(engine: str | None, spark_master: str | None) -> tuple[str, str | None]:
    """Resolve the engine and master from flags over config; a spark master implies the Spark engine."""
    lake = load_config(LakeConfig, {"engine": engine, "spark_master": spark_master})
    name: str = lake.engine
    if spark_master and engine is None:
        name = "spark"
    if name not in ENGINES:
        raise ConfigError(f"unknown engine {name!r}")
    return name, lake.spark_master
