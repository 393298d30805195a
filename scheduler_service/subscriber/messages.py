"""The campaign messages of the contract, validated; and the subscriber's decisions.

Pure functions only: nothing here touches Redis, the clock or the network, so every rule
(what makes a message valid, what a message leads to, how long to wait before the next
reconnect) is tested with plain cases.
"""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass
from typing import Any, Callable, Union

from ..errors import SchedulerServiceError
from ..jobstore import parse_iso_ms

WORLD_TIME_ADVANCED = "worldTimeAdvanced"
ENTITY_MODIFIED = "entityModified"
EVENTS = (WORLD_TIME_ADVANCED, ENTITY_MODIFIED)
#: The patterns the subscriber listens to.
PATTERNS = tuple(f"campaign.*.{event}" for event in EVENTS)
#: ``entityType`` values of ``entityModified``.
ENTITY_TYPES = ("Settlement", "Structure", "Event", "Encounter")
#: ``operation`` values of ``entityModified``.
OPERATIONS = ("CREATE", "UPDATE", "DELETE")
#: Larger bodies are refused unread (the contract's are under 300 bytes).
MAX_BODY_BYTES = 64 * 1024
#: Longest campaign id accepted (it becomes part of Redis keys).
MAX_ID_LENGTH = 256
#: First wait before reconnecting; each further failure doubles it.
RECONNECT_BASE_S = 0.5

_PREFIX = "campaign."


class InvalidMessage(SchedulerServiceError):
    """A message that breaks the contract; it is counted and logged, then dropped.

    Attributes:
        event: ``worldTimeAdvanced``, ``entityModified`` or ``unknown`` (unrecognised channel).
        reason: a short label for metrics: ``channel``, ``too_large``, ``bad_json``,
            ``not_object``, ``missing_field``, ``bad_value``, ``bad_time`` or ``campaign_mismatch``.
    """

    def __init__(self, event: str, reason: str, message: str):
        super().__init__(message)
        self.event = event
        self.reason = reason


@dataclass(frozen=True)
class WorldTimeAdvanced:
    """``campaign.{id}.worldTimeAdvanced``: the campaign's clock moved to ``new_time_ms``."""

    campaign_id: str
    new_time_ms: int
    previous_time_ms: int | None
    body: dict

    event = WORLD_TIME_ADVANCED


@dataclass(frozen=True)
class EntityModified:
    """``campaign.{id}.entityModified``: a settlement, structure, event or encounter changed."""

    campaign_id: str
    entity_type: str
    entity_id: str
    operation: str
    body: dict

    event = ENTITY_MODIFIED


Message = Union[WorldTimeAdvanced, EntityModified]


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8")
    return value


def split_channel(channel) -> tuple[str, str]:
    """``campaign.{id}.{event}`` → ``(campaign id, event)``.

    Raises:
        InvalidMessage: the channel is not one of the contract's.
    """
    try:
        name = _text(channel)
    except UnicodeDecodeError:
        raise InvalidMessage("unknown", "channel", "channel name is not UTF-8") from None
    for event in EVENTS:
        suffix = "." + event
        if name.startswith(_PREFIX) and name.endswith(suffix):
            campaign_id = name[len(_PREFIX):-len(suffix)]
            if campaign_id and len(campaign_id) <= MAX_ID_LENGTH:
                return campaign_id, event
    raise InvalidMessage("unknown", "channel", f"not a campaign message channel: {name!r}")


def _required_text(body: dict, name: str, event: str) -> str:
    if name not in body or body[name] is None:
        raise InvalidMessage(event, "missing_field", f"{name} is missing")
    value = body[name]
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_LENGTH:
        raise InvalidMessage(event, "bad_value", f"{name} must be a non-empty string, got {value!r}")
    return value


def _time(body: dict, name: str, event: str, required: bool) -> int | None:
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidMessage(event, "missing_field", f"{name} is missing")
        return None
    try:
        return parse_iso_ms(value)
    except (ValueError, OverflowError, OSError) as e:
        raise InvalidMessage(event, "bad_time",
                             f"{name} must be an ISO-8601 time with an offset, got {value!r}: {e}") from None


