#!/usr/bin/env bash
# dev/stack.sh — the whole system on this machine, without Docker.
#
#   up       PostgreSQL + Kafka (+ RabbitMQ when BROKER=rabbitmq or STACK_RABBITMQ=1), build,
#            orders + payments + gateway, nginx for the frontend
#   infra    PostgreSQL + Kafka + RabbitMQ only (STACK_RABBITMQ=0 leaves RabbitMQ out)
#   test     whatever is not running yet (both brokers), `cargo test --workspace`, every bench
#            once (`cargo test -p benches --benches`) and the browser tests of frontend/ with the
#            services on Kafka, then the end-to-end and browser
#            suites again on RabbitMQ, each phase ending with the short fault round
#            (crates/faults), schemathesis against the gateway once; then stops what it started. Extra cargo args: STACK_TEST_ARGS
#   down     stops everything of ours in reverse order and checks that nothing is left
#   status   what runs, where      logs     tail -F every log      clean    down + rm -rf .stack
#   restart-broker  stop and start the local broker named by BROKER, data kept (a fault to test);
#            a three-node Kafka or RabbitMQ cluster is restarted node after node (two of three up)
#   kill-broker-node N / start-broker-node N   SIGKILL node N (1..3) of the three-node cluster of
#            BROKER (kafka by default, or rabbitmq) / start it again with its data and wait until it
#            is ready (RabbitMQ: back in the cluster) (crates/faults)
#   partition-broker-node N / heal-broker-node N   cut node N of BROKER's three-node cluster off
#            the other nodes and from clients with nftables on loopback (table inet
#            orders_payments_faults, dev/lib/netfault.sh) / remove the cut and wait until the node
#            is back (RabbitMQ: the cluster whole again). `down` heals everything first.
#   pg-primary  the node number (1..N) of the Patroni cluster's primary on stdout; exit 1 if none
#   pg-nodes    one line per Patroni node: NODE NAME ROLE STATE TL LAG PID PORT API
#   kill-pg-node N   SIGKILL of node N's Patroni, its postmaster and every process below them (a
#            machine loss; returns at once)
#   start-pg-node N  node N's Patroni again, data kept; returns once N streams from the primary
#            and the primary has a synchronous standby (N rejoins after a failover by pg_rewind or
#            a new copy; PG_REJOIN_TIMEOUT, 120 s), or N is the primary; prints how long it took
#   scale    start/stop instances to match ORDERS_INSTANCES and PAYMENTS_INSTANCES (built
#            binaries, running infrastructure), the gateway restarted to balance across them
#   install  apt packages and the Kafka jars this needs (apt-get update only when something is
#            missing); up, infra and test do it too (quietly; STACK_NO_INSTALL=1 skips it)
#
# State lives in .stack/ (pg, etcd, kafka, rabbitmq, nginx, logs/<component>.log, pids/, env, state);
# Kafka's jars in dev/.cache/kafka-libs. `.stack/env` holds the URLs actually chosen: source it.
#
# External infrastructure: DATABASE_URL (an admin/server URL), KAFKA_BROKERS or AMQP_URL set
# before `up` are used instead of starting that component locally.
# Other knobs: PG_PORT, KAFKA_PORT, KAFKA_CONTROLLER_PORT, RABBITMQ_PORT (default 5432, 9092,
# 9093, 5672; a busy default port is replaced by a free one), GATEWAY_PORT, ORDERS_PORT,
# PAYMENTS_PORT, FRONTEND_PORT (8080-8083), ORDERS_INSTANCES, PAYMENTS_INSTANCES (1; instance k
# listens on the first one's port + 10(k-1), the gateway balances across them), BROKER, RUST_LOG,
# STACK_PROFILE (debug), STACK_PROMETHEUS=1 (Prometheus on PROMETHEUS_PORT 9090 scraping the
# gateway and every instance),
# STACK_SKIP_BUILD=1, KAFKA_HEAP_OPTS, STOP_TIMEOUT (30 s), SERVICE_TIMEOUT (60 s), PG_TIMEOUT (60 s).
#
# Authentication (dev/lib/auth.sh): AUTH=jwt|off for the three services. `up` defaults to
# AUTH=off (the seed's curl walk-through works as written), `test` to AUTH=jwt for the whole run
# (both brokers); an AUTH set by the caller wins for either (mind that .stack/env exports it).
# With jwt: `devauth keys .stack/auth` before the services start (signing-key.pem, kid,
# jwks.json; kept across restarts, so are the tokens it signed), .stack/auth/internal-secret
# (`openssl rand -hex 32`, made once), `devauth serve` on DEVAUTH_PORT (8084; log
# .stack/logs/devauth.log) for the frontend's dev sign-in (nginx proxies /auth/ to it), and
# .stack/env exports AUTH, AUTH_ISSUER, AUTH_AUDIENCE, AUTH_JWKS, AUTH_SIGNING_KEY,
# AUTH_SIGNING_KID, AUTH_INTERNAL_SECRET and DEVAUTH_URL (a token: dev/token USER [--scope S]).
# AUTH_ISSUER / AUTH_AUDIENCE (orders-payments-dev / orders-payments) and, for the gateway,
# RATE_LIMIT_PER_SUBJECT / RATE_LIMIT_PER_IP (`RPS:BURST` or `off`; unset: the gateway's
# defaults) are passed through when set.
#
# KAFKA_NODES=3 (default 1): Kafka as a local three-node KRaft cluster, each node broker and
# controller, replication factor 3 and min.insync.replicas 2 for every topic (the services get
# KAFKA_REPLICATION=3 and KAFKA_MIN_INSYNC_REPLICAS=2). Node k (1..3) listens on KAFKA_PORT +
# 10(k-1) and KAFKA_CONTROLLER_PORT + 10(k-1) (default 9092/9102/9112, controllers
# 9093/9103/9113), keeps its data in .stack/kafka/node-k, logs to .stack/logs/kafka-k.log;
# KAFKA_BROKERS in .stack/env lists the three. KAFKA_NODE_HEAP_OPTS (-Xmx384m -Xms384m per node).
# Later commands find the node count in .stack/state; one layout runs at a time (down first).
# RABBITMQ_NODES=3 (default 1): RabbitMQ as a local three-node cluster rabbit-k@localhost, AMQP
# on RABBITMQ_PORT + 10(k-1) (5672/5682/5692), data in .stack/rabbitmq/node-k, logs
# .stack/logs/rabbitmq-k.log, cluster_partition_handling = pause_minority; AMQP_URL in .stack/env
# lists the three URLs comma-separated (the services try them in order). Same one-layout rule.
# `test` is meant for one node: tests that create replication-1 topics cannot write to them with
# acks=all under the cluster's min.insync.replicas=2 (NOT_ENOUGH_REPLICAS).
#
# PG_NODES=2 (or 3; default 1): PostgreSQL 15 as a local Patroni 3 cluster (dev/lib/patroni.sh):
# one etcd member as its DCS on ETCD_PORT (2379, peer port + 1; data .stack/etcd, log
# .stack/logs/etcd.log), node k (1..N) with PostgreSQL on PG_PORT + 10(k-1) (5432/5442/5452) and
# Patroni's REST API on PATRONI_PORT + k-1 (8008/8009/8010), config .stack/pg/node-k/patroni.yml,
# data .stack/pg/node-k/data, log .stack/logs/postgres-k.log. Strict synchronous replication: a
# commit is acknowledged once a standby has it, so with two nodes writes block while one is down.
# `infra`/`up` wait for a primary, a streaming synchronous standby and a committed write; the URLs
# in .stack/env list every node (libpq's postgres://postgres@H1:P1,H2:P2/DB?target_session_attrs=
# read-write). Leader key ttl 20 s, loop_wait 2 s: a dead primary is replaced within ~22 s.
# Later commands find the node count in .stack/state; one layout at a time (.stack/pg/data or
# .stack/pg/node-*: clean first to switch). The fault round's PostgreSQL restart needs one node.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK=$ROOT/.stack
LOGS=$STACK/logs
PIDS=$STACK/pids
ENV_FILE=$STACK/env
STATE_FILE=$STACK/state
STOP_TIMEOUT=${STOP_TIMEOUT:-30}
TAIL_LINES=${STACK_TAIL_LINES:-40}
STARTED=() # components this invocation started, in order (`test` stops exactly these)

