#!/usr/bin/env bash
# A private PostgreSQL server on 127.0.0.1 for an MLflow backend store: to try the team setup on one
# machine, and what the tests start (tests/helpers/servers.py runs exactly these commands).
#
#   scripts/postgres.sh start DIR PORT   create a cluster in DIR on first use, start it, print its URL
#   scripts/postgres.sh url DIR          print that URL again (postgresql://vaelab:PASSWORD@127.0.0.1:PORT/mlflow)
#   scripts/postgres.sh stop DIR         stop it (fast shutdown); the data stays in DIR until you remove it
#
# The cluster has one role, `vaelab`, with a random password (kept in DIR/password, mode 600) and one
# database, `mlflow`. It listens on 127.0.0.1 only, its socket is in DIR/run, and every connection must
# give the password (scram-sha-256), since other users of the machine can reach the port.
#
# PostgreSQL refuses to run as root: as root, the server runs as the system user $VAELAB_PG_USER
# (default `postgres`, which Debian's postgresql package creates), so DIR's parents must let it through.
# The binaries are taken from $VAELAB_PG_BIN, else the newest /usr/lib/postgresql/*/bin, else PATH.
# Exit status 3: no PostgreSQL binaries found there (install them: apt-get install postgresql); 1: any other error.
set -euo pipefail

die() { echo "postgres.sh: $1" >&2; exit "${2:-1}"; }

usage="usage: $0 start DIR PORT | url DIR | stop DIR"
cmd=${1:-}
dir=${2:-}
[[ -n $cmd && -n $dir ]] || die "$usage"

find_bin() {
    if [[ -n ${VAELAB_PG_BIN:-} ]]; then
        [[ -x $VAELAB_PG_BIN/initdb && -x $VAELAB_PG_BIN/pg_ctl ]] ||
            die "VAELAB_PG_BIN=$VAELAB_PG_BIN: expected a folder holding initdb and pg_ctl"
        echo "$VAELAB_PG_BIN"
        return
    fi
    local candidate
    # Debian installs each major version side by side; take the newest.
    for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n -r); do
        [[ -x $candidate/initdb && -x $candidate/pg_ctl ]] && { echo "$candidate"; return; }
    done
    candidate=$(command -v initdb 2>/dev/null) && [[ -x $(dirname "$candidate")/pg_ctl ]] &&
        { dirname "$candidate"; return; }
    die "no PostgreSQL server binaries (initdb, pg_ctl) in /usr/lib/postgresql/*/bin or on PATH; install them (apt-get install postgresql) or set VAELAB_PG_BIN" 3
}

# Run a server-side command as the user that owns the cluster.
as_owner() {
    if [[ $(id -u) == 0 ]]; then
        # runuser lives in /usr/sbin, which a root shell's PATH does not always hold (e.g. a CI runner's).
        local runuser
        runuser=$(PATH=$PATH:/usr/sbin:/sbin command -v runuser) ||
            die "running the server as '$owner' needs runuser (util-linux), found neither on PATH nor in /usr/sbin"
        "$runuser" -u "$owner" -- "$@"
    else
        "$@"
    fi
}

owner=$(id -un)
if [[ $(id -u) == 0 ]]; then
    owner=${VAELAB_PG_USER:-postgres}
    id -u "$owner" >/dev/null 2>&1 ||
        die "running as root, and PostgreSQL refuses root: expected a system user '$owner' to run it (set VAELAB_PG_USER)"
fi

url_of() {
    [[ -f $dir/password && -f $dir/port ]] || die "$dir holds no cluster made by this script"
    echo "postgresql://vaelab:$(cat "$dir/password")@127.0.0.1:$(cat "$dir/port")/mlflow"
}

case $cmd in
start)
    port=${3:-}
    [[ $port =~ ^[0-9]+$ ]] || die "start: PORT = '$port': expected a port number. $usage"
    bin=$(find_bin)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    # The owner must reach DIR (not list it): a folder under a 0700 home or pytest's tmp is out of reach.
    chmod 711 "$dir"
    as_owner test -x "$dir" ||
        die "the server's user '$owner' cannot enter $dir: make it and its parents traversable (chmod o+x), e.g. use a folder under /tmp"
    if [[ ! -f $dir/data/PG_VERSION ]]; then
        (umask 077 && od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$dir/password")
        mkdir -p "$dir/data" "$dir/run"
        [[ $owner == $(id -un) ]] || chown "$owner:" "$dir/data" "$dir/run"
        chmod 700 "$dir/data" "$dir/run"
        pwfile="$dir/run/initdb.pw"
        as_owner sh -c 'umask 077 && cat >"$1"' sh "$pwfile" <"$dir/password"
        # cd: the owner may not be allowed into the caller's working folder.
        (cd "$dir" && as_owner "$bin/initdb" --pgdata="$dir/data" --username=vaelab --pwfile="$pwfile" \
            --auth=scram-sha-256 --encoding=UTF8 --no-instructions >"$dir/initdb.log" 2>&1) ||
            { rm -f "$pwfile"; die "initdb failed:"$'\n'"$(cat "$dir/initdb.log")"; }
        rm -f "$pwfile"
        printf "listen_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\n" "$dir/run" |
            as_owner sh -c 'cat >>"$1"' sh "$dir/data/postgresql.conf"
    fi
    if (cd "$dir" && as_owner "$bin/pg_ctl" --pgdata="$dir/data" status >/dev/null); then
        die "a server is already running on $dir: stop it first, or get its URL with: $0 url $dir"
    fi
    (cd "$dir" && as_owner "$bin/pg_ctl" --pgdata="$dir/data" --log="$dir/run/postgres.log" --wait --timeout=60 \
        --options="-p $port" start >/dev/null) ||
        die "pg_ctl start failed (port $port taken?):"$'\n'"$(tail -n 20 "$dir/run/postgres.log" 2>/dev/null)"
    echo "$port" >"$dir/port"
    export PGPASSWORD
    PGPASSWORD=$(cat "$dir/password")
    psql=("$bin/psql" --no-psqlrc --host=127.0.0.1 --port="$port" --username=vaelab --dbname=postgres -v ON_ERROR_STOP=1 -qtA)
    if [[ -z $("${psql[@]}" -c "select 1 from pg_database where datname = 'mlflow'") ]]; then
        "${psql[@]}" -c "create database mlflow"
    fi
    url_of
    ;;
url)
    url_of
    ;;
stop)
    [[ -f $dir/data/PG_VERSION ]] || die "stop: $dir holds no cluster"
    dir=$(cd "$dir" && pwd)
    bin=$(find_bin)
    (cd "$dir" && as_owner "$bin/pg_ctl" --pgdata="$dir/data" --mode=fast --wait stop >/dev/null)
    ;;
*)
    die "$usage"
    ;;
esac
