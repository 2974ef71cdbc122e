"""Registry[T]: named, lazily loaded plugin entries.

Entries come from two places that meet in one table:
- entry points (`importlib.metadata`) of a group, e.g. `harness.tasks`, recorded as lazy "module:attr"
  strings and imported on first use only;
- a decorator (`@register_task`, `@register_backbone`) run when a module is imported.

When an entry point's module is imported, its decorator registers the real object under the same name
and the same origin ("module:qualname"); that replaces the lazy entry. The same name from two different
origins is an error that names both. Unknown names get a did-you-mean.

A plugin that fails to import or validate (any exception: SyntaxError, a protocol's ValueError, ...) is
broken, not fatal: `items()` skips it and `problems()` lists it with its one-line reason, so one bad
plugin never hides the others; `get()` of its name is a BrokenEntryError (exit 2) naming where it came from.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Generic, TypeVar

from harness.errors import UsageError, did_you_mean, first_line

T = TypeVar("T")


class DuplicateEntryError(UsageError):
    """Two different places register the same name."""


class UnknownEntryError(UsageError):
    """A name that no plugin registers."""


class BrokenEntryError(UsageError):
    """A registered name whose plugin could not be imported or validated."""


@dataclass
class _Entry:
    origin: str  # "module:qualname" of the object, or of the entry point's target
    source: str  # who declared it: "entry point of <dist>" or "decorator"
    target: Any = None  # the loaded object, None while lazy
    problem: str | None = None  # why loading it failed (one line); set once, never retried in this process
    loader: Callable[[], Any] | None = None  # builds the object when it is not a "module:attr" (a task file)
    clash: str | None = None  # the name is defined twice: this says where (an error whenever the name is used)

    @property
    def loaded(self) -> bool:
        return self.target is not None


def origin_of(obj: Any) -> str:
    """The "module:qualname" string an entry point would use for `obj`."""
    return f"{obj.__module__}:{getattr(obj, '__qualname__', getattr(obj, '__name__', repr(obj)))}"


class Registry(Generic[T]):
    """`special_origin`: maps an entry point's value to (origin, loader) when it is not a Python object (a task
    file shipped in a package), else None. `scanners`: called once after the entry points, to add entries
    found elsewhere (task files on a search path). Both may be "module:function" strings, imported on first
    scan as entry points are, so a registry need not import what extends it."""

    def __init__(self, kind: str, group: str, validate: Callable[[str, Any], T] | None = None,
                 special_origin: Callable[[str], tuple[str, Callable[[], Any]] | None] | str | None = None,
                 scanners: tuple[Callable[[Registry[T]], None] | str, ...] = ()):
        self.kind = kind  # "task", "backbone": used in messages
        self.group = group  # entry-point group
        self._validate = validate
        self._special_origin = special_origin
        self._scanners = scanners
        self._entries: dict[str, _Entry] = {}
        self._entry_points_scanned = False

    # --- registration -------------------------------------------------------------------------
    def add(self, name: str, obj: T, origin: str | None = None) -> T:
        """Register a loaded object. Replaces a lazy entry of the same origin; else a duplicate."""
        origin = origin or origin_of(obj)
        existing = self._entries.get(name)
        if existing is not None and existing.origin != origin:
            raise DuplicateEntryError(
                f"duplicate {self.kind} '{name}': defined in {existing.origin} ({existing.source}) "
                f"and in {origin}"
            )
        if existing is not None and existing.loaded and existing.target is not obj:
            # Same origin loaded twice (module re-import): keep the first object, it is equivalent.
            return existing.target
        source = existing.source if existing is not None else "decorator"
        self._entries[name] = _Entry(origin=origin, source=source, target=obj,
                                     clash=existing.clash if existing is not None else None)
        return obj

    def add_lazy(self, name: str, origin: str, source: str, loader: Callable[[], Any] | None = None,
                 clash: str = "raise") -> None:
        """Record an entry loaded on first use. The same name from another origin raises DuplicateEntryError
        (`clash="raise"`), or (`clash="broken"`, for entries found by scanning) makes the name unusable with
        an error naming both, so one stray file never stops every command."""
        existing = self._entries.get(name)
        if existing is not None:
            if existing.origin == origin:
                return
            message = (f"duplicate {self.kind} '{name}': defined in {existing.origin} ({existing.source}) "
                       f"and in {origin} ({source})")
            if clash == "raise":
                raise DuplicateEntryError(message)
            existing.clash = existing.clash or message
            existing.target = None
            return
        self._entries[name] = _Entry(origin=origin, source=source, loader=loader)

    def scan_entry_points(self) -> None:
        """Record every installed distribution's entry points of this group (imports nothing)."""
        if self._entry_points_scanned:
            return
        self._entry_points_scanned = True
        seen: set[tuple[str, str]] = set()
        for ep in metadata.entry_points(group=self.group):
            if (ep.name, ep.value) in seen:  # the same distribution visible twice on sys.path
                continue
            seen.add((ep.name, ep.value))
            dist = ep.dist.name if ep.dist is not None else "an unknown distribution"
            value = ep.value.replace(" ", "")
            special = _resolve(self._special_origin)(value) if self._special_origin is not None else None
            origin, loader = special if special is not None else (value, None)
            self.add_lazy(ep.name, origin, f"entry point of {dist}", loader=loader, clash="broken")
        for scan in self._scanners:
            _resolve(scan)(self)

    # --- lookup -------------------------------------------------------------------------------
    def names(self) -> list[str]:
        self.scan_entry_points()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self.scan_entry_points()
        return name in self._entries

    def origin(self, name: str) -> str:
        return self._entry(name).origin

    def source(self, name: str) -> str:
        return self._entry(name).source

    def get(self, name: str) -> T:
        entry = self._entry(name)
        if entry.clash is not None:
            raise DuplicateEntryError(entry.clash)
        if not entry.loaded:
            self._load(name, entry)
        return self._entries[name].target

    def items(self) -> Iterator[tuple[str, T]]:
        """Every healthy entry, loaded; broken ones are left out (see `problems`)."""
        for name in self.names():
            try:
                yield name, self.get(name)
            except (BrokenEntryError, DuplicateEntryError):
                continue

    def problems(self) -> dict[str, str]:
        """{name: one-line reason} of every entry that could not be loaded (each is tried once)."""
        for _ in self.items():  # loads every entry, recording what fails
            pass
        return {name: e.clash or e.problem for name, e in sorted(self._entries.items())
                if e.clash is not None or e.problem is not None}

    def suggest(self, name: str) -> list[str]:
        return difflib.get_close_matches(name, self.names(), n=3, cutoff=0.6)

    def unknown(self, name: str) -> UnknownEntryError:
        return UnknownEntryError(f"unknown {self.kind} '{name}'{did_you_mean(name, self.names())}")

    def _entry(self, name: str) -> _Entry:
        self.scan_entry_points()
        try:
            return self._entries[name]
        except KeyError:
            raise self.unknown(name) from None

    def _load(self, name: str, entry: _Entry) -> None:
        if entry.clash is not None:
            raise DuplicateEntryError(entry.clash)
        if entry.problem is None:
            try:
                self._import(name, entry)
                return
            except Exception as exc:  # any failure inside a plugin's code: broken, named, never a traceback
                entry = self._entries[name]  # a decorator may have replaced the entry while importing
                entry.problem, entry.target = _reason(exc), None  # a half-imported module's object stays out
        raise BrokenEntryError(
            f"{self.kind} '{name}' could not be loaded from {entry.origin} ({entry.source}): {entry.problem}")

    def _import(self, name: str, entry: _Entry) -> None:
        if entry.loader is not None:
            obj = entry.loader()
        else:
            module_name, _, attr = entry.origin.partition(":")
            obj = importlib.import_module(module_name)
            for part in attr.split(".") if attr else []:
                obj = getattr(obj, part)
        current = self._entries[name]
        if current.loaded:  # the module's decorator registered it while importing
            return
        if self._validate is not None:
            obj = self._validate(name, obj)
        self.add(name, obj, origin=entry.origin)


def _resolve(hook: Any) -> Callable[..., Any]:
    """A hook given as a callable, or as a "module:function" string imported now."""
    if not isinstance(hook, str):
        return hook
    module_name, _, attr = hook.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def _reason(exc: BaseException) -> str:
    """One line on why a plugin failed: our own checks speak for themselves, anything else names its type."""
    if isinstance(exc, UsageError):
        return first_line(exc)
    return f"{type(exc).__name__}: {first_line(exc)}"
