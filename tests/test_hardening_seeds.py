"""Hardening (issue 15): seeds are integers from 0 to 2**32 - 1, refused at parse or plan time (exit 2, one line,
nothing written) otherwise; hypothesis checks the parsers on any text."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import run_cli
from harness.cli import build_parser, main
from harness.errors import UsageError
from harness.planning import check_seeds, parse_seed, parse_seeds, plan_runs
from harness.store import MAX_SEED

BAD_SEED = ["1180591620717411303424", "4294967296", "-1", "1e3", "0x10", "", " ", "1_000", "+1", "1.0", "٣",
            "9" * 5000, "0 1", "seed", "--", "0\x1f", "1\n"]
BAD_SEEDS = ["", ",", "--", "0,,1", "0,0", "1,", ",1", "0, 0", "3,1,3", "0,4294967296", "0;1", "0,x"]


@pytest.mark.parametrize(("flag", "value"), [("--seed", v) for v in BAD_SEED] + [("--seeds", v) for v in BAD_SEEDS])
def test_a_bad_seed_is_one_line_exit_2_and_nothing_is_written(flag: str, value: str, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    code = main(["run", "--task", "cartpole", "--protocol", "smoke", f"{flag}={value}", "--runs-dir", str(runs)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("harness: error: argument " + flag)
    assert not runs.exists()


def test_the_seed_that_broke_listing_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    out = run_cli("run", "--task", "cartpole", "--protocol", "smoke", "--seed", str(2**70), runs_dir=runs)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "seeds go from 0 to 4294967295" in out.stderr
    assert not runs.exists()
    assert run_cli("list", "runs", runs_dir=runs).returncode == 0


@pytest.mark.parametrize(("text", "seeds"), [("0", [0]), ("4294967295", [MAX_SEED]), (" 7 ", [7]), ("007", [7]),
                                             ("2,0,1", [2, 0, 1]), (" 1 , 2 ", [1, 2])])
def test_good_seeds_parse(text: str, seeds: list[int]) -> None:
    args = build_parser().parse_args(["run", "--task", "cartpole", "--seeds", text])
    assert args.seeds == seeds
    if len(seeds) == 1:
        assert build_parser().parse_args(["run", "--task", "cartpole", "--seed", text]).seed == seeds[0]


@pytest.mark.parametrize("seeds", [[2**70], [2**32], [-1], [True], [1.0], ["0"], [0, 0], [], "01", None])
def test_plans_refuse_bad_seeds_from_python_too(seeds: object) -> None:
    with pytest.raises(UsageError, match="seed"):
        plan_runs("cartpole", protocol="smoke", seeds=seeds)  # type: ignore[arg-type]


def test_the_largest_seed_plans() -> None:
    (plan,) = plan_runs("cartpole", protocol="smoke", seeds=[MAX_SEED])
    assert plan.seed == MAX_SEED and f"-s{MAX_SEED}-" in plan.run_id


def _is_seed_text(text: str) -> bool:
    digits = text.strip(" \t")
    return digits.isascii() and digits.isdigit() and int(digits) <= MAX_SEED


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.integers(min_value=-(2**80), max_value=2**80).map(str),
                 st.from_regex(r"\s*[0-9]{1,12}\s*", fullmatch=True)))
def test_parse_seed_takes_exactly_decimal_integers_in_range(text: str) -> None:
    if _is_seed_text(text):
        assert parse_seed(text) == int(text.strip(" \t"))
    else:
        with pytest.raises(UsageError) as caught:
            parse_seed(text)
        assert "\n" not in str(caught.value) and "invalid seed" in str(caught.value)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=MAX_SEED), min_size=1, max_size=8, unique=True),
       st.sampled_from(["", " "]))
def test_parse_seeds_round_trips_distinct_seeds(seeds: list[int], space: str) -> None:
    assert parse_seeds(f",{space}".join(map(str, seeds))) == seeds
    assert check_seeds(seeds) == seeds


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(alphabet="0123456789, -x", max_size=24), st.text(max_size=24)))
def test_the_seeds_option_gives_distinct_seeds_in_range_or_one_usage_error(text: str) -> None:
    try:
        seeds = build_parser().parse_args(["run", "--task", "cartpole", f"--seeds={text}"]).seeds
    except UsageError as exc:
        assert "\n" not in str(exc)
        return
    assert seeds and len(set(seeds)) == len(seeds) and all(0 <= s <= MAX_SEED for s in seeds)
    assert [int(p.strip(" \t")) for p in text.split(",")] == seeds
