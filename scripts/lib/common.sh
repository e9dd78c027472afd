# Shared by scripts/run and scripts/test: find PostgreSQL, start and stop a
# private cluster on loopback. Source it; it defines functions only.

# The directory holding initdb, pg_ctl and postgres (Debian keeps them off PATH).
pg_bindir() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [ -x "$d/initdb" ] && { echo "$d"; return 0; }
    done
    command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
    echo "PostgreSQL server binaries not found; run scripts/setup" >&2
    return 1
}

# A TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
    python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

# Runs a command as the cluster's owner: root may not run PostgreSQL.
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# pg_start DIR: initdb DIR/data when new, then start it on a free loopback
# port (TCP only: no Unix socket, whose path could pass the 107-byte limit).
# A cluster already running there (another terminal, or one left behind
# by a killed script) is reused. Sets PG_PORT and PG_DIR. The superuser is
# "rivet", trusted on loopback only.
pg_start() {
    local dir=$1 bin
    bin=$(pg_bindir) || return 1
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
        chown postgres: "$dir"
        # postgres must be able to reach the folder through its parents.
        chmod o+x "$dir/.." 2>/dev/null || true
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_pg "$bin/initdb" -D "$dir/data" -U rivet --auth=trust -E UTF8 --locale=C.UTF-8 \
            >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
    fi
    PG_DIR=$dir
    if as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        PG_PORT=$(sed -n 4p "$dir/data/postmaster.pid")
        return 0
    fi
    PG_PORT=$(free_port)
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k '' -c fsync=${PG_FSYNC:-on} -c max_connections=200" \
        start >/dev/null || { tail -20 "$dir/postgres.log" >&2; return 1; }
}

pg_stop() {
    local dir=$1 bin
    bin=$(pg_bindir) || return 1
    [ -f "$dir/data/postmaster.pid" ] || return 0
    as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

# pg_url DB: the connection URI of database DB in the running cluster.
pg_url() {
    echo "postgresql://rivet@127.0.0.1:$PG_PORT/$1"
}

# Creates database DB when missing.
pg_createdb() {
    psql -X -q -v ON_ERROR_STOP=1 "$(pg_url postgres)" -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$1'" | grep -q 1 ||
        psql -X -q -v ON_ERROR_STOP=1 "$(pg_url postgres)" -c "CREATE DATABASE \"$1\""
}

# mosq_start DIR: a mosquitto broker on a free loopback port for Rivet's MQTT
# thread and its tests: anonymous clients (it listens on 127.0.0.1 only),
# persistence and log in DIR, run as a daemon. A broker already running from
# DIR is reused. Sets MQTT_PORT.
mosq_start() {
    local dir=$1 bin pid
    bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)
    [ -x "$bin" ] || { echo "mosquitto is not installed (scripts/setup)" >&2; return 1; }
    mkdir -p "$dir"
    if [ -f "$dir/mosquitto.pid" ] && pid=$(cat "$dir/mosquitto.pid") &&
        kill -0 "$pid" 2>/dev/null; then
        MQTT_PORT=$(cat "$dir/port")
        return 0
    fi
    MQTT_PORT=$(free_port)
    printf '%s\n' "listener $MQTT_PORT 127.0.0.1" "allow_anonymous true" \
        "persistence true" "persistence_location $dir/" "pid_file $dir/mosquitto.pid" \
        "log_dest file $dir/mosquitto.log" >"$dir/mosquitto.conf"
    echo "$MQTT_PORT" >"$dir/port"
    # Started as root, mosquitto runs as the mosquitto user: it must own DIR.
    if [ "$(id -u)" = 0 ]; then
        chown -R mosquitto: "$dir" 2>/dev/null || true
    fi
    "$bin" -c "$dir/mosquitto.conf" -d || { tail -20 "$dir/mosquitto.log" >&2; return 1; }
    # Ready when it accepts a connection (at most 10 s).
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$MQTT_PORT") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "mosquitto did not start on port $MQTT_PORT" >&2
    tail -20 "$dir/mosquitto.log" >&2
    return 1
}

mosq_stop() {
    local dir=$1 pid
    [ -f "$dir/mosquitto.pid" ] || return 0
    pid=$(cat "$dir/mosquitto.pid") || return 0
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
}
