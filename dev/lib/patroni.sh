# shellcheck shell=bash disable=SC2034 # the *_V variables are read by dev/stack.sh
# PG_NODES=2|3: PostgreSQL 15 as a local Patroni cluster instead of the single private cluster
# of dev/lib/postgres.sh (which calls in here). One etcd member is the DCS: client port ETCD_PORT
# (2379), peer port + 1, data in .stack/etcd, log .stack/logs/etcd.log. Node k (1..N) is a Patroni
# (member name nodek, scope orders-payments under /service) with its PostgreSQL on PG_PORT +
# 10(k-1) (5432/5442/5452) and its REST API on PATRONI_PORT + k-1 (8008/8009/8010); config
# .stack/pg/node-k/patroni.yml (rewritten at every start), data .stack/pg/node-k/data, Patroni's
# and PostgreSQL's log .stack/logs/postgres-k.log, pid .stack/pids/patroni-k.pid.
#
# Synchronous replication, strict: the primary acknowledges a commit only once a standby has it
# (synchronous_mode_strict), so a failover loses no acknowledged write — and, with two nodes, a
# primary without its standby blocks every write until one is back. Three nodes (one sync, one
# potential) keep writing through the loss of any one. The node count, the base ports and the
# last primary are kept in .stack/state (PG_NODES, PG_PORT, PATRONI_PORT, ETCD_PORT,
# PG_LAST_PRIMARY) for later commands (status, down, kill-pg-node, start-pg-node).

PG_CLUSTER_MAX=3
PG_NODE_PORT_STEP=10
PG_SCOPE=orders-payments
PG_NAMESPACE=/service
PG_REJOIN_TIMEOUT=${PG_REJOIN_TIMEOUT:-120}
ETCD_DIR=$STACK/etcd
ETCD_TIMEOUT=${ETCD_TIMEOUT:-30}
PG_NODES_WANTED=1

# ---------------------------------------------------------------- layout

# pg_state KEY — state_get that succeeds without a state file (assignments under set -e).
pg_state() { state_get "$1" || true; }

pg_node_dir() { echo "$PG_DIR/node-$1"; }
pg_node_conf() { echo "$PG_DIR/node-$1/patroni.yml"; }
pg_node_data() { echo "$PG_DIR/node-$1/data"; }
pg_node_name() { echo "node$1"; }
pg_node_port() { echo $(($(pg_state PG_PORT) + PG_NODE_PORT_STEP * ($1 - 1))); }
pg_node_api_port() { echo $(($(pg_state PATRONI_PORT) + $1 - 1)); }
pg_cluster_size() { pg_state PG_NODES; }

# pg_node_pid K — node K's Patroni; pg_node_postmaster K — its PostgreSQL (Patroni starts the
# postmaster detached, as pg_ctl does: it is not Patroni's child).
pg_node_pid() { running_pid "$PIDS/patroni-$1.pid" "$(pg_node_conf "$1")"; }
pg_node_postmaster() { running_pid "$(pg_node_data "$1")/postmaster.pid" "$(pg_node_data "$1")"; }

pg_cluster_any_running() {
	local k
	for ((k = 1; k <= PG_CLUSTER_MAX; k++)); do
		if pg_node_pid "$k" >/dev/null || pg_node_postmaster "$k" >/dev/null; then return 0; fi
	done
	return 1
}

pg_cluster_has_data() { compgen -G "$PG_DIR/node-*/data" >/dev/null; }

