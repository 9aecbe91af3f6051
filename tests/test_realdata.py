"""The bundled DESOBA photos split into real object–shadow instances."""

from __future__ import annotations

import numpy as np

from curation.core.realdata import desoba_instances, split_pairs


def test_each_photo_gives_its_target_and_the_other_objects_with_their_shadows():
    inst = desoba_instances()
    assert [i.name for i in inst][:3] == ["desoba/05/target", "desoba/05/other-1", "desoba/05/other-2"]
    assert len(inst) == 9 and {i.photo for i in inst} == {"desoba/05", "desoba/06", "desoba/07"}
    for i in inst:
        assert i.mask.any() and i.shadow.any(), i.name
        assert not (i.mask & i.shadow).any() and not (i.mask & i.others).any()
        assert (i.shadowfree is not None) == i.name.endswith("target")
    assert [i.touches_border for i in inst if i.name.endswith("target")] == [
        False,
        False,
        True,
    ]  # 07: a car cut by the frame


def test_a_shadow_goes_to_the_object_it_touches_and_stray_shadows_are_dropped():
    objects = np.zeros((40, 60), bool)
    objects[5:20, 5:15] = objects[5:20, 40:50] = True
    shadows = np.zeros_like(objects)
    shadows[20:24, 5:20] = True  # under the left object
    shadows[30:35, 25:35] = True  # touches nothing
    (left, left_shadow), (right, right_shadow) = split_pairs(objects, shadows, min_object_px=10)
    assert left[10, 10] and right[10, 45]
    assert left_shadow.sum() == 60 and not right_shadow.any()


def test_the_bundled_photos_own_annotations_and_the_package_photos_load():
    from curation.core.realdata import PACKAGE_PHOTOS, annotated_instances, read_photo, real_instances

    inst = annotated_instances()
    assert [i.name for i in inst] == [f"soba_web-shadow0573/{n}" for n in ("bollard-1", "bollard-2", "boy")]
    for i in inst:
        assert i.photo == "bundled:soba_web-shadow0573.jpg" and i.shadowfree is None and not i.touches_border
        assert i.mask.any() and i.shadow.any() and not (i.mask & i.shadow).any() and not (i.mask & i.others).any()
    assert len(real_instances()) == 12
    for name in PACKAGE_PHOTOS:
        photo = read_photo(name)
        assert photo.ndim == 3 and photo.shape[2] == 3 and min(photo.shape[:2]) >= 256, name
    assert read_photo("desoba/05:shadowfree").shape == (256, 256, 3)


def test_every_real_instance_adds_the_held_out_desobav2_photos_and_leaves_the_curators_list_alone():
    from curation.core.realdata import every_real_instance, real_instances

    everything, curators = every_real_instance(), real_instances()
    assert [i.name for i in everything[: len(curators)]] == [i.name for i in curators] and len(curators) == 12
    v2 = everything[len(curators) :]
    assert {i.photo for i in v2} == {f"desobav2/{n}" for n in ("01", "02", "04", "06")} and len(v2) == 10
    assert all(i.composite.shape == (570, 570, 3) and i.mask.any() and not (i.mask & i.shadow).any() for i in v2)
    assert [i.name for i in v2 if i.shadowfree is not None] == [
        f"desobav2/{n}/target" for n in ("01", "02", "04", "06")
    ]
