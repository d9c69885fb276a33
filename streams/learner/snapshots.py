"""The learner's state on Kafka: one gzipped JSON snapshot per lineage, compacted.

A snapshot is everything :class:`governance.LearnerCore` needs to continue exactly where it
stopped (its challenger, versions, evaluation window, the training offset it covers) plus
the offset of the next person's command to read. Restoring it and seeking ``training`` to
``core.next_offset`` learns every example exactly once, even after kill -9: what was learned
after the last snapshot is learned again, identically, and what it published is published
again, identically (versions are compacted by id; audit records carry a unique
``audit_id``).

The value is plain data (gzip of canonical JSON), never code; a value that does not decode
is refused with :class:`SnapshotError`.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from typing import Any

from governance import canonical_json

FORMAT = "streambed.learner-state/1"


class SnapshotError(ValueError):
    """A learner-state record that is not a valid snapshot."""


@dataclass(frozen=True)
class LearnerState:
    core: dict[str, Any]
    commands_offset: int

    def encode(self) -> bytes:
        body = {"format": FORMAT, "core": self.core, "commands_offset": self.commands_offset}
        return gzip.compress(canonical_json(body).encode("ascii"), compresslevel=6, mtime=0)

    @classmethod
    def decode(cls, raw: bytes) -> LearnerState:
        try:
            body = json.loads(gzip.decompress(raw))
        except (OSError, EOFError, ValueError, RecursionError) as exc:
            raise SnapshotError(f"not a gzipped JSON snapshot: {exc}") from None
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise SnapshotError("not a learner-state snapshot of this format")
        core, offset = body.get("core"), body.get("commands_offset")
        if not isinstance(core, dict) or not isinstance(offset, int) or offset < 0:
            raise SnapshotError("a learner-state snapshot without its core or offsets")
        return cls(core, offset)


def latest_state(records: list[tuple[int, bytes | None, bytes | None, int]],
                 lineage: str) -> LearnerState | None:
    """The newest valid snapshot of ``lineage`` among a learner-state topic's records."""
    key = lineage.encode()
    for _, k, value, _ in reversed(records):
        if k == key and value is not None:
            try:
                return LearnerState.decode(value)
            except SnapshotError:
                continue
    return None