# What the caller points us at, captured before anything else can set these names.
EXT_DATABASE_URL=${DATABASE_URL:-}
EXT_KAFKA_BROKERS=${KAFKA_BROKERS:-}
EXT_AMQP_URL=${AMQP_URL:-}
EXT_AUTH=${AUTH:-}

# shellcheck source=dev/lib/common.sh
. "$ROOT/dev/lib/common.sh"
# shellcheck source=dev/lib/postgres.sh
. "$ROOT/dev/lib/postgres.sh"
# shellcheck source=dev/lib/patroni.sh
. "$ROOT/dev/lib/patroni.sh"
# shellcheck source=dev/lib/kafka.sh
. "$ROOT/dev/lib/kafka.sh"
# shellcheck source=dev/lib/rabbitmq.sh
. "$ROOT/dev/lib/rabbitmq.sh"
# shellcheck source=dev/lib/services.sh
. "$ROOT/dev/lib/services.sh"
# shellcheck source=dev/lib/auth.sh
. "$ROOT/dev/lib/auth.sh"
# shellcheck source=dev/lib/prometheus.sh
. "$ROOT/dev/lib/prometheus.sh"
# shellcheck source=dev/lib/netfault.sh
. "$ROOT/dev/lib/netfault.sh"

status_line() { printf '%-10s %-9s %-8s %s\n' "$@"; }

