"""MuLAn source: annotation pickles written by the test in the card's format, read only through the restricted
unpickler; hostile pickles are rejected with their reason and never run; end to end into verified shards."""

from __future__ import annotations

import io
import json
import os
import pickle
import zlib
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds

from curation.core.compositing import over, psnr
from curation.core.config import parse_config
from curation.core.config.sources import MulanSourceConfig
from curation.core.imageio import ImageError
from curation.core.safe_pickle import PickleRefused, load_restricted
from curation.core.schema import get_image, get_json
from curation.worklist import unit_batches
from stages.ingest import Ingest
from stages.sources.mulan import MulanSource, clean_plates, laion_relpath
from tests.fixtures.mulan_synth import dump, write_scene

MAX_PX = 10**8


def test_numpy_arrays_and_builtin_data_read_back_under_every_protocol(tmp_path):
    data = {
        "u8": np.arange(60, dtype=np.uint8).reshape(4, 5, 3),
        "mask": np.eye(4, dtype=bool),
        "delta": np.arange(-6, 6, dtype=np.int16).reshape(2, 2, 3),
        "alpha": np.linspace(0, 1, 9, dtype=np.float32),
        "fortran": np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4)),
        "scalar": np.float32(1.5),
        "nested": [(1, 2.5, "x", b"y", None, True), {3, 4}, frozenset({5})],
        "ordered": OrderedDict(a=1),
    }
    for protocol in (2, 3, 4, 5):
        back = load_restricted(dump(data, tmp_path / f"p{protocol}.p.zl", protocol), MAX_PX, 10**8)
        for key in ("u8", "mask", "delta", "alpha", "fortran"):
            assert back[key].dtype == data[key].dtype and np.array_equal(back[key], data[key]), (protocol, key)
        assert back["scalar"] == 1.5 and back["nested"] == data["nested"] and back["ordered"] == {"a": 1}
    plain = tmp_path / "plain.p"
    plain.write_bytes(pickle.dumps(data))  # the uncompressed form reads the same
    assert np.array_equal(load_restricted(plain, MAX_PX, 10**8)["u8"], data["u8"])


def test_each_instance_gets_the_background_with_the_other_layers_as_its_clean_plate(tmp_path):
    scene, _, record = write_scene(tmp_path, 7, overlap=True)
    src = MulanSource(MulanSourceConfig(annotations=tmp_path / "annotations", images=[tmp_path / "images"]))
    [unit] = list(src.units())
    rows = src.load(unit, MAX_PX)
    assert [r["key"] for r in rows] == ["mulan-000000000007-0", "mulan-000000000007-1", "mulan-000000000007-2"]
    for k, row in enumerate(rows):
        ann = get_json(row, "ann")
        assert np.array_equal(get_image(row, "clean"), scene.clean_without(k))
        assert np.array_equal(get_image(row, "composite"), scene.photo)
        assert np.array_equal(get_image(row, "ann_mask"), record["instances"][k]["original_image_mask"])
        assert ann["clean_kind"] == "mulan" and row["label"] == f"an object number {k}"
        assert ann["source_captions"]["image"]["llava"].startswith("Two objects")
        assert ann["source_captions"]["background"]["blip2"] == "a paved yard"
        assert ann["source_captions"]["instance"] == {"blip2": f"an object number {k}"}
    # instance 2 lies over instance 1: 1's plate shows 2 on top, 2's plate shows 1 completed beneath it
    hidden = scene.layers[1][1] & scene.layers[2][1]
    assert hidden.any() and np.array_equal(get_image(rows[2], "clean")[hidden], scene.layers[1][0][hidden])


