#!/usr/bin/env bash
# Builds deploy/Dockerfile with buildah (from a local stand-in for python:3.12-slim, made with
# debootstrap) and runs the image with podman against a loopback feed server and webhook
# receiver: an alert arrives, `podman healthcheck run` passes, the process runs as uid 10001,
# logs are JSON, and SIGTERM stops it cleanly well within the stop timeout. Prints what it
# proved; exits non-zero otherwise. Needs root and
#   apt-get install -y buildah podman runc debootstrap
source "$(dirname "$0")/verify/common.sh"
podman_env
python_base_image
TAG=localhost/news-monitor:verify
WORK=$(mktemp -d /var/tmp/monitor-image.XXXXXX)
NAME=monitor-verify-$$
SERVERS=""
cleanup() {
    podman rm -f "$NAME" >/dev/null 2>&1 || true
    if [[ -n $SERVERS ]]; then podman rm -f "$SERVERS" >/dev/null 2>&1 || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

start=$(date +%s)
buildah build --isolation chroot --format docker --layers -q -f "$REPO/deploy/Dockerfile" \
    -t "$TAG" "$REPO" >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log"; fail "buildah build"; }
proved "buildah built deploy/Dockerfile ($(( $(date +%s) - start )) s, $(podman image inspect "$TAG" --format '{{.Size}}' | numfmt --to=iec) image)"
healthcheck=$(podman image inspect "$TAG" --format '{{json .Config.Healthcheck.Test}}')
[[ $healthcheck == *monitor*health* ]] || fail "no HEALTHCHECK in the image: $healthcheck"
proved "the image carries HEALTHCHECK $healthcheck and runs as user $(podman image inspect "$TAG" --format '{{.User}}')"

# the feed server and the webhook receiver in their own container; the monitor shares its
# network namespace, so both talk over loopback without touching the host's ports
mkdir -p "$WORK/srv" "$WORK/config"
rss k1 "Lage in Kursk" "Bericht aus Kursk." >"$WORK/srv/feed.xml"
cp "$REPO/deploy/verify/servers.py" "$WORK/srv/"
SERVERS=monitor-verify-srv-$$
podman run -d --name "$SERVERS" --network none --user 0 -v "$WORK/srv:/srv:Z" \
    --entrypoint python3 "$TAG" /srv/servers.py 8080 /srv >/dev/null
cat >"$WORK/config/config.toml" <<TOML
[monitor]
database = "sqlite:////data/monitor.db"
interval = "1h"
[channels]
hook = "json://127.0.0.1:8080/hook"
[[feeds]]
name = "one"
url = "http://127.0.0.1:8080/feed.xml"
[[rules]]
name = "kursk"
query = "Kursk"
TOML
chmod 644 "$WORK/config/config.toml"
podman volume rm -f monitor-verify-data >/dev/null 2>&1 || true
podman run -d --name "$NAME" --network "container:$SERVERS" \
    -v "$WORK/config:/config:ro" -v monitor-verify-data:/data "$TAG" >/dev/null
wait_for 60 "the alert at the webhook" grep -q "Lage in Kursk" "$WORK/srv/hooks.jsonl"
proved "the container polled the loopback feed and the alert reached the webhook"
[[ $(podman exec "$NAME" id -u) == 10001 ]] || fail "not uid 10001"
podman exec "$NAME" sh -c 'touch /opt/monitor/x' 2>/dev/null && fail "the app files are writable"
proved "the daemon runs as uid 10001 and cannot write its own code"
wait_for 30 "a healthy check" podman healthcheck run "$NAME"
proved "podman healthcheck run: healthy ($(podman exec "$NAME" monitor health 2>&1 | tail -1))"
podman logs "$NAME" 2>&1 | grep -v "systemd connection" | head -3 | python3 -c '
import json, sys
lines = [l for l in sys.stdin if l.strip()]
assert lines, "no log lines"
for line in lines: json.loads(line)
' || fail "logs are not JSON"
proved "logs are JSON lines: $(podman logs "$NAME" 2>&1 | grep -m1 'monitor running')"

start=$(date +%s.%N)
podman stop -t 20 "$NAME" >/dev/null
took=$(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')")
code=$(podman inspect "$NAME" --format '{{.State.ExitCode}}')
[[ $code == 0 ]] || fail "exit code $code after SIGTERM"
python3 -c "import sys; sys.exit(0 if $took < 15 else 1)" || fail "SIGTERM ignored: stop took $took s"
podman logs "$NAME" 2>&1 | grep -q '"message": "stopped"' || fail "no clean stop logged"
proved "podman stop (SIGTERM to PID 1): exit 0 after $took s of the allowed 20, 'stopped' logged"

# a restart on the same volume sends nothing again
podman start "$NAME" >/dev/null
sleep 6
[[ $(grep -c . "$WORK/srv/hooks.jsonl") == 1 ]] || fail "the alert was sent again after a restart"
proved "restarted on the same volume: the alert is not sent again"
summary
