"""A small, deterministic card-transaction history for ``examples/cards.yaml``.

Writes ``events.csv`` (or ``.parquet``) in arrival order and ``labels.csv`` (fraud or not,
known when the chargeback window closes, days later), the way an export from a payments
database looks: text merchant codes with leading zeros (``0742``), country ``NA``
(Namibia) and region ``NA`` (North America), ISO-8601 times with an offset, a little
arrival disorder within the allowed lateness, and two rows the validator must reject
(a time without an offset, a negative amount).

    python examples/cards_history.py --out history/cards [--count 3000] [--seed 11]
    streambed replay --config examples/cards.yaml --events history/cards/events.csv \\
        --labels history/cards/labels.csv --out cards.parquet
"""

from __future__ import annotations

import argparse
import csv
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

START = datetime(2026, 1, 1, tzinfo=UTC)
#: Region of the cardholder → the countries its cards are mostly used in.
REGIONS = {
    "NA": ["US", "CA", "MX"],
    "EMEA": ["DE", "FR", "GB", "NA"],  # "NA": Namibia
    "APAC": ["JP", "AU", "SG"],
    "LATAM": ["BR", "AR", "CL"],
}
#: Merchant category codes (ISO 18245) and how often cards use them.
MERCHANTS = {"5411": 0.30, "5812": 0.20, "5999": 0.15, "4111": 0.12, "0742": 0.05,
             "6011": 0.08, "4829": 0.04, "7995": 0.06}
RISKY = {"7995": 1.6, "4829": 1.4, "6011": 0.8}
EVENT_FIELDS = ["txn_id", "card_id", "time", "region", "merchant_code", "country", "amount",
                "channel", "card_present"]


def _iso(dt: datetime) -> str:
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def generate(count: int = 3000, seed: int = 11, cards: int = 80) -> tuple[list[dict],
                                                                         list[dict]]:
    """Events (in arrival order) and labels, as rows of text and numbers."""
    rng = np.random.default_rng(seed)
    regions = list(REGIONS)
    card_region = [regions[i % len(regions)] for i in range(cards)]
    codes, weights = list(MERCHANTS), np.array(list(MERCHANTS.values()))
    events, labels = [], []
    clock = START
    for i in range(count):
        clock += timedelta(milliseconds=int(rng.exponential(15 * 60_000)) + 1)
        card = int(rng.integers(cards))
        region = card_region[card]
        home = REGIONS[region]
        abroad = rng.random() < 0.08
        pool = [c for r in regions if r != region for c in REGIONS[r]] if abroad else home
        country = pool[int(rng.integers(len(pool)))]
        code = codes[int(rng.choice(len(codes), p=weights / weights.sum()))]
        channel = "atm" if code == "6011" else ("ecommerce" if rng.random() < 0.35 else "pos")
        present = "" if channel == "atm" else ("false" if channel == "ecommerce" else "true")
        amount = round(float(np.exp(rng.normal(3.4, 1.0))), 2)
        # Arrival disorder: up to a minute, inside the config's 2m allowed lateness.
        event_time = clock - timedelta(milliseconds=int(rng.integers(0, 60_000)))
        risk = -3.2 + RISKY.get(code, 0) + (1.5 if abroad else 0) + 0.25 * math.log1p(amount)
        fraud = int(rng.random() < 1 / (1 + math.exp(-risk)))
        events.append({"txn_id": f"t{seed}-{i}", "card_id": f"c{card:03d}",
                       "time": _iso(event_time), "region": region, "merchant_code": code,
                       "country": country, "amount": amount, "channel": channel,
                       "card_present": present})
        if rng.random() < 0.9:
            known = event_time + timedelta(days=float(rng.uniform(1, 10)))
            labels.append({"event_id": f"t{seed}-{i}", "entity_id": f"c{card:03d}",
                           "label": fraud, "ts": int(known.timestamp() * 1000)})
    # Two rows a payments export gets wrong: the validator rejects them, with a reason.
    events[count // 3]["time"] = events[count // 3]["time"].removesuffix("Z")
    events[2 * count // 3]["amount"] = -events[2 * count // 3]["amount"]
    labels.sort(key=lambda row: row["ts"])
    return events, labels


def write(out: Path, count: int = 3000, seed: int = 11, fmt: str = "csv") -> None:
    events, labels = generate(count, seed)
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        import pandas as pd

        frame = pd.DataFrame(events)
        frame["card_present"] = frame["card_present"].map({"true": True, "false": False})
        frame.to_parquet(out / "events.parquet", index=False)
    else:
        with (out / "events.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=EVENT_FIELDS)
            writer.writeheader()
            writer.writerows(events)
    with (out / "labels.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["event_id", "entity_id", "label", "ts"])
        writer.writeheader()
        writer.writerows(labels)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--count", type=int, default=3000)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--format", choices=["csv", "parquet"], default="csv")
    args = p.parse_args()
    write(args.out, args.count, args.seed, args.format)
    print(f"cards_history: wrote {args.count} events to {args.out}")


if __name__ == "__main__":
    main()
