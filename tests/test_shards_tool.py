"""``curate shards``: the summary, re-sharding byte for byte, the train/val split by photo."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from curation.cli import main
from curation.shards import Target, photo_of, split_of, summary
from curation.verify import verify
from devdata.layered_shards import write_layered_shards


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_layered_shards(tmp_path_factory.mktemp("shards") / "out", scenes=14, shard_size=6)


def _members(folder: Path) -> dict[str, bytes]:
    """Every member of every complete shard of an OUT folder: name -> bytes."""
    members: dict[str, bytes] = {}
    for stats in sorted((folder / "shards").glob("*_stats.json")):
        with tarfile.open(stats.with_name(stats.name.replace("_stats.json", ".tar"))) as tar:
            for info in tar:
                assert info.name not in members, f"{info.name} twice"
                members[info.name] = tar.extractfile(info).read()
    return members


def _sample_problems(out: Path) -> list[str]:
    """What verify finds in the samples themselves (the fixture has one without a caption on purpose)."""
    return [p for p in verify(out, 35.0).problems if "stats.json" not in p]


def test_summary_counts_sizes_and_quantiles(shards):
    s = summary(shards.out)
    assert (s["accepted"], s["rejected"]) == (len(shards.accepted), len(shards.rejected))
    assert s["ingested"] == s["accepted"] + s["rejected"]
    assert s["shards"] == len(list((shards.out / "shards").glob("*.tar")))
    assert s["by_source"] == {src: list(shards.sources.values()).count(src) for src in ("photo", "synth")}
    scored = sorted(v for v in shards.scores.values() if v == v)
    assert s["curator_score"]["p0"] == pytest.approx(scored[0]) and s["curator_score"]["p100"] == pytest.approx(
        scored[-1]
    )
    assert s["unscored"] == len(shards.no_score)
    assert s["tar_bytes"] == sum(p.stat().st_size for p in (shards.out / "shards").glob("*.tar"))


def test_reshard_keeps_every_sample_byte_for_byte(shards, tmp_path, capsys):
    before = _members(shards.out)
    assert main(["shards", str(shards.out), "--reshard", "4", "--to", str(tmp_path / "re")]) == 0
    assert "samples per shard: min" in capsys.readouterr().out
    after = _members(tmp_path / "re")
    assert after == before  # same member names, same bytes; nothing lost, nothing added
    counts = [json.loads(p.read_text())["accepted"] for p in sorted((tmp_path / "re" / "shards").glob("*_stats.json"))]
    assert counts[:-1] == [4] * (len(counts) - 1) and 1 <= counts[-1] <= 4
    assert verify(tmp_path / "re", 35.0).problems == _sample_problems(shards.out)  # an OUT folder like any run's


def test_reshard_by_bytes(shards, tmp_path):
    target = Target.parse("40KiB")
    assert target.bytes == 40 * 1024
    assert main(["shards", str(shards.out), "--reshard", "40KiB", "--to", str(tmp_path / "re")]) == 0
    tars = sorted((tmp_path / "re" / "shards").glob("*.tar"))
    assert len(tars) > 1
    for t in tars:  # over the target only when one sample alone is larger
        with tarfile.open(t) as tar:
            assert t.stat().st_size <= target.bytes + 10 * 1024 or len({m.name.split(".")[0] for m in tar}) == 1
    assert _members(tmp_path / "re") == _members(shards.out)


def test_train_val_split_by_photo(shards, tmp_path):
    assert main(["shards", str(shards.out), "--val", "0.3", "--to", str(tmp_path / "split")]) == 0
    train, val = _members(tmp_path / "split" / "train"), _members(tmp_path / "split" / "val")
    assert train and val and not set(train) & set(val)
    assert {**train, **val} == _members(shards.out)
    photos = {side: {name.split("-")[1] for name in members} for side, members in (("train", train), ("val", val))}
    assert not photos["train"] & photos["val"], "two objects of one photo must land on the same side"
    problems = verify(tmp_path / "split" / "train", 35.0).problems + verify(tmp_path / "split" / "val", 35.0).problems
    assert sorted(problems) == sorted(_sample_problems(shards.out))


def test_split_is_stable_and_monotone():
    groups = [f"synth/{i}" for i in range(2000)]
    small = {g for g in groups if split_of(g, 0.1) == "val"}
    large = {g for g in groups if split_of(g, 0.2) == "val"}
    assert small <= large and 150 < len(small) < 250
    assert photo_of({"key": "k", "source": "photo", "ann": json.dumps({"image_id": "05"})}) == "photo/05"
    assert photo_of({"key": "k", "source": "folder", "ann": "{}"}) == "k"


def test_bad_requests_fail_with_one_line(shards, tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert main(["shards", str(shards.out), "--reshard", "4", "--to", str(tmp_path / "full")]) == 2
    assert main(["shards", str(shards.out), "--reshard", "4"]) == 2
    assert main(["shards", str(shards.out), "--reshard", "lots", "--to", str(tmp_path / "a")]) == 2
    assert main(["shards", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("curate shards: ") for line in err)
