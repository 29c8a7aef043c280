"""A training data stream that a checkpoint can resume exactly.

Detectron2's training loader restarts its infinite stream from the beginning after a resume,
and its augmentations draw from per-worker random generators seeded at start-up, so a resumed
run trains on other batches than the uninterrupted run would have. Here every batch is a pure
function of (seed, batch number):

* ``ResumableBatchSampler`` cuts an infinite stream of seeded shuffles of the dataset (as
  Detectron2's ``TrainingSampler``) into global batches, grouped by aspect ratio like
  Detectron2's loader. To start at batch ``k`` it replays the grouping of the first ``k``
  batches over indices alone, which needs no image. Each process takes its slice of every
  global batch.
* ``SeededMapDataset`` maps the record at stream position ``p`` with Python's, NumPy's and
  PyTorch's generators seeded from (seed, ``p``), so augmentations do not depend on which worker
  maps it or on what ran before. A record that fails to load raises an error naming it.
"""
from __future__ import annotations

import itertools
import random
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
import torch
from detectron2.data.build import trivial_batch_collator
from detectron2.utils import comm
from torch.utils.data import DataLoader, Dataset, Sampler

from ..utils.rng import preserved_rng

__all__ = ["ResumableBatchSampler", "SeededMapDataset", "aspect_groups", "resumable_loader"]

Position = tuple[int, int]  # (position in the stream, dataset index)


def aspect_groups(dataset_dicts: Sequence[dict]) -> list[int]:
    """Detectron2's aspect-ratio groups: 0 for landscape (width > height), 1 otherwise."""
    return [int(d["width"] <= d["height"]) for d in dataset_dicts]


class ResumableBatchSampler(Sampler):
    """Batches of ``(position, index)`` for this process, from global batch ``start`` on.

    Args:
        size: number of dataset records.
        total_batch_size: images per global batch (all processes together).
        seed: seed of the shuffles; the same on every process.
        groups: aspect-ratio group of every record (``aspect_groups``), or None for no grouping.
    """

    def __init__(self, size: int, total_batch_size: int, seed: int,
                 groups: Optional[Sequence[int]] = None):
        world = comm.get_world_size()
        if total_batch_size % world:
            raise ValueError(f"SOLVER.IMS_PER_BATCH={total_batch_size} is not divisible by the "
                             f"{world} processes")
        if size <= 0:
            raise ValueError("the training set is empty (after filtering)")
        self.size, self.seed = size, seed
        self.total_batch_size = total_batch_size
        self.batch_size = total_batch_size // world
        self.rank = comm.get_rank()
        self.groups = groups
        self.start = 0

    def _indices(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed)
        while True:
            yield from torch.randperm(self.size, generator=generator).tolist()

    def global_batches(self) -> Iterator[list[Position]]:
        """Every global batch from the first, in order."""
        stream = enumerate(self._indices())
        if self.groups is None:
            while True:
                yield list(itertools.islice(stream, self.total_batch_size))
        buckets: dict[int, list[Position]] = {}
        for position, index in stream:
            bucket = buckets.setdefault(self.groups[index], [])
            bucket.append((position, index))
            if len(bucket) == self.total_batch_size:
                yield bucket[:]
                bucket.clear()

    def __iter__(self) -> Iterator[list[Position]]:
        mine = slice(self.rank * self.batch_size, (self.rank + 1) * self.batch_size)
        for batch in itertools.islice(self.global_batches(), self.start, None):
            yield batch[mine]


def _seed(*keys: int) -> int:
    """A 32-bit seed mixed from ``keys`` (NumPy's ``SeedSequence``: nearby keys give
    unrelated streams)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class SeededMapDataset(Dataset):
    """``mapper(record)`` for ``(position, index)`` keys, with seeds from (seed, position).

    A record the mapper rejects (returns None, e.g. no annotation left after cropping) is
    replaced, as in Detectron2's ``MapDataset``, by another record drawn from a generator seeded
    by the position, so the replacement is reproducible too.
    """

    def __init__(self, dataset_dicts: Sequence[dict], mapper: Callable[[dict], Any], seed: int):
        self.dataset_dicts = dataset_dicts
        self.mapper = mapper
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset_dicts)

    def __getitem__(self, key: Position) -> Any:
        position, index = key
        fallback = random.Random(_seed(self.seed, position))
        for attempt in range(100):
            record = self.dataset_dicts[index]
            try:
                with preserved_rng():  # leaves the main process's training stream alone
                    _seed_everything(_seed(self.seed, position, attempt))
                    mapped = self.mapper(record)  # Detectron2's mappers copy the record
            except Exception as err:
                raise RuntimeError(
                    f"training record {index} (file_name={record.get('file_name')!r}, "
                    f"image_id={record.get('image_id')!r}) failed to load: "
                    f"{type(err).__name__}: {err}") from err
            if mapped is not None:
                return mapped
            index = fallback.randrange(len(self.dataset_dicts))
        raise RuntimeError(f"the mapper rejected 100 records in a row, starting at stream "
                           f"position {position}; check the dataset's annotations")


def resumable_loader(dataset_dicts: Sequence[dict], mapper: Callable[[dict], Any],
                     total_batch_size: int, seed: int, aspect_grouping: bool,
                     num_workers: int) -> DataLoader:
    """The exactly resumable training stream of ``dataset_dicts`` mapped by ``mapper``: this
    process's share of ``total_batch_size`` records per batch, seeded by ``seed``, grouped by
    aspect ratio if ``aspect_grouping``; a checkpoint resumes it through its batch sampler's
    ``seed`` and ``start``."""
    groups = aspect_groups(dataset_dicts) if aspect_grouping else None
    return DataLoader(SeededMapDataset(dataset_dicts, mapper, seed),
                      batch_sampler=ResumableBatchSampler(len(dataset_dicts), total_batch_size,
                                                          seed, groups),
                      num_workers=num_workers, collate_fn=trivial_batch_collator,
                      generator=torch.Generator().manual_seed(seed))
