"""Conditions data: global tags -> tags per record -> IOVs -> content-addressed payloads.

Small modules, pure core first: ``model`` (dataclasses), ``resolve`` (runs -> IOV spans),
then the edges: ``payload`` (files by SHA-256), ``store`` (SQLite/PostgreSQL metadata),
``server`` (read-only HTTP), ``client`` (HTTP + on-disk cache), ``snapshot`` (offline copy),
``job`` (what a running job needs) and ``cli`` (``hepstream conditions``).
"""

from hepstream.conditions.model import IOV, GlobalTag, Payload, Tag

__all__ = ["IOV", "GlobalTag", "Payload", "Tag"]
