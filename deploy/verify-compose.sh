#!/usr/bin/env bash
# Runs deploy/compose.yaml with podman-compose: PostgreSQL (a local stand-in for postgres:16)
# with its health check and named volume, the monitor image built from deploy/Dockerfile,
# and, added by an override file, a feed server and webhook receiver on the compose network.
# Shows the monitor using PostgreSQL, an alert arriving, `podman healthcheck run` passing for
# both, `monitor db current`, and a clean `down`. Prints what it proved; exits non-zero
# otherwise. Needs root and
#   apt-get install -y buildah podman runc debootstrap; pip install podman-compose
# The copy of the repository it runs from is a temporary one: deploy/config and deploy/.env
# of your checkout are left alone.
source "$(dirname "$0")/verify/common.sh"
podman_env
python_base_image
COMPOSE=$(command -v podman-compose || echo "$REPO/.venv/bin/podman-compose")
[[ -x $COMPOSE ]] || fail "podman-compose is not installed (pip install podman-compose)"

if ! podman image exists docker.io/library/postgres:16; then
    echo "building the postgres:16 stand-in (once)..." >&2
    buildah build --isolation chroot --format docker -q -t docker.io/library/postgres:16 \
        "$REPO/deploy/verify/postgres" >/dev/null
fi

WORK=$(mktemp -d /var/tmp/monitor-compose.XXXXXX)
PROJECT=monitorverify$$
DC=("$COMPOSE" -p "$PROJECT" -f "$WORK/repo/deploy/compose.yaml" -f "$WORK/repo/deploy/verify.yaml")
cleanup() {
    "${DC[@]}" down -v >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/repo"
cp -r "$REPO/pyproject.toml" "$REPO/README.md" "$REPO/monitor" "$REPO/deploy" "$WORK/repo/"
rm -rf "$WORK/repo/deploy/config" "$WORK/repo/deploy/.env"
mkdir -p "$WORK/repo/deploy/config" "$WORK/srv"
cp "$REPO/deploy/verify/servers.py" "$WORK/srv/"
rss k1 "Lage in Kursk" "Bericht aus Kursk." >"$WORK/srv/feed.xml"
printf 'POSTGRES_PASSWORD=verify-%s\n' "$RANDOM$RANDOM" >"$WORK/repo/deploy/.env"
cat >"$WORK/repo/deploy/config/config.toml" <<'TOML'
[monitor]
database = "${MONITOR_DATABASE_URL}"
interval = "1h"
[channels]
hook = "json://servers:8080/hook"
[[feeds]]
name = "one"
url = "http://servers:8080/feed.xml"
[[rules]]
name = "kursk"
query = "Kursk"
TOML
chmod -R a+rX "$WORK/repo/deploy/config"
cat >"$WORK/repo/deploy/verify.yaml" <<YAML
services:
  servers:
    image: news-monitor:latest
    user: "0"
    entrypoint: ["python3", "/srv/servers.py", "8080", "/srv", "0.0.0.0"]
    healthcheck:
      disable: true
    volumes:
      - $WORK/srv:/srv
YAML

"${DC[@]}" build >"$WORK/build.log" 2>&1 || { tail -20 "$WORK/build.log"; fail "podman-compose build"; }
proved "podman-compose built the monitor image from deploy/Dockerfile"
# podman 4.3 ignores depends_on: condition: service_healthy, so wait for it here
"${DC[@]}" up -d db >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log"; fail "up db"; }
DB=$(podman ps --filter "label=io.podman.compose.project=$PROJECT" --filter "label=com.docker.compose.service=db" --format '{{.Names}}')
wait_for 60 "PostgreSQL's health check" podman healthcheck run "$DB"
proved "PostgreSQL ($DB) passed its compose health check (pg_isready), data on the named volume $(podman volume ls --format '{{.Name}}' | grep "${PROJECT}_db-data")"
"${DC[@]}" up -d >>"$WORK/up.log" 2>&1 || { cat "$WORK/up.log"; fail "up"; }
MON=$(podman ps --filter "label=io.podman.compose.project=$PROJECT" --filter "label=com.docker.compose.service=monitor" --format '{{.Names}}')
[[ -n $MON ]] || fail "the monitor container is not running: $(tail -5 "$WORK/up.log")"
wait_for 90 "the alert at the webhook" grep -q "Lage in Kursk" "$WORK/srv/hooks.jsonl" || { podman logs "$MON" 2>&1 | tail; exit 1; }
proved "the monitor ($MON) polled the feed service and the alert reached the webhook service"
podman logs "$MON" 2>&1 | grep -q 'monitor running' || fail "no start-up line"
current=$(podman exec "$MON" monitor db current)
[[ $current == *newest* ]] || fail "db current: $current"
url=$(podman exec "$MON" sh -c 'echo ${MONITOR_DATABASE_URL%%:*}')
[[ $url == postgresql ]] || fail "not on PostgreSQL: $url"
proved "on PostgreSQL through compose's network and the optional env file: monitor db current says '$current'"
wait_for 60 "the monitor's health check" podman healthcheck run "$MON"
proved "podman healthcheck run $MON: healthy ($(podman exec "$MON" monitor health 2>&1 | tail -1))"
password=$(sed -n 's/^POSTGRES_PASSWORD=//p' "$WORK/repo/deploy/.env")
alerts=$(podman exec -e PGPASSWORD="$password" "$DB" psql -h 127.0.0.1 -tA -U monitor -d monitor \
    -c 'select count(*) from outbox where delivered_at is not null')
[[ $alerts == 1 ]] || fail "outbox in PostgreSQL: $alerts delivered"
proved "PostgreSQL's outbox holds the one delivered alert"
start=$(date +%s)
"${DC[@]}" down >/dev/null 2>&1 || fail "down"
[[ -z $(podman ps -a --filter "label=io.podman.compose.project=$PROJECT" --format '{{.Names}}') ]] || fail "containers left after down"
proved "podman-compose down stopped and removed everything in $(( $(date +%s) - start )) s (volumes kept until down -v)"
summary
