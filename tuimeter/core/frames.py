"""TuyaMCU frames: `55 AA ver cmd len(u16 BE) payload sum`, and an incremental stream parser.

Sans-I/O: bytes in, frames and parse problems out. The caller passes the clock in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

HEADER = b"\x55\xaa"
HEADER_LEN = 6  # 55 AA ver cmd lenHi lenLo
MIN_FRAME = 7
HOST_VERSION = 0x00  # the MCU SDK ignores any frame from the host with another version
MCU_VERSION = 0x03
DEFAULT_MAX_LENGTH = 1024  # payload cap; real meter frames are < 64 B, product JSON < 256 B
DEFAULT_INTERBYTE_TIMEOUT = 0.5  # Tasmota v2 uses 500 ms, ESPHome 300 ms


def checksum(data: bytes | bytearray | memoryview) -> int:
    """Sum of all bytes mod 256, as the protocol defines it."""
    return sum(data) & 0xFF


def encode_frame(command: int, payload: bytes = b"", version: int = HOST_VERSION) -> bytes:
    """Build one complete frame, length and checksum included."""
    if not 0 <= command <= 0xFF or not 0 <= version <= 0xFF:
        raise ValueError("command and version must be bytes")
    if len(payload) > 0xFFFF:
        raise ValueError("payload longer than 65535 bytes")
    body = bytes((0x55, 0xAA, version, command, len(payload) >> 8, len(payload) & 0xFF)) + payload
    return body + bytes((checksum(body),))


class Frame(NamedTuple):
    """One valid frame as it stood on the wire. (A NamedTuple: immutable, and the cheapest object
    Python builds; one is made for every frame received.)"""

    version: int
    command: int
    payload: bytes

    @property
    def raw(self) -> bytes:
        return encode_frame(self.command, self.payload, self.version)

    @classmethod
    def from_bytes(cls, data: bytes) -> Frame:
        """Decode exactly one frame; raises ValueError when `data` is not one valid frame."""
        if len(data) < MIN_FRAME or data[:2] != HEADER:
            raise ValueError("not a TuyaMCU frame (no 55 AA header)")
        length = (data[4] << 8) | data[5]
        if len(data) != MIN_FRAME + length:
            raise ValueError(f"length field says {length} payload bytes, frame has {len(data) - 7}")
        if checksum(data[:-1]) != data[-1]:
            raise ValueError("bad checksum")
        return cls(data[2], data[3], bytes(data[6:-1]))


@dataclass(frozen=True, slots=True)
class Junk:
    """Bytes skipped between frames (noise, or the remains of a broken frame)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class ParseError:
    """A frame candidate that was rejected. `kind`: bad_checksum, oversize or stalled."""

    kind: str
    data: bytes
    detail: str


ParserEvent = Frame | Junk | ParseError


@dataclass(slots=True)
class ParserStats:
    """Counters; bytes_in == frame_bytes + bytes_skipped + what is still buffered."""

    bytes_in: int = 0
    frames: int = 0
    frame_bytes: int = 0
    bytes_skipped: int = 0
    bad_checksums: int = 0
    oversize: int = 0
    stalled: int = 0

    @property
    def errors(self) -> int:
        return self.bad_checksums + self.oversize + self.stalled


