"""Bounded per-session SSE event store: event ids and `Last-Event-ID` resumability.

Spec: https://modelcontextprotocol.io/specification/2025-11-25/basic/transports#resumability-and-redelivery

Every message the gateway sends on an SSE stream of a session is appended here under
that stream's id (`get` for the standalone GET stream, `r<n>` for the stream of one
POST request) and gets the event id `<stream>:<seq>`, with `seq` increasing across the
session. A client that lost a stream sends GET with `Last-Event-ID`; the gateway replays
the events of *that* stream after the id and then continues it live. Only the newest
`capacity` events of a session are kept; older ones are gone for replay (a client
resuming that late misses them; the stream itself continues).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import AsyncIterator

from gateway.wire.jsonrpc import Message

GET_STREAM = "get"
_END = None


def event_id(stream: str, seq: int) -> str:
    """The SSE `id` of event `seq` on `stream`."""
    return f"{stream}:{seq}"


def parse_event_id(value: str) -> tuple[str, int] | None:
    """`(stream, seq)` of an event id this store issued, or None for anything else."""
    stream, sep, seq = value.rpartition(":")
    if not sep or not stream or not seq.isdigit():
        return None
    return stream, int(seq)


class EventStore:
    """The SSE events of one session.

    Args:
        capacity: events kept for replay (0 keeps none; live delivery still works).
    """

    def __init__(self, capacity: int) -> None:
        self._events: deque[tuple[str, int, Message]] = deque(maxlen=capacity or None)
        self._keep = capacity > 0
        self._seq = itertools.count(1)
        self._closed: set[str] = set()
        self._live: dict[str, asyncio.Queue[tuple[int, Message] | None]] = {}
        self._unread: set[str] = set()
        self._last = 0

    @property
    def last_seq(self) -> int:
        """Sequence number of the newest event (0 before any)."""
        return self._last

    def open(self, stream: str) -> None:
        """Start buffering `stream` for its first reader, so events sent before the
        reader attaches are not lost even when nothing is kept for replay."""
        self._live[stream] = asyncio.Queue()
        self._unread.add(stream)

    def append(self, stream: str, message: Message) -> int:
        """Record `message` on `stream` and hand it to the stream's live reader; returns
        its sequence number."""
        seq = self._last = next(self._seq)
        if self._keep:
            self._events.append((stream, seq, message))
        queue = self._live.get(stream)
        if queue is not None:
            queue.put_nowait((seq, message))
        return seq

    def close(self, stream: str) -> None:
        """Mark `stream` complete: readers stop after its last event."""
        self._closed.add(stream)
        queue = self._live.get(stream)
        if queue is None:
            return
        queue.put_nowait(_END)
        if stream not in self._unread:  # an unread buffer waits for its first reader
            del self._live[stream]

    def is_closed(self, stream: str) -> bool:
        """True once `close(stream)` ran."""
        return stream in self._closed

    def attached(self, stream: str) -> bool:
        """True while a reader follows (or is about to follow) `stream` live."""
        return stream in self._live

    async def follow(self, stream: str, after: int = 0) -> AsyncIterator[tuple[int, Message]]:
        """Yield `(seq, message)` of `stream` stored after `after`, then live ones until
        the stream is closed (or the reader is replaced by a newer `follow`)."""
        if stream in self._unread:  # the first reader: its buffer holds everything
            self._unread.discard(stream)
            queue, replay, closed = self._live[stream], [], False
        else:
            queue = asyncio.Queue()
            previous = self._live.get(stream)
            if previous is not None:
                previous.put_nowait(_END)  # a resumed stream replaces the one it resumes
            # Registering and snapshotting happen with no await between them, so no
            # event can fall into the gap between replay and live delivery.
            replay = [(seq, msg) for name, seq, msg in self._events
                      if name == stream and seq > after]
            closed = stream in self._closed
            if not closed:
                self._live[stream] = queue
        try:
            for item in replay:
                yield item
            if closed:
                return
            while (live := await queue.get()) is not None:
                yield live
        finally:
            if self._live.get(stream) is queue:
                del self._live[stream]

    def end_all(self) -> None:
        """The session ended: stop every live reader."""
        for stream in list(self._live):
            self.close(stream)
        self._unread.clear()
