"""Kaskada's side of ``bench/replay_bench.py``: the ten shared features of a history.

Runs in the bench-only virtualenv that has ``kaskada==0.6.1`` (never streambed's):

    .venv-kaskada/bin/python bench/kaskada_replay.py HISTORY.parquet OUT.parquet

Reads the Parquet history (time ``ts`` in epoch ms, key ``entity_id``), computes one row
per event with the features named as in ``bench/replay_history.py``, writes Parquet.
"""

from __future__ import annotations

import asyncio
import sys

import kaskada as kd


async def main(history: str, out: str) -> None:
    kd.init_session()
    events = await kd.sources.Parquet.create(history, time_column="ts",
                                             key_column="entity_id", time_unit="ms")
    day = kd.windows.Since.daily()
    amount = events.col("amount")
    credit = events.col("credit_score")
    features = kd.record({
        "event_id": events.col("event_id"),
        "n_lifetime": events.count(),
        "amount_sum_day": amount.sum(window=day),
        "amount_mean_day": amount.mean(window=day),
        "amount_max_day": amount.max(window=day),
        "amount_last": amount.last(),
        "income_last": events.col("income").last(),
        "credit_score_last": credit.last(),
        "credit_score_mean": credit.mean(),
        "web_count": events.col("channel").eq("web").count_if(),
        "secs_since_prev": events.col("ts").seconds_since_previous(),
    })
    frame = features.to_pandas()
    frame = frame[frame["event_id"].notna()]  # rows of the daily ticks carry no event
    gap = frame["secs_since_prev"]
    if str(gap.dtype).startswith("timedelta"):  # whole seconds, as a duration
        frame["secs_since_prev"] = gap.dt.total_seconds()
    frame.to_parquet(out, index=False)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
