"""Typed configs: dataclasses whose defaults are the paper's settings, loaded from YAML, strict on unknown keys.

    cfg = load_config(RecommenderTrainConfig, "configs/recommender/ecr-fast.yaml", ["train.lr=1e-3"])

A YAML file may start with `extends: other.yaml` (a path relative to it; chains allowed): it then states only what
differs from that file, deep-merged over it (mappings merge key by key, lists and values replace). `key.sub=value`
overrides are one more such layer, their values read as YAML (`systems=[a, b]`). OmegaConf does the reading and the
merging (its `${...}` interpolation is not used: such text stays as written); `from_dict` then builds the
dataclass, so an unknown key or a wrong type is a one-line `ConfigError` naming the key and the file that set it.

Every run writes its resolved config beside its outputs (`save_config`), so an artifact says how it was made.
"""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ecrs.errors import EcrsError

T = TypeVar("T")


class ConfigError(EcrsError):
    pass


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} does not fit {tp}")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{where}: {value!r} is not one of {typing.get_args(tp)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (inner, *_) = typing.get_args(tp) or (Any,)
        items = [_coerce(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        key_type, value_type = typing.get_args(tp) or (Any, Any)
        return {_coerce(key_type, k, where): _coerce(value_type, v, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build dataclass `cls` from a mapping; unknown keys raise (naming the key and the valid ones)."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (valid: {', '.join(sorted(fields))})")
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ValueError as e:  # a dataclass's own check of its values (__post_init__)
        raise ConfigError(f"{where}: {e}") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _file_layers(path: Path, chain: tuple[Path, ...] = ()) -> list[tuple[str, DictConfig]]:
    """(file, its mapping) for `path` and the files it extends, the furthest parent first."""
    if path.resolve() in chain:
        names = " -> ".join(p.name for p in (*chain, path.resolve()))
        raise ConfigError(f"{path}: extends cycle ({names})")
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        node = OmegaConf.load(path)
    except (yaml.YAMLError, OSError, OmegaConfBaseException) as e:
        raise ConfigError(f"{path}: invalid YAML ({_first_line(e)})") from None
    if not isinstance(node, DictConfig):
        raise ConfigError(f"{path}: top level must be a mapping")
    parent = node.pop("extends", None)
    if parent is None:
        return [(str(path), node)]
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: extends must name one YAML file, got {parent!r}")
    if not (path.parent / parent).exists():
        raise ConfigError(f"{path}: extends {parent!r}, which is not found (the path is relative to this file)")
    return [*_file_layers(path.parent / parent, (*chain, path.resolve())), (str(path), node)]


def _merged(layers: list[tuple[str, DictConfig]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(layer's name, the mapping of every layer up to and with it), layer by layer."""
    merged = OmegaConf.create()
    for where, node in layers:
        try:
            merged = OmegaConf.merge(merged, node)
        except (OmegaConfBaseException, TypeError, ValueError) as e:  # e.g. a list merged over a mapping
            raise ConfigError(f"{where}: {_first_line(e)}") from None
        yield where, OmegaConf.to_container(merged)


def read_config(path: str | Path) -> dict[str, Any]:
    """The mapping a YAML file states, its `extends` chain merged in (no class, no defaults: for tools that need a
    key or two without importing the config's module)."""
    *_, (_, data) = _merged(_file_layers(Path(path)))
    return data


def _override_layer(overrides: list[str]) -> DictConfig:
    layer = OmegaConf.create()
    for o in overrides:  # one at a time, so that an error names its override
        if "=" not in o:
            raise ConfigError(f"override {o!r} must look like key.sub=value")
        try:
            layer.merge_with(OmegaConf.from_dotlist([o]))
        except (yaml.YAMLError, OmegaConfBaseException, TypeError, ValueError) as e:
            raise ConfigError(f"--set {o}: {_first_line(e)}") from None
    return layer


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Defaults of `cls`, updated by a YAML file (and the files it extends), then by `key.sub=value` overrides.
    Each layer is checked as it is merged in, so an error names the file (or `--set`) that brought it."""
    # The defaults are the first layer, so that a file or an override may change one key of a mapping-valued field
    # (`--set model.weights.liked=3`) and the rest of it stays.
    layers = [("config", OmegaConf.create(to_dict(from_dict(cls, {}, "config"))))]
    layers += _file_layers(Path(path)) if path is not None else []
    if overrides:
        layers.append(("--set", _override_layer(overrides)))
    for where, data in _merged(layers):
        cfg = from_dict(cls, data, where)
    return cfg


def _flat(data: dict[str, Any], prefix: str = "") -> list[str]:
    """{"a": {"b": None}} -> ["a.b=null"]: each key with its value written as `--set` reads it back."""
    out = []
    for k, v in data.items():
        if isinstance(v, dict) and v:
            out += _flat(v, f"{prefix}{k}.")
        else:
            text = yaml.safe_dump(v, default_flow_style=True, width=float("inf")).strip()
            out.append(f"{prefix}{k}={text.removesuffix('...').strip()}")  # a scalar document ends "..."
    return out


def add_config_arguments(p: argparse.ArgumentParser, cls: type, example: str = "") -> None:
    """`--config FILE.yaml` and repeatable `--set key.sub=value`, the options of every config-driven command, read
    by `load_config(cls, args.config, args.set)`; `--help` lists the keys with their defaults."""
    p.add_argument("--config", metavar="FILE.yaml",
                   help=f"YAML file with {cls.__name__} keys (it may `extends:` another)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, the value read as YAML" + (f"; e.g. {example}" if example else ""))
    p.epilog = (f"{cls.__name__} keys ({cls.__module__}), with their defaults: "
                + ", ".join(_flat(to_dict(cls()))))


def save_config(cfg: Any, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
