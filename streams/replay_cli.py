"""``streambed replay``: history (Kafka topics or files) → a point-in-time training set."""

from __future__ import annotations

import argparse
from typing import Any


def add_replay_parser(sub: Any) -> None:
    r = sub.add_parser("replay", help="replay history into a point-in-time training set")
    r.add_argument("--config", required=True)
    r.set_defaults(func=_replay)


def _replay(args: argparse.Namespace) -> int:
    raise NotImplementedError("replay arrives with the feature engine")