def _one_of(body: dict, name: str, allowed: tuple[str, ...], event: str) -> str:
    value = _required_text(body, name, event)
    if value not in allowed:
        raise InvalidMessage(event, "bad_value",
                             f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def parse_message(channel, data) -> Message:
    """Validate one pub/sub message against the contract.

    Args:
        channel: the channel it came on (``str`` or ``bytes``).
        data: its body (``str`` or ``bytes``), JSON.

    Returns:
        A :class:`WorldTimeAdvanced` or an :class:`EntityModified`.

    Raises:
        InvalidMessage: naming what is wrong (bad channel, size, JSON, a missing or bad
            field, a bad time, or a ``campaignId`` that is not the channel's).
    """
    campaign_id, event = split_channel(channel)
    if isinstance(data, (bytes, bytearray)) and len(data) > MAX_BODY_BYTES or (
            isinstance(data, str) and len(data) > MAX_BODY_BYTES):
        raise InvalidMessage(event, "too_large", f"body larger than {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(_text(data))
    except (TypeError, ValueError) as e:  # UnicodeDecodeError is a ValueError
        raise InvalidMessage(event, "bad_json", f"body is not JSON: {e}") from None
    if not isinstance(body, dict):
        raise InvalidMessage(event, "not_object", f"body must be a JSON object, got {type(body).__name__}")
    if _required_text(body, "campaignId", event) != campaign_id:
        raise InvalidMessage(event, "campaign_mismatch",
                             f"campaignId {body['campaignId']!r} is not the channel's {campaign_id!r}")
    if event == WORLD_TIME_ADVANCED:
        new_ms = _time(body, "newTime", event, required=True)
        previous_ms = _time(body, "previousTime", event, required=False)
        return WorldTimeAdvanced(campaign_id, new_ms, previous_ms, body)
    return EntityModified(
        campaign_id,
        _one_of(body, "entityType", ENTITY_TYPES, event),
        _required_text(body, "entityId", event),
        _one_of(body, "operation", OPERATIONS, event),
        body,
    )


# -- decisions -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Actions:
    """What the subscriber does with a valid message.

    Attributes:
        pump_world_to_ms: promote the campaign's world timers due at this world time.
        reactions: the event whose plugin reactions run, or None.
    """

    pump_world_to_ms: int | None
    reactions: str | None


def check_against_api(message: Message, known) -> tuple[Message | None, str | None]:
    """What is left of a message once the API has said what it knows of its campaign.

    Args:
        message: the validated message.
        known: the API's :class:`~scheduler_service.campaigns.CampaignClock` of its campaign.

    Returns:
        ``(message to act on or None to drop it, reason or None)``: ``unknown_campaign`` and
        ``no_world_clock`` drop it; ``clamped`` keeps a ``worldTimeAdvanced`` with its time
        lowered to the API's clock (a message may lag the API, never lead it).
    """
    if not known.exists:
        return None, "unknown_campaign"
    if not isinstance(message, WorldTimeAdvanced):
        return message, None
    if known.world_time_ms is None:
        return None, "no_world_clock"
    if message.new_time_ms > known.world_time_ms:
        return dataclasses.replace(message, new_time_ms=known.world_time_ms), "clamped"
    return message, None


def needs_cooldown(message: Message, cooldown_ms: int) -> bool:
    """Whether the message's reactions are deduplicated (world time, with a window > 0)."""
    return isinstance(message, WorldTimeAdvanced) and cooldown_ms > 0


def cooldown_key(prefix: str, campaign_id: str) -> str:
    """The Redis key whose ``SET NX PX`` claims a campaign's world-time window."""
    return f"{prefix}subscriber:cooldown:{campaign_id}"


def actions_for(message: Message, first_in_window: bool) -> Actions:
    """What to do with a message.

    Args:
        message: the validated message.
        first_in_window: whether this subscriber claimed the campaign's cooldown window
            (always True when there is no window).

    A world-time message always pumps the campaign's timers (a newer time inside the window
    must still release what falls due); only the first of a window runs the reactions
    (among them the core's ``EVENT_EXPIRATION``). An entity message always runs them.
    """
    if isinstance(message, WorldTimeAdvanced):
        return Actions(message.new_time_ms, WORLD_TIME_ADVANCED if first_in_window else None)
    return Actions(None, ENTITY_MODIFIED)


def reconnect_delay(failures: int, cap_s: float = 30.0, base_s: float = RECONNECT_BASE_S,
                    rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait after ``failures`` consecutive failed connections (1, 2, ...).

    Doubles from ``base_s`` up to ``cap_s``; jitter takes it down by up to half, so that
    many replicas reconnecting after one Redis restart do not arrive together.
    """
    exponent = min(max(failures, 1) - 1, 32)
    ceiling = min(cap_s, base_s * (2 ** exponent))
    return ceiling * (0.5 + 0.5 * rand())
