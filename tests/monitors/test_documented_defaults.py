"""Docs tell the truth: every default in docs/monitoring.md's configuration table equals
MonitorsConfig's, and every default in docs/governance.md's gate table equals
PromotionConfig's (read here, never written)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from governance.config import PromotionConfig
from monitors import MonitorsConfig

ROOT = Path(__file__).resolve().parents[2]
_ROW = re.compile(r"^\| (`[^|]+`(?: / `[^|]+`)*) \| ([^|]+) \|", re.M)


def documented(path: Path, heading: str) -> list[tuple[str, str]]:
    """(key, documented default) of each row of the table under ``heading``."""
    text = path.read_text()
    section = text[text.index(heading):]
    table = section[:section.index("\n\n", section.index("| ---"))]
    rows = []
    for keys, defaults in _ROW.findall(table):
        names = [k.strip("` ") for k in keys.split(" / ")]
        values = [v.strip() for v in defaults.split(" / ")]
        if len(values) == 1 and len(names) > 1:
            values *= len(names)
        assert len(names) == len(values), f"{keys}: {len(values)} defaults for {len(names)}"
        rows += zip(names, values, strict=True)
    return rows


def default_of(model: BaseModel, dotted: str) -> Any:
    value: Any = model
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def as_documented(value: Any) -> str:
    """How a default is written in the tables."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f"`{value}`"
    if isinstance(value, dict | list):
        return f"`{value!r}`".replace("'", '"')
    return f"{value:g}" if isinstance(value, float) else str(value)


MONITORS = documented(ROOT / "docs" / "monitoring.md", "## Configuration")
GOVERNANCE = documented(ROOT / "docs" / "governance.md", "## Gates and defaults")
#: Documented in words where the default is "no value" of a kind.
WORDS = {"drift.features": {"all": None}}


@pytest.mark.parametrize(("key", "text"), MONITORS, ids=[k for k, _ in MONITORS])
def test_monitoring_md_defaults_equal_the_config(key: str, text: str) -> None:
    value = default_of(MonitorsConfig(), key)
    if text in WORDS.get(key, {}):
        assert value == WORDS[key][text]
        return
    assert same(text, value), f"{key}: documented {text}, default {value!r}"


def same(text: str, value: Any) -> bool:
    bare = text.replace("`", "")
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(bare) == float(value)
        except ValueError:
            return False
    return bare == as_documented(value).replace("`", "")


def leaves(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            out += leaves(kind, f"{prefix}{name}.")
        else:
            out.append(prefix + name)
    return out


def test_every_monitors_setting_is_in_the_table() -> None:
    missing = sorted(set(leaves(MonitorsConfig)) - {k for k, _ in MONITORS})
    assert not missing, f"docs/monitoring.md's configuration table lacks {missing}"


@pytest.mark.parametrize(("key", "text"), GOVERNANCE, ids=[k for k, _ in GOVERNANCE])
def test_governance_md_defaults_equal_the_promotion_config(key: str, text: str) -> None:
    value = default_of(PromotionConfig(), key)
    assert same(text, value), f"{key}: documented {text}, default {value!r}"


def test_the_tables_were_found() -> None:
    assert len(MONITORS) >= 25 and len(GOVERNANCE) >= 10
