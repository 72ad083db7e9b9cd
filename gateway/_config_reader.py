"""Typed reading of parsed TOML tables, collecting every problem instead of stopping at the first.

The schema itself is in gateway/config.py; this is the part that knows TOML types, dotted key
paths and how to word an error. Every message is `path: what is wrong: what to do`.
"""

from __future__ import annotations

import difflib
import json
import posixpath
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T", int, str)


class ConfigError(Exception):
    """The configuration is unusable. `messages` holds one line per problem, each starting with
    the key's dotted path; str() gives them one per line, prefixed with `source` (the file)."""

    def __init__(self, messages: Iterable[str], source: str | None = None) -> None:
        self.messages = tuple(messages)
        self.source = source
        super().__init__(*self.messages)

    def __str__(self) -> str:
        prefix = f"{self.source}: " if self.source else ""
        return "\n".join(prefix + m for m in self.messages)


def toml_text(value: object) -> str:
    """A value as it would be written in TOML, for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "an array"
    return str(value)


def _describe(value: object) -> str:
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "text"}.get(type(value))
    if kind is None:  # tables, arrays, dates: toml_text names the kind already
        return "a date/time" if not isinstance(value, Mapping | list | tuple) else toml_text(value)
    return f"{toml_text(value)} ({kind})"


def _parents(path: str) -> list[str]:
    """The paths of the tables holding path: nodes[2].key -> nodes[2], nodes."""
    return [path[: m.start()] for m in re.finditer(r"[.\[]", path)]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class Reader:
    """Reads keys out of tables. A bad or missing value records an error and returns a
    placeholder, so reading goes on; `errors` is non-empty when anything was wrong, and ok(path)
    tells whether a key's own value was good (cross-checks skip the ones that were not)."""

    def __init__(self, check_paths: bool = True) -> None:
        self.check_paths = check_paths
        self.errors: list[str] = []
        self._bad: set[str] = set()

    def error(self, path: str, message: str) -> None:
        """Record a problem with the value at path, unless a table holding it is bad already
        (then the message would only repeat that one)."""
        if self._bad.isdisjoint(_parents(path)):
            self.errors.append(f"{path}: {message}")
        self._bad.add(path)

    def ok(self, path: str) -> bool:
        return path not in self._bad

    @staticmethod
    def suggest(word: str, known: Iterable[str]) -> str:
        close = difflib.get_close_matches(word, list(known), n=1)
        return f" (did you mean {toml_text(close[0])}?)" if close else ""

    # Tables and arrays of tables.

    def table(
        self, value: object, path: str, known: Sequence[str] | None, *, required: bool = False
    ) -> Mapping[str, Any]:
        """value as a table, {} when it is missing or not one. With `known`, every other key is
        an error that lists the known ones."""
        if value is None:
            if required:
                self.error(path, f"required: add a [{path}] table")
            return {}
        if not isinstance(value, Mapping):
            self.error(path, f"{_describe(value)} is not a table: write it as a [{path}] table")
            return {}
        if known is not None:
            self.check_keys(value, path, known)
        return value

    def check_keys(
        self, table: Mapping[str, Any], path: str, known: Sequence[str], ignore: Sequence[str] = ()
    ) -> None:
        """An error for each key of table that is neither known nor to be ignored."""
        for key in table:
            if key not in known and key not in ignore:
                self.error(
                    _join(path, key),
                    f"unknown key{self.suggest(key, known)}: remove it or use one of the keys "
                    f"known here: {', '.join(known)}",
                )

    def array(
        self, table: Mapping[str, Any], key: str, header: str
    ) -> Iterator[tuple[Mapping[str, Any], str]]:
        """The tables of an array of tables, at least one, with their paths (`nodes[2]`)."""
        value = table.get(key)
        if value is None or (isinstance(value, list) and not value):
            self.error(key, f"required: add at least one {header} table")
            return
        if not isinstance(value, list):
            self.error(key, f"{_describe(value)} is not an array of tables: write each as {header}")
            return
        for i, item in enumerate(value):
            if isinstance(item, Mapping):
                yield item, f"{key}[{i}]"
            else:
                self.error(f"{key}[{i}]", f"{_describe(item)} is not a table: write it as {header}")

    # Values.

    def _get(
        self,
        t: Mapping[str, Any],
        path: str,
        key: str,
        types: tuple[type, ...],
        what: str,
        example: str,
        required: bool,
    ) -> Any:
        """The value, or None when it is missing (an error if required) or of the wrong type."""
        p = _join(path, key)
        if key not in t:
            if required:
                self.error(p, f"required: add {key} = {example}")
            return None
        value = t[key]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            self.error(p, f"{_describe(value)} is not {what}: write e.g. {key} = {example}")
            return None
        return value

    def text(
        self,
        t: Mapping[str, Any],
        path: str,
        key: str,
        example: str,
        *,
        required: bool = False,
        default: str = "",
        pattern: re.Pattern[str] | None = None,
        rule: str = "",
    ) -> str:
        """Text; an optional key given as "" counts as not given (default)."""
        value = self._get(t, path, key, (str,), "text", example, required)
        if value is None:
            return default
        if not value.strip():
            if required:
                self.error(_join(path, key), f"is empty: write e.g. {key} = {example}")
            return default
        if pattern is not None and not pattern.fullmatch(value):
            self.error(_join(path, key), f"{toml_text(value)} is not allowed: {rule}")
            return default
        return str(value)

    def integer(
        self,
        t: Mapping[str, Any],
        path: str,
        key: str,
        lo: int,
        hi: int,
        *,
        default: int | None = None,
        example: str = "",
        zero_ok: bool = False,
        why: str = "",
    ) -> int:
        """An integer in lo..hi (or 0 with zero_ok); required when there is no default."""
        example = example or str(lo if default is None else default)
        value = self._get(t, path, key, (int,), "an integer", example, default is None)
        if value is None:
            return default or 0
        if not (lo <= value <= hi or (zero_ok and value == 0)):
            allowed = f"0 or {lo}..{hi}" if zero_ok else f"{lo}..{hi}"
            self.error(_join(path, key), f"{value} is out of range: use {allowed}{why}")
            return default or 0
        return int(value)

    def number(
        self,
        t: Mapping[str, Any],
        path: str,
        key: str,
        lo: float,
        hi: float,
        *,
        default: float,
        why: str = "",
    ) -> float:
        """A number (integer or float) in lo..hi."""
        value = self._get(t, path, key, (int, float), "a number", f"{default:g}", False)
        if value is None:
            return default
        if not lo <= value <= hi:  # also catches nan
            self.error(_join(path, key), f"{value} is out of range: use {lo:g}..{hi:g}{why}")
            return default
        return float(value)

    def boolean(self, t: Mapping[str, Any], path: str, key: str, *, default: bool) -> bool:
        value = self._get(t, path, key, (bool,), "true or false", toml_text(not default), False)
        return default if value is None else bool(value)

    def choice(
        self,
        t: Mapping[str, Any],
        path: str,
        key: str,
        choices: tuple[T, ...],
        example: str,
        *,
        default: T | None = None,
    ) -> T | None:
        """One of choices; None when required and missing, or not one of them."""
        kinds = (str,) if isinstance(choices[0], str) else (int,)
        what = "text" if kinds == (str,) else "an integer"
        value = self._get(t, path, key, kinds, what, example, default is None)
        if value is None:
            return default if key not in t else None
        if value not in choices:
            allowed = ", ".join(toml_text(c) for c in choices)
            self.error(
                _join(path, key),
                f"{toml_text(value)} is not one of {allowed}: use one "
                f"of them{self.suggest(str(value), map(str, choices))}",
            )
            return None
        chosen: T = value
        return chosen

    def host(self, t: Mapping[str, Any], path: str, key: str, example: str) -> str:
        """A host name or address, without scheme, port or path."""
        value = self.text(t, path, key, example, required=True)
        if value and (any(c.isspace() for c in value) or "/" in value):
            self.error(
                _join(path, key),
                f"{toml_text(value)} is not a host name or address: "
                f"give the host only (no scheme, path or spaces), e.g. {example}",
            )
            return ""
        return value

    def path(
        self,
        t: Mapping[str, Any],
        path: str,
        key: str,
        example: str,
        *,
        required: bool = True,
        parent: bool = False,
    ) -> Path | None:
        """An absolute path; with check_paths, an existing file, or (parent) a file whose
        directory exists. Only stat() is used; nothing is opened."""
        value = self.text(t, path, key, example, required=required)
        if not value:
            return None
        p, where = Path(value), _join(path, key)
        if not p.is_absolute():
            self.error(
                where,
                f"{toml_text(value)} is relative: give an absolute path, e.g. "
                f"{example} (a service does not run from your directory)",
            )
            return None
        if not self.check_paths:
            return p
        if parent:
            directory = _stat(p.parent)
            if directory != "dir":
                self.error(
                    where,
                    f"directory {p.parent} {_not_there(directory)}: create it "
                    f"(e.g. install -d -o firelane {p.parent}) or fix the path",
                )
            elif _stat(p) == "dir":
                self.error(
                    where, f"{p} is a directory: name a file in it, e.g. {p / 'gateway.sqlite3'}"
                )
        else:
            kind = _stat(p)
            if kind is None:
                self.error(where, f"{p} does not exist: create it or fix the path")
            elif kind != "file":
                self.error(where, f"{p} {_not_there(kind)}: give the path of a file")
        return p

    def device(self, t: Mapping[str, Any], path: str, key: str, example: str) -> str:
        """A serial port: a path under /dev (which may be absent while an adapter is unplugged:
        the bus reopens it) or, with check_paths, an existing path (a pseudo-terminal link).
        Never opened here."""
        value = self.text(t, path, key, example, required=True)
        if not value:
            return ""
        device, where = posixpath.normpath(value), _join(path, key)
        if not device.startswith("/"):
            self.error(
                where,
                f"{toml_text(value)} is not a device path: give one under /dev, "
                'e.g. "/dev/serial/by-id/usb-FTDI_..." (stable across replugs)',
            )
            return ""
        if self.check_paths and not device.startswith("/dev/") and _stat(Path(device)) is None:
            self.error(where, f"{device} does not exist and is not under /dev: fix the path")
            return ""
        return device

    def unique(
        self,
        items: Sequence[tuple[str, str, object]],
        key: str,
        fix: str,
        context: str = "",
        show: Callable[[Any], str] = toml_text,
    ) -> None:
        """An error for every (path, name, value) whose value an earlier item already has."""
        first: dict[object, tuple[str, str]] = {}
        for path, name, value in items:
            if not self.ok(f"{path}.{key}"):
                continue
            if value not in first:
                first[value] = (path, name)
                continue
            other, other_name = first[value]
            self.error(
                f"{path}.{key}",
                f"{show(value)} is already used by {other} "
                f"({toml_text(other_name)}){context}: {fix}",
            )


def _stat(p: Path) -> str | None:
    """What is at p: "file", "dir", "other", None (nothing) or why it cannot be checked."""
    try:
        mode = p.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        return f"cannot be checked ({exc.strerror})"
    return "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"


_WHAT_IS_THERE = {"file": "is a file", "dir": "is a directory", "other": "is not a regular file"}


def _not_there(kind: str | None) -> str:
    return "does not exist" if kind is None else _WHAT_IS_THERE.get(kind, kind)
