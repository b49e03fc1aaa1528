"""The host state machine against scripted MCU byte streams, on a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tuimeter.core.commands import Command, command_label
from tuimeter.core.datapoints import DPType, make_datapoint
from tuimeter.core.events import (
    CommandFinished,
    Event,
    LinkChanged,
    LinkState,
    McuRestarted,
    ProfileChosen,
    ReadingUpdated,
    RelayChanged,
)
from tuimeter.core.frames import Frame, StreamParser, encode_frame
from tuimeter.core.host import CommandRefused, HostConfig, HostMachine
from tuimeter.core.listen import ListenMachine
from tuimeter.core.profile import load_profile, shipped_profiles

WALL = datetime(2026, 4, 6, 15, 51, 37, tzinfo=UTC)  # a Monday
CANDIDATES = [load_profile(name) for name in shipped_profiles()]


def mcu(cmd: int, payload: bytes = b"") -> bytes:
    return encode_frame(cmd, payload, version=3)


def dp_report(dpid: int, dptype: DPType, value: object, **kw: int) -> bytes:
    return mcu(Command.DP_REPORT, make_datapoint(dpid, dptype, value, **kw).encode())  # type: ignore[arg-type]


class Rig:
    """A HostMachine with a fake clock; records every frame it sends and every event."""

    def __init__(self, **config: object) -> None:
        self.now = 0.0
        self.m = HostMachine(load_profile(), HostConfig(**config))  # type: ignore[arg-type]
        self.parser = StreamParser()
        self.sent: list[tuple[float, Frame]] = []
        self.events: list[Event] = []

    def collect(self) -> None:
        for f in self.parser.feed(self.m.data_to_send()):
            assert isinstance(f, Frame)
            assert f.version == 0  # the MCU SDK drops host frames with any other version
            self.sent.append((self.now, f))
        self.events += self.m.events()

    def connect(self) -> None:
        self.m.connection_made(self.now, WALL)
        self.collect()

    def reply(self, data: bytes) -> None:
        self.m.receive(data, self.now, WALL)
        self.collect()

    def advance(self, seconds: float) -> None:
        """Let time pass, ticking the machine exactly at each deadline it asks for."""
        end = self.now + seconds
        while True:
            deadline = self.m.next_deadline()
            if deadline is None or deadline > end:
                break
            self.now = max(self.now, deadline)
            self.m.tick(self.now, WALL)
            self.collect()
        self.now = end

    def cmds(self) -> list[int]:
        return [f.command for _, f in self.sent]

    def last(self) -> Frame:
        return self.sent[-1][1]

    def take_sent(self) -> list[Frame]:
        out = [f for _, f in self.sent]
        self.sent.clear()
        return out

    def of(self, kind: type) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]

    def answer_startup(self, product: bytes = b"{}") -> None:
        """After the heartbeat: product info, an empty (cooperative) mode reply, three network acks."""
        self.reply(mcu(Command.PRODUCT_INFO, product))
        self.reply(mcu(Command.WORKING_MODE))
        for _ in range(3):
            self.reply(mcu(Command.NETWORK_STATUS))

    def bring_online(self, heartbeat: bytes = b"\x00") -> None:
        """Answer the start-up the way the real meter does."""
        self.connect()
        self.reply(mcu(Command.HEARTBEAT, heartbeat))
        self.answer_startup(b'{"p":"r9kg2g1uhhyicycb","v":"1.0.0","m":0}')
        self.reply(dp_report(16, DPType.BOOL, True) + dp_report(6, DPType.RAW, bytes.fromhex("09BA000000000000000E")))
        assert self.m.link is LinkState.HANDSHAKING  # the dump is still coming in
        self.advance(0.35)  # ... until it pauses
        assert self.m.link is LinkState.ONLINE


def test_startup_order_matches_stock_module() -> None:
    r = Rig()
    r.bring_online()
    assert [(f.command, f.payload) for f in r.take_sent()] == [
        (0x00, b""), (0x01, b""), (0x02, b""), (0x03, b"\x02"), (0x03, b"\x03"), (0x03, b"\x04"), (0x08, b""),
    ]
    assert [e.state for e in r.of(LinkChanged)] == [LinkState.HANDSHAKING, LinkState.ONLINE]
    assert r.m.product is not None and r.m.product.product_id == "r9kg2g1uhhyicycb"


def test_heartbeat_every_second_until_answered_then_every_15_s() -> None:
    r = Rig()
    r.connect()
    r.advance(3.5)
    times = [t for t, f in r.sent if f.command == Command.HEARTBEAT]
    assert times == pytest.approx([0.0, 1.0, 2.0, 3.0])
    r.sent.clear()
    r.reply(mcu(Command.HEARTBEAT, b"\x00"))
    r.answer_startup(b"{}")
    r.reply(dp_report(16, DPType.BOOL, True))
    r.advance(0.3)
    start = r.now
    for _ in range(3):
        r.advance(15.0)
        r.reply(mcu(Command.HEARTBEAT, b"\x01"))
    beats = [t - start for t, f in r.sent if f.command == Command.HEARTBEAT]
    assert beats == pytest.approx([15.0, 30.0, 45.0])


def test_wifi_state_option_and_module_mode_skip_ramp() -> None:
    r = Rig(wifi_state=3)
    r.connect()
    r.reply(mcu(Command.HEARTBEAT, b"\x01"))
    r.reply(mcu(Command.PRODUCT_INFO, b"{}"))
    r.reply(mcu(Command.WORKING_MODE))
    r.reply(mcu(Command.NETWORK_STATUS))
    r.reply(mcu(Command.NETWORK_STATUS))
    assert [f.payload for f in r.take_sent() if f.command == Command.NETWORK_STATUS] == [b"\x02", b"\x03"]

    r = Rig()
    r.connect()
    r.reply(mcu(Command.HEARTBEAT, b"\x01"))
    r.reply(mcu(Command.PRODUCT_INFO, b"{}"))
    r.reply(mcu(Command.WORKING_MODE, b"\x0e\x10"))  # module self-processing (DTS238-7 answers this)
    assert r.cmds()[-1] == Command.DP_QUERY
    assert Command.NETWORK_STATUS not in r.cmds()


def test_one_request_outstanding_with_retries_then_startup_restarts() -> None:
    r = Rig()
    r.connect()
    r.reply(mcu(Command.HEARTBEAT, b"\x00"))
    r.advance(2.95)
    # the unanswered 0x01 is resent each second; nothing else goes out meanwhile
    assert r.cmds() == [0x00, 0x01, 0x01, 0x01]
    r.advance(0.1)
    assert r.cmds()[-1] == Command.HEARTBEAT  # three tries failed: back to the handshake
    assert r.m.link is LinkState.HANDSHAKING


def test_mcu_requests_answered_during_startup() -> None:
    r = Rig()
    r.connect()  # still waiting for the first heartbeat reply
    r.take_sent()
    r.reply(mcu(Command.NETWORK_QUERY))
    r.reply(mcu(Command.LOCAL_TIME))
    r.reply(mcu(Command.WIFI_RSSI))
    r.reply(mcu(Command.WIFI_TEST))
    r.reply(mcu(Command.DP_REPORT_SYNC, make_datapoint(16, DPType.BOOL, True).encode()))
    r.reply(mcu(Command.EXTENDED, b"\x04"))
    r.reply(mcu(Command.NEW_FEATURE, b"\x00\x01"))
    r.reply(mcu(Command.GMT_TIME))
    sent = r.take_sent()
    assert [(f.command, f.payload.hex()) for f in sent] == [
        (0x2B, "04"),  # pitfall: unanswered 0x2B makes some MCUs reset the module
        (0x1C, "011a04060f332501"),  # 2026-04-06 15:51:37, Monday = 1
        (0x24, "ce"),  # -50 dBm
        (0x0E, "0000"),
        (0x23, "01"),
        (0x34, "0400"),
        (0x37, "0000"),
        (0x0C, "011a04060f3325"),
    ]
    assert r.m.meter.values["relay"] is True  # the synchronous report was applied too


def test_record_type_report_0x34_0b_is_applied_and_acked() -> None:
    r = Rig()
    r.connect()
    r.take_sent()
    payload = b"\x0b" + bytes.fromhex("0116040609332503") + make_datapoint(1, DPType.VALUE, 250).encode()
    r.reply(mcu(Command.EXTENDED, payload))
    assert [(f.command, f.payload) for f in r.take_sent()] == [(0x34, b"\x0b\x00")]
    assert r.m.meter.values["energy"] == 2.5


def test_reset_wifi_acked_then_network_ramp_again() -> None:
    r = Rig()
    r.bring_online()
    r.take_sent()
    r.reply(mcu(Command.RESET_WIFI))
    for _ in range(4):
        r.reply(mcu(Command.NETWORK_STATUS))
    assert [(f.command, f.payload) for f in r.take_sent()] == [
        (0x04, b""), (0x03, b"\x00"), (0x03, b"\x02"), (0x03, b"\x03"), (0x03, b"\x04"),
    ]
    r.reply(mcu(Command.RESET_WIFI_MODE, b"\x01"))
    assert [(f.command, f.payload) for f in r.take_sent()] == [(0x05, b""), (0x03, b"\x01")]


def test_dp_reports_accepted_before_handshake() -> None:
    r = Rig()
    r.connect()
    r.reply(dp_report(6, DPType.RAW, bytes.fromhex("097400006400001B0000")))
    (ev,) = r.of(ReadingUpdated)
    assert isinstance(ev, ReadingUpdated)
    assert ev.reading.power_w == 27


def test_mcu_restart_detected_from_heartbeat_reply_and_startup_rerun() -> None:
    r = Rig()
    r.bring_online()
    r.take_sent()
    r.advance(15.0)
    r.reply(mcu(Command.HEARTBEAT, b"\x00"))  # 0x00 after running: the MCU rebooted
    assert r.of(McuRestarted)
    assert r.m.link is LinkState.HANDSHAKING
    assert r.cmds()[-1] == Command.PRODUCT_INFO


def test_three_missed_heartbeats_mean_link_lost_then_recovery() -> None:
    r = Rig()
    r.bring_online()
    r.advance(15.0 + 3 * 3.0 + 0.1)
    assert r.m.link is LinkState.LINK_LOST
    lost = [e for e in r.of(LinkChanged) if e.state is LinkState.LINK_LOST]  # type: ignore[union-attr]
    assert "3 heartbeats unanswered" in lost[0].reason  # type: ignore[union-attr]
    r.take_sent()
    r.advance(2.0)
    assert r.cmds() == [0, 0]  # back to 1 s heartbeats until the MCU answers
    r.reply(mcu(Command.HEARTBEAT, b"\x00"))
    assert r.of(McuRestarted)  # it was silent because it rebooted
    r.answer_startup(b"{}")
    r.reply(dp_report(16, DPType.BOOL, True))
    r.advance(0.35)
    assert r.m.link is LinkState.ONLINE


def test_relay_completes_only_on_meters_report() -> None:
    r = Rig()
    r.bring_online()
    r.take_sent()
    token = r.m.request_relay(False, r.now, WALL)
    r.collect()
    assert [(f.command, f.payload.hex()) for f in r.take_sent()] == [(0x06, "1001000100")]
    assert not r.of(CommandFinished)
    r.reply(dp_report(6, DPType.RAW, bytes(10)))  # an unrelated report does not confirm
    assert not r.of(CommandFinished)
    r.reply(dp_report(16, DPType.BOOL, False))
    (done,) = r.of(CommandFinished)
    assert isinstance(done, CommandFinished)
    assert (done.token, done.ok) == (token, True)
    assert "confirmed" in done.message
    assert [e.on for e in r.of(RelayChanged)] == [True, False]  # type: ignore[union-attr]


def test_relay_unconfirmed_fails_clearly_and_state_becomes_unknown() -> None:
    r = Rig(relay_timeout=3.0)
    r.bring_online()
    r.take_sent()
    r.m.request_relay(False, r.now, WALL)
    r.collect()
    r.advance(3.1)
    (done,) = r.of(CommandFinished)
    assert isinstance(done, CommandFinished)
    assert not done.ok and "did not confirm" in done.message
    assert r.m.meter.reading(WALL).relay is None
    assert [f.command for f in r.take_sent()].count(Command.DP_COMMAND) == 1  # no retry storm


def test_relay_report_with_other_value_fails() -> None:
    r = Rig()
    r.bring_online()
    r.m.request_relay(False, r.now, WALL)
    r.collect()
    r.reply(dp_report(16, DPType.BOOL, True))
    (done,) = r.of(CommandFinished)
    assert isinstance(done, CommandFinished) and not done.ok and "reports on" in done.message


def test_second_relay_command_while_one_pending_is_refused() -> None:
    r = Rig()
    r.bring_online()
    r.m.request_relay(False, r.now, WALL)
    with pytest.raises(CommandRefused, match="already waiting"):
        r.m.request_relay(True, r.now, WALL)
    r.collect()
    assert [f.command for f in r.take_sent()].count(Command.DP_COMMAND) == 1


def test_relay_already_in_state_sends_nothing() -> None:
    r = Rig()
    r.bring_online()
    r.take_sent()
    r.m.request_relay(True, r.now, WALL)
    r.collect()
    assert r.take_sent() == []
    (done,) = r.of(CommandFinished)
    assert isinstance(done, CommandFinished) and done.ok and "already on" in done.message


def test_read_only_refuses_relay_and_sends_nothing() -> None:
    r = Rig(read_only=True)
    r.bring_online()
    r.take_sent()
    with pytest.raises(CommandRefused, match="read-only"):
        r.m.request_relay(False, r.now, WALL)
    r.collect()
    assert r.take_sent() == []


def test_relay_refused_when_not_online() -> None:
    r = Rig()
    r.connect()
    with pytest.raises(CommandRefused, match="not online"):
        r.m.request_relay(True, r.now, WALL)


def test_query_sends_0x08_and_waits_for_report() -> None:
    r = Rig()
    r.bring_online()
    r.take_sent()
    r.m.request_query(r.now, WALL)
    r.collect()
    assert r.cmds() == [Command.DP_QUERY]
    r.reply(dp_report(19, DPType.STRING, "FSE-F723C558128885"))
    assert any(isinstance(e, CommandFinished) and e.ok for e in r.events)


def test_heartbeat_waits_behind_pending_request() -> None:
    r = Rig(relay_timeout=3.0)
    r.bring_online()
    r.advance(14.0)
    r.take_sent()
    r.m.request_relay(False, r.now, WALL)
    r.collect()
    r.advance(2.0)  # heartbeat due at 15 s, but the relay command is outstanding
    assert r.cmds() == [Command.DP_COMMAND]
    r.reply(dp_report(16, DPType.BOOL, False))
    assert r.cmds()[-1] == Command.HEARTBEAT


def test_one_reading_per_received_burst() -> None:
    r = Rig()
    r.bring_online()
    r.events.clear()
    r.reply(dp_report(1, DPType.VALUE, 100) + dp_report(6, DPType.RAW, bytes.fromhex("09BA000000000000000E")))
    assert len(r.of(ReadingUpdated)) == 1


def test_bad_checksum_frame_changes_nothing() -> None:
    r = Rig()
    r.bring_online()
    before = r.m.meter.reading(WALL)
    bad = bytearray(dp_report(6, DPType.RAW, bytes.fromhex("08FC000000000000000E")))
    bad[-1] ^= 0xFF
    r.reply(bytes(bad))
    assert r.m.meter.reading(WALL) == before
    assert r.m.parser.stats.bad_checksums == 1


def test_relay_state_forgotten_after_mcu_restart_so_a_command_is_really_sent() -> None:
    r = Rig()
    r.bring_online()
    assert r.m.meter.values["relay"] is True
    r.advance(15.0)
    r.reply(mcu(Command.HEARTBEAT, b"\x00"))  # rebooted: its relay may now be off
    assert r.m.meter.reading(WALL).relay is None
    r.answer_startup(b"{}")
    r.reply(dp_report(6, DPType.RAW, bytes(10)))  # the dump starts, dp 16 not seen yet
    r.advance(0.35)
    r.take_sent()
    r.m.request_relay(True, r.now, WALL)
    r.collect()
    assert [f.command for f in r.take_sent()] == [Command.DP_COMMAND]  # not skipped on a stale "on"


def test_relay_command_cut_short_by_port_loss_leaves_state_unknown() -> None:
    r = Rig()
    r.bring_online()
    r.m.request_relay(False, r.now, WALL)
    r.collect()
    r.m.connection_lost(r.now, WALL, "unplugged")
    r.collect()
    (done,) = r.of(CommandFinished)
    assert isinstance(done, CommandFinished) and not done.ok and "sent but not confirmed" in done.message
    assert r.m.meter.reading(WALL).relay is None


def test_nothing_is_sent_while_the_startup_dump_comes_in() -> None:
    r = Rig()
    r.connect()
    r.reply(mcu(Command.HEARTBEAT, b"\x01"))
    r.answer_startup(b"{}")
    r.reply(dp_report(1, DPType.VALUE, 5))
    with pytest.raises(CommandRefused, match="not online"):
        r.m.request_relay(False, r.now, WALL)
    r.take_sent()
    for _ in range(5):  # reports keep coming faster than the quiet time
        r.advance(0.2)
        r.reply(dp_report(6, DPType.RAW, bytes(10)))
    assert r.take_sent() == [] and r.m.link is LinkState.HANDSHAKING
    r.advance(1.5)  # a meter that never pauses still gets us online after 2 s
    assert r.m.link is LinkState.ONLINE


def test_relay_confirmed_by_record_type_report() -> None:
    r = Rig()
    r.bring_online()
    r.m.request_relay(False, r.now, WALL)
    r.collect()
    unit = make_datapoint(16, DPType.BOOL, False).encode()
    r.reply(mcu(Command.EXTENDED, b"\x0b" + bytes.fromhex("011a04060f332501") + unit))
    (done,) = r.of(CommandFinished)
    assert isinstance(done, CommandFinished) and done.ok


def test_heartbeat_stop_acked_and_odd_pairing_byte_read_as_smartconfig() -> None:
    r = Rig()
    r.bring_online()
    r.take_sent()
    r.reply(mcu(Command.HEARTBEAT_STOP))
    r.reply(mcu(Command.RESET_WIFI_MODE, b"\xff"))
    assert [(f.command, f.payload) for f in r.take_sent()] == [(0x25, b""), (0x05, b""), (0x03, b"\x00")]


def test_absurd_product_info_is_kept_as_text() -> None:
    r = Rig()
    r.connect()
    r.reply(mcu(Command.HEARTBEAT, b"\x00"))
    r.reply(mcu(Command.PRODUCT_INFO, b"[" * 1000))
    assert r.m.product is not None and r.m.product.data is None and r.m.product.text.startswith("[[[")


def test_parser_counters_stay_consistent_across_a_reconnect() -> None:
    r = Rig()
    r.bring_online()
    r.reply(mcu(Command.HEARTBEAT, b"\x01")[:4])  # half a frame, then the port goes
    r.m.connection_lost(r.now, WALL, "unplugged")
    r.m.connection_made(r.now + 1, WALL)
    s = r.m.parser.stats
    assert s.bytes_in == s.frame_bytes + s.bytes_skipped + r.m.parser.buffered


def test_profile_chosen_from_product_id_and_said() -> None:
    r = Rig()
    r.m = HostMachine(load_profile("plug-meter"), HostConfig(), CANDIDATES)
    r.bring_online()  # the real meter's product id
    (chosen,) = r.of(ProfileChosen)
    assert isinstance(chosen, ProfileChosen)
    assert chosen.name == "earu-2p63a" and "r9kg2g1uhhyicycb" in chosen.reason
    assert r.m.meter.reading(WALL).voltage_v == 249.0


def test_unknown_product_profile_chosen_from_the_dump() -> None:
    r = Rig()
    r.m = HostMachine(load_profile(), HostConfig(), CANDIDATES)
    r.connect()
    r.reply(mcu(Command.HEARTBEAT, b"\x00"))
    r.answer_startup(b'{"p":"somethingunknown","v":"1.0.0","m":0}')
    r.reply(dp_report(1, DPType.BOOL, True) + dp_report(18, DPType.VALUE, 153) + dp_report(19, DPType.VALUE, 350)
            + dp_report(20, DPType.VALUE, 2326))
    r.advance(0.35)
    (chosen,) = r.of(ProfileChosen)
    assert isinstance(chosen, ProfileChosen) and chosen.name == "plug-meter" and "best fit" in chosen.reason
    reading = r.m.meter.reading(WALL)
    assert (reading.voltage_v, reading.current_a, reading.power_w, reading.relay) == (232.6, 0.153, 35.0, True)


def test_listen_only_decodes_a_recorded_conversation_and_cannot_send() -> None:
    m = ListenMachine(load_profile())
    m.start(WALL)
    m.receive(bytes.fromhex("55AA030000010104"), 0.1, WALL)  # heartbeat reply
    m.receive(encode_frame(Command.LOCAL_TIME, b"", 3), 0.2, WALL)  # an MCU request a live host would answer
    m.receive(bytes.fromhex("55AA0307000E0600000A0974000064" "00001B000023"), 0.3, WALL)
    m.observe_sent(bytes.fromhex("55AA0006000510010001011D"), 0.4, WALL)  # the recorded host's relay command
    assert m.frames_out == 1
    events = m.events()
    assert [e.state for e in events if isinstance(e, LinkChanged)] == [LinkState.HANDSHAKING, LinkState.ONLINE]
    (reading,) = [e.reading for e in events if isinstance(e, ReadingUpdated)]
    assert (reading.voltage_v, reading.current_a, reading.power_w) == (242.0, 0.1, 27)
    # nothing to send and no way to command: the replay machine has neither
    assert not any(hasattr(m, name) for name in ("data_to_send", "request_relay", "request_query"))


def test_a_forgotten_relay_stays_unknown_through_a_profile_change_and_the_next_command_is_sent() -> None:
    """The stale-relay defect: the relay forgotten after an unconfirmed command came back from its old
    report when the profile was re-applied (every discovery edit does that), and the next command for
    that state was skipped as "already on"."""
    r = Rig(relay_timeout=3.0)
    r.bring_online()
    assert r.m.meter.values["relay"] is True
    r.m.request_relay(False, r.now, WALL)
    r.collect()
    r.advance(3.1)  # the meter never confirms
    assert r.m.meter.reading(WALL).relay is None
    r.events.clear()
    r.m.use_profile(load_profile(), "edited in the discovery view", WALL)
    r.collect()
    assert "relay" not in r.m.meter.values and r.m.meter.reading(WALL).relay is None
    assert not r.of(RelayChanged)  # nobody saw the relay change: nothing may say it did
    (reading,) = r.of(ReadingUpdated)
    assert isinstance(reading, ReadingUpdated) and reading.reading.relay is None
    r.take_sent()
    r.m.request_relay(True, r.now, WALL)
    r.collect()
    assert [f.command for f in r.take_sent()] == [Command.DP_COMMAND]  # sent, not "already on"
    r.reply(dp_report(16, DPType.BOOL, True))  # only a new report brings the value back
    assert r.m.meter.values["relay"] is True


@pytest.mark.parametrize("forget", ["restart", "link lost", "port lost"])
def test_every_way_of_forgetting_the_relay_forgets_its_report(forget: str) -> None:
    r = Rig()
    r.bring_online()
    if forget == "restart":
        r.advance(15.0)
        r.reply(mcu(Command.HEARTBEAT, b"\x00"))
    elif forget == "link lost":
        r.advance(15.0 + 3 * 3.1)
        assert r.m.link is LinkState.LINK_LOST
    else:
        r.m.connection_lost(r.now, WALL, "unplugged")
    assert r.m.meter.reading(WALL).relay is None
    r.m.use_profile(load_profile(), "a discovery edit", WALL)
    assert r.m.meter.reading(WALL).relay is None and 16 not in r.m.meter.dps


def test_mcu_requests_the_simulator_can_send_are_all_in_the_answer_table() -> None:
    from tuimeter.core.mcu_requests import ANSWERS
    from tuimeter.sim.mcu import MCU_REQUESTS

    assert set(MCU_REQUESTS) <= set(ANSWERS)
    r = Rig()
    r.bring_online()
    for cmd in MCU_REQUESTS:  # and each is answered, online, with the command the SDK expects back
        r.take_sent()
        r.reply(mcu(cmd, b"\x0b" if cmd == Command.EXTENDED else b""))
        answered = [f.command for f in r.take_sent() if f.command != Command.NETWORK_STATUS]
        expected = Command.DP_REPORT_SYNC_ACK if cmd == Command.DP_REPORT_SYNC else cmd
        assert answered[:1] == [expected], command_label(cmd)


def test_a_trigger_with_no_transition_is_a_bug_not_a_silent_change() -> None:
    from tuimeter.core.host_state import HostState, HostStateError, Phase, Trigger

    state = HostState()
    with pytest.raises(HostStateError, match="idle"):
        state.process(Trigger.DUMP_DONE)
    assert state.phase is Phase.IDLE


def test_closing_fails_waiting_commands_and_says_closed() -> None:
    r = Rig()
    r.bring_online()
    r.m.request_relay(False, r.now, WALL)
    r.m.close(WALL)
    r.collect()
    (done,) = r.of(CommandFinished)
    assert isinstance(done, CommandFinished) and not done.ok
    assert r.of(LinkChanged)[-1].state is LinkState.CLOSED  # type: ignore[union-attr]
