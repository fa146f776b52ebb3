"""Bytes: sources, the read-ahead cache and request planning."""

from hepstream.io.cache import ReadAheadCache
from hepstream.io.coalesce import Request, merge_ranges, plan_requests
from hepstream.io.config import StreamConfig, parse_size
from hepstream.io.source import IOStats, StreamingSource, expand_inputs, open_source
from hepstream.io.urls import is_remote

__all__ = [
    "IOStats",
    "ReadAheadCache",
    "Request",
    "StreamConfig",
    "StreamingSource",
    "expand_inputs",
    "is_remote",
    "merge_ranges",
    "open_source",
    "parse_size",
    "plan_requests",
]
