"""Has anyone committed to the database file? Answered without a query or a thread hop.

In WAL mode every connection to a file, in any process, shares the *wal-index* (the
``-shm`` file, memory-mapped). Its header (see https://www.sqlite.org/walformat.html)
holds ``iChange``, a counter every commit increments, with the WAL's salts and frame
count, and it is written twice (two copies, the second first) so that a reader can tell
a consistent header from one being written. :func:`WalToken.read` maps the file
read-only and returns the header's bytes: equal bytes mean no commit in between.

The read cache (:mod:`sessionlite.store.hot_cache`) serves a session from memory only
while the token is the one its own writer last saw after its own commit; any other
commit (another process, another service on the same file) changes the token, and the
cache is not trusted until the writer has seen it (see :mod:`.writer`).
"""

from __future__ import annotations

import mmap
import os
import struct

__all__ = ["HEADER_SIZE", "MemoryToken", "WalToken", "change_counter"]

HEADER_SIZE = 48  # one copy of the wal-index header
_ICHANGE = struct.Struct("=I")  # native byte order, at offset 8


def change_counter(token: bytes) -> int:
    """The header's ``iChange``: incremented by every commit that wrote to the WAL."""
    return int(_ICHANGE.unpack_from(token, 8)[0])


class WalToken:
    """Reads the wal-index header of ``path`` (a database in WAL mode).

    The file descriptor stays open until :meth:`close`, which must come after the
    service's SQLite connections are closed: SQLite holds POSIX locks on the ``-shm``
    file, and closing *any* descriptor of a file drops all of the process's locks on it.
    """

    def __init__(self, path: str) -> None:
        self._path = path + "-shm"
        self._fd: int | None = None
        self._map: mmap.mmap | None = None

    def open(self) -> None:
        """Map the ``-shm`` file (it exists once a connection has opened the WAL)."""
        fd = os.open(self._path, os.O_RDONLY)
        self._fd = fd
        self._map = mmap.mmap(fd, 2 * HEADER_SIZE, access=mmap.ACCESS_READ)

    def read(self) -> bytes | None:
        """The header, or None while it is being written (the two copies differ)."""
        view = self._map
        if view is None:
            return None
        first = view[:HEADER_SIZE]
        if first != view[HEADER_SIZE : 2 * HEADER_SIZE]:
            return None
        return first

    def ours(self, before: bytes, after: bytes, wrote: bool) -> bool:
        """Whether ``after`` is ``before`` plus our own commit only: one commit more if
        our transaction changed rows, none if it did not (32-bit counter)."""
        return (change_counter(after) - change_counter(before)) % 2**32 == int(wrote)

    def close(self) -> None:
        """After the SQLite connections are closed (see the class docstring)."""
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class MemoryToken:
    """``":memory:"``: one connection of this service is the only writer there is."""

    _TOKEN = b"memory"

    def open(self) -> None:
        pass

    def read(self) -> bytes:
        return self._TOKEN

    def ours(self, before: bytes, after: bytes, wrote: bool) -> bool:
        return True

    def close(self) -> None:
        pass
