"""The result factories: each builds what the keyword constructor builds, target included."""

from __future__ import annotations

from collections.abc import Callable

import attrs
import pytest

from trio_ping.results import (
    DRIVER_STAMP,
    QUEUE_STAMP,
    PingResult,
    Status,
    icmp_error_result,
    reply_result,
    send_failed_result,
    timeout_result,
    timestamp_reply_result,
)

ADDRESS = "192.0.2.1"


@pytest.mark.parametrize("target", [None, "host.example"])
@pytest.mark.parametrize(
    ("built", "expected"),
    [
        pytest.param(
            lambda target: reply_result(ADDRESS, 3, 250, 57, False, target),
            {"status": Status.REPLY, "rtt_us": 250, "ttl": 57, "kernel_timestamp": False},
            id="reply",
        ),
        pytest.param(
            lambda target: reply_result(ADDRESS, 3, 250, 57, True, target, 7, DRIVER_STAMP),
            {
                "status": Status.REPLY,
                "rtt_us": 250,
                "ttl": 57,
                "sent_ns": 7,
                "send_stamp": DRIVER_STAMP,
            },
            id="reply-from-the-drivers-stamp",
        ),
        pytest.param(
            lambda target: timestamp_reply_result(
                ADDRESS, 3, 4000, 64, True, (43_200_000, 43_200_007, 43_200_008), 5.5, target
            ),
            {
                "status": Status.REPLY,
                "rtt_us": 4000,
                "ttl": 64,
                "originate_ms": 43_200_000,
                "receive_ms": 43_200_007,
                "transmit_ms": 43_200_008,
                "offset_ms": 5.5,
            },
            id="timestamp-reply",
        ),
        pytest.param(
            lambda target: timestamp_reply_result(
                ADDRESS, 3, 40, 64, True, (1, 2, 3), None, target, 9, QUEUE_STAMP
            ),
            {
                "status": Status.REPLY,
                "rtt_us": 40,
                "ttl": 64,
                "originate_ms": 1,
                "receive_ms": 2,
                "transmit_ms": 3,
                "sent_ns": 9,
                "send_stamp": QUEUE_STAMP,
            },
            id="timestamp-reply-from-the-queueing-layers-stamp",
        ),
        pytest.param(
            lambda target: timeout_result(ADDRESS, 3, target),
            {"status": Status.TIMEOUT},
            id="timeout",
        ),
        pytest.param(
            lambda target: icmp_error_result(ADDRESS, 3, "Packet filtered", "198.51.100.1", target),
            {
                "status": Status.ICMP_ERROR,
                "reason": "Packet filtered",
                "reported_by": "198.51.100.1",
            },
            id="icmp-error",
        ),
        pytest.param(
            lambda target: send_failed_result(ADDRESS, 3, "No route to host", 113, target),
            {"status": Status.SEND_FAILED, "reason": "No route to host", "errno": 113},
            id="send-failed",
        ),
    ],
)
def test_a_factory_builds_what_the_constructor_builds(
    built: Callable[[str | None], PingResult], expected: dict[str, object], target: str | None
) -> None:
    result = built(target)
    reference = PingResult(ADDRESS, 3, target=target, **expected)  # type: ignore[arg-type]
    assert result == reference
    # Field by field, so a default the factory gets wrong shows by name; and nothing more
    # in the instance than the class's fields.
    assert attrs.asdict(result, recurse=False) == attrs.asdict(reference, recurse=False)
    assert set(vars(result)) == {field.name for field in attrs.fields(PingResult)}
    assert result.label == (target or ADDRESS)
    assert hash(result) == hash(reference)


def test_a_reply_result_is_frozen_like_any_other() -> None:
    result = reply_result(ADDRESS, 0, 1, None, True, None)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        result.rtt_us = 2  # type: ignore[misc]
    assert type(result) is PingResult
    assert result.answered
