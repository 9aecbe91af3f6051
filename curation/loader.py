"""Read the shards for training: ``layered_loader`` gives aligned, augmented batches, each key once per epoch.

How an epoch is split. The loader first lists the samples that pass the filters, shard by shard: from
each shard's index parquet when it lies beside the tar (an ``OUT`` folder, a glob of its shards, or the same
name ending in ``.parquet`` at an ``http(s)`` URL), else from the tar's ``.json`` members. Each epoch orders the
shards by a permutation drawn from
``(seed, epoch)`` and cuts that sequence of samples into ``world_size × num_workers`` contiguous runs of
equal length (±1): consumer ``rank · num_workers + worker`` reads only the shards its run touches and
keeps only its own keys. So every key is read exactly once per epoch across ranks and workers, ranks get
the same number of samples (±1), and a worker streams about ``1 / consumers`` of the data, not all of it.
Inside a run, samples pass a shuffle buffer (seeded by seed, epoch and consumer); the crop, resize and
flip of a sample are drawn from ``(seed, epoch, key)``, so augmentation does not depend on which worker
happens to read it.

Webdataset reads the tars (any URL it can open: paths, ``pipe:``, ``http(s)``); members are decoded
one by one in the mode their layer has (RGB, RGBA, L), not with one blanket mode.
"""

from __future__ import annotations

import glob
import io
import json
import math
import os
import random
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
import webdataset as wds
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from curation.augment import CROPS, Crop, alpha_box, apply_window, draw_window
from curation.core.schema import CAPTION_COLUMNS, LAYER_MEMBERS, OK
from curation.layout import OutDir
from curation.verify import MODES

#: samples held (still PNG-encoded) by each worker's shuffle buffer
SHUFFLE_BUFFER = 64
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Filters:
    """Which samples an epoch holds: decided at read time from the index, the shards stay as they are."""

    min_score: float | None = None
    sources: frozenset[str] | None = None
    require_captions: bool = False

    def keep(self, source: str, score: float | None, captions: Iterable[str | None]) -> bool:
        if self.sources is not None and source not in self.sources:
            return False
        if self.min_score is not None and not (score is not None and score >= self.min_score):
            return False  # NaN/None (no curator ran) never passes a score filter
        return not self.require_captions or all(captions)


@dataclass(frozen=True)
class Shard:
    """A tar and the keys in it that pass the filters, in the order they are stored."""

    url: str
    keys: tuple[str, ...]