env_line() { printf "export %s='%s'\n" "$1" "${2//\'/\'\\\'\'}"; }

write_env() {
	{
		echo "# Written by dev/stack.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ). Load it with: . .stack/env"
		env_line DATABASE_URL_ORDERS "$DATABASE_URL_ORDERS_V"
		env_line DATABASE_URL_PAYMENTS "$DATABASE_URL_PAYMENTS_V"
		env_line TEST_DATABASE_URL "$TEST_DATABASE_URL_V"
		env_line KAFKA_BROKERS "$KAFKA_BROKERS_V"
		if [[ -n $KAFKA_REPLICATION_V ]]; then
			env_line KAFKA_REPLICATION "$KAFKA_REPLICATION_V"
			env_line KAFKA_MIN_INSYNC_REPLICAS "$KAFKA_MIN_INSYNC_V"
		fi
		env_line AMQP_URL "$AMQP_URL_V"
		[[ -z $RABBITMQ_QUEUE_TYPE_V ]] || env_line RABBITMQ_QUEUE_TYPE "$RABBITMQ_QUEUE_TYPE_V"
		env_line GATEWAY_URL "http://127.0.0.1:$GATEWAY_PORT"
		env_line ORDERS_URL "http://127.0.0.1:$ORDERS_PORT"
		env_line PAYMENTS_URL "http://127.0.0.1:$PAYMENTS_PORT"
		env_line FRONTEND_URL "http://127.0.0.1:$FRONTEND_PORT"
		auth_env_lines # AUTH and, with jwt, what a test needs to sign tokens (dev/lib/auth.sh)
	} >"$ENV_FILE.tmp"
	chmod 600 "$ENV_FILE.tmp" # database passwords, the internal secret
	mv -f "$ENV_FILE.tmp" "$ENV_FILE"
}

# infra_up WITH_RABBITMQ — PostgreSQL, Kafka, optionally RabbitMQ; then .stack/env.
infra_up() {
	mkdir -p "$LOGS" "$PIDS"
	[[ ${STACK_NO_INSTALL:-0} == 1 ]] || install_prereqs quiet
	postgres_up
	# Kafka and RabbitMQ boot side by side; each reports its own start-up time.
	kafka_start
	if [[ $1 == 1 ]]; then rabbitmq_start; else rabbitmq_url; fi
	kafka_wait
	rabbitmq_wait
	write_env
}

