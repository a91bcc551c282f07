"""Segments: a marketer's audience as a rule tree (``rules``) over learners, with materialised
membership (``refresh``). The public API."""

from .refresh import segment_refresh, segments_refresh
from .rules import (
    CONDITIONS,
    FIELDS_HELP,
    MAX_DEPTH,
    NUMERIC_OPS,
    OPS_PY,
    SCORE_FIELDS,
    SegmentError,
    builder_schema,
    compile_definition,
    segment_members,
    segment_preview,
)

__all__ = [
    "CONDITIONS",
    "FIELDS_HELP",
    "MAX_DEPTH",
    "NUMERIC_OPS",
    "OPS_PY",
    "SCORE_FIELDS",
    "SegmentError",
    "builder_schema",
    "compile_definition",
    "segment_members",
    "segment_preview",
    "segment_refresh",
    "segments_refresh",
]
