"""paho's client, reading the socket in large chunks."""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as mqtt


class BufferedClient(mqtt.Client):
    """paho reads every packet with three or more small recv() calls (type byte, each length
    byte, body): one system call each. This reads the socket in large chunks and serves
    paho's small reads from memory. What it holds is invisible to the selector, so the
    subscriber's reader comes back for it (`buffered`) on the loop's next turn."""

    _CHUNK = 256 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rdata = b""
        self._rpos = 0

    @property
    def buffered(self) -> bool:
        return self._rpos < len(self._rdata)

    def drop_buffer(self) -> None:
        self._rdata, self._rpos = b"", 0

    def _sock_recv(self, bufsize: int) -> bytes:
        data, pos = self._rdata, self._rpos
        if pos >= len(data):
            data = super()._sock_recv(self._CHUNK)  # BlockingIOError when there is nothing
            if not data:
                return data  # the broker closed the connection
            self._rdata, pos = data, 0
        self._rpos = pos + bufsize
        return data[pos : pos + bufsize]