stop_component() {
	case $1 in
	postgres) postgres_down ;;
	kafka) kafka_down ;;
	rabbitmq) rabbitmq_down ;;
	nginx) nginx_down ;;
	prometheus) prometheus_down ;;
	devauth) devauth_down ;;
	*) service_down "$1" ;;
	esac
}

# Processes still running from our private directories (by executable, so that a `tail` or an
# editor looking at .stack/logs is never counted). Patroni is a Python script: its comm is
# `patroni`, or `python3` when started through the interpreter; only its command line counts (a
# shell that sourced .stack/env passes our paths to every python3 it starts).
leftovers() {
	local dir pid comm
	for dir in /proc/[0-9]*; do
		pid=${dir#/proc/}
		comm=$(cat "$dir/comm" 2>/dev/null) || continue
		case $comm in
		postgres | java | beam.smp | nginx | erl_child_setup | prometheus | devauth | etcd) alive "$pid" && proc_mentions "$pid" "$STACK/" && echo "$pid" ;;
		patroni | python3) alive "$pid" && cmdline_has "$pid" "$STACK/" && cmdline_has "$pid" patroni && echo "$pid" ;;
		esac
	done
	local name
	for name in "${ALL_SERVICES[@]}"; do service_pid "$name" || true; done
	devauth_pid || true
}

# ---------------------------------------------------------------- commands

cmd_up() {
	local t rabbit=0
	t=$(clock)
	[[ ${BROKER:-kafka} == rabbitmq || ${STACK_RABBITMQ:-0} == 1 ]] && rabbit=1
	auth_choose off # the seed's walk-through needs no token; AUTH=jwt make up turns it on
	infra_up "$rabbit"
	services_up
	nginx_up
	prometheus_up
	log "stack up in $(since "$t")s (broker: ${BROKER:-kafka}, AUTH=$STACK_AUTH)"
	log "  gateway  http://127.0.0.1:$GATEWAY_PORT  (Swagger UI: /swagger/index.html)"
	[[ -f $FRONTEND_TEMPLATE ]] && log "  frontend http://127.0.0.1:$FRONTEND_PORT"
	prometheus_wanted && log "  prometheus http://127.0.0.1:$PROMETHEUS_PORT"
	auth_on && log "  devauth  http://127.0.0.1:$DEVAUTH_PORT  (a token: dev/token USER [--scope payments:topup])"
	log "  environment: . .stack/env"
}

cmd_infra() {
	local t
	t=$(clock)
	infra_up "${STACK_RABBITMQ:-1}"
	log "infrastructure up in $(since "$t")s; environment: . .stack/env"
}

