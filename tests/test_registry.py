from __future__ import annotations

import subprocess
import sys
import types

import pytest

from harness.registry import DuplicateEntryError, Registry, UnknownEntryError


def _module(name: str, **attrs: object) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    return module


def test_lazy_entry_is_imported_only_on_use(monkeypatch: pytest.MonkeyPatch) -> None:
    registry: Registry[object] = Registry("thing", "harness.test-none")
    registry.add_lazy("alpha", "fake_plugin_alpha:VALUE", "entry point of fake")
    assert "fake_plugin_alpha" not in sys.modules
    assert registry.names() == ["alpha"]
    _module("fake_plugin_alpha", VALUE=42)
    assert registry.get("alpha") == 42
    assert registry.origin("alpha") == "fake_plugin_alpha:VALUE"


def test_decorator_registration_replaces_lazy_entry_of_same_origin() -> None:
    registry: Registry[type] = Registry("thing", "harness.test-none")
    registry.add_lazy("beta", f"{__name__}:Beta", "entry point of fake")

    class Beta:
        pass

    Beta.__qualname__ = "Beta"
    registry.add("beta", Beta)  # what a decorator does while the module imports
    assert registry.get("beta") is Beta
    assert registry.source("beta") == "entry point of fake"


def test_duplicate_names_from_two_places_are_an_error_naming_both() -> None:
    registry: Registry[object] = Registry("task", "harness.test-none")
    registry.add_lazy("ner", "pkg_one.tasks:Ner", "entry point of pkg-one")
    with pytest.raises(DuplicateEntryError) as err:
        registry.add_lazy("ner", "pkg_two.tasks:Ner", "entry point of pkg-two")
    message = str(err.value)
    assert "pkg_one.tasks:Ner" in message and "pkg_two.tasks:Ner" in message


def test_unknown_name_gets_did_you_mean() -> None:
    registry: Registry[object] = Registry("task", "harness.test-none")
    registry.add("sentiment", object(), origin="x:sentiment")
    registry.add("ner", object(), origin="x:ner")
    with pytest.raises(UnknownEntryError, match="did you mean 'ner'"):
        registry.get("nerr")
    with pytest.raises(UnknownEntryError, match="known: ner, sentiment"):
        registry.get("zzzzzz")


def test_broken_entry_point_is_a_usage_error() -> None:
    registry: Registry[object] = Registry("task", "harness.test-none")
    registry.add_lazy("broken", "no_such_module_xyz:Task", "entry point of broken-dist")
    with pytest.raises(Exception, match="could not be loaded from no_such_module_xyz:Task"):
        registry.get("broken")


def test_builtin_tasks_come_from_entry_points_and_import_lazily() -> None:
    code = (
        "import sys\n"
        "from harness.task import TASKS\n"
        "names = TASKS.names()\n"
        "assert {'ner', 'sentiment'} <= set(names), names\n"
        "assert 'harness_tasks.ner' not in sys.modules\n"
        "assert TASKS.source('ner') == 'entry point of harness'\n"
        "TASKS.get('ner')\n"
        "assert 'harness_tasks.ner' in sys.modules\n"
        "assert 'torch' not in sys.modules, 'listing a task must not import torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
