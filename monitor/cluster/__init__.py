"""Cluster mode (opt-in, `[cluster]` in config.toml): many hosts, one PostgreSQL database.

    monitor run --role scheduler   elected through a PostgreSQL advisory lock (standbys
                                   wait for it); turns due feeds into Celery poll tasks
                                   (monitor.cluster.scheduler) and runs the senders
    monitor worker                 a Celery worker whose task calls the same
                                   `pipeline.poll_feed` as the single process does
                                   (monitor.cluster.worker)

The database is the source of truth, not the broker: the dispatch record of each feed
(monitor.store.dispatch) makes a task delivered twice, or lost by the broker, harmless.
Nothing here is imported by the single-process daemon: Celery loads only in these two roles.
"""
