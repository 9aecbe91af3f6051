"""Plain photos without annotations: a folder (searched recursively) or a text file of paths.

Candidates come from the segmenter's object proposals (``stages.segmenters.proposals.propose_objects``: automatic
mask generation or a salient-object prompt), computed on the worker on the already downscaled photo.
List files hold one path per line, relative to the list file's folder unless absolute; blank lines and
lines starting with ``#`` are skipped. Unit ids are the relative path plus a short hash of it, so keys
stay stable when files are added and two paths that sanitise alike still differ.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from curation.core.config.sources import FolderSourceConfig
from curation.core.imageio import read_image, within
from curation.core.morphology import bbox_of
from curation.core.reasons import Reason
from curation.core.schema import Row, new_row
from stages.sources.base import Source, Unit, bad_unit, fit_size, make_key, path_id, resize_image


class FolderSource(Source):
    def __init__(self, cfg: FolderSourceConfig):
        self.cfg = cfg
        self.name = cfg.name
        self.extensions = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in cfg.extensions}

    def units(self) -> Iterator[Unit]:
        if self.cfg.root is not None:
            root = self.cfg.root.expanduser()
            if not root.is_dir():
                raise FileNotFoundError(f"folder source {self.name!r}: {root} is not a folder")
            if not os.access(root, os.R_OK | os.X_OK):
                raise PermissionError(f"folder source {self.name!r}: {root} cannot be read (permission denied)")
            for _, unit in sorted(self._walk(root, root), key=lambda pu: pu[0]):
                yield unit
            return
        assert self.cfg.list_file is not None, "the config gives exactly one of root and list_file"
        list_file = self.cfg.list_file.expanduser()
        if not list_file.is_file():
            raise FileNotFoundError(f"folder source {self.name!r}: list file {list_file} does not exist")
        with open(list_file, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                entry = line.strip()
                if not entry or entry.startswith("#"):
                    continue
                if "\x00" in entry or "\ufffd" in entry:
                    yield bad_unit(f"line_{n}", f"{list_file.name} line {n} is not a readable path", entry)
                    continue
                p = Path(entry).expanduser()
                yield Unit(
                    unit_id=path_id(entry),
                    ref={"path": str(p if p.is_absolute() else list_file.parent / p), "rel": entry},
                )

    def _walk(self, base: Path, root: Path) -> Iterator[tuple[str, Unit]]:
        """``(path, unit)`` for each image file below ``root`` (ids relative to the source's ``base``); a folder
        that cannot be listed is one rejected unit (``unreadable``) instead of a silent gap."""
        try:
            entries = list(os.scandir(root))
        except OSError as err:
            rel = root.relative_to(base).as_posix()
            yield (
                str(root),
                bad_unit(
                    path_id(f"{rel}/"), f"folder {root} cannot be listed: {err.strerror or err}", rel, Reason.UNREADABLE
                ),
            )
            return
        for entry in entries:
            p = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk(base, p)
            elif p.suffix.lower() in self.extensions and not p.is_dir():
                rel = p.relative_to(base).as_posix()
                yield str(p), Unit(unit_id=path_id(rel), ref={"path": str(p), "rel": rel})

    def load(self, unit: Unit, max_pixels: int) -> list[Row]:
        return self.load_scaled(unit, max_pixels, None)[0]

    def load_scaled(self, unit: Unit, max_pixels: int, max_side: int | None) -> tuple[list[Row], float]:
        from stages.segmenters.proposals import propose_objects  # stage 2's segmenter; imported where it is used

        if self.cfg.root is not None:  # a list file names its files itself: no root to stay inside
            within(self.cfg.root.expanduser(), unit.ref["path"])
        image = read_image(unit.ref["path"], max_pixels)
        h, w, scale = fit_size(image.shape[0], image.shape[1], max_side)
        image = resize_image(image, h, w)
        masks = propose_objects(
            image,
            self.cfg.max_proposals,
            backend=self.cfg.proposal_backend,
            checkpoint=None if self.cfg.checkpoint is None else str(self.cfg.checkpoint),
            model_type=self.cfg.model_type,
            device=self.cfg.device,
        )
        rows = []
        for j, mask in enumerate(masks):
            mask = mask.astype(bool)
            rows.append(
                new_row(
                    key=make_key(self.name, unit.unit_id, j),
                    source=self.name,
                    source_ref=unit.ref["path"],
                    label="object",
                    composite=image,
                    ann_mask=mask,
                    ann={
                        "bbox": list(bbox_of(mask) or (0, 0, 0, 0)),
                        "image_id": unit.ref["rel"],
                        "instance_id": j,
                        "proposal": self.cfg.proposal_backend,
                        "scale": round(scale, 5),
                    },
                )
            )
        return rows, scale