cmd_down() {
	local t pids pid
	t=$(clock)
	mkdir -p "$LOGS" "$PIDS"
	netfault_down # a cut-off broker node could not be stopped cleanly
	prometheus_down
	nginx_down
	devauth_down
	local name i
	for ((i = ${#ALL_SERVICES[@]} - 1; i >= 0; i--)); do service_down "${ALL_SERVICES[$i]}"; done
	rabbitmq_down
	kafka_down
	postgres_down
	pids=$(leftovers | sort -u)
	if [[ -n $pids ]]; then
		warn "still running after the ordered stop:"
		# shellcheck disable=SC2086
		ps -o pid=,user=,args= -p ${pids//$'\n'/,} >&2 || true
		for pid in $pids; do stop_pid "leftover $pid" "$pid" 10; done
		pids=$(leftovers | sort -u)
		[[ -z $pids ]] || die "processes of ours survived: $pids"
	fi
	netfault_table_exists && die "nft table inet $NETFAULT_TABLE survived"
	log "stack down in $(since "$t")s; nothing of ours is running"
}

cmd_status() {
	status_line COMPONENT STATE PID ADDRESS
	postgres_status
	kafka_status
	rabbitmq_status
	local name
	for name in "${ALL_SERVICES[@]}"; do
		[[ " ${SERVICES[*]} " == *" $name "* ]] || service_pid "$name" >/dev/null || continue
		service_status "$name"
	done
	devauth_status
	nginx_status
	prometheus_status
	netfault_status
	[[ -f $ENV_FILE ]] && echo "environment: $ENV_FILE"
	return 0
}

cmd_logs() {
	local files=() name
	for name in postgres etcd postgres-1 postgres-2 postgres-3 kafka kafka-1 kafka-2 kafka-3 rabbitmq rabbitmq-1 rabbitmq-2 rabbitmq-3 "${ALL_SERVICES[@]}" devauth nginx prometheus; do
		[[ -e $LOGS/$name.log ]] && files+=("$LOGS/$name.log")
	done
	((${#files[@]})) || die "no logs yet in $LOGS (run: make up)"
	exec tail -n "${STACK_LOG_LINES:-20}" -F "${files[@]}"
}

cmd_clean() {
	cmd_down
	rm -rf "$STACK"
	log "removed $STACK (databases, topics, queues, logs)"
}

# install_prereqs [quiet] — apt packages (apt-get update only when one is missing) and the Kafka
# jars. `up`, `infra` and `test` run it quietly, so two commands suffice on a fresh machine.
install_prereqs() {
	local quiet=${1:-} pkgs missing=() p
	pkgs=(postgresql-15 rabbitmq-server nginx chromium libcurl4-openssl-dev cmake uuid-runtime
		docker-compose gettext-base curl jq maven openssl)
	java_ok || pkgs+=(openjdk-17-jre-headless)       # Kafka 4 needs Java 17+
	command -v npm >/dev/null 2>&1 || pkgs+=(nodejs npm) # browser tests
	command -v c++ >/dev/null 2>&1 || pkgs+=(build-essential) # librdkafka's cmake build
	command -v ss >/dev/null 2>&1 || pkgs+=(iproute2)
	prometheus_wanted && pkgs+=(prometheus)
	[[ ${PG_NODES:-1} == 1 ]] || pkgs+=(patroni etcd-server etcd-client python3-etcd)
	[[ ${RABBITMQ_NODES:-1} == 1 && ${KAFKA_NODES:-1} == 1 ]] || pkgs+=(nftables) # partition-broker-node
	command -v pgrep >/dev/null 2>&1 || pkgs+=(procps)
	for p in "${pkgs[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	if ((${#missing[@]})); then
		log "installing: ${missing[*]}"
		as_root apt-get update -q
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
	elif [[ -z $quiet ]]; then
		log "apt packages: all ${#pkgs[@]} present"
	fi
	mkdir -p "$LOGS"
	kafka_libs
}

cmd_install() {
	local t
	t=$(clock)
	install_prereqs
	log "prerequisites ready in $(since "$t")s"
}

# Stop, in reverse order, what this `test` run started; keep the exit code.
test_cleanup() {
	local rc=$? i
	set +e
	trap - EXIT INT TERM
	if ((${#STARTED[@]})); then
		log "stopping what this test run started: ${STARTED[*]}"
		for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do stop_component "${STARTED[$i]}"; done
	fi
	exit "$rc"
}

# Starts and stops service instances to match ORDERS_INSTANCES and PAYMENTS_INSTANCES on the
# running infrastructure, with the binaries already built, and restarts the gateway so it
# balances across them. Services run on BROKER (default kafka).
cmd_scale() {
	[[ -f $ENV_FILE ]] || die "scale: the stack's infrastructure is not up (run: make up)"
	mkdir -p "$LOGS" "$PIDS"
	# shellcheck source=/dev/null
	. "$ENV_FILE"
	DATABASE_URL_ORDERS_V=$DATABASE_URL_ORDERS DATABASE_URL_PAYMENTS_V=$DATABASE_URL_PAYMENTS \
		KAFKA_BROKERS_V=$KAFKA_BROKERS AMQP_URL_V=$AMQP_URL STACK_SKIP_BUILD=1 services_up
	if prometheus_pid >/dev/null; then STACK_PROMETHEUS=1 prometheus_up; fi
}

# Stops and starts the broker named by BROKER (default kafka), keeping its data: the fault the
# end-to-end suite injects mid-stream. Only our own local broker, never an external one.
cmd_restart_broker() {
	local t
	t=$(clock)
	mkdir -p "$LOGS" "$PIDS"
	case ${BROKER:-kafka} in
	kafka)
		if kafka_cluster_any_running; then
			kafka_cluster_restart
		else
			kafka_pid >/dev/null || die "restart-broker: no local Kafka of ours runs"
			kafka_down
			kafka_up
		fi
		;;
	rabbitmq)
		if rabbitmq_cluster_any_running; then
			rabbitmq_cluster_restart
		else
			rabbitmq_pid >/dev/null || die "restart-broker: no local RabbitMQ of ours runs"
			rabbitmq_down
			rabbitmq_up
		fi
		;;
	*) die "restart-broker: unknown BROKER=$BROKER" ;;
	esac
	log "${BROKER:-kafka} restarted in $(since "$t")s"
}

# cmd_broker_node COMMAND N — a fault on node N of the three-node cluster of BROKER (kafka).
cmd_broker_node() {
	local cmd=$1 k=$2 broker=${BROKER:-kafka} t
	t=$(clock)
	case $broker:$cmd in
	kafka:kill-broker-node) kafka_node_kill "$k" ;;
	kafka:start-broker-node) kafka_node_start "$k" ;;
	rabbitmq:kill-broker-node) rabbitmq_node_kill "$k" ;;
	rabbitmq:start-broker-node) rabbitmq_node_start "$k" ;;
	kafka:partition-broker-node | rabbitmq:partition-broker-node) netfault_partition "$broker" "$k" ;;
	kafka:heal-broker-node | rabbitmq:heal-broker-node) netfault_heal "$broker" "$k" ;;
	*) die "$cmd: unknown BROKER=$broker" ;;
	esac
	log "$cmd $k ($broker) done in $(since "$t")s"
}

