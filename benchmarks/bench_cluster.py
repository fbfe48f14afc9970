"""Cluster mode (issue 13): 5,000 loopback feeds at 200 ms polled by 1, 2 and 4 workers.

    .venv/bin/python benchmarks/bench_cluster.py [--feeds 5000] [--hosts 50] [--items 2]
        [--latency 200] [--rules 20] [--workers 1,2,4] [--concurrency 100]
        [--postgres postgresql://postgres@127.0.0.1:5432/test]

Each run, as a user runs a cluster: a fresh PostgreSQL schema, a private redis-server (its
CPU is measured alone), `--workers` `monitor worker --concurrency N` processes and one
`monitor run --role scheduler`, on a generated config.toml (default settings: each worker
fetches up to `--concurrency` feeds at once, 4 per host, and parses in 2 worker processes),
`--rules` generated rules, no channels. The feed server is bench_poll's aiohttp server in a
child process: `--feeds` RSS documents of `--items` items on `--hosts` loopback addresses,
every answer after `--latency` ms.

Measured from the first task sent to the last dispatch record done (every feed polled once,
its items matched and stored): wall time, feeds/s, the scaling factor against 1 worker (the
same-run baseline), and the CPU seconds spent meanwhile by the workers (with their parse
processes), the scheduler, redis-server, the PostgreSQL server processes and the feed
server, each also as a share of the machine's cores over the run: the one near its ceiling
is the limit. Also the PostgreSQL write lock's wait (every write transaction of a schema
takes it, as in one process): the time backends spent waiting on advisory locks, sampled.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import generated_rules
from benchmarks.bench_poll import free_port, toml_rule, url

REPO = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_of(pids: list[int]) -> float:
    """utime + stime of these processes (seconds), living ones only."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def tree(root: int) -> list[int]:
    """`root` and every descendant."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(parents.get(pid, []))
    return out


def postgres_pids() -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() == "postgres":
                    found.append(int(entry))
            except OSError:
                continue
    return found


@dataclass
class Result:
    workers: int
    wall: float
    feeds: int
    cpu: dict[str, float]
    lock_waits: float  # mean backends waiting on an advisory lock (sampled)

    @property
    def rate(self) -> float:
        return self.feeds / self.wall


def start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_tcp_port()
    proc = subprocess.Popen(
        [
            *("redis-server", "--bind", "127.0.0.1", "--port", str(port)),
            *("--save", "", "--appendonly", "no", "--dir", str(folder)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_once(args: argparse.Namespace, workers: int, port: int, folder: Path) -> Result:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    base = make_url(args.postgres).set(drivername="postgresql+psycopg")
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    database = base.update_query_dict({"options": f"-csearch_path={schema}"})
    redis, redis_port = start_redis(folder)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        parts = [
            f'[monitor]\ndatabase = "{database.render_as_string(hide_password=False)}"\n'
            f'[cluster]\nbroker = "redis://127.0.0.1:{redis_port}/0"\n'
        ]
        parts += [
            f'[[feeds]]\nname = "feed-{i}"\nurl = "{url(i, args.hosts, port)}"\ninterval = "1h"\n'
            for i in range(args.feeds)
        ]
        parts += [toml_rule(r) + "\n" for r in generated_rules(args.rules)]
        config = folder / f"config-{workers}.toml"
        config.write_text("\n".join(parts), encoding="utf-8")
        base_cmd = [sys.executable, "-m", "monitor", "--config", str(config)]
        # the schema first (migrations), so that the workers do not race to create it
        subprocess.run([*base_cmd, "db", "upgrade"], check=True, cwd=REPO, capture_output=True)
        logs = []
        for w in range(workers):
            log = (folder / f"worker-{workers}-{w}.log").open("wb")
            logs.append(log)
            cmd = [*base_cmd, "worker", "--concurrency", str(args.concurrency)]
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO))
        deadline = time.monotonic() + 60
        while any(
            b"ready" not in (folder / f"worker-{workers}-{w}.log").read_bytes()
            for w in range(workers)
        ):
            if time.monotonic() > deadline:
                raise SystemExit("workers did not start")
            time.sleep(0.2)
        engine = create_engine(database)
        slog = (folder / f"scheduler-{workers}.log").open("wb")
        logs.append(slog)
        server = args.server_pid
        pg_before = {pid: cpu_of([pid]) for pid in postgres_pids()}

        def sample() -> dict[str, float]:
            # PostgreSQL backends start with their connections: each one's CPU counts from 0
            pg = {pid: cpu_of([pid]) for pid in postgres_pids()}
            return {
                "workers": sum(cpu_of(tree(p.pid)) for p in procs[:workers]),
                "scheduler": cpu_of(tree(procs[-1].pid)) if len(procs) > workers else 0.0,
                "redis": cpu_of([redis.pid]),
                "postgres": sum(v - pg_before.get(pid, 0.0) for pid, v in pg.items()),
                "feed server": cpu_of([server]),
            }

        scheduler = subprocess.Popen(
            [*base_cmd, "run", "--role", "scheduler"], stdout=slog, stderr=subprocess.STDOUT
        )
        procs.append(scheduler)
        before = sample()
        started = time.perf_counter()
        waits: list[int] = []
        stop = threading.Event()

        def watch_locks() -> None:
            with engine.connect() as conn:
                while not stop.is_set():
                    n = conn.execute(
                        text(
                            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                            "AND NOT granted"
                        )
                    ).scalar()
                    conn.commit()
                    waits.append(int(n or 0))
                    stop.wait(0.1)

        watcher = threading.Thread(target=watch_locks, daemon=True)
        watcher.start()
        done = 0
        with engine.connect() as conn:
            while done < args.feeds:
                time.sleep(0.25)
                done = int(
                    conn.execute(
                        text("SELECT count(*) FROM dispatch WHERE done_at IS NOT NULL")
                    ).scalar()
                    or 0
                )
                conn.commit()
                if time.perf_counter() - started > args.limit:
                    print(f"  (stopped after {args.limit} s: {done} feeds done)")
                    break
            first = conn.execute(text("SELECT min(sent_at), max(done_at) FROM dispatch")).one()
        after = sample()
        stop.set()
        watcher.join()
        wall = (first[1] - first[0]).total_seconds()
        cpu = {k: after[k] - before[k] for k in after}
        engine.dispose()
        return Result(workers, wall, done, cpu, sum(waits) / max(1, len(waits)))
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        redis.kill()
        redis.wait()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=5000)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--items", type=int, default=2)
    parser.add_argument("--latency", type=float, default=200.0, help="ms")
    parser.add_argument("--rules", type=int, default=20)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--limit", type=float, default=240.0, help="seconds per run at most")
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "MONITOR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()
    port = free_port(args.hosts)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from benchmarks.bench_poll import serve;"
        "serve(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]),"
        " int(sys.argv[6]))"
    )
    server = subprocess.Popen(
        [
            *(sys.executable, "-c", code, str(REPO), str(args.feeds), str(args.hosts)),
            *(str(args.items), str(args.latency / 1000), str(port)),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert server.stdout is not None
    ready = server.stdout.readline().decode()
    if not ready.startswith("ready"):
        raise SystemExit("the feed server did not start")
    args.server_pid = server.pid
    cores = os.cpu_count() or 1
    print(
        f"{args.feeds} feeds on {args.hosts} loopback hosts, {args.items} items each "
        f"({int(ready.split()[1]) / 1e6:.1f} MB), {args.latency:.0f} ms per answer, "
        f"{args.rules} rules; worker --concurrency {args.concurrency}; {cores} cores"
    )
    results: list[Result] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n in (int(x) for x in args.workers.split(",")):
                result = run_once(args, n, port, Path(tmp))
                results.append(result)
                base = results[0]
                shares = ", ".join(
                    f"{k} {v:.1f} s ({v / result.wall / cores * 100:.0f}%)"
                    for k, v in result.cpu.items()
                )
                print(
                    f"{n} worker(s): {result.feeds} feeds in {result.wall:.1f} s = "
                    f"{result.rate:.0f} feeds/s, scaling x{result.rate / base.rate:.2f} "
                    f"vs {base.workers}; CPU (share of {cores} cores): {shares}; "
                    f"waiting on the write lock: {result.lock_waits:.1f} backends on average",
                    flush=True,
                )
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(30)
    total = {r.workers: sum(r.cpu.values()) / r.wall / cores for r in results}
    print(
        "busy share of the machine per run: "
        + json.dumps({k: f"{v * 100:.0f}%" for k, v in total.items()})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