@dataclass(slots=True)
class StreamParser:
    """Incremental parser. On a bad checksum, an impossible length or a stall it resumes
    scanning one byte after the failed header, so a real frame hidden inside a broken one
    is still found."""

    max_length: int = DEFAULT_MAX_LENGTH
    interbyte_timeout: float = DEFAULT_INTERBYTE_TIMEOUT
    stats: ParserStats = field(default_factory=ParserStats)
    _buf: bytes = b""  # immutable: a frame's payload is a slice of it, with no second copy
    _junk: bytearray = field(default_factory=bytearray)
    _last_byte_at: float | None = None

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes, now: float = 0.0) -> list[ParserEvent]:
        """Add received bytes; return the frames (and problems) they complete, in order."""
        out: list[ParserEvent] = []
        # A stall is only judged by check_timeout(), from the caller's clock: bytes read late because
        # the caller was busy must not cut a good frame in two.
        if data:
            self.stats.bytes_in += len(data)
            self._buf = self._buf + data if self._buf else bytes(data)
            self._last_byte_at = now
            self._drain(out, final=False)
        return out

    def stall_deadline(self) -> float | None:
        """When the partial frame in the buffer counts as stalled, if there is one."""
        if not self._buf or self._last_byte_at is None:
            return None
        return self._last_byte_at + self.interbyte_timeout

    def check_timeout(self, now: float) -> list[ParserEvent]:
        """Drop a partial frame that has stalled for longer than the inter-byte timeout."""
        if not self._buf or self._last_byte_at is None or now - self._last_byte_at <= self.interbyte_timeout:
            return []
        out: list[ParserEvent] = []
        self._drain(out, final=True)
        return out

    def flush(self) -> list[ParserEvent]:
        """End of stream: whatever is left is either a frame hidden in it, or junk."""
        out: list[ParserEvent] = []
        self._drain(out, final=True)
        self._emit_junk(out)
        return out

    def _emit_junk(self, out: list[ParserEvent]) -> None:
        if self._junk:
            out.append(Junk(bytes(self._junk)))
            self._junk.clear()

    def _drain(self, out: list[ParserEvent], *, final: bool) -> None:
        """Take every complete frame off the front of the buffer. With `final`, an
        incomplete candidate is given up (stalled) instead of waited for.

        The loop is the floor's (find the header, check the sum, slice) with the rare cases
        (bytes before the header, an impossible length, a frame not all here) off its main path."""
        buf = self._buf
        n = len(buf)
        pos = 0  # frames are taken off in one slice at the end; pos is their end
        skipped = self.stats.bytes_skipped
        frames = 0
        max_length = self.max_length
        find, append = buf.find, out.append  # bound once: this loop runs for every frame
        junk = bool(self._junk)  # junk waiting to be reported before the next frame
        while True:
            start = find(b"\x55\xaa", pos)
            if start != pos:
                if start < 0:
                    # keep a trailing 0x55: it may be the first half of a header
                    keep = 1 if (not final and n > pos and buf[-1] == 0x55) else 0
                    if n - keep > pos:
                        self._junk += buf[pos:n - keep]
                        self.stats.bytes_skipped += n - keep - pos
                    pos = n - keep
                    break
                self._junk += buf[pos:start]
                self.stats.bytes_skipped += start - pos
                junk = True
                pos = start
            if start + 6 > n:  # HEADER_LEN
                if not final:
                    break
                self._reject(out, "stalled", buf[start:], "frame cut off by a pause on the line")
                pos, junk = start + 1, True
                continue
            length = (buf[start + 4] << 8) | buf[start + 5]
            end = start + 7 + length  # MIN_FRAME
            if end > n or length > max_length:
                if length > max_length:
                    self._reject(out, "oversize", buf[start:start + HEADER_LEN],
                                 f"length {length} exceeds the {max_length}-byte cap")
                elif not final:
                    break
                else:
                    self._reject(out, "stalled", buf[start:],
                                 f"frame cut off after {n - start} of {end - start} bytes")
                pos, junk = start + 1, True
                continue
            if sum(buf[start:end - 1]) & 0xFF != buf[end - 1]:
                self._reject(out, "bad_checksum", buf[start:end],
                             f"checksum {buf[end - 1]:02X}, expected {sum(buf[start:end - 1]) & 0xFF:02X}")
                pos, junk = start + 1, True
                continue
            if junk:
                self._emit_junk(out)
                junk = False
            append(Frame(buf[start + 2], buf[start + 3], buf[start + 6:end - 1]))
            frames += 1
            pos = end
        self.stats.frames += frames
        # every byte before pos is a frame's or was skipped: the frame bytes follow without a count per frame
        self.stats.frame_bytes += pos - (self.stats.bytes_skipped - skipped)
        if pos:
            buf = self._buf = buf[pos:]
        if final or len(self._junk) >= 256:  # bounded: noise never piles up in memory
            self._emit_junk(out)
        if not buf:
            self._last_byte_at = None

    def _reject(self, out: list[ParserEvent], kind: str, data: bytes, detail: str) -> None:
        if kind == "bad_checksum":
            self.stats.bad_checksums += 1
        elif kind == "oversize":
            self.stats.oversize += 1
        else:
            self.stats.stalled += 1
        # the failed header's first byte is junk; the rest is scanned again
        self._junk.append(0x55)
        self.stats.bytes_skipped += 1
        out.append(ParseError(kind, data, detail))
