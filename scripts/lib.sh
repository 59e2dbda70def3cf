# shellcheck shell=bash
# Shared shell functions for scripts/test, scripts/install-prereqs,
# scripts/with-postgres and scripts/external-checks. Source it; do not run it.
# Callers set `set -euo pipefail` and cd to the repo root first.

RAMPART_VENV="${RAMPART_VENV:-$PWD/.venv}"
# Microsoft's Azure IoT device SDK pins paho-mqtt below 2, so it lives in a virtualenv of its own.
RAMPART_AZURE_VENV="${RAMPART_AZURE_VENV:-$PWD/.venv-azure}"
# nftables and iproute2 (ip, tc): the impaired-link check shapes a veth pair between network namespaces.
RAMPART_APT_PACKAGES=(postgresql openssl mosquitto mosquitto-clients faketime nftables iproute2)
RAMPART_PIP_PACKAGES=(pkilint schemathesis requests "tuf>=6,<8" "paho-mqtt>=2,<3")

log() { printf '%s: %s\n' "${LOG_PREFIX:-rampart}" "$*" >&2; }

# PostgreSQL's bin dir: Debian bookworm ships 15; fall back to the newest one present.
pg_bin_dir() {
    if [[ -x /usr/lib/postgresql/15/bin/initdb ]]; then
        echo /usr/lib/postgresql/15/bin
        return
    fi
    local d
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    [[ -n "$d" && -x "$d/initdb" ]] || return 1
    echo "$d"
}

# A free TCP port on 127.0.0.1 (the kernel picks it; a tiny race is acceptable).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# descendants PID: PID's descendants (children first-level first), one per line.
descendants() {
    local child
    for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
        echo "$child"
        descendants "$child"
    done
}

# kill_tree PID [SIGNAL]: signals PID's descendants, then PID itself. Used by the EXIT traps
# so that an interrupted run leaves no swift/schemathesis/server process behind.
kill_tree() {
    local pid=$1 sig=${2:-TERM} child
    for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do
        kill_tree "$child" "$sig"
    done
    kill "-$sig" "$pid" 2>/dev/null || true
}

# run_child CMD...: runs CMD in the background and waits for it, so that a TERM/INT sent to
# this script runs its trap at once instead of after CMD finishes (bash defers traps while a
# foreground command runs). Sets CHILD_PID while CMD runs; returns CMD's exit status.
CHILD_PID=""
run_child() {
    local rc=0
    "$@" &
    CHILD_PID=$!
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=""
    return $rc
}

_apt_updated=0
_apt_install() {
    # The first apt-get install sometimes fails once on this image: retry once
    # (after a fresh `apt-get update`).
    export DEBIAN_FRONTEND=noninteractive
    if [[ $_apt_updated == 0 ]]; then
        apt-get update -q
        _apt_updated=1
    fi
    if ! apt-get install -y -q --no-install-recommends "$@"; then
        log "apt-get install failed once; retrying"
        sleep 3
        apt-get update -q
        apt-get install -y -q --no-install-recommends "$@"
    fi
}

