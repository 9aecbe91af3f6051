"""Per-source quotas: hash-ranked, the same photos on every run, counted by ``plan_quotas``, held across a resume."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from curation.core.config import ConfigError, load_config, parse_config
from curation.layout import OutDir
from curation.quota import QuotaPlan, plan_quotas, select
from devdata.coco_synth import write_dataset
from stages.sources import build_source
from tests.fixtures.mulan_synth import write_scene

MANIFESTS = Path(__file__).resolve().parents[1] / "manifests"


def two_sources(root: Path, coco: dict, mulan: dict, **sections) -> dict:
    ann = root / "coco" / "annotations" / "instances_val2017.json"
    if not ann.exists():
        write_dataset(root / "coco", n_images=6, objects_per_image=3, size=(128, 96), seed=2)
        for i in range(1, 5):
            write_scene(root / "mulan", i, seed=9)
    return {
        "run": {"out": str(root / "out")},
        "sink": {"shard_size": 3},
        **sections,
        "sources": [
            {"type": "coco", "name": "coco", "annotations": str(ann), "images": str(root / "coco" / "val2017"), **coco},
            {
                "type": "mulan",
                "name": "mulan",
                "annotations": str(root / "mulan" / "annotations"),
                "images": [str(root / "mulan" / "images")],
                **mulan,
            },
        ],
    }


def test_plan_counts_each_source_under_its_quota(tmp_path):
    cfg = parse_config(two_sources(tmp_path, {"max_samples": 7}, {"max_units": 3}))
    coco, mulan = plan_quotas(cfg)
    assert coco == QuotaPlan(
        source="coco",
        units_found=6,
        samples_found=18,
        max_units=None,
        max_samples=7,
        units_selected=2,
        samples_selected=6,
        bad_entries=0,
    )
    assert mulan == QuotaPlan(
        source="mulan",
        units_found=4,
        samples_found=None,
        max_units=3,
        max_samples=None,
        units_selected=3,
        samples_selected=None,
        bad_entries=0,
    )
    unlimited = plan_quotas(parse_config(two_sources(tmp_path, {}, {})))
    assert [(p.units_selected, p.samples_selected) for p in unlimited] == [(6, 18), (4, None)]


def test_selection_is_the_same_on_every_run_and_moves_with_the_seed(tmp_path):
    data = two_sources(tmp_path, {"max_units": 3}, {})
    source = build_source(parse_config(data).sources[0])
    first, _ = select(source, parse_config(data).sources[0], "sources.0")
    again, _ = select(build_source(parse_config(data).sources[0]), parse_config(data).sources[0], "sources.0")
    assert first == again and len(first) == 3
    other = {
        frozenset(
            select(
                source,
                parse_config(two_sources(tmp_path, {"max_units": 3, "quota_seed": s}, {})).sources[0],
                "sources.0",
            )[0]
        )
        for s in range(1, 6)
    }
    assert len(other | {first}) > 1  # another seed picks other photos


def test_max_samples_on_a_source_that_counts_only_when_decoding_is_refused_by_key(tmp_path):
    cfg = parse_config(two_sources(tmp_path, {}, {"max_samples": 4}))
    with pytest.raises(ConfigError, match=r"sources\.1\.max_samples"):
        plan_quotas(cfg)


def test_the_lasagna48k_recipe_validates():
    cfg = load_config(MANIFESTS / "lasagna48k.yaml")
    assert [(s.type, s.max_units, s.max_samples) for s in cfg.sources] == [
        ("mulan", 8000, None),
        ("coco", None, 39000),
        ("soba", None, 1000),
    ]
    assert all(build_source(s).name == s.name for s in cfg.sources)


def test_quotas_hold_across_a_killed_run_and_its_resume(ray_session, tmp_path):
    from curation.pipeline import run
    from curation.verify import verify

    data = two_sources(tmp_path, {"max_samples": 7}, {"max_units": 2}, ingest={"dedupe": False})
    cfg = parse_config(data)
    chosen = {s.name: select(build_source(s), s, "")[0] for s in cfg.sources}
    coco_units = {x.unit_id: [i["id"] for i in x.ref["instances"]] for x in build_source(cfg.sources[0]).units()}
    expected = {f"coco-{u}-{i}" for u in chosen["coco"] for i in coco_units[u]}
    expected |= {f"mulan-{u}-{k}" for u in chosen["mulan"] for k in (0, 1)}

    part = run(parse_config(data, {"run.limit": 1}))  # stops after one unit, as a killed run would
    out = OutDir(tmp_path / "out")
    (out.shards / "r000-000009.tar").write_bytes(b"half a shard the kill left")  # and its torn write
    assert 0 < part.stats["ingested"] < len(expected)
    full = run(cfg)
    keys = pq.read_table(out.root / "index.parquet", columns=["key"]).column("key").to_pylist()
    assert len(keys) == len(set(keys)) and set(keys) == expected  # the quota's photos, each once, no more
    assert sum(k.startswith("coco-") for k in keys) <= 7
    assert full.stats["ingested"] == len(expected) and verify(out.root, cfg.verify.psnr_floor).ok
    again = run(cfg)  # a third segment adds nothing: the quota is spent
    assert again.stats["ingested"] == len(expected)


def test_quotas_hold_across_a_sigkill_and_its_resume(ray_session, tmp_path):
    """The run is a real ``curate run`` process, killed (SIGKILL, with the Ray it started) once it has written
    its first shard; the resumed run ends with exactly the quota's samples."""
    import json
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import tempfile
    import time

    from curation.layout import OutDir
    from curation.pipeline import run
    from tests.conftest import REPO

    data = two_sources(
        tmp_path,
        {"max_samples": 7},
        {"max_units": 2},
        ingest={"dedupe": False, "resources": {"num_cpus": 0.5, "batch_size": 1, "concurrency": 1}},
    )
    data["sink"] = {"shard_size": 1}
    cfg = parse_config(json.loads(json.dumps(data)))
    (tmp_path / "run.yaml").write_text(json.dumps(data))
    # a Ray of its own: a private temp dir (short, for Ray's socket paths) also hides any other cluster's address file
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"PYTHONPATH": str(REPO), "RAY_TMPDIR": ray_tmp}
    log = open(tmp_path / "killed.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "curation.cli", "run", str(tmp_path / "run.yaml")],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    out = OutDir(tmp_path / "out")
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline and not list(out.shards.glob("*_stats.json")):
        time.sleep(0.05)
    assert proc.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]  # still running: kill it now
    os.killpg(proc.pid, signal.SIGKILL)  # the run's own process group: its driver and the Ray it started
    proc.wait()
    log.close()
    shutil.rmtree(ray_tmp, ignore_errors=True)
    written = len(list(out.shards.glob("*_stats.json")))
    history = json.loads(out.run_json.read_text())["history"]
    assert written >= 1 and not history[0].get("end")  # killed part-way, after at least one shard

    chosen = {s.name: select(build_source(s), s, "")[0] for s in cfg.sources}
    coco_units = {x.unit_id: [i["id"] for i in x.ref["instances"]] for x in build_source(cfg.sources[0]).units()}
    expected = {f"coco-{u}-{i}" for u in chosen["coco"] for i in coco_units[u]}
    expected |= {f"mulan-{u}-{k}" for u in chosen["mulan"] for k in (0, 1)}
    resumed = run(cfg)
    keys = pq.read_table(out.root / "index.parquet", columns=["key"]).column("key").to_pylist()
    assert resumed.segment == "r001" and len(keys) == len(set(keys)) and set(keys) == expected


