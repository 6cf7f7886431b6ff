"""`apl init`: create the contract's topics, each service's Kafka ACLs on them, and apply every
service's migrations, then exit.

The one-shot job of the compose file runs this before the services start; the services also apply
their own migrations at start (safe to run concurrently), so it is an optimisation and a check.
Topics and ACLs are made as the admin principal (`APL_KAFKA_ADMIN_USERNAME`,
`APL_KAFKA_ADMIN_PASSWORD` or `..._FILE`); each service's principal is named by its settings
(`APL_<SERVICE>_KAFKA_USERNAME`, default the service's name), whose password init never needs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from services.matching.settings import MatchingSettings
from services.notifications.settings import NotificationsSettings
from services.placements.settings import PlacementsSettings
from shared.db import migrate
from shared.kafka import ensure_topics
from shared.settings import KafkaAdminSettings, ServiceSettings

# The classes the services themselves load, so the schemas migrated here are the ones they use.
SERVICE_SETTINGS: tuple[type[ServiceSettings], ...] = (
    PlacementsSettings,
    MatchingSettings,
    NotificationsSettings,
)


async def initialise(retries: int = 30) -> None:
    settings = [cls.load() for cls in SERVICE_SETTINGS]
    first = settings[0]
    admin_settings = KafkaAdminSettings.load()
    admin = admin_settings.kafka
    usernames = {s.service: s.kafka_username for s in settings}
    for attempt in range(1, retries + 1):
        try:
            created = await ensure_topics(
                admin,
                first.topics,
                replication=admin_settings.replication_factor,
                usernames=usernames,
            )
            break
        except Exception as exc:  # the broker may still be starting
            if attempt == retries:
                raise
            print(f"apl init: waiting for Kafka ({exc})", file=sys.stderr)
            await asyncio.sleep(2)
    print(
        f"apl init: topics and ACLs ready ({len(created)} topics created; principals "
        f"{', '.join(sorted(usernames.values()))})",
        file=sys.stderr,
    )
    for service in settings:
        folder = Path(__file__).parent / service.service / "migrations"
        applied = await migrate(service.database_url, service.schema_name, folder)
        print(f"apl init: {service.service}: {len(applied)} migrations applied", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="apl init", description=__doc__.split("\n\n")[0])
    parser.parse_args(argv)
    try:
        asyncio.run(initialise())
    except Exception as exc:
        print(f"apl init: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0