# pg_nodes_wanted — sets PG_NODES_WANTED: PG_NODES when set (1, 2 or 3); unset, the layout whose
# data is in .stack (its node count from .stack/state), else 1. One layout at a time: the single
# cluster's data and the nodes' data never both live in .stack/pg.
pg_nodes_wanted() {
	local n=${PG_NODES:-} recorded
	recorded=$(pg_state PG_NODES)
	if [[ -z $n ]]; then
		n=1
		if [[ ${recorded:-1} != 1 ]] && { pg_cluster_any_running || pg_cluster_has_data; }; then n=$recorded; fi
	fi
	[[ $n =~ ^[1-3]$ ]] || die "PG_NODES must be 1, 2 or 3 (got $n)"
	if ((n == 1)) && { pg_cluster_any_running || pg_cluster_has_data; }; then
		die "postgres: .stack/pg/node-* holds the Patroni cluster's data (PG_NODES=${recorded:-2}) and PG_NODES=1 asks for the single cluster: one layout at a time (PG_NODES=${recorded:-2}, or dev/stack.sh down and then dev/stack.sh clean / rm -rf .stack/pg .stack/etcd, which loses the databases)"
	fi
	if ((n > 1)) && [[ -e $PG_DATA ]]; then
		die "postgres: .stack/pg/data holds the single cluster and PG_NODES=$n asks for the Patroni cluster: one layout at a time (dev/stack.sh down, then dev/stack.sh clean or rm -rf .stack/pg, which loses the databases)"
	fi
	if ((n > 1)) && [[ -n $recorded && $recorded != "$n" ]] && pg_cluster_any_running; then
		die "postgres: our $recorded-node Patroni cluster runs and PG_NODES=$n: stop it first (dev/stack.sh down)"
	fi
	PG_NODES_WANTED=$n
}

# pg_node_check K — our Patroni cluster exists and K names one of its nodes.
pg_node_check() {
	local n
	n=$(pg_cluster_size)
	[[ ${n:-1} != 1 ]] || die "postgres: no Patroni cluster of ours (start it with PG_NODES=2 dev/stack.sh infra)"
	if ! [[ ${1:-} =~ ^[1-9]$ ]] || (($1 > n)); then die "postgres: node must be 1..$n (got ${1:-nothing})"; fi
}

# ---------------------------------------------------------------- etcd (the DCS)

etcd_pid() { running_pid "$PIDS/etcd.pid" "$ETCD_DIR"; }
etcd_ready() { http_ok "http://127.0.0.1:$1/health"; }

# etcd_pick_port — a free client port whose next port (the peer port) is free too: ETCD_PORT
# (2379) when it is; else the first free pair of 12379..12478, unless ETCD_PORT was set: then fail.
etcd_pick_port() {
	local p=${ETCD_PORT:-2379} q
	if ! port_in_use "$p" && ! port_in_use $((p + 1)); then
		echo "$p"
		return 0
	fi
	[[ -n ${ETCD_PORT:-} ]] && die "etcd: port $p or $((p + 1)) (ETCD_PORT set explicitly) is in use by another process"
	for ((q = 12379; q < 12479; q += 2)); do
		if ! port_in_use "$q" && ! port_in_use $((q + 1)); then
			warn "etcd: port $p or $((p + 1)) is in use by another process; using $q (peer $((q + 1))) instead"
			echo "$q"
			return 0
		fi
	done
	die "etcd: no free pair of ports in 12379-12478"
}

# etcd_start — our etcd member, unless it runs; waits until it answers /health. A single member
# keeps its data across restarts (the cluster's leader, sync state and configuration live there).
etcd_start() {
	local pid port peer t want=${ETCD_PORT:-}
	if pid=$(etcd_pid); then
		log "etcd already running (pid $pid, 127.0.0.1:$(pg_state ETCD_PORT))"
		return 0
	fi
	command -v etcd >/dev/null 2>&1 || die "etcd: not found (apt-get install etcd-server etcd-client)"
	# Patroni nodes still running know etcd at its old port only.
	if [[ -z $want ]] && pg_cluster_any_running; then want=$(pg_state ETCD_PORT); fi
	port=$(ETCD_PORT=$want etcd_pick_port) || exit 1
	peer=$((port + 1))
	mkdir -p "$ETCD_DIR"
	rotate_log etcd
	t=$(clock)
	# Auto-compaction: Patroni writes every loop_wait (2 s); without it the history only grows.
	nohup etcd --name stack --data-dir "$ETCD_DIR" \
		--listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
		--listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
		--initial-cluster "stack=http://127.0.0.1:$peer" --initial-cluster-state new \
		--initial-cluster-token orders-payments-dev --auto-compaction-mode periodic \
		--auto-compaction-retention 1h --logger zap --log-outputs stderr \
		</dev/null >>"$LOGS/etcd.log" 2>&1 &
	pid=$!
	echo "$pid" >"$PIDS/etcd.pid"
	state_set ETCD_PORT "$port"
	wait_for etcd "$ETCD_TIMEOUT" "$pid" "$LOGS/etcd.log" etcd_ready "$port"
	log "etcd ready in $(since "$t")s (pid $pid, 127.0.0.1:$port, peer :$peer)"
}

