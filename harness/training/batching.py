"""Training batches of similar length, and evaluation in length order.

Random batches of variable-length sequences are mostly padding (40% of the positions an epoch of the NER
train split pushes through the encoder with random batches of 16). Grouping rows of similar length cuts
that to a few percent. transformers' `LengthGroupedSampler` groups the same way but yields single indices
in descending-length order within each group; a run here needs whole batches in a shuffled order (and a
slice of each batch per process under DDP), so this sampler yields batches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

GROUP_BATCHES = 50  # rows are sorted by length within groups of 50 batches (transformers' mega-batch size)


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Batches of row indices: each epoch, rows are shuffled, sorted by length within groups of
    `GROUP_BATCHES * batch_size` rows, cut into consecutive batches, and the batch order is shuffled.
    Everything is drawn from `generator`, so the batches are reproducible from the run's seed and differ
    from epoch to epoch. Every row is in exactly one batch of an epoch; there are ceil(rows / batch_size)
    batches, as with random batches, so schedules do not change length.

    With `processes` > 1 each process takes an interleaved share of every batch (`rank::processes`), so one
    step of all processes together sees exactly the rows of one batch; a last batch with fewer rows than
    processes is repeated cyclically so that every process has a row to step on. (DDP averages the processes'
    mean losses, so in a last batch that does not split evenly its rows weigh a little differently than on one
    process, as with any sharded sampler that keeps the last batch.)
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, generator: torch.Generator,
                 rank: int = 0, processes: int = 1):
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, not {batch_size}")
        self.lengths = torch.as_tensor(list(lengths), dtype=torch.long)
        self.batch_size, self.generator = batch_size, generator
        self.rank, self.processes = rank, processes

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def epoch_batches(self) -> list[list[int]]:
        """The next epoch's global batches (draws from the generator)."""
        count, group = len(self.lengths), GROUP_BATCHES * self.batch_size
        order = torch.randperm(count, generator=self.generator)
        grouped = []
        for start in range(0, count, group):
            chunk = order[start:start + group]
            # a stable sort keeps the random order among rows of equal length
            longest_first = torch.sort(self.lengths[chunk], descending=True, stable=True).indices
            grouped.append(chunk[longest_first])
        rows = torch.cat(grouped).tolist() if grouped else []
        batches = [rows[i:i + self.batch_size] for i in range(0, count, self.batch_size)]
        shuffled = torch.randperm(len(batches), generator=self.generator).tolist()
        return [batches[i] for i in shuffled]

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.epoch_batches():
            if self.processes > 1:
                batch = (batch * self.processes)[:max(len(batch), self.processes)]
                batch = batch[self.rank::self.processes]
            yield batch


def padding_fraction(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """The share of processed positions that are padding when each batch is padded to its longest row."""
    processed = sum(max(lengths[i] for i in batch) * len(batch) for batch in batches if batch)
    real = sum(lengths[i] for batch in batches for i in batch)
    return 1.0 - real / processed if processed else 0.0


def length_order(lengths: Sequence[int]) -> list[int]:
    """Row indices longest first (stable): evaluation batches of similar length, results put back in order."""
    return sorted(range(len(lengths)), key=lambda i: -lengths[i])
