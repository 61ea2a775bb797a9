"""The click options of `data-collector`, built from the settings' plain fields (no pydantic: --help
and every command's options load without it)."""

from __future__ import annotations

import types
import typing
from pathlib import Path

import click

from ..settings import FIELDS, CollectorSettings


def option(*decls: str, env: str | None = None, **kw):
    """click.option whose help line names its default and its environment variable."""
    kw.setdefault("show_default", True)
    if env:
        kw.update(envvar=env, show_envvar=True)
    return click.option(*decls, **kw)


def setting_option(field: str, param: str | None = None):
    """The click option of a settings field: its flag, environment variable, default, range and
    help all come from CollectorSettings (settings.py)."""
    info = FIELDS[field]
    flag = info.option
    kind, optional = _unwrap(info.kind)
    kw: dict = {"envvar": CollectorSettings.env_name(field), "show_envvar": True, "help": info.help,
                "show_default": info.shown or True}
    kw["default"] = info.factory if info.factory is not None else info.default
    decls = [flag]
    if kind is bool:
        if info.default:
            decls = [f"{flag}/--no-{flag[2:]}"]
        else:
            kw.update(is_flag=True, show_default=False)
    else:
        kw["type"] = _click_type(info, kind)
    return click.option(*decls, *([param] if param else []), **kw)


def _unwrap(annotation) -> tuple[object, bool]:
    """(the type, whether None is allowed) of `X | None`."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0], True
    return annotation, False


def _click_type(info, kind):
    bounds = dict(info.bounds)
    if kind is int:
        return click.IntRange(bounds.get("ge"), bounds.get("le"))
    if kind is float:
        low = bounds.get("ge", bounds.get("gt"))
        return click.FloatRange(low, bounds.get("le"), min_open="gt" in bounds)
    if typing.get_origin(kind) is typing.Literal:
        return click.Choice(typing.get_args(kind))
    if kind is Path:
        path = info.path
        return click.Path(path_type=Path, dir_okay=path != "file", file_okay=path != "dir")
    return click.STRING


def stack(f, opts):
    for o in reversed(opts):
        f = o(f)
    return f
