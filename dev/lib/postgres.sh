# shellcheck shell=bash disable=SC2034 # the *_V variables are read by dev/stack.sh
# PostgreSQL 15: a private cluster in .stack/pg/data, or the external server of DATABASE_URL;
# with PG_NODES=2|3 a local Patroni cluster instead (dev/lib/patroni.sh, sourced after this file).
#
# Sets DATABASE_URL_ORDERS, DATABASE_URL_PAYMENTS and TEST_DATABASE_URL (the admin URL that
# integration tests use to CREATE/DROP their own databases). fsync and synchronous_commit stay
# at their defaults on purpose: benchmarks measure the real commit ceiling.

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_DIR=$STACK/pg
PG_DATA=$PG_DIR/data
PG_SOCKET_DIR=$PG_DIR/run
PG_TIMEOUT=${PG_TIMEOUT:-60}
PG_DATABASES=(orders payments)

# initdb and pg_ctl refuse to run as root: run them as the postgres system user.
as_postgres() {
	if [[ $EUID -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

postgres_pid() { running_pid "$PG_DATA/postmaster.pid" "$PG_DATA"; }
postgres_port() { sed -n 4p "$PG_DATA/postmaster.pid" 2>/dev/null; }
postgres_ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$1" -U postgres -d postgres -t 1; }

# db_url_with_name URL DB — URL with its database name replaced by DB (query string kept).
db_url_with_name() {
	local url=$1 db=$2 query="" scheme rest authority
	if [[ $url == *\?* ]]; then
		query="?${url#*\?}"
		url=${url%%\?*}
	fi
	scheme=${url%%://*}
	rest=${url#*://}
	authority=${rest%%/*}
	printf '%s://%s/%s%s' "$scheme" "$authority" "$db" "$query"
}

# postgres_ensure_databases ADMIN_URL — create the services' databases when missing.
postgres_ensure_databases() {
	local admin=$1 db exists
	for db in "${PG_DATABASES[@]}"; do
		exists=$(PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" "$admin" -XtAqc \
			"SELECT 1 FROM pg_database WHERE datname = '$db'") ||
			die "postgres: cannot query $(mask_url "$admin")"
		if [[ $exists != 1 ]]; then
			PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" "$admin" -Xqc "CREATE DATABASE \"$db\"" ||
				die "postgres: cannot create database $db on $(mask_url "$admin")"
			log "postgres: created database $db"
		fi
	done
}

# One-time initdb of the private cluster (trust auth, 127.0.0.1 only, 200 connections).
postgres_init() {
	mkdir -p "$PG_DIR" "$PG_SOCKET_DIR"
	[[ $EUID -eq 0 ]] && chown postgres:postgres "$PG_DIR" "$PG_SOCKET_DIR"
	[[ -s $PG_DATA/PG_VERSION ]] && return 0
	rm -rf "$PG_DATA" # a half-made cluster from an interrupted initdb
	local t
	t=$(clock)
	as_postgres "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
		>"$LOGS/postgres-initdb.log" 2>&1 ||
		fail postgres "$LOGS/postgres-initdb.log" "initdb failed"
	cat >>"$PG_DATA/postgresql.conf" <<EOF

# ---- dev/stack.sh (the port is given on the command line: it may change between starts) ----
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_SOCKET_DIR'
max_connections = 200
# fsync and synchronous_commit stay at their defaults: we measure the real commit ceiling.
EOF
	log "postgres: initdb in $(since "$t")s"
}

postgres_up() {
	if [[ -n $EXT_DATABASE_URL ]]; then
		log "postgres: using the external server of DATABASE_URL ($(mask_url "$EXT_DATABASE_URL")), not starting one"
		PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" "$EXT_DATABASE_URL" -Xqc 'SELECT 1' >/dev/null ||
			die "postgres: cannot connect to DATABASE_URL=$(mask_url "$EXT_DATABASE_URL")"
		TEST_DATABASE_URL_V=$EXT_DATABASE_URL
		postgres_ensure_databases "$TEST_DATABASE_URL_V"
		DATABASE_URL_ORDERS_V=$(db_url_with_name "$EXT_DATABASE_URL" orders)
		DATABASE_URL_PAYMENTS_V=$(db_url_with_name "$EXT_DATABASE_URL" payments)
		return 0
	fi
	[[ -x $PG_BIN/initdb ]] || die "postgres: $PG_BIN/initdb not found (run: dev/stack.sh install)"
	pg_nodes_wanted
	if ((PG_NODES_WANTED > 1)); then
		pg_cluster_up
		return 0
	fi

	local pid port t
	if pid=$(postgres_pid); then
		port=$(postgres_port)
		log "postgres already running (pid $pid, 127.0.0.1:$port)"
	else
		postgres_init
		port=$(pick_port postgres "${PG_PORT:-5432}" 15432 "${PG_PORT:+1}") || exit 1
		rotate_log postgres
		[[ $EUID -eq 0 ]] && chown postgres:postgres "$LOGS/postgres.log"
		t=$(clock)
		as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$LOGS/postgres.log" -o "-p $port" \
			-w -t "$PG_TIMEOUT" start </dev/null >"$LOGS/pg_ctl.log" 2>&1 ||
			fail postgres "$LOGS/postgres.log" "pg_ctl start failed: $(tail -n 2 "$LOGS/pg_ctl.log")"
		pid=$(postgres_pid) || fail postgres "$LOGS/postgres.log" "postmaster is not running"
		started postgres
		wait_for postgres "$PG_TIMEOUT" "$pid" "$LOGS/postgres.log" postgres_ready "$port"
		log "postgres ready in $(since "$t")s (pid $pid, 127.0.0.1:$port)"
	fi
	state_set PG_PORT "$port"
	state_set PG_NODES 1
	TEST_DATABASE_URL_V="postgres://postgres@127.0.0.1:$port/postgres"
	postgres_ensure_databases "$TEST_DATABASE_URL_V"
	DATABASE_URL_ORDERS_V="postgres://postgres@127.0.0.1:$port/orders"
	DATABASE_URL_PAYMENTS_V="postgres://postgres@127.0.0.1:$port/payments"
}

postgres_down() {
	local pid t
	pg_cluster_down
	pid=$(postgres_pid) || return 0
	t=$(clock)
	if as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t "$STOP_TIMEOUT" stop \
		</dev/null >>"$LOGS/pg_ctl.log" 2>&1; then
		log "postgres stopped in $(since "$t")s"
	else
		warn "postgres: pg_ctl stop failed; sending SIGQUIT (immediate shutdown)"
		stop_pid postgres "$pid" 10 QUIT
	fi
}

postgres_status() {
	local pid port
	if [[ $(state_get PG_NODES) =~ ^[2-9]$ ]] && ! postgres_pid >/dev/null; then
		pg_cluster_status
	elif pid=$(postgres_pid); then
		port=$(postgres_port)
		if postgres_ready "$port"; then
			status_line postgres running "$pid" "127.0.0.1:$port (accepting connections)"
		else
			status_line postgres starting "$pid" "127.0.0.1:$port (not accepting connections)"
		fi
	else
		status_line postgres stopped - "-"
	fi
}
