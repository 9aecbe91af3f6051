"""Per-source quotas (``max_units`` / ``max_samples``): which units of a source a run takes.

Units are ranked by a hash of the source's ``quota_seed``, its name and the unit id, and taken in rank order
while they fit: the choice depends on nothing but the listing, so a rerun, and a resumed run after a kill,
takes exactly the same photos, and the quota holds across segments without any state of its own. A unit that
holds no candidate sample is not taken under a quota; a manifest entry that could not be read is not a photo and
always passes (it becomes its reject row).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from curation.core.config import ConfigError, RunConfig
from curation.core.config.sources import Quota
from stages.sources import Source, build_source
from stages.sources.base import MANIFEST_ERROR, Unit


@dataclass(frozen=True)
class QuotaPlan:
    """One source's counts under its quota: what it lists, what the quota allows, what a run takes."""

    source: str
    units_found: int
    #: candidate samples (instances) the listed units hold; None where the source knows them only once decoded
    samples_found: int | None
    max_units: int | None
    max_samples: int | None
    units_selected: int
    samples_selected: int | None
    #: manifest entries that could not be read (they become reject rows, quota or not)
    bad_entries: int


def unit_rank(seed: int, source: str, unit_id: str) -> bytes:
    """The unit's place in its source's quota order (SHA-1: the same on every machine and Python)."""
    return hashlib.sha1(f"{seed}\0{source}\0{unit_id}".encode()).digest()


def has_quota(cfg: Quota) -> bool:
    return cfg.max_units is not None or cfg.max_samples is not None


def _samples(source: Source, unit: Unit) -> int | None:
    keys = source.expected_keys(unit)
    return None if keys is None else len(keys)


def select(source: Source, cfg: Quota, where: str) -> tuple[frozenset[str], QuotaPlan]:
    """The ids of the units the quota takes, and the counts; one pass over the listing, ids and counts only."""
    ranked: list[tuple[bytes, str, int | None]] = []
    bad = 0
    for unit in source.units():
        if MANIFEST_ERROR in unit.ref:
            bad += 1
            continue
        ranked.append((unit_rank(cfg.quota_seed, source.name, unit.unit_id), unit.unit_id, _samples(source, unit)))
    known = all(n is not None for _, _, n in ranked)
    if cfg.max_samples is not None and not known:
        raise ConfigError(
            f"{where}.max_samples: source {source.name!r} knows its samples only once it decodes "
            "them; give max_units instead"
        )
    chosen: list[str] = []
    taken = 0
    for _, unit_id, n in sorted(ranked):
        if cfg.max_units is not None and len(chosen) >= cfg.max_units:
            break
        if has_quota(cfg) and n == 0:
            continue
        if cfg.max_samples is not None and taken + (n or 0) > cfg.max_samples:
            continue  # a smaller unit further down may still fit
        chosen.append(unit_id)
        taken += n or 0
    found = sum(n or 0 for _, _, n in ranked) if known else None
    plan = QuotaPlan(
        source=source.name,
        units_found=len(ranked),
        samples_found=found,
        max_units=cfg.max_units,
        max_samples=cfg.max_samples,
        units_selected=len(chosen),
        samples_selected=taken if known else None,
        bad_entries=bad,
    )
    return frozenset(chosen), plan


def quota_units(source: Source, cfg: Quota, where: str) -> Iterator[Unit]:
    """The source's units that its quota takes, in listing order (all of them without a quota)."""
    if not has_quota(cfg):
        yield from source.units()
        return
    chosen, _ = select(source, cfg, where)
    for unit in source.units():
        if MANIFEST_ERROR in unit.ref or unit.unit_id in chosen:
            yield unit


def plan_quotas(cfg: RunConfig) -> list[QuotaPlan]:
    """Every source's expected counts under its quota (for ``curate plan``); lists each source once, reads no
    pixels. A source that cannot be listed raises like the run would (:class:`ConfigError` naming it)."""
    plans = []
    for i, src_cfg in enumerate(cfg.sources):
        where = f"sources.{i}"
        try:
            plans.append(select(build_source(src_cfg), src_cfg, where)[1])
        except (FileNotFoundError, NotADirectoryError, PermissionError, ValueError) as err:
            if isinstance(err, ConfigError):
                raise
            raise ConfigError(f"{where} ({src_cfg.name}): {err}") from err
    return plans
