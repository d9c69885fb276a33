"""faust-streaming's start-up without its fixed waits (a warm restart's path to its first
scored record).

Profiling a warm restart (py-spy, the worker's own log) found seconds of waiting that no
work needed:

- ``TableManager.on_start`` sleeps 1 s before it registers the tables' changelogs (so
  that tables declared late still make it). The scorer declares every table before its
  worker starts: :class:`QuickTableManager` starts at once.
- faust's worker consumer asks the broker to hold each fetch up to 1.5 s
  (``fetch_max_wait_ms=1500``, hard-coded). Requests on the same broker connection wait
  behind the fetch in flight, and recovery's two offset look-ups (changelog high-water
  marks, then earliest offsets) took 1.5 s each on every start. :func:`quick_fetches`
  makes the worker consumers this process creates hold a fetch at most
  :data:`FETCH_MAX_WAIT_MS`: an idle scorer fetches more often (a few small requests a
  second), and a fetch still returns as soon as a record is there. The bulk restore's
  consumer (:mod:`.restore`, aiokafka's default 500 ms) is given the same bound by
  ``create_app``: its offset look-ups after each table's assignment waited behind it.
- faust's RocksDB store runs a full garbage collection each time a table is rebalanced
  (``revoke_partitions``: four per rebalance here), each walking every object the
  imports made. :func:`freeze_startup` moves them out of the collector's reach once the
  app is built (the scorer freezes again once recovered: ``create_app``).
"""

from __future__ import annotations

import gc
from typing import Any

from faust.tables import TableManager
from faust.transport.drivers import aiokafka as faust_aiokafka

#: How long the broker may hold a worker consumer's fetch when no record is there.
FETCH_MAX_WAIT_MS = 100


class QuickTableManager(TableManager):
    """faust's table manager without the 1 s sleep before it starts (every table of the
    scorer is declared before the worker starts)."""

    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


_PATCHED = "_streambed_quick_fetches"


def quick_fetches() -> None:
    """Worker consumers made from now on in this process hold a fetch at most
    :data:`FETCH_MAX_WAIT_MS` (idempotent)."""
    thread = faust_aiokafka.AIOKafkaConsumerThread
    if getattr(thread, _PATCHED, False):
        return
    create = thread._create_worker_consumer

    def _create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        # aiokafka reads it when the consumer starts (its Fetcher is made then).
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer

    thread._create_worker_consumer = _create_worker_consumer  # type: ignore[method-assign]
    setattr(thread, _PATCHED, True)


def freeze_startup() -> None:
    """Move every object made so far (imports, config, the app) out of the cyclic
    GC's reach, without a collection first (that is itself a full pause of the start-up:
    the little garbage the imports left stays)."""
    gc.freeze()