def shard_urls(source: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """An OUT folder (its complete shards), a folder of tars, a glob, a brace pattern, a URL, or a list of these."""
    items = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    urls: list[str] = []
    for item in items:
        text = str(item)
        path = Path(text)
        if path.is_dir():
            out = OutDir(path)
            if out.shards.is_dir():
                urls += [str(out.shards / f"{name}.tar") for name in out.complete_shards()]
            else:
                urls += sorted(str(p) for p in path.glob("*.tar"))
        elif _GLOB_CHARS & set(text) and "://" not in text:
            urls += sorted(glob.glob(text))
        else:
            urls += wds.shardlists.expand_urls(text)
    return urls


def _index(url: str) -> Path | io.BytesIO | None:
    """The shard's index parquet beside its tar: a local file, or fetched over HTTP (a few KB, where listing the
    keys from the tar itself would download the whole tar); None when there is none."""
    if not url.endswith(".tar"):
        return None
    if url.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(url[: -len(".tar")] + ".parquet", timeout=60) as response:
                return io.BytesIO(response.read())
        except (urllib.error.URLError, OSError):  # no index there (404, say): the tar's json members tell
            return None
    path = Path(url).with_suffix(".parquet")
    return path if path.is_file() else None


def _keys_from_index(index: Path | io.BytesIO, filters: Filters) -> tuple[str, ...]:
    table = pq.read_table(index, columns=["key", "status", "source", "score", *CAPTION_COLUMNS]).to_pylist()
    return tuple(
        r["key"]
        for r in table
        if r["status"] == OK and filters.keep(r["source"], r["score"], (r[c] for c in CAPTION_COLUMNS))
    )


def _keys_from_tar(url: str, filters: Filters) -> tuple[str, ...]:
    """Without an index: read the ``.json`` members (only those: the images are skipped, not decoded)."""
    keys = []
    for sample in wds.DataPipeline(
        wds.SimpleShardList([url]), wds.tarfile_to_samples(select_files=lambda name: name.endswith(".json"))
    ):
        info = json.loads(sample["json"])
        if filters.keep(info.get("source", ""), info.get("curator_score"), (info.get("captions") or {}).values()):
            keys.append(sample["__key__"])
    return tuple(keys)


def catalog(urls: Iterable[str], filters: Filters) -> list[Shard]:
    """Every shard with the keys that pass ``filters``."""
    shards = []
    for url in urls:
        index = _index(url)
        shards.append(Shard(url, _keys_from_index(index, filters) if index else _keys_from_tar(url, filters)))
    return shards


def epoch_part(
    shards: Sequence[Shard], epoch: int, seed: int, shuffle: bool, consumer: int, consumers: int
) -> list[Shard]:
    """Consumer ``consumer``'s contiguous run of the epoch's sample sequence (see the module docstring)."""
    order = np.arange(len(shards))
    if shuffle:
        np.random.default_rng([seed, epoch]).shuffle(order)
    total = sum(len(s.keys) for s in shards)
    start, stop = consumer * total // consumers, (consumer + 1) * total // consumers
    part, pos = [], 0
    for i in order.tolist():
        keys = shards[i].keys
        lo, hi = max(start - pos, 0), min(stop - pos, len(keys))
        if lo < hi:
            part.append(Shard(shards[i].url, keys[lo:hi]))
        pos += len(keys)
        if pos >= stop:
            break
    return part


def decode_members(raw: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The five layers, each in its own mode (composite/background RGB, foreground RGBA, masks L), and the json."""
    missing = [m for m in (*(f"{n}.png" for n in LAYER_MEMBERS), "json") if m not in raw]
    if missing:
        raise ValueError(f"{raw.get('__url__')}: sample {raw['__key__']} lacks {missing}")
    layers = {n: np.array(Image.open(io.BytesIO(raw[f"{n}.png"])).convert(MODES[n])) for n in LAYER_MEMBERS}
    if len({a.shape[:2] for a in layers.values()}) != 1:
        raise ValueError(f"{raw.get('__url__')}: sample {raw['__key__']} has layers of different sizes")
    return layers, json.loads(raw["json"])


def collate_layers(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack the layers; keys, captions and the sample json stay lists (one entry per sample)."""
    batch: dict[str, Any] = {k: [s[k] for s in samples] for k in ("key", "captions", "json")}
    for name in LAYER_MEMBERS:
        batch[name] = torch.stack([s[name] for s in samples])
    return batch


class LayeredShards(IterableDataset):
    """The samples of one rank; each DataLoader worker takes its own run of them (see the module docstring)."""

    def __init__(
        self,
        shards: list[Shard],
        size: int,
        crop: Crop,
        shuffle: bool,
        seed: int,
        rank: int,
        world_size: int,
        num_workers: int,
        shuffle_buffer: int,
    ):
        self.shards, self.size, self.crop, self.shuffle, self.seed = shards, size, crop, shuffle, seed
        self.rank, self.world_size, self.num_workers, self.shuffle_buffer = (
            rank,
            world_size,
            num_workers,
            shuffle_buffer,
        )
        self.epoch = 0

    def worker_counts(self) -> list[int]:
        """Samples each worker of this rank yields per epoch (the same every epoch)."""
        total, consumers = sum(len(s.keys) for s in self.shards), self.world_size * self.num_workers
        first = self.rank * self.num_workers
        return [(c + 1) * total // consumers - c * total // consumers for c in range(first, first + self.num_workers)]

    def __len__(self) -> int:
        return sum(self.worker_counts())

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker = info.id if info is not None else 0
        consumer, consumers = self.rank * self.num_workers + worker, self.world_size * self.num_workers
        part = epoch_part(self.shards, self.epoch, self.seed, self.shuffle, consumer, consumers)
        if not part:
            return
        keys = frozenset(k for s in part for k in s.keys)
        stages: list[Any] = [
            wds.SimpleShardList([s.url for s in part]),
            wds.tarfile_to_samples(select_files=lambda name: name.split(".", 1)[0] in keys),
        ]
        if self.shuffle:
            rng = random.Random(f"{self.seed}/{self.epoch}/{consumer}")
            stages.append(wds.shuffle(self.shuffle_buffer, initial=self.shuffle_buffer, rng=rng))
        stages.append(wds.map(self.sample))
        read = 0
        for sample in wds.DataPipeline(*stages):
            read += 1
            yield sample
        if read != len(keys):  # the epoch would silently lack samples that the index promised
            raise RuntimeError(
                f"{len(keys) - read} of this worker's {len(keys)} samples are missing from "
                f"{[s.url for s in part]} (run `curate verify` on them)"
            )

    def sample(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Decode one sample and cut every layer with the same window."""
        layers, info = decode_members(raw)
        key = raw["__key__"]
        rng = np.random.default_rng([self.seed, self.epoch, zlib.crc32(key.encode())])
        box = alpha_box(layers["foreground"][..., 3]) if self.crop == "random" else None
        h, w = layers["composite"].shape[:2]
        window = draw_window(h, w, self.crop, rng, box)
        return {"key": key, **apply_window(layers, window, self.size), "captions": info["captions"], "json": info}


class LayeredLoader(DataLoader):
    """A DataLoader with ``set_epoch``: each ``iter()`` plays one epoch and the next one follows on its own.

    ``set_epoch(e)`` (as with ``DistributedSampler``) chooses the epoch the next iteration plays; without
    it, iterations play epochs 0, 1, 2, ... Either way the same seed gives the same epochs.
    """

    dataset: LayeredShards
    batch_size: int  # always given (DataLoader's attribute is None only for its own batch_sampler mode)

    def __init__(self, dataset: LayeredShards, batch_size: int, num_workers: int):
        super().__init__(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_layers)
        self._next_epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self._next_epoch = epoch

    @property
    def epoch(self) -> int:
        """The epoch the latest iteration played."""
        return self.dataset.epoch

    def __iter__(self):
        self.dataset.epoch = self._next_epoch  # workers get a copy of the dataset when the iterator starts
        self._next_epoch += 1
        return super().__iter__()

    def __len__(self) -> int:
        """Batches this rank yields per epoch (each worker's last batch may be short)."""
        return sum(math.ceil(n / self.batch_size) for n in self.dataset.worker_counts())


def _rank_and_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is None and world_size is None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1
    if rank is None or world_size is None:
        raise ValueError("give rank and world_size together (or neither, to take them from torch.distributed)")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
    return rank, world_size


def layered_loader(
    source: str | os.PathLike | Sequence[str | os.PathLike],
    size: int = 256,
    batch_size: int = 8,
    num_workers: int = 2,
    shuffle: bool = True,
    seed: int = 0,
    crop: Crop = "random",
    rank: int | None = None,
    world_size: int | None = None,
    min_score: float | None = None,
    sources: Iterable[str] | None = None,
    require_captions: bool = False,
    shuffle_buffer: int = SHUFFLE_BUFFER,
) -> LayeredLoader:
    """A PyTorch DataLoader over layered shards.

    ``source``: an OUT folder (its complete shards), a folder of tars, a glob or brace pattern, a URL, or a
    list of these. Batches are dicts: ``key`` (list of str), ``composite`` and ``background`` (float32
    B×3×S×S in [0, 1]), ``foreground`` (B×4×S×S, straight alpha), ``mask`` and ``effect`` (B×1×S×S),
    ``captions`` (list of dicts: composite, foreground, background) and ``json`` (list of sample dicts).
    ``crop``: ``random`` (a square of 50-100 % of the short side that keeps the object and its shadow in
    view where it fits, plus a horizontal flip), ``center`` (the largest centred square) or ``resize``
    (the whole image, aspect not kept); then every layer is resized to ``size``. ``rank``/``world_size``
    default to ``torch.distributed``'s when it is initialised. Filters: ``min_score`` (curator score),
    ``sources`` (source names), ``require_captions`` (all three non-empty).
    """
    if crop not in CROPS:
        raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")
    rank, world_size = _rank_and_world(rank, world_size)
    urls = shard_urls(source)
    if not urls:
        raise FileNotFoundError(f"no shards found at {source!r}")
    filters = Filters(
        min_score,
        None if sources is None else frozenset([sources] if isinstance(sources, str) else sources),
        require_captions,
    )
    shards = catalog(urls, filters)
    if not any(s.keys for s in shards):
        raise ValueError(f"{len(urls)} shards at {source!r} hold no sample that passes {filters}")
    dataset = LayeredShards(shards, size, crop, shuffle, seed, rank, world_size, max(1, num_workers), shuffle_buffer)
    return LayeredLoader(dataset, batch_size, num_workers)
