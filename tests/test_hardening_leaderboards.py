"""Hardening (issue 15): leaderboard definitions are checked in full when loaded (one line naming the file and
the field, exit 2), and one broken file never hides the healthy ones in `harness list leaderboards`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli import main
from harness.errors import UsageError
from harness.leaderboard import Leaderboard, load_leaderboard, parse_leaderboard
from harness.store import MAX_SEED
from harness.task import TASKS

GOOD: dict[str, Any] = {"name": "good", "protocol": "smoke", "seeds": [0, 1], "tasks": ["cartpole"],
                        "models": [{"backbone": "mlp", "adapt": "full"}]}


def toml(value: Any, key: str | None = None) -> str:
    """A TOML rendering of plain data (top level: key = value lines; then inline arrays and tables)."""
    if key is None:
        return "".join(f"{k} = {toml(v, k)}\n" for k, v in value.items())
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string takes JSON's escapes
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml(v, key) for v in value) + "]"
    return "{ " + ", ".join(f"{json.dumps(k)} = {toml(v, k)}" for k, v in value.items()) + " }"


def _with(**changes: Any) -> dict[str, Any]:
    return {k: v for k, v in (GOOD | changes).items() if v is not None}


BROKEN: list[tuple[str, dict[str, Any] | str | bytes, str]] = [
    ("tasks as a string", _with(tasks="cartpole"), "tasks: must be a non-empty list of task names"),
    ("no tasks", _with(tasks=[]), "tasks: must be a non-empty list"),
    ("an unknown task", _with(tasks=["cartpol"]), "tasks[0]: unknown task 'cartpol'; did you mean 'cartpole'"),
    ("a task twice", _with(tasks=["cartpole", "acrobot", "cartpole"]), "tasks[2]: 'cartpole' is given twice"),
    ("a number as task", _with(tasks=[3]), "tasks[0]: must be one of task names, not 3"),
    ("a seed twice", _with(seeds=[0, 1, 0]), "seeds[2]: seed 0 is given twice"),
    ("a negative seed", _with(seeds=[-1]), "seeds[0]: a seed is an integer from 0 to 4294967295"),
    ("a seed past 2**32 - 1", _with(seeds=[2**32]), "seeds[0]: a seed is an integer"),
    ("a seed in text", _with(seeds=[0, "1"]), "seeds[1]: a seed is an integer"),
    ("a boolean seed", _with(seeds=[True]), "seeds[0]: a seed is an integer"),
    ("a float seed", _with(seeds=[1.0]), "seeds[0]: a seed is an integer"),
    ("no seeds", _with(seeds=[]), "seeds: must be a non-empty list"),
    ("seeds as a number", _with(seeds=0), "seeds: must be a non-empty list"),
    ("no seeds field", _with(seeds=None), "seeds: must be a non-empty list"),
    ("an unknown protocol", _with(protocol="quik"), "protocol: unknown protocol 'quik' for task 'cartpole'"),
    ("a protocol as a number", _with(protocol=1), "protocol: must be a protocol name"),
    ("no name", _with(name=None), "name: must be a plain name"),
    ("a path as name", _with(name="../../elsewhere"), "name: must be a plain name"),
    ("a description as a list", _with(description=["x"]), "description: must be a string"),
    ("an unknown field", _with(taks=["cartpole"]), "taks: unknown field; did you mean 'tasks'"),
    ("no models", _with(models=[]), "models: must be a non-empty list of tables"),
    ("a model as a string", _with(models=["mlp"]), "models[0]: must be a table"),
    ("a model twice", _with(models=[{"backbone": "mlp"}, {"backbone": "mlp", "adapt": "full"}]),
     "models[1]: repeats models[0] (backbone 'mlp', adapt full)"),
    ("an unknown adaptation", _with(models=[{"backbone": "mlp", "adapt": "lora"}]),
     "models[0].adapt: invalid adaptation mode 'lora'"),
    ("more layers than the backbone has", _with(tasks=["ner"], models=[{"backbone": "minilm", "adapt": "partial:7"}]),
     "models[0].adapt: partial:7 asks for more layers than backbone 'minilm' has (6)"),
    ("an adaptation as a number", _with(models=[{"backbone": "mlp", "adapt": 2}]), "models[0].adapt: must be"),
    ("an unknown backbone", _with(models=[{"backbone": "mlpp"}]), "models[0].backbone: unknown backbone 'mlpp'"),
    ("a backbone as a table", _with(models=[{"backbone": {"name": "mlp"}}]), "models[0].backbone: must be"),
    ("an unknown model field", _with(models=[{"backbone": "mlp", "adapter": "full"}]),
     "models[0].adapter: unknown field"),
    ("model tasks outside the board", _with(models=[{"backbone": "mlp", "tasks": ["acrobot"]}]),
     "models[0].tasks: 'acrobot' is not among the leaderboard's tasks"),
    ("model tasks as a string", _with(models=[{"backbone": "mlp", "tasks": "cartpole"}]),
     "models[0].tasks: must be a non-empty list"),
    ("a backbone that does not fit its task", _with(models=[{"backbone": "minilm", "tasks": ["cartpole"]}]),
     "models[0].tasks: backbone 'minilm' is a text backbone; task 'cartpole' needs a control one"),
    ("not TOML", 'name = "x"\ntasks = [', "is not valid TOML"),
    ("not UTF-8", b'name = "\xff"\n', "is not valid TOML"),
]


def _write(folder: Path, stem: str, content: dict[str, Any] | str | bytes) -> Path:
    path = folder / f"{stem}.toml"
    text = toml(content) if isinstance(content, dict) else content
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@pytest.mark.parametrize(("case", "content", "expected"), BROKEN, ids=[c[0] for c in BROKEN])
def test_a_broken_definition_is_one_line_naming_file_and_field(case: str, content: Any, expected: str,
                                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    boards = tmp_path / "boards"
    boards.mkdir()
    broken, healthy = _write(boards, "broken", content), _write(boards, "good", GOOD)
    monkeypatch.setenv("HARNESS_LEADERBOARDS", str(boards))
    for command in (["run", "--leaderboard", "broken", "--quiet"], ["run", "--leaderboard", str(broken), "--quiet"],
                    ["report", "--leaderboard", "broken", "--out", str(tmp_path / "r")]):
        code = main([*command, "--runs-dir", str(tmp_path / "runs")])
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(lines) == 1, (command, lines)
        assert lines[0].startswith(f"harness: error: leaderboard {broken}") and expected in lines[0], lines[0]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "r").exists()

    assert main(["list", "leaderboards", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["good"]["problem"] is None and rows["good"]["cells"] == 2 and rows["good"]["path"] == str(healthy)
    assert expected in rows["broken"]["problem"] and rows["broken"]["path"] == str(broken)
    assert {"cpu-default", "standard"} <= set(rows)  # the shipped ones still list
    assert main(["list", "leaderboards"]) == 0
    out = capsys.readouterr().out
    assert "problem" in out.splitlines()[0] and any(line.startswith("broken ") for line in out.splitlines())


def test_the_shipped_definitions_are_valid() -> None:
    from harness.tuning import search_space

    for name in ("cpu-default", "standard", "text"):
        board = load_leaderboard(name)
        assert board.cells() and len(set(board.seeds)) == len(board.seeds)
    text = load_leaderboard("text")  # tuned: every (task, model) has a grid of two points that its mode can change
    assert text.tune and text.trial_seeds == (0,)
    for cell in text.cells():
        space = search_space(text, cell.task, cell.model)
        assert len(space) == 1 and len(next(iter(space.values()))) == 2, (cell.task, cell.model.label, space)


# --- properties ------------------------------------------------------------------------------
TASK_NAMES = ["cartpole", "acrobot", "ner", "cartpole-pixels"]
BACKBONE_NAMES = ["mlp", "minilm", "efficientnet-lite0"]
scalars = st.one_of(st.text(max_size=8), st.integers(min_value=-(2**63), max_value=2**63 - 1), st.booleans(),
                    st.floats(allow_nan=False, allow_infinity=False))
toml_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                              st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                           max_leaves=8)
models = st.fixed_dictionaries({"backbone": st.sampled_from(BACKBONE_NAMES)},
                               optional={"adapt": st.sampled_from(["full", "frozen", "partial:1", "partial:0"]),
                                         "tasks": st.lists(st.sampled_from(TASK_NAMES), min_size=1, max_size=2)})
boards = st.fixed_dictionaries({
    "name": st.sampled_from(["board", "b-1.x"]), "protocol": st.sampled_from(["smoke", "quick", "standard"]),
    "seeds": st.lists(st.integers(min_value=0, max_value=MAX_SEED), min_size=1, max_size=4, unique=True),
    "tasks": st.lists(st.sampled_from(TASK_NAMES), min_size=1, max_size=3, unique=True),
    "models": st.lists(models, min_size=1, max_size=3),
}, optional={"description": st.text(max_size=10)})
# a plausible definition with up to two fields removed, replaced by any TOML value, or added
mutations = st.lists(st.tuples(st.sampled_from([*GOOD, "description", "extra", "seeds", "models"]),
                               st.one_of(st.none(), toml_values,
                                         st.lists(st.integers(min_value=-2, max_value=MAX_SEED + 2), max_size=3))),
                     max_size=2)


def _mutate(board: dict[str, Any], changes: list[tuple[str, Any]]) -> dict[str, Any]:
    for key, value in changes:
        board = {k: v for k, v in board.items() if k != key} if value is None else board | {key: value}
    return board


definitions = st.builds(_mutate, boards, mutations)


def _check_valid(board: Leaderboard) -> None:
    assert board.seeds and len(set(board.seeds)) == len(board.seeds)
    assert all(type(s) is int and 0 <= s <= MAX_SEED for s in board.seeds)
    assert board.tasks and len(set(board.tasks)) == len(board.tasks)
    assert all(board.protocol in TASKS.get(t).protocols for t in board.tasks)
    assert len({(m.backbone, m.adapt, m.tasks) for m in board.models}) == len(board.models)
    board.cells()  # every pair resolves


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(definitions)
def test_any_definition_loads_valid_or_fails_in_one_line(data: dict[str, Any]) -> None:
    try:
        board = parse_leaderboard(data, Path("/boards/b.toml"))
    except UsageError as exc:
        assert str(exc).startswith("leaderboard /boards/b.toml: ") and "\n" not in str(exc)
        return
    _check_valid(board)


@pytest.fixture(scope="module")
def board_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("boards") / "b.toml"


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=200), definitions.map(toml)))
def test_any_file_loads_valid_or_fails_in_one_line(board_file: Path, text: str) -> None:
    board_file.write_text(text, encoding="utf-8", errors="surrogatepass")  # lone surrogates: not UTF-8
    try:
        board = load_leaderboard(str(board_file))
    except UsageError as exc:
        assert str(exc).startswith(f"leaderboard {board_file}") and "\n" not in str(exc)
        return
    _check_valid(board)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=MAX_SEED), min_size=1, max_size=5, unique=True),
       st.sampled_from(["smoke", "quick", "standard"]), st.sampled_from(["full", "frozen"]))
def test_valid_definitions_round_trip_through_toml(seeds: list[int], protocol: str, adapt: str) -> None:
    data = _with(seeds=seeds, protocol=protocol, tasks=["cartpole", "acrobot"],
                 models=[{"backbone": "mlp", "adapt": adapt}], description="d")
    board = parse_leaderboard(data)
    assert (board.seeds, board.protocol, board.tasks, board.description) == (tuple(seeds), protocol,
                                                                             ("cartpole", "acrobot"), "d")
    assert len(board.cells()) == 2 * len(seeds)
