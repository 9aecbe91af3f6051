"""``layered_loader`` over HTTP (webdataset's ``http://`` URLs, a local ``http.server``): every key exactly once
per epoch across ranks and workers, the same batches as from the files, the keys listed from each shard's
index parquet (a few KB) instead of the tars, and each tar fetched only by the workers whose part it holds."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from curation.layout import OutDir
from curation.loader import layered_loader
from devdata.http_shards import serve
from devdata.layered_shards import write_layered_shards

SIZE = 32


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_layered_shards(tmp_path_factory.mktemp("http") / "out")


def _names(out) -> list[str]:
    return OutDir(out).complete_shards()


def _batches(loader) -> list[dict]:
    return list(loader)


@pytest.mark.parametrize("index", ["beside the tars", "absent"])
def test_each_key_once_per_epoch_over_http(shards, index):
    names = _names(shards.out)
    assert len(names) >= 3
    with serve(shards.out / "shards", hide=(".parquet",) if index == "absent" else ()) as http:
        urls = [http.url(f"{n}.tar") for n in names]
        loaders = [
            layered_loader(urls, size=SIZE, batch_size=3, num_workers=2, seed=5, rank=r, world_size=2) for r in range(2)
        ]
        listed = list(http.requests)
        for epoch in range(2):
            before = len(http.requests)
            keys = [k for loader in loaders for b in _batches(loader) for k in b["key"]]
            assert sorted(keys) == sorted(shards.accepted), (epoch, Counter(keys).most_common(2))
            fetched = Counter(r.split()[1] for r in http.requests[before:] if r.startswith("GET") and ".tar" in r)
            assert set(fetched) <= {f"/{n}.tar" for n in names}
            assert all(n <= 4 for n in fetched.values())  # at most the 2 x 2 consumers whose runs touch a shard
    fetched = Counter(r.split()[1] for r in listed if r.endswith(" 200"))  # each rank's catalog
    if index == "beside the tars":  # one small parquet per shard and rank, no tar
        assert fetched == Counter({f"/{n}.parquet": 2 for n in names})
    else:  # no index there: the keys come from the tars' json members
        assert fetched == Counter({f"/{n}.tar": 2 for n in names})


def test_http_gives_the_same_batches_as_the_files(shards):
    local = _batches(layered_loader(shards.out, size=SIZE, batch_size=4, num_workers=2, seed=9))
    with serve(shards.out / "shards") as http:
        remote = _batches(
            layered_loader(
                [http.url(f"{n}.tar") for n in _names(shards.out)], size=SIZE, batch_size=4, num_workers=2, seed=9
            )
        )
    assert [b["key"] for b in remote] == [b["key"] for b in local]
    for a, b in zip(local, remote, strict=True):
        for layer in ("composite", "background", "foreground", "mask", "effect"):
            assert torch.equal(a[layer], b[layer]), layer
