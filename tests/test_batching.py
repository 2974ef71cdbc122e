"""Length-grouped batching, one tokenisation per split, evaluation in length order, precision and per-run
peak memory: behaviour, not speed (speed is measured in benchmarks/)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_training import _train

from harness.backbones.spec import resolve_backbone
from harness.task import get_task
from harness.training.batching import LengthGroupedBatchSampler, length_order, padding_fraction
from harness.training.memory import peak_memory_mb, reset_peak_memory


def _lengths(count: int, seed: int = 3) -> list[int]:
    return torch.randint(1, 90, (count,), generator=torch.Generator().manual_seed(seed)).tolist()


@pytest.mark.parametrize(("count", "batch_size"), [(1, 16), (15, 16), (16, 16), (1661, 16), (2000, 7)])
def test_every_row_once_per_epoch(count: int, batch_size: int) -> None:
    sampler = LengthGroupedBatchSampler(_lengths(count), batch_size, torch.Generator().manual_seed(0))
    for _ in range(3):
        batches = list(sampler)
        assert len(batches) == len(sampler) == -(-count // batch_size)
        assert sorted(i for b in batches for i in b) == list(range(count))
        assert all(1 <= len(b) <= batch_size for b in batches)


def test_batches_are_reproducible_from_the_seed_and_change_each_epoch() -> None:
    lengths = _lengths(500)

    def two_epochs(seed: int) -> list[list[list[int]]]:
        sampler = LengthGroupedBatchSampler(lengths, 16, torch.Generator().manual_seed(seed))
        return [list(sampler), list(sampler)]

    first, again, other = two_epochs(0), two_epochs(0), two_epochs(1)
    assert first == again
    assert first[0] != first[1]  # a new order every epoch
    assert first != other


def test_grouping_cuts_padding_and_shuffles_batch_order() -> None:
    lengths = _lengths(1600)
    batches = LengthGroupedBatchSampler(lengths, 16, torch.Generator().manual_seed(0)).epoch_batches()
    perm = torch.randperm(1600, generator=torch.Generator().manual_seed(0)).tolist()
    random_batches = [perm[i:i + 16] for i in range(0, 1600, 16)]
    assert padding_fraction(lengths, batches) < 0.05 < padding_fraction(lengths, random_batches)
    longest = [max(lengths[i] for i in b) for b in batches]
    assert longest != sorted(longest, reverse=True) and longest != sorted(longest)


def test_processes_share_each_batch() -> None:
    lengths = _lengths(101)
    shares = [list(LengthGroupedBatchSampler(lengths, 16, torch.Generator().manual_seed(5), rank, 4))
              for rank in range(4)]
    whole = LengthGroupedBatchSampler(lengths, 16, torch.Generator().manual_seed(5)).epoch_batches()
    for step, batch in enumerate(whole):
        parts = [share[step] for share in shares]
        assert all(parts)  # every process steps, even on the last, short batch
        assert set().union(*map(set, parts)) == set(batch)
    assert sorted(len(b) for b in whole) == [5] + [16] * 6  # 101 rows: six full batches and one of 5


def test_length_order_is_longest_first_and_stable() -> None:
    assert length_order([3, 5, 3, 9]) == [3, 1, 0, 2]


def test_ner_train_split_padding_under_five_percent() -> None:
    task = get_task("ner")
    protocol = task.protocols["quick"]
    spec = resolve_backbone("minilm", "text")
    backbone = spec.build(spec.resolve())
    rows = task.load_split("train")
    lengths = task.input_lengths(rows, backbone, protocol)
    batches = LengthGroupedBatchSampler(lengths, protocol.batch_size, torch.Generator().manual_seed(0)).epoch_batches()
    assert padding_fraction(lengths, batches) < 0.05


@pytest.mark.parametrize("task_name", ["ner", "sentiment"])
def test_collate_from_one_tokenisation_matches_tokenising_each_batch(tiny_text_backbone: Path,
                                                                      task_name: str) -> None:
    task = get_task(task_name)
    protocol = task.protocols["smoke"]
    backbone = resolve_backbone(str(tiny_text_backbone), "text").build()
    rows = task.load_split("train", 12)
    task.input_lengths(rows, backbone, protocol)  # tokenises the split once
    batch = task.collate(rows[3:9], backbone, protocol, train=True)
    words = task_name == "ner"
    expected = backbone.tokenizer([r.input for r in rows[3:9]], is_split_into_words=words, truncation=True,
                                  max_length=protocol.inputs["max_length"], padding=True, return_tensors="pt")
    assert torch.equal(batch["inputs"]["input_ids"], expected["input_ids"])
    assert torch.equal(batch["inputs"]["attention_mask"], expected["attention_mask"])
    if words:
        first_subwords = [sum(1 for p, w in enumerate(expected.word_ids(i)) if w is not None
                              and (p == 0 or expected.word_ids(i)[p - 1] != w)) for i in range(6)]
        assert (batch["labels"] != -100).sum(1).tolist() == first_subwords


def test_length_grouped_and_random_runs_record_their_batching(tiny_text_backbone: Path) -> None:
    grouped, _ = _train(tiny_text_backbone, "full")
    plain, _ = _train(tiny_text_backbone, "full", batching="random")
    assert grouped.execution["batching"] == "length-grouped" and plain.execution["batching"] == "random"
    assert [p for p in grouped.test.ids] == [e.id for e in get_task("ner").load_split("test", 8)]
    again, _ = _train(tiny_text_backbone, "full")
    assert again.test.metrics == grouped.test.metrics and again.test.preds == grouped.test.preds


def test_bf16_precision_on_cpu_is_used_and_recorded(tiny_text_backbone: Path) -> None:
    result, _ = _train(tiny_text_backbone, "full", precision="bf16")
    assert result.execution["precision"] == "bf16"
    assert 0.0 <= result.test.metrics["entity_f1"] <= 1.0
    fp32, _ = _train(tiny_text_backbone, "full")
    assert fp32.execution["precision"] == "fp32"


def test_peak_memory_is_the_runs_own() -> None:
    hoard = torch.ones(64 * 2**20 // 4)  # 64 MiB held, then freed: a later run must not report it
    hoard += 1
    before = peak_memory_mb("cpu")
    del hoard
    assert reset_peak_memory("cpu") == "run"
    assert peak_memory_mb("cpu") < before - 32


def test_compiled_backbone_trains_and_is_recorded(tiny_text_backbone: Path) -> None:
    result, changed = _train(tiny_text_backbone, "full", compile=True, epochs=1, train_limit=8, dev_limit=8,
                             test_limit=8)
    assert result.execution["compile"] is True
    assert changed and set(result.trainable_state) >= {f"backbone.{n}" for n in changed}  # plain weight names


def test_a_task_that_overrides_step_trains_on_its_own_loss(tiny_text_backbone: Path) -> None:
    from harness.adaptation import Adaptation
    from harness.task import StepOutput
    from harness.training.model import build_task_model

    base = get_task("sentiment")

    class DoubledLoss(type(base)):
        def step(self, model, batch) -> StepOutput:
            out = super().step(model, batch)
            return StepOutput(out.loss * 2, out.preds, out.refs)

    spec = resolve_backbone(str(tiny_text_backbone), "text")
    protocol = base.protocols["smoke"]
    model = build_task_model(base, spec, spec.build(), protocol, Adaptation.parse("full")).eval()
    batch = base.collate(base.load_split("train", 4), model.backbone, protocol)
    with torch.no_grad():
        assert torch.allclose(DoubledLoss().loss(model, batch), 2 * base.loss(model, batch))


def test_tokenisation_is_cached_by_text_not_by_id(tiny_text_backbone: Path) -> None:
    from harness.task import Example

    task = get_task("sentiment")
    backbone = resolve_backbone(str(tiny_text_backbone), "text").build()
    protocol = task.protocols["smoke"]
    first = task.input_lengths([Example("row-0", "short", "positive")], backbone, protocol)
    second = task.input_lengths([Example("row-0", "a much longer text than the first one", "positive")], backbone,
                                protocol)
    assert second[0] > first[0]


def test_cuda_settings_honour_fp32_and_restore_matmul_precision() -> None:
    from harness.protocol import TrainingProtocol
    from harness.training.devices import device_settings

    fp32 = device_settings("cuda", TrainingProtocol(epochs=1, precision="fp32"), "image")
    auto = device_settings("cuda", TrainingProtocol(epochs=1), "image")
    assert (fp32.precision, fp32.tf32) == ("fp32", False) and (auto.precision, auto.tf32) == ("bf16", True)
    pooled = device_settings("cuda", TrainingProtocol(epochs=1), "image", pooled_features=True)
    assert auto.loader_workers == 4 and pooled.loader_workers == 0 and auto.channels_last
    assert auto.threads is None and pooled.threads is None  # CUDA runs keep the process's threads
    cpu_pooled = device_settings("cpu", TrainingProtocol(epochs=1), "audio", pooled_features=True)
    assert cpu_pooled.threads == 1 and cpu_pooled.describe()["threads"] == 1
    assert device_settings("cpu", TrainingProtocol(epochs=1), "audio").threads is None
    before = torch.get_float32_matmul_precision()
    with auto.matmul_precision():
        assert torch.get_float32_matmul_precision() == "high"
    assert torch.get_float32_matmul_precision() == before


def test_check_precision_through_the_cli(tiny_text_backbone: Path, tmp_path: Path) -> None:
    import json

    from conftest import run_cli

    runs = tmp_path / "runs"
    out = run_cli("run", "--task", "sentiment", "--protocol", "smoke", "--backbone", str(tiny_text_backbone),
                  "--check-precision", "--json", "--quiet", runs_dir=runs)
    assert out.returncode == 0, out.stderr
    check = json.loads(out.stdout)
    (row,) = check["seeds"]
    assert check["metric"] == "accuracy" and row["test"] == "paired bootstrap over test examples"
    assert row["low"] <= row["difference"] <= row["high"] and 0 < row["p_value"] <= 1
    assert row["fp32_run"].split("-")[3:5] == ["smoke_fp32", "s0"] and "smoke_bf16" in row["bf16_run"]
    records = {r["protocol"]: r for r in json.loads(run_cli("list", "runs", "--json", runs_dir=runs).stdout)}
    assert set(records) == {"smoke+fp32", "smoke+bf16"}
    shown = json.loads(run_cli("show", row["bf16_run"], "--json", runs_dir=runs).stdout)
    assert shown["execution"]["precision"] == "bf16" and shown["config"]["protocol"]["precision"] == "bf16"
