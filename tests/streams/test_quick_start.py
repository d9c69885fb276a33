"""faust's start-up without its fixed waits: the scorer app's table manager starts at
once, its worker consumer holds a fetch at most 100 ms, and start-up's objects are frozen."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

from streams.config import load_config
from streams.scorer.app import create_app
from streams.scorer.quick_start import FETCH_MAX_WAIT_MS, QuickTableManager

REPO = Path(__file__).resolve().parents[2]


def test_the_scorer_app_starts_without_fausts_fixed_waits(tmp_path: Path) -> None:
    app = create_app(load_config(REPO / "examples" / "quickstart.yaml"), web_port=6198,
                     data_dir=tmp_path)
    assert isinstance(app.tables, QuickTableManager)
    assert gc.get_freeze_count() > 0
    thread = app.consumer._thread

    async def made() -> object:  # made in a running loop, as faust does; not started
        return thread._create_worker_consumer(app.transport)

    consumer = asyncio.run(made())
    assert consumer._fetch_max_wait_ms == FETCH_MAX_WAIT_MS < 1500
    assert consumer._group_instance_id == app.conf.consumer_group_instance_id
