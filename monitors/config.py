"""Configuration of the monitors: which attributes are audited and how drift is judged."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MonitorsConfig(BaseModel):
    """The ``monitors:`` section of a streambed config file."""

    model_config = ConfigDict(extra="forbid")

    #: Sensitive attribute → its bounded set of groups; any other value counts as 'other'.
    sensitive_attributes: dict[str, list[str]] = Field(default_factory=dict)
    #: Seconds between recomputations of the expensive statistics.
    refresh_seconds: float = Field(default=5.0, gt=0)
