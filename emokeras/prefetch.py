"""Run an iterator in a background thread, a few items ahead of the code that consumes it.

``predict_video`` decodes frames and finds faces (OpenCV) while the model classifies the batch
before (TensorFlow); both release the GIL, so on a CPU with two or more cores the two overlap
instead of taking turns.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_END = object()
_POLL_SECONDS = 0.1  # how often a blocked producer checks whether the consumer has gone


def prefetch(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """Yield ``items`` in order, produced by a background thread up to ``depth`` items ahead.

    An exception raised while producing is raised here, at the item where it happened. When the
    consumer stops early (``break``, an exception, ``close()``), the thread stops and closes the
    source iterator in its own thread, so a video reader behind it releases its file.
    """
    if not (isinstance(depth, int) and depth >= 1):
        raise ValueError(f"depth must be an integer >= 1, got {depth!r}")
    return _prefetched(iter(items), depth)


def _prefetched(source: Iterator[T], depth: int) -> Iterator[T]:
    # a generator: the thread starts at the first next(), and stops when the generator closes
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stopped = threading.Event()

    def offer(entry) -> bool:
        while not stopped.is_set():
            try:
                buffer.put(entry, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in source:
                if not offer((item, None)):
                    return
            outcome = (_END, None)
        except BaseException as error:  # handed to the consumer, raised there
            outcome = (_END, error)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()
        offer(outcome)

    thread = threading.Thread(target=produce, name="emokeras-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = buffer.get()
            if item is _END:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stopped.set()
        thread.join()
