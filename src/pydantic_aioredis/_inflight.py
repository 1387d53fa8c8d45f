"""The calls a store has in flight on one event loop, and why some run to their end when
their caller is cancelled.

A store keeps at most `max_connections` calls in flight per loop; the others wait their
turn. A call that redis-py spreads over several subtasks (a cluster pipeline, which it
sends to each node in a task of its own) runs *detached*: in a task that holds the call's
slot until redis-py's work has really finished, even when the caller was cancelled (a
deadline, a closed HTTP request). The caller gets its `CancelledError` at once; the task
finishes in the background, its reply dropped and its exception retrieved.

Why not let the cancellation reach redis-py there: it gathers its per-node subtasks, and a
cancelled gather returns as soon as one subtask has stopped, while another may still run
(on Python 3.11, redis-py's `asyncio.wait_for` can swallow the cancellation) and hold a
connection after the call has raised. A slot freed at that moment lets one call more reach
the node than its pool has connections: redis-py then raises `MaxConnectionsError`, and its
pipeline's retry closes every connection of the client, failing calls that nobody
cancelled. Never cancelled, redis-py's work ends as it was written to, connections and all.

Other calls run in the caller's own task, where redis-py's work ends before the caller sees
its cancellation: a task of their own would cost them some 10 us each (two more turns of
the event loop, measured here on a 125 us `save()`), for nothing.

A later call waits for the work of an earlier cancelled one before it goes out, so that
calls still reach Redis in program order: a cancelled write has either landed or failed
before the next call is sent, and never overtakes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["CallsInFlight", "stop_if_cancelled"]

T = TypeVar("T")


class CallsInFlight:
    """At most `limit` calls at once on one event loop.

    Args:
        limit: The most calls in flight at once; more wait for a slot.
    """

    def __init__(self, limit: int) -> None:
        self._slots = asyncio.Semaphore(limit)
        # Detached work in flight, with what its caller awaits (cancelled with the caller).
        self._detached: dict[asyncio.Task[Any], asyncio.Future[Any]] = {}

    async def run(self, work: Callable[[], Coroutine[Any, Any, T]], *, detach: bool) -> T:
        """Run `work()` in a slot of its own and return what it returns.

        Args:
            work: Makes the coroutine that talks to Redis.
            detach: Run it in a task of its own that no cancellation reaches: for work
                that redis-py spreads over subtasks.

        Raises:
            Whatever `work()` raises, and `CancelledError` when the caller is cancelled
            (at once; detached work goes on to its end).
        """
        if self._detached:
            await self.settle()
        await self._slots.acquire()
        if detach:
            return await self._detached_run(work())
        try:
            return await work()
        finally:
            self._slots.release()

    async def settle(self) -> None:
        """Wait until the work of every cancelled call has finished."""
        while abandoned := [task for task, waiter in self._detached.items() if waiter.cancelled()]:
            await asyncio.wait(abandoned)

    async def _detached_run(self, work: Coroutine[Any, Any, T]) -> T:
        task = asyncio.get_running_loop().create_task(work)
        # A callback, not a `finally` in the task: a task cancelled before it starts
        # (when `asyncio.run` ends) never runs its code, and must free its slot too.
        task.add_done_callback(self._finished)
        # `shield` keeps a cancellation of the caller from reaching the task, and
        # retrieves the task's exception once nobody waits for it any more. The caller's
        # cancellation marks the waiter cancelled at once, before the caller runs again:
        # `settle` sees the work abandoned from that moment on.
        waiter = asyncio.shield(task)
        self._detached[task] = waiter
        return await waiter

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._slots.release()
        del self._detached[task]


def stop_if_cancelled() -> None:
    """Raise `CancelledError` in a task that was asked to stop while a call swallowed the
    request (redis-py's `asyncio.wait_for` can, on Python 3.11): for loops of many round
    trips, which would otherwise run to their end. (Python 3.10 cannot tell: it has no
    `Task.cancelling`.)"""
    cancelling = getattr(asyncio.current_task(), "cancelling", None)
    if cancelling is not None and cancelling():
        raise asyncio.CancelledError
