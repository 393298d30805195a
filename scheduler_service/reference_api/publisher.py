"""The Redis messages of the contract: ``worldTimeAdvanced`` and ``entityModified``.

Pub/sub is fire-and-forget, here too: a message is published after its write has committed,
and a Redis failure is logged, never turned into a failed mutation. Without a configured
Redis nothing is published (one log line says so at start-up, one debug line per message).
"""

from __future__ import annotations

import json
import logging

import redis

logger = logging.getLogger(__name__)

#: Entity types that produce ``entityModified`` messages.
MODIFIED_TYPES = ("Settlement", "Structure", "Event", "Encounter")


def world_time_channel(campaign_id: str) -> str:
    return f"campaign.{campaign_id}.worldTimeAdvanced"


def entity_modified_channel(campaign_id: str) -> str:
    return f"campaign.{campaign_id}.entityModified"


class Publisher:
    """Publishes the contract's messages to Redis.

    Args:
        client: the Redis to publish to; None turns publishing off.
    """

    def __init__(self, client: redis.Redis | None):
        self._client = client
        if client is None:
            logger.info("no REDIS_URL or REDIS_SENTINELS configured: Redis messages will not "
                        "be published")

    def publish(self, channel: str, body: dict) -> None:
        """Publish one JSON message; failures are logged and swallowed."""
        if self._client is None:
            logger.debug("publishing skipped (no Redis): %s", channel)
            return
        try:
            self._client.publish(channel, json.dumps(body, separators=(",", ":")))
        except redis.RedisError as e:
            logger.warning("could not publish to %s: %s", channel, e)

    def world_time_advanced(self, campaign_id: str, previous: str | None, new: str) -> None:
        self.publish(world_time_channel(campaign_id),
                     {"campaignId": campaign_id, "previousTime": previous, "newTime": new})

    def entity_modified(self, campaign_id: str, entity_type: str, entity_id: str,
                        operation: str) -> None:
        if entity_type not in MODIFIED_TYPES:
            return
        self.publish(entity_modified_channel(campaign_id),
                     {"campaignId": campaign_id, "entityType": entity_type,
                      "entityId": entity_id, "operation": operation})

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
