"""Command-line flags generated from a config dataclass, so scripts never list options by hand.

Nested dataclass fields become prefixed flags (``head.units`` → ``--head-units``). Values merge
as defaults ← ``--config run.json`` ← the flags actually given.
"""

from __future__ import annotations

import argparse
import json
import types
import typing
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path
from typing import Any

from emokeras.errors import ConfigError


def _leaf_fields(cls, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted name, type, default) of every leaf field; nested dataclasses are flattened."""
    hints = typing.get_type_hints(cls)
    leaves = []
    for f in fields(cls):
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        kind = hints[f.name]
        if is_dataclass(kind):
            leaves += _leaf_fields(kind, f"{prefix}{f.name}.")
        else:
            leaves.append((f"{prefix}{f.name}", kind, default))
    return leaves


def _parser_for(kind: Any, name: str):
    """A string-to-value function for one annotated type, and the choices if it is a Literal."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is typing.Literal:
        return str, list(args)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        allows_none = len(options) < len(args)
        inner = _parser_for(options[0], name)[0] if len(options) == 1 else str

        def parse_optional(text: str):
            if allows_none and text.lower() in ("none", "null", ""):
                return None
            return inner(text)

        return parse_optional, None
    if origin is tuple:
        item = args[0]
        item_parse = getattr(item, "parse", None) or _parser_for(item, name)[0]
        return (lambda text: tuple(item_parse(p) for p in text.split(",") if p.strip())), None
    if kind in (int, float, str):
        return kind, None
    raise TypeError(f"no command-line form for field {name!r} of type {kind!r}")


def add_config_arguments(parser: argparse.ArgumentParser, cls) -> None:
    """Add ``--config`` and one flag per leaf field of ``cls``; unset flags stay absent."""
    parser.add_argument(
        "--config", type=Path, help="JSON file of config values (flags given here override it)"
    )
    group = parser.add_argument_group(f"{cls.__name__} (defaults in brackets)")
    for name, kind, default in _leaf_fields(cls):
        flag = "--" + name.replace(".", "-").replace("_", "-")
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        if kind is bool:
            group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=f"[{shown}]")
            continue
        parse, choices = _parser_for(kind, name)
        group.add_argument(flag, dest=name, type=parse, choices=choices,
                           default=argparse.SUPPRESS, help=f"[{shown}]")


def config_from_arguments(args: argparse.Namespace, cls):
    """The config: defaults, then the ``--config`` file's values, then the flags given."""
    data: dict[str, Any] = {}
    if getattr(args, "config", None) is not None:
        try:
            data = json.loads(Path(args.config).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ConfigError(f"cannot read config file {str(args.config)!r}: {error}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {str(args.config)!r} must hold a JSON object")
    for name, _, _ in _leaf_fields(cls):
        if name in vars(args):
            target = data
            *parents, leaf = name.split(".")
            for parent in parents:
                target = target.setdefault(parent, {})
            target[leaf] = vars(args)[name]
    if hasattr(cls, "from_dict"):
        return cls.from_dict(data)
    # a flat config without its own from_dict (PrepareConfig)
    known = {name for name, _, _ in _leaf_fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown config keys {unknown}; known: {sorted(known)}")
    try:
        return cls(**data)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{cls.__name__}: {error}") from None