# browser_tests — frontend/'s Chromium suite against the running stack; sets UI_RESULT.
browser_tests() {
	local t rc=0
	if [[ ! -f $ROOT/frontend/package.json ]]; then
		warn "frontend/package.json not found: browser tests skipped"
		UI_RESULT=skipped
		return 0
	fi
	log "browser tests: npm ci && npm test (frontend/)"
	t=$(clock)
	(cd "$ROOT/frontend" && npm ci --no-audit --no-fund && npm test) || rc=$?
	UI_RESULT="$( ((rc == 0)) && echo passed || echo "FAILED (exit $rc)") in $(since "$t")s"
	return "$rc"
}

# loadgen_smoke — the load tool and the stream probe for a few seconds against the running stack
# (no pgbench, no timing asserted: it proves the tools run); sets LOAD_RESULT.
loadgen_smoke() {
	local t rc=0
	t=$(clock)
	(cd "$ROOT" && cargo run -q -p loadgen -- --clients 4 --orders 40 --users 4 \
		--pgbench-seconds 0 --settle-timeout-s 60 &&
		cargo run -q -p loadgen --bin stream-probe -- --orders 5 --idle-streams 10 --window-s 1) || rc=$?
	LOAD_RESULT="$( ((rc == 0)) && echo passed || echo "FAILED (exit $rc)") in $(since "$t")s"
	((rc == 0)) || failure_context
	return "$rc"
}

