"""What the learner runs on, for the record: read once at start-up (the core has no I/O).

Every version and audit record carries an :class:`governance.records.Environment`:
streambed's version, Python's version and platform, River's version, and a SHA-256 of the
installed dependency set (every distribution's ``name==version``, lower-cased and sorted),
so a rebuild that differs can be traced to what changed underneath.

>>> env = current_environment()
>>> len(env.dependencies_sha256), env.python_version.count(".")
(64, 2)
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform

from governance.artifact import RIVER_VERSION
from governance.records import Environment

PACKAGE = "streambed"


def dependency_set() -> list[str]:
    """``name==version`` of every installed distribution, normalised and sorted."""
    names = {f"{(d.metadata['Name'] or '').lower().replace('_', '-')}=={d.version}"
             for d in importlib.metadata.distributions()}
    return sorted(names)


def current_environment() -> Environment:
    try:
        package = importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        package = "unknown (not installed)"
    return Environment(
        package_version=package, python_version=platform.python_version(),
        platform=platform.platform(), river_version=RIVER_VERSION,
        dependencies_sha256=hashlib.sha256("\n".join(dependency_set()).encode()).hexdigest())