_deb_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# Installs the Debian packages and the Python virtualenv the tests need.
# Fast path: does nothing (no apt-get update, no pip) when everything is there.
ensure_prereqs() {
    local missing=() p
    for p in "${RAMPART_APT_PACKAGES[@]}"; do
        _deb_installed "$p" || missing+=("$p")
    done
    # The package can be "installed" yet the binaries we call be absent (partial image).
    pg_bin_dir >/dev/null || missing+=(postgresql)
    command -v openssl >/dev/null || missing+=(openssl)
    command -v psql >/dev/null || missing+=(postgresql-client)
    [[ -x /usr/sbin/mosquitto ]] || command -v mosquitto >/dev/null || missing+=(mosquitto)
    command -v mosquitto_pub >/dev/null || missing+=(mosquitto-clients)
    command -v faketime >/dev/null || missing+=(faketime)
    command -v nft >/dev/null || [[ -x /usr/sbin/nft ]] || missing+=(nftables)
    command -v tc >/dev/null || [[ -x /usr/sbin/tc ]] || missing+=(iproute2)
    if ((${#missing[@]})); then
        log "installing Debian packages: ${missing[*]}"
        _apt_install "${missing[@]}"
    fi

    # A venv whose interpreter vanished (e.g. pyenv changed) is recreated.
    if [[ -d "$RAMPART_VENV" ]] && ! "$RAMPART_VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
        log "virtualenv $RAMPART_VENV is broken; recreating"
        rm -rf "$RAMPART_VENV"
    fi
    if [[ ! -d "$RAMPART_VENV" ]]; then
        log "creating virtualenv $RAMPART_VENV"
        if ! python3 -m venv "$RAMPART_VENV"; then
            # python3 here is normally pyenv's, whose venv works; Debian's python needs python3-venv.
            rm -rf "$RAMPART_VENV"
            _apt_install python3-venv
            /usr/bin/python3 -m venv "$RAMPART_VENV"
        fi
    fi
    if ! "$RAMPART_VENV/bin/python" -c 'import pkilint, schemathesis, requests, tuf.ngclient; from paho.mqtt.client import CallbackAPIVersion' >/dev/null 2>&1 \
        || [[ ! -x "$RAMPART_VENV/bin/lint_pkix_cert" || ! -x "$RAMPART_VENV/bin/schemathesis" ]]; then
        log "pip installing ${RAMPART_PIP_PACKAGES[*]} into $RAMPART_VENV"
        "$RAMPART_VENV/bin/python" -m pip install -q "${RAMPART_PIP_PACKAGES[@]}"
    fi
    if ! "$RAMPART_AZURE_VENV/bin/python" -c 'import azure.iot.device' >/dev/null 2>&1; then
        log "creating $RAMPART_AZURE_VENV with azure-iot-device"
        rm -rf "$RAMPART_AZURE_VENV"
        "$RAMPART_VENV/bin/python" -m venv "$RAMPART_AZURE_VENV"
        "$RAMPART_AZURE_VENV/bin/python" -m pip install -q "azure-iot-device>=2.14,<3"
    fi
}

# --- throwaway PostgreSQL -------------------------------------------------------------
# pg_start sets and exports:
#   RAMPART_TEST_POSTGRES_URL  postgres://rampart@127.0.0.1:PORT/rampart (trust auth, superuser)
#   RAMPART_PG_SOCKET_DIR      the unix socket dir (also the temp dir holding the cluster)
#   RAMPART_PG_PORT            the TCP port
# pg_stop stops it and removes the temp dir; it is safe to call twice or when never started.
RAMPART_PG_DIR=""

pg_start() {
    local bin port
    bin="$(pg_bin_dir)"
    # -N (no fsync) only affects initdb itself; the running server keeps fsync on.
    # The cluster must be owned by `postgres` (initdb refuses to run as root).
    RAMPART_PG_DIR="$(mktemp -d /tmp/rampart-pg.XXXXXX)"
    chown postgres:postgres "$RAMPART_PG_DIR"
    chmod 700 "$RAMPART_PG_DIR"
    runuser -u postgres -- "$bin/initdb" -D "$RAMPART_PG_DIR/db" -A trust -U rampart -N \
        >"$RAMPART_PG_DIR/initdb.log" 2>&1 || { cat "$RAMPART_PG_DIR/initdb.log" >&2; return 1; }
    port="$(free_port)"
    # fsync stays on: the durability check needs real crash semantics.
    if ! runuser -u postgres -- "$bin/pg_ctl" -D "$RAMPART_PG_DIR/db" -l "$RAMPART_PG_DIR/postgres.log" \
        -o "-p $port -k $RAMPART_PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=400" -w -t 60 start >/dev/null; then
        tail -n 50 "$RAMPART_PG_DIR/postgres.log" >&2 || true
        return 1
    fi
    runuser -u postgres -- "$bin/createdb" -h "$RAMPART_PG_DIR" -p "$port" -U rampart rampart
    export RAMPART_PG_SOCKET_DIR="$RAMPART_PG_DIR"
    export RAMPART_PG_PORT="$port"
    export RAMPART_TEST_POSTGRES_URL="postgres://rampart@127.0.0.1:$port/rampart"
    log "PostgreSQL running at $RAMPART_TEST_POSTGRES_URL (log: $RAMPART_PG_DIR/postgres.log)"
}

pg_stop() {
    [[ -n "$RAMPART_PG_DIR" ]] || return 0
    local bin
    bin="$(pg_bin_dir)" || true
    if [[ -f "$RAMPART_PG_DIR/db/postmaster.pid" ]]; then
        runuser -u postgres -- "$bin/pg_ctl" -D "$RAMPART_PG_DIR/db" -m fast -w -t 30 stop >/dev/null 2>&1 || {
            # Last resort: the postmaster pid is the first line of postmaster.pid.
            local pid
            pid="$(head -n 1 "$RAMPART_PG_DIR/db/postmaster.pid" 2>/dev/null || true)"
            [[ -n "$pid" ]] && kill -9 "$pid" 2>/dev/null || true
        }
    fi
    rm -rf "$RAMPART_PG_DIR"
    RAMPART_PG_DIR=""
}
