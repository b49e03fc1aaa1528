"""Frame codec and stream parser: framing, resync, timeouts, counters."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tuimeter.core.frames import Frame, Junk, ParseError, StreamParser, checksum, encode_frame

HEARTBEAT = bytes.fromhex("55AA00000000FF")
RELAY_OFF_REPORT = bytes.fromhex("55AA03070005100100010020")


def frames_of(events: list[object]) -> list[Frame]:
    return [e for e in events if isinstance(e, Frame)]


def test_encode_matches_reference_examples() -> None:
    assert encode_frame(0x00) == HEARTBEAT
    assert encode_frame(0x08) == bytes.fromhex("55AA0008000007")
    assert encode_frame(0x03, b"\x04") == bytes.fromhex("55AA000300010407")
    assert encode_frame(0x00, b"\x00", version=3) == bytes.fromhex("55AA030000010003")
    assert encode_frame(0x2B, b"\x04") == bytes.fromhex("55AA002B0001042F")
    # the documented relay-on write
    assert encode_frame(0x06, bytes.fromhex("1001000101")) == bytes.fromhex("55AA0006000510010001011D")


def test_full_16_bit_length_is_used() -> None:
    payload = bytes(range(256)) * 2  # 512 bytes: a parser reading only the low byte would see 0
    raw = encode_frame(0x07, payload, version=3)
    assert raw[4:6] == b"\x02\x00"
    p = StreamParser(max_length=1024)
    (frame,) = frames_of(p.feed(raw))
    assert frame.payload == payload


def test_frame_split_at_every_byte_is_reassembled() -> None:
    p = StreamParser()
    out: list[object] = []
    for i, b in enumerate(RELAY_OFF_REPORT):
        out += p.feed(bytes([b]), now=i * 0.001)
    assert frames_of(out) == [Frame(3, 7, bytes.fromhex("1001000100"))]


def test_payload_containing_55_aa_does_not_break_framing() -> None:
    raw = encode_frame(0x07, bytes.fromhex("0600000855AA55AA0000554B"), version=3)
    (frame,) = frames_of(StreamParser().feed(raw))
    assert frame.payload == bytes.fromhex("0600000855AA55AA0000554B")


def test_bad_checksum_counted_and_real_frame_inside_it_recovered() -> None:
    # a frame interrupted by a real one (esphome/issues#986): the outer candidate's length swallows
    # the inner frame, its checksum fails, and scanning resumes one byte after its header
    inner = RELAY_OFF_REPORT
    outer = bytes.fromhex("55AA0307000E0600000A09BA") + inner + b"\x00\x00"
    p = StreamParser()
    events = p.feed(outer)
    assert frames_of(events) == [Frame.from_bytes(inner)]
    assert p.stats.bad_checksums == 1
    assert any(isinstance(e, ParseError) and e.kind == "bad_checksum" for e in events)


def test_oversize_length_is_rejected_without_waiting() -> None:
    p = StreamParser(max_length=256)
    events = p.feed(bytes.fromhex("55AA0307FFFF") + HEARTBEAT)
    assert frames_of(events) == [Frame.from_bytes(HEARTBEAT)]
    assert p.stats.oversize == 1


def test_cut_off_frame_followed_by_a_new_one_loses_only_the_cut_one() -> None:
    p = StreamParser(interbyte_timeout=0.5)
    assert p.feed(RELAY_OFF_REPORT[:7], now=0.0) == []
    events = p.feed(HEARTBEAT, now=2.0)  # the rest never came; a new frame follows (no timer ran)
    assert frames_of(events) == [Frame.from_bytes(HEARTBEAT)]
    assert p.stats.bad_checksums == 1  # the cut frame, completed with the new bytes, fails its sum


def test_bytes_read_late_by_a_busy_caller_still_make_a_frame() -> None:
    # the second half was on the line in time, but the caller read it 2 s later: not a stall
    p = StreamParser(interbyte_timeout=0.5)
    p.feed(RELAY_OFF_REPORT[:5], now=0.0)
    assert frames_of(p.feed(RELAY_OFF_REPORT[5:], now=2.0)) == [Frame.from_bytes(RELAY_OFF_REPORT)]
    assert p.stats.stalled == 0


def test_check_timeout_drops_stall_without_new_bytes() -> None:
    p = StreamParser(interbyte_timeout=0.5)
    p.feed(RELAY_OFF_REPORT[:9], now=0.0)
    assert p.check_timeout(0.4) == []
    events = p.check_timeout(0.6)
    assert [e.kind for e in events if isinstance(e, ParseError)] == ["stalled"]
    assert p.buffered == 0


def test_no_timeout_while_bytes_keep_coming() -> None:
    p = StreamParser(interbyte_timeout=0.5)
    out: list[object] = []
    for i, b in enumerate(RELAY_OFF_REPORT):
        out += p.feed(bytes([b]), now=i * 0.4)  # slow, but every gap is below the timeout
    assert len(frames_of(out)) == 1
    assert p.stats.stalled == 0


def test_junk_between_frames_is_reported_and_counted() -> None:
    p = StreamParser()
    events = p.feed(b"\x00\xff\x12" + HEARTBEAT + b"\x55")
    assert events[0] == Junk(b"\x00\xff\x12")
    assert isinstance(events[1], Frame)
    assert p.stats.bytes_skipped == 3
    assert p.buffered == 1  # a trailing 0x55 may start the next header
    assert p.flush() == [Junk(b"\x55")]


def test_counters_account_for_every_byte() -> None:
    p = StreamParser()
    data = b"\x01\x02" + HEARTBEAT + bytes.fromhex("55AA000000") + RELAY_OFF_REPORT + b"\x55\xaa\x00"
    p.feed(data)
    s = p.stats
    assert s.bytes_in == len(data)
    assert s.bytes_in == s.frame_bytes + s.bytes_skipped + p.buffered


def test_from_bytes_rejects_bad_frames() -> None:
    for bad in (b"", HEARTBEAT[:-1], HEARTBEAT[:-1] + b"\x00", b"\x55\xab" + HEARTBEAT[2:]):
        try:
            Frame.from_bytes(bad)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad.hex()}")


def test_checksum_is_sum_mod_256() -> None:
    assert checksum(b"\xff\xff\x03") == 1


frame_st = st.builds(
    Frame,
    version=st.integers(0, 255),
    command=st.integers(0, 255),
    payload=st.binary(max_size=64),
)


def _noise_without_frames() -> st.SearchStrategy[bytes]:
    # noise with no 55 AA header in it holds no valid frame; stray 0x55 bytes are allowed
    return st.binary(max_size=40).map(lambda b: b.replace(b"\x55\xaa", b"\x55\xab"))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_noise_without_frames(), frame_st), max_size=8), _noise_without_frames(),
       st.lists(st.integers(1, 16), min_size=1, max_size=8))
def test_frames_in_noise_decode_to_exactly_those_frames(
    parts: list[tuple[bytes, Frame]], tail: bytes, chunk_sizes: list[int]
) -> None:
    stream = b"".join(noise + f.raw for noise, f in parts) + tail
    p = StreamParser()
    out: list[object] = []
    pos, i = 0, 0
    while pos < len(stream):  # fed in arbitrary chunks, as reads from a UART arrive
        n = chunk_sizes[i % len(chunk_sizes)]
        out += p.feed(stream[pos:pos + n], now=0.0)
        pos, i = pos + n, i + 1
    out += p.flush()
    assert frames_of(out) == [f for _, f in parts]
    assert p.stats.bytes_in == p.stats.frame_bytes + p.stats.bytes_skipped


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise_and_counters_hold(data: bytes) -> None:
    p = StreamParser(max_length=64)
    out = p.feed(data)
    out += p.flush()
    assert p.stats.bytes_in == p.stats.frame_bytes + p.stats.bytes_skipped
    for f in frames_of(out):
        assert Frame.from_bytes(f.raw) == f


@settings(max_examples=200, deadline=None)
@given(frame_st)
def test_encode_decode_round_trip(frame: Frame) -> None:
    assert Frame.from_bytes(frame.raw) == frame


def test_frame_whose_checksum_is_0x55_is_not_kept_as_a_header_start() -> None:
    raw = Frame(0, 184, b"I~\xd4").raw
    assert raw[-1] == 0x55
    p = StreamParser()
    for b in raw:
        p.feed(bytes([b]))
    assert p.stats.frames == 1 and p.buffered == 0
