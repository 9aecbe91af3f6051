"""Why a row was rejected, and which stage said so: the codes every stage and report share."""

from __future__ import annotations

from enum import StrEnum


class Code(StrEnum):
    """A string code that prints as itself, in f-strings and JSON alike."""


class StageName(Code):
    """The DAG's stages, as rows record them in ``reject_stage`` and ``meta``."""

    INGEST = "ingest"
    MASKS = "masks"
    CAPTION = "caption"
    CURATE = "curate"


class Reason(Code):
    """Reject reason codes. A code names what is wrong with the input, not where the code failed."""

    # ingest: reading and validating files
    MISSING_FILE = "missing_file"
    UNREADABLE = "unreadable"  # a file or folder that exists but cannot be read (permissions, I/O error)
    OUTSIDE_ROOT = "outside_root"
    EMPTY_FILE = "empty_file"
    NOT_IMAGE = "not_image"
    DECODE_ERROR = "decode_error"
    TRUNCATED = "truncated"
    TOO_MANY_PIXELS = "too_many_pixels"
    UNSUPPORTED_MODE = "unsupported_mode"
    SIZE_MISMATCH = "size_mismatch"
    BAD_MANIFEST_ROW = "bad_manifest_row"
    DUPLICATE_IMAGE = "duplicate_image"
    KEY_COLLISION = "key_collision"
    BAD_ANNOTATION = "bad_annotation"
    #: a pickled annotation that names a global outside the allow-list (curation/core/safe_pickle.py)
    UNSAFE_PICKLE = "unsafe_pickle"
    # ingest: instance selection
    CROWD = "crowd"
    CATEGORY_EXCLUDED = "category_excluded"
    AREA_TOO_SMALL = "area_too_small"
    AREA_TOO_LARGE = "area_too_large"
    TOO_SMALL = "too_small"
    TOUCHES_BORDER = "touches_border"
    OCCLUDED = "occluded"
    NO_INSTANCES = "no_instances"
    # masks + layers
    EMPTY_MASK = "empty_mask"
    MASK_FAILED = "mask_failed"
    EFFECT_DETACHED = "effect_detached"
    ALPHA_OUT_OF_RANGE = "alpha_out_of_range"
    # masks + layers: the quality checks (curation/core/quality.py)
    BACKGROUND_DRIFT = "background_drift"
    EFFECT_NOT_SHADOW = "effect_not_shadow"
    FILL_SMEARED = "fill_smeared"
    EFFECT_IMPLAUSIBLE = "effect_implausible"
    #: a shadow left in the background at the object's footprint (the effect missed it, wholly or in part)
    LOST_SHADOW = "lost_shadow"
    # caption
    EMPTY_CAPTION = "empty_caption"
    # curate
    LOW_CURATOR_SCORE = "low_curator_score"
    # any stage: an exception escaped the stage code for this row
    STAGE_ERROR = "stage_error"
