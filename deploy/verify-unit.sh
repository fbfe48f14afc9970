#!/usr/bin/env bash
# Boots a Debian root with a real systemd in systemd-nspawn, installs the project into it as
# deploy/README.md says (virtualenv in /opt/news-monitor, pinned dependencies), and runs
# deploy/monitor.service: READY (Type=notify), an alert from a loopback feed to a loopback
# webhook, a reload (RELOADING/READY), a watchdog restart of a hung daemon (SIGSTOP), and a
# clean stop. Prints what it proved; exits non-zero otherwise. Needs root and
#   apt-get install -y debootstrap systemd-container
source "$(dirname "$0")/verify/common.sh"
unset PIP_FIND_LINKS

BASE=$(base_rootfs)
PREPARED="$CACHE/unit-rootfs"
LOCK_SUM=$(cat "$REPO/deploy/requirements.lock" "$0" | sha256sum | cut -c1-16)
if [[ ! -f $PREPARED/.ready-$LOCK_SUM ]]; then
    echo "preparing a root with systemd and the pinned dependencies (once)..."
    rm -rf "$PREPARED"
    cp -a "$BASE" "$PREPARED"
    unshare -m bash -c "
        mount -t proc proc '$PREPARED/proc' && mount --bind /dev '$PREPARED/dev'
        chroot '$PREPARED' env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends systemd systemd-sysv dbus procps >/dev/null
        chroot '$PREPARED' python3 -m venv /opt/news-monitor
    "
    cp "$REPO/deploy/requirements.lock" "$PREPARED/tmp/requirements.lock"
    chroot "$PREPARED" /opt/news-monitor/bin/pip install -q --no-cache-dir --no-deps \
        -r /tmp/requirements.lock
    touch "$PREPARED/.ready-$LOCK_SUM"
fi

