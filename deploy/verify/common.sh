# Shared by deploy/verify-*.sh: a cached Debian base made with debootstrap, the loopback
# servers, and PROVED/FAILED reporting. Needs root and: debootstrap (apt-get install -y
# debootstrap), plus what each script names.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${MONITOR_VERIFY_CACHE:-/var/tmp/monitor-verify}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
HOST_CA=/etc/ssl/certs/ca-certificates.crt
mkdir -p "$CACHE"
PROVED=()

proved() { PROVED+=("$*"); echo "PROVED: $*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }
summary() {
    echo
    echo "== $(basename "$0"): all checks passed =="
    for line in "${PROVED[@]}"; do echo "  - $line"; done
}

# A minimal Debian bookworm with python3, venv and pip, made once (~45 s) and reused.
base_rootfs() {
    local base="$CACHE/base-rootfs"
    if [[ ! -x $base/usr/bin/python3 || ! -f $base/.complete ]]; then
        rm -rf "$base"
        echo "making a Debian base with debootstrap (once, ~45 s)..." >&2
        debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
            bookworm "$base" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
            || fail "debootstrap (log: $CACHE/debootstrap.log)"
        touch "$base/.complete"
    fi
    # egress may pass a TLS-intercepting proxy whose CA only the host trusts
    [[ -f $HOST_CA ]] && cp "$HOST_CA" "$base/etc/ssl/certs/ca-certificates.crt"
    echo "$base"
}

rss() {  # rss GUID TITLE TEXT
    printf '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title><item><guid>%s</guid><title>%s</title><link>https://n.example/%s</link><description>%s</description><pubDate>%s</pubDate></item></channel></rss>' \
        "$1" "$2" "$1" "$3" "$(LC_ALL=C date -u '+%a, %d %b %Y %H:%M:%S +0000')"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local seconds=$1 what=$2; shift 2
    for _ in $(seq $((seconds * 5))); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    echo "FAILED: timed out after ${seconds}s waiting for $what" >&2
    return 1
}

# podman/buildah set up for this kind of machine (deploy-verification notes): runc, cgroupfs,
# explicit ulimits, storage under the cache, docker image format (keeps HEALTHCHECK).
podman_env() {
    local conf="$CACHE/containers"
    mkdir -p "$conf/storage" "$conf/run"
    cat >"$conf/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
    cat >"$conf/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$conf/storage"
runroot = "$conf/run"
CONF
    export CONTAINERS_CONF="$conf/containers.conf" CONTAINERS_STORAGE_CONF="$conf/storage.conf"
    export BUILDAH_FORMAT=docker BUILDAH_ISOLATION=chroot
    unset PIP_FIND_LINKS
}

# The Dockerfile's FROM python:3.12-slim, made locally from the Debian base (no registry here):
# Debian's python3 stands in for the python.org build.
python_base_image() {
    if podman image exists docker.io/library/python:3.12-slim; then return; fi
    local base work
    base=$(base_rootfs)
    work=$(mktemp -d /var/tmp/monitor-pybase.XXXXXX)
    cp -a "$base" "$work/rootfs"
    rm -f "$work"/rootfs/usr/lib/python3*/EXTERNALLY-MANAGED
    ln -sf /usr/bin/python3 "$work/rootfs/usr/local/bin/python"
    ln -sf /usr/bin/pip3 "$work/rootfs/usr/local/bin/pip"
    tar -C "$work/rootfs" -c . | podman import -q - docker.io/library/python:3.12-slim >/dev/null
    rm -rf "$work"
}
