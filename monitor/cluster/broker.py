"""The Celery application of a cluster: broker settings and the poll task's name.

Tasks are acknowledged after they ran (`acks_late`) and given back to the broker when the
worker process running them dies (`reject_on_worker_lost`), so a killed worker's task is
delivered again; the dispatch record (monitor.store.dispatch) makes that harmless. Redis
gives an unacknowledged task to another worker after `visibility_timeout`: longer than any
poll may take (fetch timeout, parse deadline, full-text wait), so a slow poll is not
delivered twice in the normal course (if it were, the claim would stop the copy).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Celery

from monitor.types import ClusterConfig

POLL_TASK = "monitor.poll"
BATCH = 10  # feeds per poll task at most
# seconds an unacknowledged task stays with its worker before Redis hands it to another
VISIBILITY_TIMEOUT = 900


def make_celery(cluster: ClusterConfig) -> Celery:
    """A Celery app for the cluster's broker (no result backend: results live in PostgreSQL)."""
    app = Celery("monitor", broker=cluster.broker, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        task_default_queue=cluster.queue,
        task_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker waits for the broker to come back
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT},
        broker_pool_limit=4,
        # a publish to a broker that is down fails after ~3 s; the dispatch record keeps
        # the poll (it is sent again once `redispatch_after` has passed)
        task_publish_retry_policy={
            "max_retries": 2,
            "interval_start": 0.5,
            "interval_step": 1.0,
            "interval_max": 1.0,
        },
    )
    return app


def register_poll(app: Celery, run: Callable[[list[list[Any]], int], list[str]]) -> Any:
    """Register the poll task on a worker's app: `run([[feed, token], ...], generation)`.

    A task carries up to BATCH feeds: Celery's own work per task (message, tracing, ack) is
    then paid once per BATCH polls; each feed is still claimed on its own."""

    @app.task(  # type: ignore[untyped-decorator]
        name=POLL_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True
    )
    def poll(polls: list[list[Any]], generation: int) -> list[str]:
        return run(polls, generation)

    return poll
