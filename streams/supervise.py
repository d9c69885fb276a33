"""Riding out broker outages: a supervisor process restarts its Faust worker with backoff.

faust-streaming's app crashes about 11 s after the broker disappears
(``KafkaConnectionError: Unable to bootstrap``), lingers for about a minute, and never
reconnects by itself. So ``streambed worker`` (and ``streambed learner``) run as two
processes: a small supervisor, and the Faust worker as its child. When the child exits
with an error, the supervisor starts a new one after a backoff (1 s doubling to 30 s,
reset once a child has run for a minute), until it is told to stop. A fresh child
recovers its tables from their changelogs and resumes from the committed offsets, so
nothing is lost; output stays at-least-once.

Inside the child, :func:`exit_when_crashed` cuts the linger short: once the app has
crashed, the process exits a few seconds later and the supervisor takes over.

The supervisor starts its first child at once: it imports only the standard library and
the command line's own module, and leaves the config to the child (validated there before
anything heavy). A first child that exits with :data:`USAGE_EXIT` (a bad config or
command line) ends the supervisor with that status, unrestarted, as if the supervisor had
checked the config itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

#: The child runs with this variable set, so it runs the worker instead of supervising.
SUPERVISED_ENV = "STREAMBED_SUPERVISED"
FIRST_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS = 1.0, 30.0
#: A child that ran this long was healthy: the next restart starts from the first backoff.
HEALTHY_RUN_SECONDS = 60.0
#: Exit status of a child that stopped itself because its app crashed.
CRASHED_EXIT = 70
#: Exit status of a child whose config or command line is wrong (``streambed``'s status 2).
#: From the first child: final. From a later one (the config file edited since): restarted.
USAGE_EXIT = 2


def is_supervised() -> bool:
    return os.environ.get(SUPERVISED_ENV) == "1"


def supervise(argv: Sequence[str], name: str, *, say: Callable[[str], None] = print,
              max_restarts: int | None = None) -> int:
    """Run ``argv`` as a child until it exits cleanly or we are told to stop; restart it
    with backoff whenever it fails (a first child's :data:`USAGE_EXIT` excepted). Returns
    the last child's exit status (0 on a stop)."""
    stopping = threading.Event()
    child: subprocess.Popen[bytes] | None = None

    def on_signal(signum: int, frame: Any) -> None:
        stopping.set()
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    backoff, restarts = FIRST_BACKOFF_SECONDS, 0
    env = {**os.environ, SUPERVISED_ENV: "1"}
    while True:
        began = time.monotonic()
        child = subprocess.Popen(list(argv), env=env)
        status = child.wait()
        if stopping.is_set() or status == 0:
            return 0 if stopping.is_set() else status
        if status == USAGE_EXIT and restarts == 0:
            return status
        if max_restarts is not None and restarts >= max_restarts:
            return status
        if time.monotonic() - began >= HEALTHY_RUN_SECONDS:
            backoff = FIRST_BACKOFF_SECONDS
        say(f"{name}: the worker exited with status {status}; restarting in {backoff:.0f} s")
        if stopping.wait(backoff):
            return 0
        backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        restarts += 1


def child_argv() -> list[str]:
    """This process's own command line, to run again as the supervised child."""
    return [sys.executable, "-m", "streams.cli", *sys.argv[1:]]


def exit_when_crashed(service: Any, grace_seconds: float = 3.0, poll_seconds: float = 0.5,
                      ) -> threading.Thread:
    """Watch a mode/Faust service from a thread; ``os._exit`` shortly after it crashes."""

    def watch() -> None:
        while True:
            time.sleep(poll_seconds)
            if getattr(service, "crashed", False):
                reason = getattr(service, "crash_reason", None)
                print(f"streambed: the app crashed ({reason!r}); exiting for the supervisor "
                      "to restart it", file=sys.stderr, flush=True)
                time.sleep(grace_seconds)
                os._exit(CRASHED_EXIT)

    thread = threading.Thread(target=watch, name="crash-watch", daemon=True)
    thread.start()
    return thread