# api_fuzz — schemathesis (dev/fuzz/requirements.txt, a venv in dev/.cache/schemathesis) against
# the gateway's OpenAPI document with every check: no server error, no response the document does
# not describe, no schema-valid request refused, 405 with Allow for undeclared methods; the order
# stream is left out (a response that never ends; crates/orders/tests/api/stream.rs covers it). Bounded:
# 100 examples per operation, 10 s per request. With AUTH=jwt, with a bearer token. Sets FUZZ_RESULT.
api_fuzz() {
	local t rc=0 venv=$ROOT/dev/.cache/schemathesis req=$ROOT/dev/fuzz/requirements.txt
	t=$(clock)
	if ! cmp -s "$req" "$venv/requirements.txt" 2>/dev/null; then
		log "api fuzz: installing $(tr '\n' ' ' <"$req")into $venv"
		rm -rf "$venv"
		if ! python3 -m venv "$venv"; then # Debian's python3 needs python3-venv for ensurepip
			rm -rf "$venv"
			as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-venv
			python3 -m venv "$venv"
		fi
		"$venv/bin/pip" install -q -r "$req" && cp "$req" "$venv/requirements.txt" || rc=$?
	fi
	# With AUTH=jwt the requests carry an operator's token (one fixed user, payments:topup), so
	# they pass the gateway and the services' own validation is what gets fuzzed.
	local auth=()
	if ((rc == 0)) && auth_on; then
		local token
		token=$("$BIN_DIR/devauth" token 00000000-0000-4000-8000-00000000f022 --scope payments:topup) || rc=$?
		auth=(--header "Authorization: Bearer ${token:-}")
	fi
	if ((rc == 0)); then
		# Below the per-subject limit (50/s by default): every request has the one token's subject.
		"$venv/bin/st" run "$GATEWAY_URL/swagger/openapi.json" --url "$GATEWAY_URL" --checks all "${auth[@]}" --rate-limit 40/s \
			--exclude-path /orders/stream --max-examples 100 --request-timeout 10 --no-color >"$LOGS/schemathesis.log" 2>&1 || rc=$?
		grep -E 'generated|failures? in|^  ❌' "$LOGS/schemathesis.log" || true
		((rc == 0)) || tail -n 80 "$LOGS/schemathesis.log"
	fi
	FUZZ_RESULT="$( ((rc == 0)) && echo passed || echo "FAILED (exit $rc), see $LOGS/schemathesis.log") in $(since "$t")s"
	return "$rc"
}

# fault_round BROKER — the short fault-injection round (crates/faults, docs/RELIABILITY.md) on
# BROKER: its own orders x2, payments x2 and gateway on fresh databases and topics, 2,000 orders,
# 12 faults. It restarts the stack's broker and PostgreSQL, so afterwards the stack's own services
# must answer /health 200 again (they reconnect). Report: .stack/logs/faults-BROKER.json.
# Sets FAULT_RESULT.
fault_round() {
	local t rc=0 name deadline
	t=$(clock)
	(cd "$ROOT" && BROKER=$1 cargo run -q -p faults -- --bin-dir "$BIN_DIR" --orders 2000 \
		--faults 12 --report "$LOGS/faults-$1.json") || rc=$?
	deadline=$((SECONDS + 90))
	for name in "${SERVICES[@]}"; do
		until http_ok "http://127.0.0.1:$(service_port "$name")/health"; do
			if ((SECONDS >= deadline)); then
				warn "$name of the stack is not healthy 90 s after the fault round"
				rc=1
				break
			fi
			sleep 0.5
		done
	done
	FAULT_RESULT="$( ((rc == 0)) && echo passed || echo "FAILED (exit $rc)") in $(since "$t")s"
	return "$rc"
}

# failure_context — after a failed phase, what the stack's services last warned about and where
# their pipelines stand (CI keeps this output, not .stack/logs).
failure_context() {
	local name f
	for name in "${SERVICES[@]}"; do
		f=$LOGS/$name.log
		[[ -f $f ]] || continue
		warn "$name: its last WARN/ERROR lines ($f)"
		grep -E '"level":"(WARN|ERROR)"|panicked' "$f" | tail -n 15 | cut -c1-400 >&2 || true
		warn "$name: its backlog (/metrics)"
		curl -s -m 3 "http://127.0.0.1:$(service_port "$name")/metrics" |
			grep -E '^(outbox_pending_rows|outbox_oldest_pending_age_seconds|consumer_lag_messages|outbox_publish_errors_total|consumer_messages_total)' >&2 || true
	done
}

