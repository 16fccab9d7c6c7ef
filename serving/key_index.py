"""The champion's series as key values: which series sit under a level, which values exist.

Why it exists: a series id is its key values joined with ``"|"`` in the model's key order
(``Champion.series_id_for``: ``{"store": "S01", "category": "grocery"}`` ->
``"S01|grocery"``). Roll-ups (:mod:`serving.hierarchy`) and cold starts
(:mod:`serving.cold_start`) both need the reverse: the key values of every series the
model knows and the values each key column takes. The index is built once per champion
(its series never change) and kept beside it in a weak map, so a swap frees it.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass

from serving.champion import Champion

KEY_SEPARATOR = "|"


@dataclass(frozen=True)
class KeyIndex:
    """Key names, each known series' key values, and the values seen per key column."""

    keys: tuple[str, ...]
    values_of: Mapping[str, tuple[str, ...]]  # series_id -> key values in ``keys`` order
    known: Mapping[str, frozenset[str]]  # key name -> values some series has

    def split(self, series_id: str) -> tuple[str, ...] | None:
        """The key values of any series id (known or not), None when it does not split."""
        parts = tuple(series_id.split(KEY_SEPARATOR))
        return parts if self.keys and len(parts) == len(self.keys) else None

    def members(self, level: Mapping[str, str]) -> list[str]:
        """The known series whose key values match every (key, value) of ``level``."""
        at = [(self.keys.index(k), v) for k, v in level.items()]
        return sorted(s for s, values in self.values_of.items()
                      if all(values[i] == v for i, v in at))


_INDEXES: weakref.WeakKeyDictionary[Champion, KeyIndex] = weakref.WeakKeyDictionary()


def key_index(champion: Champion) -> KeyIndex:
    """The champion's :class:`KeyIndex` (built on first use)."""
    index = _INDEXES.get(champion)
    if index is None:
        index = _INDEXES[champion] = build_index(champion.metadata.keys,
                                                 sorted(champion.series_ids))
    return index


def build_index(keys: list[str], series_ids: list[str]) -> KeyIndex:
    """Index ``series_ids`` by ``keys``; ids that do not split into them are left out."""
    values_of: dict[str, tuple[str, ...]] = {}
    for series_id in series_ids:
        parts = tuple(series_id.split(KEY_SEPARATOR))
        if keys and len(parts) == len(keys):
            values_of[series_id] = parts
    known = {k: frozenset(v[i] for v in values_of.values()) for i, k in enumerate(keys)}
    return KeyIndex(tuple(keys), values_of, known)