def test_clean_plates_stack_layers_in_order():
    bg = np.zeros((1, 3, 3), np.uint8)
    red, blue = np.full_like(bg, 255) * [1, 0, 0], np.full_like(bg, 255) * [0, 0, 1]
    a1 = np.array([[255, 255, 0]], np.uint8)[..., None]
    a2 = np.array([[0, 255, 255]], np.uint8)[..., None]
    plates = clean_plates(bg, [("r", {}, red.astype(np.uint8), a1), ("b", {}, blue.astype(np.uint8), a2)])
    assert plates[0].tolist() == [[[0, 0, 0], [0, 0, 255], [0, 0, 255]]]  # without red: blue alone
    assert plates[1].tolist() == [[[255, 0, 0], [255, 0, 0], [0, 0, 0]]]  # without blue: red alone
    half = clean_plates(bg, [("r", {}, red.astype(np.uint8), a1 // 2), ("b", {}, blue.astype(np.uint8), a2)])
    assert half[1][0, 0].tolist() == [127, 0, 0]  # a soft alpha blends


def test_a_large_photo_is_shrunk_with_its_plates(tmp_path):
    from stages.sources.base import resize_image, resize_mask

    scene, _, record = write_scene(tmp_path, 3, size=(200, 150), overlap=True)
    src = MulanSource(MulanSourceConfig(annotations=tmp_path / "annotations", images=[tmp_path / "images"]))
    [unit] = list(src.units())
    rows, scale = src.load_scaled(unit, MAX_PX, 100)
    assert scale == 0.5
    for k, row in enumerate(rows):
        assert np.array_equal(get_image(row, "clean"), resize_image(scene.clean_without(k), 75, 100))
        assert np.array_equal(
            get_image(row, "ann_mask"), resize_mask(record["instances"][k]["original_image_mask"], 75, 100)
        )
        assert get_image(row, "composite").shape == (75, 100, 3)


def test_laion_img2dataset_layout_and_a_pairs_csv(tmp_path):
    assert laion_relpath("123456", 10_000) == "00012/000123456.jpg"
    scene, ann_path, _ = write_scene(tmp_path, 123456, base="laion")
    laion = MulanSource(
        MulanSourceConfig(annotations=tmp_path / "annotations", base="laion", images=[tmp_path / "images"])
    )
    [unit] = list(laion.units())
    assert np.array_equal(get_image(laion.load(unit, MAX_PX)[0], "composite"), scene.photo)
    (tmp_path / "pairs.csv").write_text(
        "image,annotation\nimages/00012/000123456.jpg,annotations/000123456.p.zl\nimages/x.jpg,\n"
    )
    paired = MulanSource(MulanSourceConfig(pairs=tmp_path / "pairs.csv"))
    good, bad = list(paired.units())
    assert np.array_equal(get_image(paired.load(good, MAX_PX)[1], "clean"), scene.clean_without(1))
    assert "needs an image and an annotation" in bad.ref["manifest_error"]
    photo = tmp_path / "images" / "00012" / "000123456.jpg"
    (tmp_path / "pairs" / "annotations").mkdir(parents=True)
    (tmp_path / "pairs" / "annotations" / "a.p.zl").write_bytes(ann_path.read_bytes())
    (tmp_path / "pairs" / "pairs.csv").write_text(
        f"image,annotation\n{photo},annotations/a.p.zl\n/etc/hostname,annotations/a.p.zl\n"
    )
    elsewhere = MulanSource(MulanSourceConfig(pairs=tmp_path / "pairs" / "pairs.csv", images=[tmp_path / "images"]))
    inside, outside = list(elsewhere.units())
    assert len(elsewhere.load(inside, MAX_PX)) == 2  # a photo in an images folder, named by its absolute path
    with pytest.raises(ImageError, match="outside the source root"):
        elsewhere.load(outside, MAX_PX)


class SystemCall:
    """Unpickled by the stock unpickler, this would run a shell command that creates ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class HugeArray:
    """Pickles as numpy's own array reconstruction with a header claiming 30 G elements over 10 bytes."""

    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct

        return _reconstruct, (np.ndarray, (0,), b"b"), (1, (100_000, 100_000, 3), np.dtype("u1"), False, b"\0" * 10)


def hostile_folder(root: Path) -> dict[str, tuple[str, str]]:
    """A good annotation and one of each hostile kind, every one beside a valid photo; id → (reason, detail)."""
    marker = root / "payload-ran"
    expect: dict[str, tuple[str, str]] = {}
    write_scene(root, 1)

    def variant(image_id: int, reason: str, detail: str, change) -> None:
        _, path, record = write_scene(root, image_id)
        change(path, record)
        expect[f"{image_id:012d}"] = (reason, detail)

    def system_call(path, record):
        record["instances"][0]["blip2"] = SystemCall(marker)
        dump(record, path)

    def foreign_global(path, record):
        import datetime

        record["captioning"]["date"] = datetime.date(2024, 4, 3)
        dump(record, path)

    def truncated(path, record):
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    def truncated_plain(path, record):
        data = pickle.dumps(record)
        path.write_bytes(data[: len(data) // 2])

    def wrong_size_mask(path, record):
        record["instances"][1]["original_image_mask"] = record["instances"][1]["original_image_mask"][:-1]
        dump(record, path)

    def bomb_header(path, record):
        record["background"]["inpainted_delta"] = HugeArray()
        dump(record, path)

    def missing_photo(path, record):
        (root / "images" / "val2017" / f"{int(path.name[:12]):012d}.jpg").unlink()

    def missing_key(path, record):
        del record["background"]["inpainted_delta"]
        dump(record, path)

    variant(2, "unsafe_pickle", "refused global posix.system", system_call)
    variant(3, "unsafe_pickle", "refused global datetime.date", foreign_global)
    variant(4, "truncated", "compressed stream ends early", truncated)
    variant(5, "truncated", "", truncated_plain)
    variant(6, "size_mismatch", "instances[1].original_image_mask is 128x95", wrong_size_mask)
    variant(7, "too_many_pixels", "(100000, 100000, 3)", bomb_header)
    variant(8, "missing_file", "no base photo for annotation 000000000008", missing_photo)
    variant(9, "bad_annotation", "background has no 'inpainted_delta'", missing_key)

    def repeated_id(path, record):
        record["instances"]["1"] = record["instances"][1]
        dump(record, path)

    variant(10, "bad_annotation", "instance id '1' is repeated", repeated_id)
    return expect


def test_hostile_pickles_are_rejected_with_their_reason_and_nothing_runs(tmp_path):
    expect = hostile_folder(tmp_path)
    cfg = parse_config(
        {
            "run": {"out": str(tmp_path / "out")},
            "ingest": {"dedupe": False},
            "sources": [
                {
                    "type": "mulan",
                    "name": "mulan",
                    "annotations": str(tmp_path / "annotations"),
                    "images": [str(tmp_path / "images")],
                }
            ],
        }
    )
    units = [u for table in unit_batches(cfg) for u in table.to_pylist()]
    rows = Ingest(cfg).run(units)
    by_unit = {r["key"].split("-")[1]: r for r in rows if r["status"] == "rejected"}
    for image_id, (reason, detail) in expect.items():
        row = by_unit[image_id]
        assert row["reject_reason"] == reason and detail in row["reject_detail"], (image_id, row["reject_detail"])
    assert not (tmp_path / "payload-ran").exists()  # the os.system payload never ran
    good = [r for r in rows if r["key"].startswith("mulan-000000000001-")]
    assert len(good) == 2 and all(r["status"] == "ok" for r in good)  # the run went on


def test_the_refused_payload_is_live(tmp_path):
    """The payload is real: its own call creates the marker, and the stream the reader refused carries that call
    (so "the marker is absent" above means the reader stopped it, not that the payload was inert)."""
    marker = tmp_path / "ran"
    path = dump({"x": SystemCall(marker)}, tmp_path / "evil.p", compress=False)
    with pytest.raises(PickleRefused, match="refused global posix.system"):
        load_restricted(path, MAX_PX, 10**8)
    assert not marker.exists() and f"touch {marker}".encode() in path.read_bytes()
    call, args = SystemCall(marker).__reduce__()
    assert call(*args) == 0 and marker.exists()


def test_a_compression_bomb_stops_at_the_cap(tmp_path):
    path = tmp_path / "bomb.p.zl"
    path.write_bytes(zlib.compress(pickle.dumps(b"\0" * 50_000_000)))
    with pytest.raises(PickleRefused, match="inflates to more than"):
        load_restricted(path, MAX_PX, 1_000_000)


def test_mulan_runs_end_to_end_into_shards_holding_the_real_decomposition(ray_session, tmp_path):
    from curation.pipeline import run
    from curation.verify import verify

    scenes = {i: write_scene(tmp_path, i, seed=5)[0] for i in (11, 12, 13)}
    evil = tmp_path / "annotations" / "000000000099.p.zl"
    dump({"background": SystemCall(tmp_path / "payload-ran")}, evil)
    write_scene(tmp_path / "spare", 99)  # a photo for it, so the pickle is the only thing wrong
    (tmp_path / "images" / "val2017" / "000000000099.jpg").write_bytes(
        (tmp_path / "spare" / "images" / "val2017" / "000000000099.jpg").read_bytes()
    )
    cfg = parse_config(
        {
            "run": {"out": str(tmp_path / "out")},
            "sink": {"shard_size": 4},
            "sources": [
                {
                    "type": "mulan",
                    "name": "mulan",
                    "annotations": str(tmp_path / "annotations"),
                    "images": [str(tmp_path / "images")],
                }
            ],
        }
    )
    result = run(cfg)
    assert verify(result.out, cfg.verify.psnr_floor).ok
    assert not (tmp_path / "payload-ran").exists()
    rejects = {r["key"]: r["reject_reason"] for r in json_rows(result.out / "rejects.parquet")}
    assert rejects.pop("mulan-000000000099") == "unsafe_pickle"
    # the plate is MuLAn's inpainting: stage 2's quality checks still judge it (a smooth patch behind an object
    # reads as a smeared fill; an object pasted onto another one's shadow in these real backgrounds stands in shade
    # the plate keeps, which is what lost_shadow looks for), and nothing else rejects these clean, whole objects
    judged = {"fill_smeared", "background_drift", "effect_not_shadow", "effect_implausible", "lost_shadow"}
    assert set(rejects.values()) <= judged
    urls = sorted(str(p) for p in (result.out / "shards").glob("*.tar"))
    seen = 0
    for sample in wds.WebDataset(urls, shardshuffle=False).decode("rgb8"):
        meta = sample["json"]
        image_id, k = int(meta["image_id"]), int(meta["instance_id"])
        scene = scenes[image_id]
        background = sample["background.png"]
        assert np.array_equal(background, scene.clean_without(k))  # the decomposition's, not a fill
        fg = np.asarray(decode_rgba(sample["__url__"], sample["__key__"]))
        assert psnr(over(fg, background), scene.photo) > 45  # foreground over background is the photo
        assert json.loads(meta["meta"])["masks"]["background"] == "mulan"
        assert json.loads(meta["annotation"])["source_captions"]["instance"]["blip2"].startswith("an object")
        seen += 1
    assert seen == result.stats["accepted"] == 6 - len(rejects) >= 3  # at least half of the whole objects ship


def json_rows(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=["key", "reject_reason"]).to_pylist()


def decode_rgba(url: str, key: str):
    """The sample's foreground as RGBA (webdataset's rgb8 decoder drops alpha)."""
    import tarfile

    from PIL import Image

    with tarfile.open(url) as tar:
        return Image.open(io.BytesIO(tar.extractfile(f"{key}.foreground.png").read())).convert("RGBA")


class Allocate:
    """Calls an allowed name with a size to allocate: ``numpy.ndarray(shape)`` or ``bytearray(n)``."""

    def __init__(self, call, args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


@pytest.mark.parametrize(
    "payload,detail",
    [
        (Allocate(np.ndarray, ((100_000, 100_000, 3), "u1")), "refused call of numpy.ndarray"),
        (Allocate(bytearray, (10**12,)), "refused builtins.bytearray of a int"),
    ],
)
def test_allowed_names_cannot_be_called_to_allocate(tmp_path, payload, detail):
    with pytest.raises(PickleRefused, match=detail):
        load_restricted(dump({"x": payload}, tmp_path / "a.p.zl"), MAX_PX, 10**8)


def test_shared_references_and_deep_nesting_cannot_stall_the_reader(tmp_path):
    graph: list = [np.zeros(3, np.uint8)]
    for _ in range(80):
        graph = [graph, graph]  # 2**80 paths through a few hundred bytes
    back = load_restricted(dump(graph, tmp_path / "g.p.zl"), MAX_PX, 10**8)
    leaf = back
    while len(leaf) == 2:
        assert leaf[0] is leaf[1]  # sharing survives
        leaf = leaf[0]
    assert np.array_equal(leaf[0], np.zeros(3, np.uint8))
    deep = tmp_path / "deep.p"
    deep.write_bytes(b"\x80\x04" + b"]" * 200_000 + b"a" * 199_999 + b".")  # lists nested 200 000 deep
    with pytest.raises(PickleRefused, match="nested too deep"):
        load_restricted(deep, MAX_PX, 10**8)


def test_pil_images_read_back_as_arrays_and_never_through_pil(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (5, 7, 4), dtype=np.uint8)
    images = {
        "L": Image.fromarray(rgba[..., 0]),
        "RGB": Image.fromarray(rgba[..., :3]),
        "RGBA": Image.fromarray(rgba),
        "1": Image.fromarray(rgba[..., 0] > 127).convert("1"),
    }
    for protocol in (2, 4, 5):
        back = load_restricted(dump(images, tmp_path / f"pil{protocol}.p.zl", protocol), MAX_PX, 10**8)
        for mode, image in images.items():
            assert np.array_equal(back[mode], np.asarray(image)), (protocol, mode)


def huge_pil_image() -> bytes:
    """PIL's own pickle of an ``L`` image (NEWOBJ of ``PIL.Image.Image``, then its state), written opcode by opcode
    with a size of 10**10 pixels over 10 bytes."""
    import struct

    size = b"J" + struct.pack("<i", 100_000)
    return (
        b"\x80\x04\x8c\x09PIL.Image\x8c\x05Image\x93)\x81](}\x8c\x01L"
        + size
        + size
        + b"\x86N"
        + b"C\x0a"
        + b"\0" * 10
        + b"eb."
    )


def test_a_pil_image_claiming_a_huge_size_is_refused_before_pil_sees_it(tmp_path):
    (tmp_path / "huge.p").write_bytes(huge_pil_image())
    with pytest.raises(PickleRefused, match=r"\(100000, 100000, 1\)"):
        load_restricted(tmp_path / "huge.p", MAX_PX, 10**8)
    with pytest.raises(PickleRefused, match="refused global PIL.Image.open"):
        from PIL import Image

        load_restricted(dump({"x": Allocate(Image.open, ("/etc/hostname",))}, tmp_path / "open.p.zl"), MAX_PX, 10**8)


def test_an_instance_mask_narrows_what_a_layer_takes_from_the_photo(tmp_path):
    scene, path, record = write_scene(tmp_path, 5)
    record["instances"][0]["instance_mask"] = np.zeros_like(record["instances"][0]["instance_mask"])
    dump(record, path)
    src = MulanSource(MulanSourceConfig(annotations=tmp_path / "annotations", images=[tmp_path / "images"]))
    first, second = src.load(next(src.units()), MAX_PX)
    assert not get_image(first, "ann_mask").any()  # nothing of instance 0 is taken from the photo now
    assert get_image(second, "ann_mask").any()


def test_a_memo_index_or_shared_buffers_allocate_nothing_big(tmp_path):
    """Two bombs outside find_class: a PUT opcode naming a huge memo index (the C unpickler sizes its memo by it)
    and many array headers sharing one stored buffer (each would become its own copy)."""
    import resource
    import struct

    memo = tmp_path / "memo.p"
    memo.write_bytes(b"\x80\x02N" + b"r" + struct.pack("<I", 2**31) + b".")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert load_restricted(memo, MAX_PX, 10**8) is None
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 * 1024  # KiB: far below the 32 GiB asked
    blob = bytes(1 << 20)

    class SharedBuffer:  # an array whose pickled state is the one stored byte string every header points at
        def __reduce__(self):
            from numpy._core.multiarray import _reconstruct

            return _reconstruct, (np.ndarray, (0,), b"b"), (1, (len(blob),), np.dtype(np.uint8), False, blob)

    shared = dump({"x": [SharedBuffer() for _ in range(8)]}, tmp_path / "s.p.zl")
    assert shared.stat().st_size < 1 << 16 and len(zlib.decompress(shared.read_bytes())) < 2 << 20
    with pytest.raises(PickleRefused, match="add up to more than"):
        load_restricted(shared, MAX_PX * 8, 3 << 20)
