"""``streambed features list|show``: the feature definitions of a config, for people.

``list`` is one line per feature (aggregation, field, window, filter); ``show`` gives each
named feature (or all) in full, with the window it covers as of an event at ``t`` and the
normalised definition the feature set's identity hashes. Both name the feature set's
identity (what every scored record carries) and the config hash. ``--json`` for tools.
A bad config fails like every command: exit 2, each problem with its path and feature
name, and the closest valid name for a typo.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import sys
from typing import Any

from streams.config import Config

_OPS = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "in": "in",
        "not_in": "not in"}
_UNITS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000),
          ("s", 1_000), ("ms", 1))


def config_hash(config: Config) -> str:
    """First 12 hex digits of the SHA-256 of the normalised config (defaults filled in,
    keys sorted), without ``broker``: where it runs is not what it computes. Comments,
    key order and spelling of durations ("60m" or "1h") do not change it."""
    data = config.model_dump(mode="json", by_alias=True, exclude={"broker"})
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def duration(ms: int) -> str:
    """Milliseconds in the largest unit that divides them exactly.

    >>> duration(3_600_000), duration(90_000), duration(604_800_000), duration(1_500)
    ('1h', '90s', '7d', '1500ms')
    """
    for unit, size in _UNITS:
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def window_text(feature: Any) -> str:
    w = feature.window
    if w.kind == "lifetime":
        return "lifetime"
    if w.kind == "hopping":
        return f"hopping {duration(w.size_ms)} every {duration(w.hop_ms)}"
    return f"{w.kind} {duration(w.size_ms)}"


def covers(feature: Any) -> str:
    """The events a feature's window covers as of an event at ``t`` (docs/features.md)."""
    w = feature.window
    if w.kind == "lifetime":
        return "every event of the entity with time <= t"
    size = duration(w.size_ms)
    if w.kind == "sliding":
        return f"(t - {size}, t]"
    if w.kind == "tumbling":
        return f"(ceil(t / {size}) * {size} - {size}, t], aligned to the Unix epoch in UTC"
    hop = duration(w.hop_ms)
    return f"(ceil(t / {hop}) * {hop} - {size}, t], aligned to the Unix epoch in UTC"


def filter_text(feature: Any) -> str:
    clauses = []
    for w in feature.filters:
        if w.op == "is_null":
            clauses.append(f"{w.field} is null")
        elif w.op == "not_null":
            clauses.append(f"{w.field} is not null")
        else:
            clauses.append(f"{w.field} {_OPS[w.op]} {json.dumps(w.value)}")
    return " and ".join(clauses)


def describe(config: Config) -> dict[str, Any]:
    """Everything ``features list|show`` says, as plain data (the ``--json`` output)."""
    attrs = config.event.attributes
    out = []
    for f in config.features.features:
        out.append({
            "name": f.name, "agg": f.agg, "field": f.field,
            "field_type": attrs[f.field].type if f.field in attrs else (
                "str" if f.field else None),
            "window": {"kind": f.window.kind, "size_ms": f.window.size_ms,
                       "hop_ms": f.window.hop_ms},
            "window_text": window_text(f), "covers": covers(f), "filter": filter_text(f),
            "definition": f.model_dump(mode="json", by_alias=True),
        })
    return {"config": config.name, "config_hash": config_hash(config),
            "feature_set": config.features.identity, "features": out}


def _header(info: dict[str, Any]) -> str:
    return (f"feature set {info['feature_set']} ({len(info['features'])} features); "
            f"config {info['config']}, hash {info['config_hash']}")


def _table(info: dict[str, Any]) -> str:
    rows = [("NAME", "AGG", "FIELD", "WINDOW", "FILTER")]
    rows += [(f["name"], f["agg"], f["field"] or "-", f["window_text"], f["filter"] or "-")
             for f in info["features"]]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4]
             for r in rows]
    return "\n".join([_header(info), *(line.rstrip() for line in lines)])


def _details(info: dict[str, Any], names: list[str]) -> str:
    chosen = [f for f in info["features"] if not names or f["name"] in names]
    blocks = [_header(info)]
    for f in chosen:
        field = f"{f['field']} ({f['field_type']})" if f["field"] else "- (reads no field)"
        blocks.append("\n".join([
            f"{f['name']}",
            f"  aggregation: {f['agg']}",
            f"  field:       {field}",
            f"  window:      {f['window_text']}; as of an event at t it covers {f['covers']}",
            f"  filter:      {f['filter'] or '- (every event)'}",
            f"  definition:  {json.dumps(f['definition'], sort_keys=True)}",
        ]))
    return "\n\n".join(blocks)


def _features(args: argparse.Namespace, config_of: Any) -> int:

    config = config_of(args)
    info = describe(config)
    names = getattr(args, "names", None) or []
    known = [f["name"] for f in info["features"]]
    unknown = [n for n in names if n not in known]
    if unknown:
        hints = [f"{n!r}" + (f" (did you mean {close[0]!r}?)" if (
            close := difflib.get_close_matches(n, known, n=1, cutoff=0.6)) else "")
            for n in unknown]
        print(f"streambed features: error: no feature {', '.join(hints)} in {args.config}",
              file=sys.stderr)
        return 2
    if args.json:
        if names:
            info = {**info, "features": [f for f in info["features"] if f["name"] in names]}
        print(json.dumps(info, indent=2))
    elif args.action == "list":
        print(_table(info))
    else:
        print(_details(info, names))
    return 0


def add_features_parser(sub: Any, config_of: Any) -> None:
    """``config_of(args)``: the validated config of the command's ``--config``."""
    from streams.replay.cli import one_line_errors

    f = sub.add_parser("features", help="list or show the feature definitions of a config")
    one_line_errors(f)
    actions = f.add_subparsers(dest="action", required=True)
    for action, text in (("list", "one line per feature"),
                         ("show", "each feature in full (all, or the named ones)")):
        a = actions.add_parser(action, help=text)
        one_line_errors(a)
        a.add_argument("--config", required=True)
        a.add_argument("--json", action="store_true", help="machine-readable output")
        if action == "show":
            a.add_argument("names", nargs="*", metavar="NAME", help="features to show")
        a.set_defaults(func=lambda args: _features(args, config_of))