etcd_down() {
	local pid
	pid=$(etcd_pid) || return 0
	stop_pid etcd "$pid" "$STOP_TIMEOUT"
	rm -f "$PIDS/etcd.pid"
}

etcd_status() {
	local pid port
	port=$(pg_state ETCD_PORT)
	if pid=$(etcd_pid); then
		if etcd_ready "$port"; then
			status_line etcd running "$pid" "127.0.0.1:$port (peer :$((port + 1)))"
		else
			status_line etcd starting "$pid" "127.0.0.1:$port (not answering /health)"
		fi
	elif [[ -n $port ]]; then
		status_line etcd stopped - "-"
	fi
}

# ---------------------------------------------------------------- Patroni REST API

# pg_node_api K PATH — node K's REST answer (JSON); false when it does not answer.
pg_node_api() { curl -sf --max-time 2 "http://127.0.0.1:$(pg_node_api_port "$1")$2" 2>/dev/null; }
pg_node_api_up() { http_any "http://127.0.0.1:$(pg_node_api_port "$1")/liveness"; }

# pg_node_is_primary K — node K holds the leader key (GET /primary is 200) and its PostgreSQL runs
# out of recovery. The key alone is not enough: a restarted node that still holds it answers 200
# before its PostgreSQL has even started.
pg_node_is_primary() {
	pg_node_api "$1" /primary | jq -e '.state == "running" and (.role == "master" or .role == "primary")' >/dev/null 2>&1
}

# pg_primary — the number of the node that is the primary now; false when there is none.
pg_primary() {
	local k n
	n=$(pg_cluster_size)
	for ((k = 1; k <= ${n:-0}; k++)); do
		pg_node_pid "$k" >/dev/null && pg_node_is_primary "$k" && echo "$k" && return 0
	done
	return 1
}

# pg_replica_state K P — sync_state (sync, potential, async) of node K streaming from primary P,
# as P's pg_stat_replication says (Patroni's GET /patroni); empty when K does not stream from P.
pg_replica_state() {
	pg_node_api "$2" /patroni | jq -r --arg n "$(pg_node_name "$1")" \
		'.replication[]? | select(.application_name == $n and .state == "streaming") | .sync_state' 2>/dev/null
}

