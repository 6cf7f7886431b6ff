"""A Kafka cluster of three nodes of its own, for tests that kill brokers (tests/chaos/).

`async with private_cluster(folder) as cluster` starts
`devtools.localinfra.KafkaCluster.temporary(folder)`: three combined broker+controller nodes
(KRaft) on free ports, with the local single node's security (SASL/SCRAM-SHA-512 principals:
the admin and one per service; ACLs), replication factor 3 and `min.insync.replicas=2`, and
kills it afterwards. It never touches the single node of
`apl infra up` that the rest of the suite shares, nor `apl infra up --brokers 3`'s cluster.

    async with private_cluster(tmp) as cluster:
        await asyncio.to_thread(cluster.kill_node, 2)    # SIGKILL
        await asyncio.to_thread(cluster.start_node, 2)   # back, and a registered broker again
        topics = await cluster_topics(cluster, prefix)   # the contract's topics, 3 replicas

The cluster's methods block while they wait for the nodes (and run their own event loop):
call them with `asyncio.to_thread` from async code.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from devtools.localinfra import KafkaCluster, ensure_replicated_topics
from shared.contracts.topics import Topics
from shared.kafka import delete_topics

__all__ = ["KafkaCluster", "cluster_topics", "drop_topics", "private_cluster"]


@contextlib.asynccontextmanager
async def private_cluster(folder: Path, nodes: int = 3) -> AsyncIterator[KafkaCluster]:
    """A started cluster of `nodes` nodes in `folder` (removed afterwards)."""
    cluster = KafkaCluster.temporary(folder, nodes)
    try:
        await asyncio.to_thread(cluster.start)
        yield cluster
    finally:
        # its data goes away with it: no controlled shutdown needed (the last nodes of a
        # cluster stopping together wait in vain for someone to take their partitions)
        for node in cluster.running():
            await asyncio.to_thread(cluster.kill_node, node)
        shutil.rmtree(folder, ignore_errors=True)


async def cluster_topics(cluster: KafkaCluster, prefix: str) -> Topics:
    """The contract's topics (and `.dlt` twins) under `prefix`, each partition on every node
    (`cluster.replication` replicas), with the services' ACLs on them."""
    topics = Topics(prefix)
    await ensure_replicated_topics(cluster.admin, topics, replication=cluster.replication)
    return topics


async def drop_topics(cluster: KafkaCluster, topics: Topics) -> None:
    """Delete them again (and their ACLs): a cluster keeps every replica's files open."""
    await delete_topics(cluster.admin, topics)
