"""The LCUS relay board protocol: frames byte for byte against the pty simulator, the status
query that confirms a switch, and a parser that counts garbage instead of crashing."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from simulators.relay_sim import RelayBoardSimulator
from station.actuators import relay
from station.actuators.config import ActuatorConfig
from station.light import LightColor
from tests.actuators.conftest import wait_until
from tests.actuators.helpers import make_bank


def relay_config(url: str, **extra: object) -> ActuatorConfig:
    document = {
        "type": "serial_relay",
        "name": "usb-relay",
        "url": url,
        "outputs": {"green": 1, "amber": 2, "red": 3, "diverter": 4},
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.2,
        **extra,
    }
    return TypeAdapter(ActuatorConfig).validate_python(document)


def test_frames_are_the_documented_bytes() -> None:
    assert relay.encode_switch(1, True) == bytes.fromhex("A0 01 01 A2")
    assert relay.encode_switch(1, False) == bytes.fromhex("A0 01 00 A1")
    assert relay.encode_switch(4, True) == bytes.fromhex("A0 04 01 A5")
    assert relay.parse_status(b"CH1:ON\r\nCH2:OFF\r\n") == {1: True, 2: False}


def test_the_board_switches_what_the_station_asks_and_confirms_it() -> None:
    with RelayBoardSimulator(channels=4) as board:
        bank, health = make_bank([relay_config(board.path)])
        bank.start()
        try:
            assert wait_until(lambda: bank.settled)
            bank.set(LightColor.GREEN, False, 0.0)
            bank.set_route("straight")
            assert wait_until(lambda: bank.settled)
            assert board.states() == {1: True, 2: False, 3: False, 4: True}
            assert board.parser.errors == 0
            assert health.is_up()
        finally:
            bank.stop()
        assert wait_until(lambda: board.states() == dict.fromkeys(range(1, 5), False))


def test_a_stuck_relay_is_caught_by_the_status_query() -> None:
    with RelayBoardSimulator(channels=4) as board:
        board.stick(4, False)  # the diverter's relay will not pull in
        bank, health = make_bank([relay_config(board.path)])
        bank.start()
        try:
            assert wait_until(lambda: bank.settled)
            bank.set_route("straight")
            assert wait_until(health.is_down)
            detail = health.last()[2]  # type: ignore[index]
            assert f"relay board at {board.path}" in detail and "channels [4]" in detail
            assert not bank.settled
        finally:
            bank.stop()


def test_a_board_that_never_answers_is_down_unless_told_it_cannot() -> None:
    with RelayBoardSimulator(channels=1, answers_status=False) as board:
        bank, health = make_bank([relay_config(board.path, outputs={"red": 1}, timeout_s=0.2)])
        bank.start()
        try:
            assert wait_until(health.is_down)
            assert "status_query = false" in health.last()[2]  # type: ignore[index]
        finally:
            bank.stop()
    with RelayBoardSimulator(channels=1, answers_status=False) as board:
        config = relay_config(board.path, outputs={"red": 1}, status_query=False)
        bank, health = make_bank([config])
        bank.start()
        try:
            bank.set(LightColor.RED, False, 0.0)
            assert wait_until(lambda: bank.settled and board.states() == {1: True})
        finally:
            bank.stop()


def test_an_unplugged_board_is_a_fault() -> None:
    board = RelayBoardSimulator(channels=4).start()
    bank, health = make_bank([relay_config(board.path, refresh_s=0.1, timeout_s=0.2)])
    bank.start()
    try:
        assert wait_until(lambda: bank.settled)
        board.unplug()
        assert wait_until(health.is_down)
        assert "usb-relay" in health.last()[0]  # type: ignore[index]
    finally:
        bank.stop()
        board.stop()


@given(st.lists(st.binary(max_size=40), max_size=20))
def test_garbage_is_counted_never_raised(chunks: list[bytes]) -> None:
    parser = relay.RelayFrameParser()
    commands = [c for chunk in chunks for c in parser.feed(chunk)]
    assert parser.frames == len(commands)
    for command in commands:
        assert isinstance(command, relay.StatusQuery) or 1 <= command.channel <= 255
    relay.parse_status(b"".join(chunks))  # never raises either


@given(
    st.lists(st.tuples(st.integers(1, 255), st.booleans()), max_size=20),
    st.binary(max_size=30),
    st.integers(1, 8),
)
def test_good_frames_after_garbage_all_come_through_in_any_chunking(
    switches: list[tuple[int, bool]], garbage: bytes, chunk: int
) -> None:
    # Garbage that ends in a partial frame could swallow the first good frame's start: it is
    # separated by enough non-frame bytes (0x00) for the parser to resynchronise.
    stream = garbage + b"\x00" * 4 + b"".join(relay.encode_switch(c, on) for c, on in switches)
    parser = relay.RelayFrameParser()
    commands = []
    for i in range(0, len(stream), chunk):
        commands += parser.feed(stream[i : i + chunk])
    switched = [(c.channel, c.on) for c in commands if isinstance(c, relay.Switch)]
    assert switched[len(switched) - len(switches) :] == switches
    if b"\xa0" not in garbage and b"\xff" not in garbage:
        assert switched == switches
        assert parser.errors == len(garbage) + 4
