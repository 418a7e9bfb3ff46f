"""Runs the backend's heavy work off the per-frame path: a worker thread fed through a bounded queue.

The per-frame path only calls :meth:`BackendWorker.submit` (cheap unless the queue is full) and reads the
latest published result. In ``sync`` mode every job runs inline in the caller's thread (deterministic).
Jobs are processed in submission order. An exception in the worker is kept and re-raised in the
caller's thread at the next :meth:`submit`, :meth:`drain` or :meth:`close`.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable

_STOP = object()


class BackendWorker:
    """A single background thread executing ``handler(job)`` for each submitted job, plus idle work."""

    def __init__(self, handler: Callable[[Any], None], idle: Callable[[], bool], sync: bool, queue_size: int):
        """``idle()`` is called when the queue is empty; it does one unit of deferred work and returns
        True if there may be more."""
        self._handler = handler
        self._idle = idle
        self.sync = sync
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._error: BaseException | None = None
        self._idle_done = threading.Event()  # set when the queue is empty and no deferred work is left
        self._idle_done.set()
        self.blocked_s = 0.0  # time the per-frame path spent waiting on a full queue
        self._thread: threading.Thread | None = None
        if not sync:
            self._thread = threading.Thread(target=self._run, name="slam-backend", daemon=True)
            self._thread.start()

    def submit(self, job: Any) -> None:
        """Hand a job to the worker (or run it now in sync mode)."""
        self._raise_pending()
        if self.sync:
            self._handler(job)
            while self._idle():
                pass
            return
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            t0 = time.perf_counter()
            self._queue.put(job)
            self.blocked_s += time.perf_counter() - t0

    def drain(self) -> None:
        """Wait until every submitted job and all deferred work are done."""
        if self.sync:
            while self._idle():
                pass
        else:
            self._queue.join()
            self._idle_done.wait()
        self._raise_pending()

    def close(self) -> None:
        """Stop the thread (pending jobs are finished first)."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()
        self._thread = None

    def _raise_pending(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise RuntimeError(f"backend worker failed: {err!r}") from err

    def _run(self) -> None:
        more_idle_work = False
        while True:
            try:
                job = self._queue.get(timeout=0.0 if more_idle_work else 0.05)
            except queue.Empty:
                if more_idle_work and self._error is None:
                    try:
                        more_idle_work = self._idle()
                    except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                        self._error = exc
                        more_idle_work = False
                if not more_idle_work and self._queue.empty():
                    self._idle_done.set()
                continue
            self._idle_done.clear()
            try:
                if job is _STOP:
                    self._idle_done.set()
                    return
                if self._error is None:
                    self._handler(job)
                    more_idle_work = True
            except BaseException as exc:  # noqa: BLE001
                self._error = exc
            finally:
                self._queue.task_done()