# cargo_test ARGS... — cargo test from the root, timed; sets CARGO_RESULT.
cargo_test() {
	local t rc=0
	t=$(clock)
	(cd "$ROOT" && cargo test "$@") || rc=$?
	CARGO_RESULT="$( ((rc == 0)) && echo passed || echo "FAILED (exit $rc)") in $(since "$t")s"
	((rc == 0)) || failure_context
	return "$rc"
}

# Every test on Kafka (the contract suite runs against both brokers by itself), then the
# end-to-end and browser suites again with orders and payments restarted on RabbitMQ.
cmd_test() {
	trap test_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	local t_all extra=() rc=0 results=()
	t_all=$(clock)
	auth_choose jwt # the whole run, both brokers: the authenticated path is the one to test
	infra_up 1
	BROKER=kafka services_up
	nginx_up
	# shellcheck source=/dev/null
	. "$ENV_FILE"
	read -r -a extra <<<"${STACK_TEST_ARGS:-}" || true
	log "stack ready in $(since "$t_all")s (broker: kafka, AUTH=$STACK_AUTH); cargo test --workspace ${extra[*]}"
	log "  against TEST_DATABASE_URL=$TEST_DATABASE_URL KAFKA_BROKERS=$KAFKA_BROKERS AMQP_URL=$AMQP_URL GATEWAY_URL=$GATEWAY_URL"
	BROKER=kafka cargo_test --workspace "${extra[@]}" || rc=1
	results+=("cargo test --workspace (services on kafka): $CARGO_RESULT")
	# Every criterion bench built and run once (test mode): they must keep working; no timing.
	cargo_test -p benches --benches || rc=1
	results+=("benches, each once (cargo test -p benches --benches): $CARGO_RESULT")
	BROKER=kafka browser_tests || rc=1
	results+=("browser tests (kafka): $UI_RESULT")
	loadgen_smoke || rc=1
	results+=("load tool smoke (kafka): $LOAD_RESULT")
	api_fuzz || rc=1
	results+=("schemathesis through the gateway: $FUZZ_RESULT")
	fault_round kafka || rc=1
	results+=("fault round (services on kafka): $FAULT_RESULT")

	log "restarting orders and payments with BROKER=rabbitmq"
	BROKER=rabbitmq STACK_SKIP_BUILD=1 services_up
	BROKER=rabbitmq cargo_test -p e2e "${extra[@]}" || rc=1
	results+=("cargo test -p e2e (services on rabbitmq): $CARGO_RESULT")
	BROKER=rabbitmq browser_tests || rc=1
	results+=("browser tests (rabbitmq): $UI_RESULT")
	loadgen_smoke || rc=1
	results+=("load tool smoke (rabbitmq): $LOAD_RESULT")
	fault_round rabbitmq || rc=1
	results+=("fault round (services on rabbitmq): $FAULT_RESULT")

	local r
	for r in "${results[@]}"; do log "$r"; done
	log "test total: $(since "$t_all")s"
	((rc == 0))
}

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

main() {
	local cmd=${1:-help}
	case $cmd in
	up) cmd_up ;;
	down) cmd_down ;;
	status) cmd_status ;;
	logs) cmd_logs ;;
	test) cmd_test ;;
	restart-broker) cmd_restart_broker ;;
	kill-broker-node | start-broker-node | partition-broker-node | heal-broker-node)
		mkdir -p "$LOGS" "$PIDS"
		cmd_broker_node "$cmd" "${2:-}"
		;;
	pg-primary) pg_cluster_primary ;;
	pg-nodes) pg_cluster_table ;;
	kill-pg-node)
		mkdir -p "$LOGS" "$PIDS"
		pg_node_kill "${2:-}"
		;;
	start-pg-node)
		mkdir -p "$LOGS" "$PIDS"
		pg_node_start "${2:-}"
		;;
	scale) cmd_scale ;;
	infra) cmd_infra ;;
	install) cmd_install ;;
	clean) cmd_clean ;;
	help | -h | --help) usage ;;
	*)
		usage >&2
		exit 2
		;;
	esac
}

main "$@"
