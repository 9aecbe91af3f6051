"""Faults an operator causes (issue 12), each on a real local Ray run: every one ends with 0 samples lost
and 0 duplicated, checked against the keys a clean run records."""
from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from curation.finalize import finalize
from curation.layout import OutDir
from curation.pipeline import run
from curation.shard_check import shard_problem
from curation.verify import verify
from tests.conftest import small_config


def index_keys(out) -> list[str]:
    return pq.read_table(out / "index.parquet", columns=["key"]).column("key").to_pylist()


def assert_complete(out, expected: set[str]) -> None:
    """Every expected key recorded exactly once (0 lost, 0 duplicated), and verify passes."""
    keys = index_keys(out)
    assert len(keys) == len(set(keys)), "a key is recorded twice"
    assert set(keys) == expected
    rep = verify(out, 35.0)
    assert rep.ok, rep.problems


@pytest.fixture(scope="module")
def clean_run(ray_session, tmp_path_factory):
    """The reference: one clean run of a small config (several shards)."""
    out = tmp_path_factory.mktemp("clean")
    cfg = small_config(out, sink={"shard_size": 4})
    result = run(cfg)
    return cfg, result, set(index_keys(out))


def test_a_truncated_complete_shard_is_found_removed_and_redone(clean_run, tmp_path, ray_session):
    import shutil

    _, result, expected = clean_run
    out = tmp_path / "out"
    shutil.copytree(result.out, out)
    shards = OutDir(out).complete_shards()
    assert len(shards) >= 2
    tar = out / "shards" / f"{shards[0]}.tar"
    tar.write_bytes(tar.read_bytes()[: tar.stat().st_size // 2])  # an interrupted copy
    assert "bytes" in shard_problem(out / "shards", shards[0])
    assert any(shards[0] in p for p in verify(out, 35.0).problems)
    finalize(OutDir(out))  # the report skips what it cannot read instead of crashing
    again = run(small_config(out, sink={"shard_size": 4}))
    assert not (out / "shards" / f"{shards[0]}_stats.json").exists()
    assert again.stats["ingested"] == result.stats["ingested"]
    assert_complete(out, expected)


def test_a_flipped_byte_is_caught_by_the_checksum(clean_run, tmp_path):
    import shutil

    _, result, _ = clean_run
    out = tmp_path / "out"
    shutil.copytree(result.out, out)
    name = OutDir(out).complete_shards()[-1]
    tar = out / "shards" / f"{name}.tar"
    data = bytearray(tar.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside a PNG's data: size and headers unchanged
    tar.write_bytes(bytes(data))
    assert shard_problem(out / "shards", name) is None
    assert "SHA-256" in shard_problem(out / "shards", name, deep=True)
    assert any("SHA-256" in p for p in verify(out, 35.0).problems)