def test_unreadable_entries_pass_a_quota_to_become_their_rejects(tmp_path):
    from curation.core.data import BUNDLED
    from curation.quota import quota_units

    root = BUNDLED / "desoba"
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    lines = ["id,composite,background,shadowfree,object_mask"]
    for f in folders:
        files = {p.stem: p.relative_to(root).as_posix() for p in f.iterdir()}
        lines.append(f"{f.name},{files['composite']},,{files['shadowfree']},{files['object_mask']}")
    lines.append("broken,only,three")
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    cfg = parse_config(
        {
            "sources": [
                {"type": "paired", "name": "p", "root": str(root), "manifest": str(tmp_path / "m.csv"), "max_units": 1}
            ]
        }
    )
    [plan] = plan_quotas(cfg)
    assert (plan.units_found, plan.units_selected, plan.bad_entries) == (len(folders), 1, 1)
    units = list(quota_units(build_source(cfg.sources[0]), cfg.sources[0], "sources.0"))
    assert len(units) == 2 and sum("manifest_error" in u.ref for u in units) == 1


def test_curate_plan_shows_each_sources_quota(tmp_path, capsys):
    import json

    import yaml

    from curation.cli import main

    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(two_sources(tmp_path, {"max_samples": 7}, {"max_units": 3})))
    assert main(["plan", str(config), "--json"]) == 0
    quotas = next(v for k, v in json.loads(capsys.readouterr().out)["sections"].items() if k.startswith("quotas"))
    coco, mulan = plan_quotas(parse_config(two_sources(tmp_path, {"max_samples": 7}, {"max_units": 3})))
    assert f"quota 7 -> {coco.samples_selected} taken" in quotas[0] and quotas[0].split()[0] == "coco"
    assert f"{mulan.units_found} units, quota 3 -> 3 taken" in quotas[1]
