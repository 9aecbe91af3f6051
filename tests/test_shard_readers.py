"""Other readers of the same shards: Hugging Face ``datasets`` and Ray Data keep every field and the alpha.

Both infer one schema from the samples, which is why the sample json has one fixed schema for every
source. The fixture mixes two sources whose annotations differ (integer vs zero-padded string ids, fields
only one source has) and images of different sizes. Nothing here may touch the network.
"""

from __future__ import annotations

import io
import json
import os
import tarfile

import numpy as np
import pytest
from PIL import Image

from curation.sink import SAMPLE_JSON_VERSION
from devdata.layered_shards import write_layered_shards

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

JSON_FIELDS = {
    "version",
    "key",
    "source",
    "source_ref",
    "label",
    "image_id",
    "instance_id",
    "captions",
    "recomposite_psnr",
    "curator_score",
    "bbox",
    "annotation",
    "meta",
}


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    written = write_layered_shards(tmp_path_factory.mktemp("readers") / "out")
    tars = sorted(str(p) for p in (written.out / "shards").glob("*.tar"))
    stored = {}  # key -> (sample json, foreground RGBA array) straight from the tars
    for t in tars:
        with tarfile.open(t) as tar:
            for info in tar:
                key, member = info.name.split(".", 1)
                data = tar.extractfile(info).read()
                if member == "json":
                    stored.setdefault(key, {})["json"] = json.loads(data)
                elif member == "foreground.png":
                    stored.setdefault(key, {})["fg"] = np.asarray(Image.open(io.BytesIO(data)))
    return written, tars, stored


def test_the_sample_json_has_one_schema_for_every_source(shards):
    written, _, stored = shards
    for s in stored.values():
        meta = s["json"]
        assert set(meta) == JSON_FIELDS and meta["version"] == SAMPLE_JSON_VERSION
        assert (
            isinstance(meta["image_id"], str) and isinstance(meta["annotation"], str) and isinstance(meta["meta"], str)
        )
        assert all(isinstance(v, float) for v in meta["bbox"])
        assert "timings" not in json.loads(meta["meta"])  # timings live in the index parquet
    photo = next(s["json"] for k, s in stored.items() if k.startswith("photo"))
    assert photo["image_id"] == "02" and json.loads(photo["annotation"])["clean_kind"] == "shadowfree"
    unscored = stored[written.no_score[0]]["json"]
    assert unscored["curator_score"] is None  # null, not NaN: strict JSON readers accept it


def test_sample_bytes_do_not_depend_on_timings(shards):
    import pyarrow.parquet as pq

    from curation.core.schema import new_row, update_meta
    from curation.sink import sample_json

    written, _, _ = shards
    index = pq.read_table(written.out / "shards" / "r000-000000.parquet", columns=["status", "meta"]).to_pylist()
    assert all("timings" in json.loads(r["meta"]) for r in index if r["status"] == "ok")  # they live here
    rows = [
        new_row("k", "s", "ref", ann={"bbox": [1, 2, 3, 4], "image_id": 7}, meta={"masks": {"psnr": 50.0}})
        for _ in range(2)
    ]
    update_meta(rows[0], "timings", {"masks": 0.01})
    update_meta(rows[1], "timings", {"masks": 0.93})
    assert json.dumps(sample_json(rows[0])) == json.dumps(sample_json(rows[1]))


def test_hugging_face_datasets_reads_every_sample_field_and_alpha(shards, tmp_path):
    from datasets import Image as HFImage
    from datasets import load_dataset

    written, tars, stored = shards
    ds = load_dataset("webdataset", data_files={"train": tars}, split="train", cache_dir=str(tmp_path / "hf"))
    ds = ds.cast_column("foreground.png", HFImage(mode="RGBA"))  # pin the mode: alpha stays whatever decodes it
    assert ds.num_rows == len(written.accepted)
    assert set(ds.features["json"]) == JSON_FIELDS
    assert ds.features["json"]["image_id"].dtype == "string" and ds.features["json"]["annotation"].dtype == "string"
    for row in ds:
        key = row["__key__"]
        assert row["json"] == stored[key]["json"], f"{key}: a field was dropped or retyped"
        fg = np.asarray(row["foreground.png"])
        assert row["foreground.png"].mode == "RGBA" and np.array_equal(fg, stored[key]["fg"])
        assert row["mask.png"].mode == "L" and row["composite.png"].mode == "RGB"


def test_ray_read_webdataset_reads_every_sample_field_and_alpha(shards, ray_session):
    import pyarrow as pa
    import ray.data

    written, tars, stored = shards
    ds = ray.data.read_webdataset(tars, expand_json=True).materialize()  # every json field its own column
    schema = dict(zip(ds.schema().names, ds.schema().types, strict=True))
    for name in ("image_id", "instance_id", "annotation", "meta", "source"):
        assert schema[name] == pa.string(), f"{name}: {schema[name]}"
    assert schema["curator_score"] == schema["recomposite_psnr"] == pa.float64()
    rows = ds.take_all()
    assert len(rows) == ds.count() == len(written.accepted)
    for row in rows:
        key = row["__key__"]
        for name, value in stored[key]["json"].items():
            got = list(row[name]) if name == "bbox" else row[name]
            assert got == value or (value is None and got != got), f"{key}.{name}: {got!r} != {value!r}"
        assert row["foreground.png"].shape[2] == 4 and np.array_equal(row["foreground.png"], stored[key]["fg"])
        assert row["mask.png"].ndim == 2 and row["composite.png"].shape[2] == 3
