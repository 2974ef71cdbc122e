"""Where task files are found, and how they join the task registry.

In this order: task files a distribution ships through the `harness.tasks` entry-point group (a value
"package:file.toml", as the built-in `topics` does); every `*.toml` in the folders (or files) listed on
HARNESS_TASK_PATH; every `*.toml` in a `tasks/` folder of the current directory; and a file named on the
command line (`harness run --task path/to/task.toml`). Each file is parsed when found (cheap: no data is
read), so its name is known; its class is built when first used. A file that cannot be parsed is listed as
broken under its file name. A name defined twice (a task file and a Python task, or two files) is an error
naming both whenever that name is used.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.registry import Registry
from harness.taskfiles.schema import TaskFile, TaskFileError, read_task_file

ENV = "HARNESS_TASK_PATH"
LOCAL_FOLDER = "tasks"


def load_class(path: Path) -> type:
    from harness.taskfiles.build import build_task_class

    return build_task_class(read_task_file(path))


def _loader(path: Path) -> Callable[[], Any]:
    return lambda: load_class(path)


def entry_point_file(value: str) -> tuple[str, Callable[[], Any]] | None:
    """For an entry point "package:file.toml": (the file's absolute path, its loader); None for Python objects."""
    module, _, resource = value.partition(":")
    if not resource.endswith(".toml"):
        return None
    spec = importlib.util.find_spec(module)  # finds the package without importing it
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    path = Path(folders[0], resource).resolve() if folders else Path(module, resource)
    return str(path), _loader(path)


def _files_in(place: Path) -> Iterator[Path]:
    if place.is_file():
        yield place.resolve()
    elif place.is_dir():
        yield from sorted(p.resolve() for p in place.glob("*.toml") if p.is_file())


def found_files() -> Iterator[tuple[Path, str]]:
    """(task file, where it was found) from HARNESS_TASK_PATH and ./tasks, in that order."""
    for entry in os.environ.get(ENV, "").split(os.pathsep):
        if entry:
            for path in _files_in(Path(entry).expanduser()):
                yield path, f"task file on {ENV}"
    for path in _files_in(Path.cwd() / LOCAL_FOLDER):
        yield path, f"task file in ./{LOCAL_FOLDER}"


def _broken_loader(error: TaskFileError) -> Callable[[], Any]:
    def load() -> Any:
        raise error
    return load


def scan(registry: Registry[Any]) -> None:
    """Record every task file found on HARNESS_TASK_PATH and in ./tasks (called by the task registry's scan)."""
    for path, where in found_files():
        try:
            name = read_task_file(path).name
            loader = _loader(path)
        except TaskFileError as error:  # listed as broken under the file's name, refused only when used
            name, loader = path.stem, _broken_loader(error)
        if name in registry and _same_content(registry.origin(name), path):
            continue  # one definition seen twice (an installed package's copy and a checkout's ./tasks)
        registry.add_lazy(name, str(path), where, loader=loader, clash="broken")


def _same_content(origin: str, path: Path) -> bool:
    other = Path(origin)
    try:
        return origin.endswith(".toml") and other.is_file() and other.read_bytes() == path.read_bytes()
    except OSError:
        return False


def register_path(argument: str, registry: Registry[Any]) -> str:
    """A task named by its file (`--task path/to/task.toml`): registered under its own name, which is returned.
    The file is also put on HARNESS_TASK_PATH, so worker processes (DDP, Ray) started from here find it too."""
    path = Path(argument).expanduser()
    if not path.is_file():
        raise UsageError(f"task file {argument} does not exist")
    path = path.resolve()
    registry.names()  # entry points and search paths first: a clash with any of them is named
    tf: TaskFile = read_task_file(path)
    registry.add_lazy(tf.name, str(path), "task file given by path", loader=_loader(path))
    places = [p for p in os.environ.get(ENV, "").split(os.pathsep) if p]
    if str(path) not in places:
        os.environ[ENV] = os.pathsep.join([*places, str(path)])
    return tf.name


def is_task_file_argument(argument: str) -> bool:
    return argument.endswith(".toml") or os.sep in argument


def task_search_environment() -> dict[str, str]:
    """HARNESS_TASK_PATH with absolute paths and this folder's ./tasks added: for worker processes that start
    elsewhere (Ray workers), so they find the same task files as this process."""
    places = [str(Path(p).expanduser().resolve()) for p in os.environ.get(ENV, "").split(os.pathsep) if p]
    local = Path.cwd() / LOCAL_FOLDER
    if local.is_dir() and any(local.glob("*.toml")):
        places.append(str(local.resolve()))
    return {ENV: os.pathsep.join(dict.fromkeys(places))} if places else {}