# pg_sync_standby P — the node number of primary P's synchronous standby: streaming with
# sync_state sync in P's pg_stat_replication, AND named in Patroni's /sync key (its GET /sync is
# 200). PostgreSQL alone is not enough: a strict primary without a standby runs with
# synchronous_standby_names '*', so a standby that connects is "sync" at once, a loop or two
# before Patroni records it — and only the node of the /sync key may be promoted.
pg_sync_standby() {
	local name
	name=$(pg_node_api "$1" /patroni | jq -r \
		'first(.replication[]? | select(.state == "streaming" and .sync_state == "sync") | .application_name) // empty' 2>/dev/null)
	[[ $name == node[1-9] ]] || return 1
	[[ $(http_status "http://127.0.0.1:$(pg_node_api_port "${name#node}")/sync") == 200 ]] || return 1
	echo "${name#node}"
}

pg_node_timeline() { pg_node_api "$1" /patroni | jq -r '.timeline // "?"' 2>/dev/null; }

# pg_node_ready K — node K serves: it is the primary, or it streams WAL from the primary.
pg_node_ready() {
	local p
	p=$(pg_primary) || return 1
	[[ $p == "$1" || -n $(pg_replica_state "$1" "$p") ]]
}

# pg_node_rejoined K — node K is back: a streaming replica of the primary and the primary has a
# synchronous standby (K itself with two nodes; with three the other one may hold that role), or
# K is the primary again (it came back before its leader key expired, or nobody else could take over).
pg_node_rejoined() {
	local p
	p=$(pg_primary) || return 1
	[[ $p == "$1" ]] && return 0
	[[ -n $(pg_replica_state "$1" "$p") ]] && pg_sync_standby "$p" >/dev/null
}

pg_cluster_has_sync() {
	local p
	p=$(pg_primary) && pg_sync_standby "$p" >/dev/null
}

# pg_cluster_url DB — libpq's multi-host form: every node listed, the session on the one that
# accepts writes (psql and libpq clients follow a failover by reconnecting).
pg_cluster_url() {
	local k n hosts=()
	n=$(pg_cluster_size)
	for ((k = 1; k <= n; k++)); do hosts+=("127.0.0.1:$(pg_node_port "$k")"); done
	local IFS=,
	printf 'postgres://postgres@%s/%s?target_session_attrs=read-write' "${hosts[*]}" "$1"
}

# pg_write_ok URL — a write commits: a temporary table writes catalog WAL, so its commit waits
# for the synchronous standby (a strict primary without one hangs: timeout). `SELECT
# txid_current()` would not do: a transaction that wrote no WAL commits without waiting.
pg_write_ok() {
	PGCONNECT_TIMEOUT=5 timeout 10 "$PG_BIN/psql" "$1" -XtAqc 'CREATE TEMP TABLE write_probe (x int)' >/dev/null 2>&1
}

# ---------------------------------------------------------------- nodes

# pg_node_write_config K — node K's patroni.yml. bootstrap.dcs is read once, when the cluster is
# initialised; afterwards the cluster-wide settings live in etcd (patronictl edit-config).
pg_node_write_config() {
	local k=$1 n port api etcd dir
	n=$(pg_cluster_size)
	port=$(pg_node_port "$k")
	api=$(pg_node_api_port "$k")
	etcd=$(pg_state ETCD_PORT)
	dir=$(pg_node_dir "$k")
	cat >"$(pg_node_conf "$k")" <<EOF
# Written by dev/stack.sh at every start of this node: node $k of the local $n-node Patroni cluster.
scope: $PG_SCOPE
namespace: $PG_NAMESPACE
name: $(pg_node_name "$k")
restapi:
  listen: 127.0.0.1:$api
  connect_address: 127.0.0.1:$api
etcd3:
  hosts: 127.0.0.1:$etcd
watchdog:
  mode: 'off'
bootstrap:
  dcs:
    # The leader key lives ttl seconds without a renewal: a dead primary is replaced after at most
    # ttl + loop_wait. Patroni's rule: ttl >= loop_wait + 2 * retry_timeout.
    ttl: 20
    loop_wait: 2
    retry_timeout: 5
    # Sync mode already bars any standby but the synchronous one; 0 here could bar that one too
    # (the primary's last reported LSN may hold WAL it never sent before it died).
    maximum_lag_on_failover: 1048576
    synchronous_mode: true
    synchronous_mode_strict: true
    synchronous_node_count: 1
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        synchronous_commit: 'on'
        wal_log_hints: 'on'
        max_connections: 200
        wal_level: replica
        hot_standby: 'on'
        max_wal_senders: 10
        max_replication_slots: 10
        # A standby retries a refused stream after 1 s, not 5: a node that rejoins after a
        # failover is refused until the new primary has made its replication slot again.
        wal_retrieve_retry_interval: 1s
  initdb:
    - encoding: UTF8
    - locale: C.UTF-8
postgresql:
  listen: 127.0.0.1:$port
  connect_address: 127.0.0.1:$port
  data_dir: $dir/data
  bin_dir: $PG_BIN
  pgpass: $dir/pgpass
  authentication:
    superuser:
      username: postgres
    replication:
      username: postgres
    rewind:
      username: postgres
  parameters:
    unix_socket_directories: '$PG_SOCKET_DIR'
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 trust
    - host replication all 127.0.0.1/32 trust
  # A new standby's copy starts at once instead of after a spread checkpoint.
  basebackup:
    - checkpoint: fast
EOF
}

# pg_node_spawn K — start node K's Patroni (it starts, clones or rewinds its PostgreSQL) without
# waiting. As root, Patroni runs as the postgres system user through setpriv, which execs: the pid
# we record is Patroni's own (runuser would stay its parent, and a SIGKILL would miss Patroni).
PG_PENDING_NODES=()
declare -A PG_NODE_T0=()
pg_node_spawn() {
	local k=$1 dir as=()
	dir=$(pg_node_dir "$k")
	mkdir -p "$dir"
	if [[ $EUID -eq 0 ]]; then
		chown postgres:postgres "$dir"
		as=(setpriv --reuid=postgres --regid=postgres --init-groups env HOME="$(getent passwd postgres | cut -d: -f6)")
	fi
	pg_node_write_config "$k"
	rotate_log "postgres-$k"
	PG_NODE_T0[$k]=$(clock)
	nohup "${as[@]}" patroni "$(pg_node_conf "$k")" </dev/null >>"$LOGS/postgres-$k.log" 2>&1 &
	echo "$!" >"$PIDS/patroni-$k.pid"
	PG_PENDING_NODES+=("$k")
}

# pg_cluster_pick_ports N — base ports (nothing of ours runs): PG_PORT and PATRONI_PORT as the
# other components pick theirs; then every node's two ports must be free.
pg_cluster_pick_ports() {
	local n=$1 port api k all p
	port=$(pick_port postgres "${PG_PORT:-5432}" 15432 "${PG_PORT:+1}") || exit 1
	api=$(pick_port patroni-api "${PATRONI_PORT:-8008}" 18008 "${PATRONI_PORT:+1}") || exit 1
	state_set PG_PORT "$port"
	state_set PATRONI_PORT "$api"
	state_set PG_NODES "$n"
	all=$(for ((k = 1; k <= n; k++)); do pg_node_port "$k" && pg_node_api_port "$k"; done)
	[[ $(sort -u <<<"$all" | wc -l) == $((2 * n)) ]] ||
		die "postgres: PG_PORT=$port and PATRONI_PORT=$api give overlapping node ports (${all//$'\n'/ })"
	for p in $all; do
		port_in_use "$p" && die "postgres: node port $p is in use by another process (node ports ${all//$'\n'/ }; set PG_PORT / PATRONI_PORT)"
	done
	return 0
}

# pg_cluster_up — etcd, then every node not running yet; waits until each node serves (primary,
# or streaming from it), a synchronous standby streams and a write commits; the databases; the URLs.
# The first node started is the last primary (node 1 the first time), alone until its REST API
# answers: it wins the initialisation race, and after a restart it is the most advanced node, so
# no standby promotes itself ahead of it onto a new timeline.
pg_cluster_up() {
	local n=$PG_NODES_WANTED k first t order=() url primary sync
	command -v patroni >/dev/null 2>&1 || die "postgres: patroni not found (apt-get install patroni etcd-server etcd-client python3-etcd)"
	command -v jq >/dev/null 2>&1 || die "postgres: jq not found (run: dev/stack.sh install)"
	mkdir -p "$PG_DIR" "$PG_SOCKET_DIR"
	[[ $EUID -eq 0 ]] && chown postgres:postgres "$PG_DIR" "$PG_SOCKET_DIR"
	etcd_start
	t=$(clock)
	if pg_cluster_any_running; then state_set PG_NODES "$n"; else pg_cluster_pick_ports "$n"; fi
	first=$(pg_state PG_LAST_PRIMARY)
	[[ $first =~ ^[1-9]$ ]] && ((first <= n)) || first=1
	order=("$first")
	for ((k = 1; k <= n; k++)); do [[ $k == "$first" ]] || order+=("$k"); done
	for k in "${order[@]}"; do
		if pg_node_pid "$k" >/dev/null; then
			log "postgres-$k already running (pid $(pg_node_pid "$k"), 127.0.0.1:$(pg_node_port "$k"))"
			continue
		fi
		pg_node_spawn "$k"
		if [[ $k == "$first" ]]; then
			wait_for "postgres-$k" "$PG_TIMEOUT" "$(pid_of "$PIDS/patroni-$k.pid")" "$LOGS/postgres-$k.log" pg_node_api_up "$k"
		fi
	done
	((${#PG_PENDING_NODES[@]})) && started postgres
	for k in "${PG_PENDING_NODES[@]}"; do
		wait_for "postgres-$k" "$PG_TIMEOUT" "$(pid_of "$PIDS/patroni-$k.pid")" "$LOGS/postgres-$k.log" pg_node_ready "$k"
		log "postgres-$k ready in $(since "${PG_NODE_T0[$k]}")s (pid $(pg_node_pid "$k"), 127.0.0.1:$(pg_node_port "$k"), $(pg_node_role "$k"))"
	done
	PG_PENDING_NODES=()
	wait_for postgres "$PG_TIMEOUT" "" "$LOGS/postgres-$first.log" pg_cluster_has_sync
	url=$(pg_cluster_url postgres)
	wait_for postgres "$PG_TIMEOUT" "" "$LOGS/postgres-$first.log" pg_write_ok "$url"
	primary=$(pg_primary)
	sync=$(pg_sync_standby "$primary")
	log "postgres: $n-node Patroni cluster ready in $(since "$t")s (primary node $primary, sync standby node $sync, timeline $(pg_node_timeline "$primary"); etcd 127.0.0.1:$(pg_state ETCD_PORT))"
	TEST_DATABASE_URL_V=$url
	postgres_ensure_databases "$TEST_DATABASE_URL_V"
	DATABASE_URL_ORDERS_V=$(pg_cluster_url orders)
	DATABASE_URL_PAYMENTS_V=$(pg_cluster_url payments)
}

# pg_node_role K — "primary", or "streaming from node P, sync|potential|async", for messages.
pg_node_role() {
	local p s
	p=$(pg_primary) || {
		echo "no primary"
		return 0
	}
	if [[ $p == "$1" ]]; then
		echo primary
	else
		s=$(pg_replica_state "$1" "$p")
		echo "streaming from node $p, ${s:-not streaming}"
	fi
}

# pg_node_stop K — SIGTERM to Patroni (it shuts its PostgreSQL down, then exits); a postmaster
# left without its Patroni gets a fast shutdown (SIGINT).
pg_node_stop() {
	local k=$1 pid
	if pid=$(pg_node_pid "$k"); then stop_pid "postgres-$k" "$pid" "$STOP_TIMEOUT"; fi
	if pid=$(pg_node_postmaster "$k"); then stop_pid "postgres-$k postmaster" "$pid" "$STOP_TIMEOUT" INT; fi
	rm -f "$PIDS/patroni-$k.pid"
}

# pg_cluster_down — the standbys first, the primary last (no standby takes over from a primary
# that is stopping; the primary, stopped last, is the most advanced node: it starts first next
# time, PG_LAST_PRIMARY), then etcd.
pg_cluster_down() {
	local k primary=""
	if pg_cluster_any_running; then
		primary=$(pg_primary) && state_set PG_LAST_PRIMARY "$primary"
		for ((k = 1; k <= PG_CLUSTER_MAX; k++)); do [[ $k == "$primary" ]] || pg_node_stop "$k"; done
		[[ -n $primary ]] && pg_node_stop "$primary"
	fi
	etcd_down
}

pg_cluster_status() {
	local k n pid p addr role
	n=$(pg_cluster_size)
	etcd_status
	p=$(pg_primary) || p=""
	for ((k = 1; k <= n; k++)); do
		addr="127.0.0.1:$(pg_node_port "$k") (api :$(pg_node_api_port "$k")"
		if pid=$(pg_node_pid "$k"); then
			if [[ $k == "$p" ]]; then
				role="leader"
			elif [[ -n $p ]]; then
				role=$(pg_replica_state "$k" "$p")
				case $role in
				sync) role="sync standby" ;;
				"") role="not streaming" ;;
				*) role="$role standby" ;;
				esac
			else
				role="no primary"
			fi
			if [[ $role == "not streaming" || $role == "no primary" ]]; then
				status_line "postgres-$k" starting "$pid" "$addr, $role)"
			else
				status_line "postgres-$k" running "$pid" "$addr, $role, timeline $(pg_node_timeline "$k"))"
			fi
		elif pid=$(pg_node_postmaster "$k"); then
			status_line "postgres-$k" orphaned "$pid" "$addr, a postmaster without its Patroni)"
		else
			status_line "postgres-$k" stopped - "$addr)"
		fi
	done
}

# pg_cluster_table — `pg-nodes`: one line per node from Patroni's view (GET /cluster of any node
# that answers) and ours (the pid).
pg_cluster_table() {
	local k n json="" pid line f
	n=$(pg_cluster_size)
	[[ ${n:-1} != 1 ]] || die "postgres: no Patroni cluster of ours (start it with PG_NODES=2 dev/stack.sh infra)"
	for ((k = 1; k <= n; k++)); do json=$(pg_node_api "$k" /cluster) && break; done
	[[ -n $json ]] || json='{}'
	printf '%-4s %-6s %-13s %-10s %-3s %-8s %-8s %-5s %s\n' NODE NAME ROLE STATE TL LAG PID PORT API
	for ((k = 1; k <= n; k++)); do
		# A node of ours that is not running is stopped, whatever etcd still says (its member key
		# outlives it by up to ttl seconds).
		line=""
		if pid=$(pg_node_pid "$k"); then
			line=$(jq -r --arg n "$(pg_node_name "$k")" \
				'.members[]? | select(.name == $n) | "\(.role) \(.state) \(.timeline // "-") \(.lag // "-")"' <<<"$json" 2>/dev/null)
		else
			pid=-
		fi
		read -r -a f <<<"${line:-- stopped - -}"
		printf '%-4s %-6s %-13s %-10s %-3s %-8s %-8s %-5s %s\n' "$k" "$(pg_node_name "$k")" "${f[0]}" "${f[1]}" \
			"${f[2]}" "${f[3]}" "$pid" "$(pg_node_port "$k")" "$(pg_node_api_port "$k")"
	done
}

# pg_cluster_primary — `pg-primary`: the primary's node number on stdout.
pg_cluster_primary() {
	pg_node_check 1
	pg_primary || die "postgres: no node is the primary now"
}

# pg_descendants PID — every process below PID.
pg_descendants() {
	local c
	for c in $(pgrep -P "$1" 2>/dev/null); do
		echo "$c"
		pg_descendants "$c"
	done
}

# pg_node_kill K — node K dies as a machine would: SIGKILL to its Patroni, its postmaster and every
# process below either (backends, walsender/walreceiver, a pg_basebackup or pg_rewind under way).
# They are stopped (SIGSTOP) first, so that none forks or restarts anything while we list them.
pg_node_kill() {
	local k=$1 pid="" pm="" pids=() p
	pg_node_check "$k"
	pid=$(pg_node_pid "$k") && pids+=("$pid")
	pm=$(pg_node_postmaster "$k") && pids+=("$pm")
	((${#pids[@]})) || die "postgres-$k is not running"
	kill -STOP "${pids[@]}" 2>/dev/null || true
	for p in "${pids[@]}"; do mapfile -t -O "${#pids[@]}" pids < <(pg_descendants "$p"); done
	kill -KILL "${pids[@]}" 2>/dev/null || true
	for p in "${pids[@]}"; do wait_gone "$p" 10 || die "postgres-$k: process $p survived SIGKILL"; done
	rm -f "$PIDS/patroni-$k.pid"
	log "postgres-$k killed (SIGKILL: patroni ${pid:--}, postmaster ${pm:--}, ${#pids[@]} processes)"
}

# pg_node_start K — node K's Patroni again, its data kept; returns once K is back (a streaming
# replica of the primary with a synchronous standby in place, or the primary). After a failover
# Patroni rewinds K's diverged data (pg_rewind, after crash recovery in single-user mode) or, when
# that fails, clones it again; PG_REJOIN_TIMEOUT (120 s) covers either.
pg_node_start() {
	local k=$1 p
	pg_node_check "$k"
	etcd_pid >/dev/null || die "postgres: our etcd is not running (start the cluster: PG_NODES=$(pg_cluster_size) dev/stack.sh infra)"
	if pg_node_pid "$k" >/dev/null; then
		log "postgres-$k already running (pid $(pg_node_pid "$k"), $(pg_node_role "$k"))"
		return 0
	fi
	pg_node_spawn "$k"
	PG_PENDING_NODES=()
	wait_for "postgres-$k" "$PG_REJOIN_TIMEOUT" "$(pid_of "$PIDS/patroni-$k.pid")" "$LOGS/postgres-$k.log" pg_node_rejoined "$k"
	p=$(pg_primary)
	if [[ $p == "$k" ]]; then
		log "postgres-$k started in $(since "${PG_NODE_T0[$k]}")s: it is the primary (timeline $(pg_node_timeline "$k"))"
	else
		log "postgres-$k rejoined in $(since "${PG_NODE_T0[$k]}")s: streaming from node $p, $(pg_replica_state "$k" "$p"), timeline $(pg_node_timeline "$k") (pid $(pg_node_pid "$k"), 127.0.0.1:$(pg_node_port "$k"))"
	fi
}
