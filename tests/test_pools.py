"""Actor pools: fusion of CPU-only stages, autoscaling bounds, and the start-up check that they fit the cluster."""

from __future__ import annotations

import numpy as np
import pytest
from ray.data import ActorPoolStrategy

from curation.core.config import ConfigError, Resources
from curation.core.schema import rows_to_table, table_rows
from curation.core.stage import chain_class, map_kwargs
from curation.pipeline import STAGES, check_fit, plan_pools, run
from curation.worklist import unit_batches
from stages.caption import Caption
from stages.curate import Curate
from stages.ingest import Ingest
from stages.masks import MasksAndLayers
from tests.conftest import small_config

CPU_ONLY = {"total": {"CPU": 4.0, "GPU": 0.0}, "node": {"CPU": 4.0, "GPU": 0.0}}


def test_consecutive_cpu_stages_share_one_pool_and_a_gpu_stage_keeps_its_own(tmp_path):
    cfg = small_config(tmp_path, masks={"resources": {"concurrency": 2, "max_concurrency": 3, "num_cpus": 0.5}})
    (pool,) = plan_pools(cfg)
    assert pool.stages == (Ingest, *STAGES)
    assert (pool.resources.concurrency, pool.resources.max_concurrency) == (2, 3)
    assert pool.resources.batch_size == cfg.ingest.resources.batch_size  # the chain's input is a unit batch

    gpu = small_config(tmp_path, masks={"resources": {"num_gpus": 1, "batch_size": 4}})
    assert [p.stages for p in plan_pools(gpu)] == [(Ingest,), (MasksAndLayers,), (Caption, Curate)]
    assert plan_pools(gpu)[1].resources.num_gpus == 1

    off = small_config(tmp_path, ray={"fusion": "off"})
    assert [p.stages for p in plan_pools(off)] == [(Ingest,), *((s,) for s in STAGES)]


def test_a_chain_gives_the_same_rows_as_its_stages_one_by_one(tmp_path):
    cfg = small_config(tmp_path, curate={"backend": "physical"})
    units = next(unit_batches(cfg))
    fused = table_rows(chain_class((Ingest, *STAGES))(cfg)(units))
    table = Ingest(cfg)(units)
    for stage in STAGES:
        table = stage(cfg)(table)
    alone = table_rows(table)
    assert [r["key"] for r in fused] == [r["key"] for r in alone] and any(r["status"] == "ok" for r in fused)
    for a, b in zip(fused, alone, strict=True):
        assert a["status"] == b["status"] and a["caption_composite"] == b["caption_composite"]
        assert all((a[c] is None and b[c] is None) or np.array_equal(a[c], b[c]) for c in ("foreground", "background"))
    assert rows_to_table(fused).schema == table.schema


def test_pool_size_is_fixed_or_autoscaling():
    fixed = map_kwargs(Resources(concurrency=2))["compute"]
    scaling = map_kwargs(Resources(concurrency=1, max_concurrency=4))["compute"]
    assert isinstance(fixed, ActorPoolStrategy) and (fixed.min_size, fixed.max_size) == (2, 2)
    assert (scaling.min_size, scaling.max_size) == (1, 4)


def test_an_autoscaling_range_below_its_minimum_fails_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match="masks.resources"):
        small_config(tmp_path, masks={"resources": {"concurrency": 3, "max_concurrency": 2}})


def test_pools_that_cannot_fit_the_cluster_fail_at_start_naming_the_key(tmp_path):
    check_fit(plan_pools(small_config(tmp_path)), CPU_ONLY["total"], CPU_ONLY["node"])
    gpu = small_config(tmp_path, masks={"resources": {"num_gpus": 1}})
    with pytest.raises(ConfigError, match=r"masks.resources: one actor asks for num_gpus 1.*0 GPU"):
        check_fit(plan_pools(gpu), CPU_ONLY["total"], CPU_ONLY["node"])
    many = small_config(tmp_path, ray={"fusion": "off"}, caption={"resources": {"num_cpus": 1, "concurrency": 3}})
    with pytest.raises(ConfigError, match=r"need 5\.25 CPU.*caption.resources: 3 x 1.*has 4"):
        check_fit(plan_pools(many), CPU_ONLY["total"], CPU_ONLY["node"])
    big = small_config(tmp_path, ray={"fusion": "off"}, curate={"resources": {"num_cpus": 8}})
    with pytest.raises(ConfigError, match="curate.resources: one actor asks for num_cpus 8"):
        check_fit(plan_pools(big), {"CPU": 16.0}, {"CPU": 4.0})


def test_a_run_asking_for_a_gpu_the_cluster_lacks_stops_before_it_starts(ray_session, tmp_path):
    cfg = small_config(tmp_path, masks={"resources": {"num_gpus": 1}})
    with pytest.raises(ConfigError, match="masks.resources"):
        run(cfg)
    assert not (tmp_path / "run.json").exists()  # nothing was started