WORK=$(mktemp -d /var/tmp/monitor-unit.XXXXXX)
ROOT="$WORK/root"
NSPAWN=""
SERVERS=""
cleanup() {
    if [[ -n $NSPAWN ]]; then kill -TERM "$NSPAWN" 2>/dev/null || true; wait "$NSPAWN" 2>/dev/null || true; fi
    if [[ -n $SERVERS ]]; then kill "$SERVERS" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
cp -a "$PREPARED" "$ROOT"

# the project, installed the way deploy/README.md says
mkdir -p "$ROOT/tmp/src"
cp -r "$REPO/pyproject.toml" "$REPO/README.md" "$REPO/monitor" "$ROOT/tmp/src/"
chroot "$ROOT" /opt/news-monitor/bin/pip install -q --no-cache-dir --no-deps /tmp/src
cp "$REPO/deploy/monitor.service" "$ROOT/etc/systemd/system/monitor.service"
chroot "$ROOT" systemctl enable monitor.service >/dev/null 2>&1

# loopback feed and webhook, reached from the container through the shared network
PORT=$(free_port)
mkdir -p "$WORK/srv"
rss k1 "Lage in Kursk" "Bericht aus Kursk." >"$WORK/srv/feed.xml"
python3 "$REPO/deploy/verify/servers.py" "$PORT" "$WORK/srv" &
SERVERS=$!
mkdir -p "$ROOT/etc/news-monitor"
cat >"$ROOT/etc/news-monitor/config.toml" <<TOML
[monitor]
database = "sqlite:////var/lib/news-monitor/monitor.db"
interval = "1h"
[channels]
hook = "json://127.0.0.1:$PORT/hook"
[[feeds]]
name = "one"
url = "http://127.0.0.1:$PORT/feed.xml"
[[rules]]
name = "kursk"
query = "Kursk"
TOML
chmod 644 "$ROOT/etc/news-monitor/config.toml"
printf 'SOME_SECRET=from-the-environment-file\n' >"$ROOT/etc/news-monitor/env"
chmod 600 "$ROOT/etc/news-monitor/env"

systemd-nspawn -D "$ROOT" -b --register=no --keep-unit --console=pipe -M monitorunit \
    </dev/null >"$WORK/boot.log" 2>&1 &
NSPAWN=$!
leader=""
for _ in $(seq 100); do leader=$(pgrep -P "$NSPAWN" -x systemd) && break; sleep 0.1; done
[[ -n $leader ]] || fail "the container's systemd did not start ($(tail -5 "$WORK/boot.log"))"
E=(nsenter -t "$leader" -a)
wait_for 60 "the container's systemd to answer" "${E[@]}" systemctl show -p Version
timeout 60 "${E[@]}" systemctl is-system-running --wait >/dev/null 2>&1 || true
echo "systemd $("${E[@]}" systemctl --version | head -1 | cut -d' ' -f2) is PID 1 in the container"
show() { "${E[@]}" systemctl show monitor.service -p "$1" --value; }
journal() { "${E[@]}" journalctl -u monitor.service --no-pager -o cat; }

# 1. start: Type=notify returns only after READY=1
timeout 90 "${E[@]}" systemctl start monitor.service || fail "systemctl start ($(journal | tail -5))"
[[ $(show ActiveState) == active && $(show SubState) == running ]] || fail "not running"
journal | grep -q "monitor running" || fail "no start-up line in the journal"
proved "Type=notify: 'systemctl start' returned after READY=1; active (running), MainPID $(show MainPID), uid $("${E[@]}" stat -c %u "/proc/$(show MainPID)") (DynamicUser)"
wait_for 30 "the alert at the webhook" grep -q "Lage in Kursk" "$WORK/srv/hooks.jsonl"
proved "the unit's daemon polled the loopback feed and the alert reached the webhook"
[[ -f $ROOT/var/lib/private/news-monitor/monitor.db ]] || fail "no database in the StateDirectory"
proved "StateDirectory: the SQLite database is /var/lib/news-monitor/monitor.db"
watchdog=$(show WatchdogUSec)
[[ $watchdog != 0 && $watchdog != infinity ]] || fail "no watchdog set"

# 2. reload: RELOADING=1 ... READY=1, same process
pid=$(show MainPID)
sed -i 's/^interval = "1h"/interval = "2h"/' "$ROOT/etc/news-monitor/config.toml"
timeout 60 "${E[@]}" systemctl reload monitor.service || fail "systemctl reload: $(journal | tail -8)"
wait_for 20 "the reload in the journal" bash -c "$(declare -f journal); E=(${E[*]}); journal | grep -q 'config reloaded'"
[[ $(show MainPID) == "$pid" && $(show ActiveState) == active ]] || fail "the reload restarted the daemon"
proved "systemctl reload: config reloaded in the same process ($pid), still active"

# 3. watchdog: a hung daemon (SIGSTOP) stops pinging and is restarted
mkdir -p "$ROOT/etc/systemd/system/monitor.service.d"
printf '[Service]\nWatchdogSec=6s\nRestartSec=1s\n' >"$ROOT/etc/systemd/system/monitor.service.d/fast-watchdog.conf"
"${E[@]}" systemctl daemon-reload
timeout 90 "${E[@]}" systemctl restart monitor.service
sleep 8  # longer than WatchdogSec: the pings keep it alive
[[ $(show ActiveState) == active ]] || fail "the pinging daemon was not kept alive"
proved "WatchdogSec=6s: the daemon's tick pings kept it alive for 8 s"
hung=$(show MainPID)
restarts=$(show NRestarts)
"${E[@]}" kill -STOP "$hung"
wait_for 40 "the watchdog restart" bash -c "[[ \$(nsenter -t $leader -a systemctl show monitor.service -p NRestarts --value) -gt $restarts ]]"
wait_for 60 "the restarted daemon" bash -c "[[ \$(nsenter -t $leader -a systemctl show monitor.service -p ActiveState --value) == active ]]"
journal | grep -qi "watchdog timeout" || fail "no watchdog timeout in the journal"
proved "a hung daemon (SIGSTOP to $hung) was killed by the watchdog ('$(journal | grep -i 'watchdog timeout' | tail -1)') and restarted as $(show MainPID) (NRestarts $(show NRestarts))"
rm -r "$ROOT/etc/systemd/system/monitor.service.d"
"${E[@]}" systemctl daemon-reload

# 4. clean stop: SIGTERM, STOPPING=1, exit 0
timeout 60 "${E[@]}" systemctl stop monitor.service
[[ $(show ActiveState) == inactive && $(show Result) == success ]] || fail "stop: $(show Result)"
journal | tail -8 | grep -q '"message": "stopped"' || fail "no clean stop in the journal: $(journal | tail -8)"
proved "systemctl stop: inactive, Result=success, the daemon logged 'stopped'"
grep -c . "$WORK/srv/hooks.jsonl" | grep -qx 1 || fail "an alert was sent twice across the restarts"
proved "one alert in all: nothing re-sent across the restart, the reload and the watchdog kill"

"${E[@]}" systemctl poweroff >/dev/null 2>&1 || true
wait "$NSPAWN" 2>/dev/null || true
NSPAWN=""
summary
