# shellcheck shell=bash disable=SC2034 # the *_V variables are read by dev/stack.sh
# Kafka 4.3.1, KRaft combined broker+controller, single node, from its Maven Central jars
# (dev/kafka/pom.xml -> dev/.cache/kafka-libs). State in .stack/kafka, log in .stack/logs/kafka.log.
# Or the external cluster of KAFKA_BROKERS. Sets KAFKA_BROKERS_V.
#
# KAFKA_NODES=3: a local three-node cluster instead — each node a combined broker+controller,
# the three a static controller quorum (controller.quorum.voters), node k with its config and log
# dir in .stack/kafka/node-k, its log in .stack/logs/kafka-k.log, its pid in .stack/pids/kafka-k.pid,
# broker port KAFKA_PORT + 10(k-1) and controller port KAFKA_CONTROLLER_PORT + 10(k-1)
# (9092/9102/9112 and 9093/9103/9113 by default). Replication factor 3 and min ISR 2 for every
# topic (internal ones included); the services started by the stack get KAFKA_REPLICATION=3 and
# KAFKA_MIN_INSYNC_REPLICAS=2 (exported here, and written to .stack/env). Sets
# KAFKA_REPLICATION_V / KAFKA_MIN_INSYNC_V (empty for one node). The node count is kept in
# .stack/state (KAFKA_NODES), so later commands (status, down, restart-broker) know it.

KAFKA_DIR=$STACK/kafka
KAFKA_DATA=$KAFKA_DIR/data
KAFKA_CONF=$KAFKA_DIR/server.properties
KAFKA_POM=$ROOT/dev/kafka/pom.xml
KAFKA_LIBS=$ROOT/dev/.cache/kafka-libs
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xmx512m -Xms512m}
KAFKA_TIMEOUT=${KAFKA_TIMEOUT:-90}
# The three-node cluster: ports of node k are the base ports + KAFKA_NODE_PORT_STEP * (k-1); three
# JVMs on a small machine get a smaller heap each (KAFKA_NODE_HEAP_OPTS).
KAFKA_CLUSTER_NODES=3
KAFKA_NODE_PORT_STEP=10
KAFKA_NODE_HEAP_OPTS=${KAFKA_NODE_HEAP_OPTS:--Xmx384m -Xms384m}
KAFKA_REPLICATION_V=""
KAFKA_MIN_INSYNC_V=""

kafka_pid() { running_pid "$PIDS/kafka.pid" "$KAFKA_CONF"; }

# kafka_libs — fill dev/.cache/kafka-libs from the pom; skipped while the pom is unchanged.
kafka_libs() {
	local sum t
	sum=$(sha256sum "$KAFKA_POM" | cut -d' ' -f1)
	if [[ -f $KAFKA_LIBS/.pom.sha256 && $(<"$KAFKA_LIBS/.pom.sha256") == "$sum" ]] &&
		compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null; then
		return 0
	fi
	command -v mvn >/dev/null 2>&1 || die "kafka: mvn not found (run: dev/stack.sh install)"
	log "kafka: resolving jars with Maven (dev/kafka/pom.xml) ..."
	t=$(clock)
	rm -rf "$KAFKA_LIBS.tmp"
	mvn -B -q -Dstyle.color=never -f "$KAFKA_POM" dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS.tmp" </dev/null >"$LOGS/maven.log" 2>&1 ||
		fail kafka "$LOGS/maven.log" "mvn dependency:copy-dependencies failed"
	rm -rf "$KAFKA_LIBS"
	mv "$KAFKA_LIBS.tmp" "$KAFKA_LIBS"
	echo "$sum" >"$KAFKA_LIBS/.pom.sha256"
	log "kafka: $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars in dev/.cache/kafka-libs in $(since "$t")s"
}

# Kafka 4 brokers need Java 17+.
java_ok() {
	command -v java >/dev/null 2>&1 || return 1
	local v
	v=$(java -version 2>&1 | sed -n 's/.* version "\([0-9]*\).*/\1/p' | head -n1)
	[[ -n $v ]] && ((v >= 17))
}

# kafka_wants_local VALUE — is this KAFKA_BROKERS just the address of our own local broker
# (e.g. left over from a sourced .stack/env)? True when it is 127.0.0.1/localhost and either our
# broker already runs there or nothing listens there yet (then ours is started on that port).
kafka_wants_local() {
	local v=$1 p pid
	# Our three-node cluster's list (from a sourced .stack/env): running, or its ports all free.
	if [[ $v == *,* ]]; then
		[[ $(state_get KAFKA_NODES) == "$KAFKA_CLUSTER_NODES" && $v == "$(kafka_cluster_brokers)" ]] || return 1
		kafka_cluster_any_running && return 0
		for p in $(kafka_node_ports broker); do port_in_use "$p" && return 1; done
		KAFKA_NODES=$KAFKA_CLUSTER_NODES
		return 0
	fi
	[[ $v =~ ^(127\.0\.0\.1|localhost):([0-9]+)$ ]] || return 1
	p=${BASH_REMATCH[2]}
	if pid=$(kafka_pid) && [[ $p == "$(state_get KAFKA_PORT)" ]]; then return 0; fi
	if port_in_use "$p"; then return 1; fi
	KAFKA_PORT=$p
	return 0
}

kafka_write_config() {
	local port=$1 cport=$2
	mkdir -p "$KAFKA_DIR"
	cat >"$KAFKA_CONF" <<EOF
# Written by dev/stack.sh: single-node KRaft (combined broker + controller), local only.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DATA
num.partitions=3
# One broker: internal topics cannot have more than one replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Consumers join at once (tests would otherwise wait 3 s per new group).
group.initial.rebalance.delay.ms=0
# The services create their topics themselves; auto-creation stays on as a convenience.
auto.create.topics.enable=true
EOF
	kafka_write_log4j
}

# kafka_write_log4j — the brokers' and the storage tool's logging configuration, in .stack/kafka.
kafka_write_log4j() {
	cat >"$KAFKA_DIR/log4j2.properties" <<'EOF'
# Written by dev/stack.sh: everything to stdout, which dev/stack.sh sends to .stack/logs/kafka.log.
status = warn
name = stack-kafka
# Keep logging until the JVM exits, so the end of a controlled shutdown reaches the log.
shutdownHook = disable
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
# The full config dumps (hundreds of lines per client) and per-partition state changes are noise.
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
EOF
	cat >"$KAFKA_DIR/log4j2-tools.properties" <<'EOF'
status = warn
appender.stderr.type = Console
appender.stderr.name = STDERR
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = STDERR
EOF
}

# kafka_cluster_id — 16 random bytes in URL-safe base64 without padding (what random-uuid
# prints). One in 64 starts with '-': StorageTool must get it as --cluster-id=ID, since
# `-t -abc…` reads as a missing argument (a CI run failed so).
kafka_cluster_id() { head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '='; }

# kafka_format PORT CPORT — format the storage once (standalone dynamic quorum). The controller
# endpoint is recorded at format time: when it has to change, the local data is re-formatted.
kafka_format() {
	local cport=$2 cid t
	if [[ -f $KAFKA_DATA/meta.properties ]]; then
		[[ $(cat "$KAFKA_DIR/formatted-controller-port" 2>/dev/null) == "$cport" ]] && return 0
		warn "kafka: controller port changed to $cport: re-formatting the local storage (topics are lost)"
		rm -rf "$KAFKA_DATA"
	fi
	cid=$(kafka_cluster_id)
	t=$(clock)
	java -cp "$KAFKA_LIBS/*" -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2-tools.properties" \
		kafka.tools.StorageTool format --standalone --cluster-id="$cid" -c "$KAFKA_CONF" \
		</dev/null >"$LOGS/kafka-format.log" 2>&1 ||
		fail kafka "$LOGS/kafka-format.log" "kafka.tools.StorageTool format failed"
	echo "$cport" >"$KAFKA_DIR/formatted-controller-port"
	log "kafka: storage formatted in $(since "$t")s (cluster id $cid)"
}

kafka_ready() { tcp_open 127.0.0.1 "$1" && grep -q 'Kafka Server started' "$LOGS/kafka.log"; }

# kafka_start spawns the broker (or settles on an external/running one) without waiting;
# kafka_wait waits for readiness. Split so that RabbitMQ can boot meanwhile.
KAFKA_PENDING_PID=""
kafka_up() {
	kafka_start
	kafka_wait
}

kafka_start() {
	local pid port cport host_port
	if [[ -n $EXT_KAFKA_BROKERS ]] && ! kafka_wants_local "$EXT_KAFKA_BROKERS"; then
		KAFKA_BROKERS_V=$EXT_KAFKA_BROKERS
		read -r -a host_port <<<"$(host_port_of "$EXT_KAFKA_BROKERS" 9092)"
		tcp_open "${host_port[0]}" "${host_port[1]}" ||
			die "kafka: KAFKA_BROKERS=$EXT_KAFKA_BROKERS does not answer on ${host_port[0]}:${host_port[1]}"
		log "kafka: using the external brokers of KAFKA_BROKERS ($EXT_KAFKA_BROKERS), not starting one"
		return 0
	fi
	kafka_nodes_wanted
	if [[ $KAFKA_NODES_WANTED == "$KAFKA_CLUSTER_NODES" ]]; then
		kafka_cluster_start
		return 0
	fi
	if pid=$(kafka_pid); then
		port=$(state_get KAFKA_PORT)
		log "kafka already running (pid $pid, 127.0.0.1:$port)"
		KAFKA_BROKERS_V="127.0.0.1:$port"
		return 0
	fi
	java_ok || die "kafka: Java 17+ not found (run: dev/stack.sh install)"
	kafka_libs
	port=$(pick_port kafka "${KAFKA_PORT:-9092}" 19092 "${KAFKA_PORT:+1}") || exit 1
	cport=$(pick_port kafka-controller "${KAFKA_CONTROLLER_PORT:-9093}" 19192 "${KAFKA_CONTROLLER_PORT:+1}") || exit 1
	[[ $port != "$cport" ]] || die "kafka: broker and controller ports are both $port"
	kafka_write_config "$port" "$cport"
	kafka_format "$port" "$cport"
	rotate_log kafka
	KAFKA_T0=$(clock)
	# shellcheck disable=SC2086 # KAFKA_HEAP_OPTS holds several JVM options
	nohup java $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" \
		-cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_CONF" </dev/null >>"$LOGS/kafka.log" 2>&1 &
	pid=$!
	echo "$pid" >"$PIDS/kafka.pid"
	state_set KAFKA_PORT "$port"
	state_set KAFKA_NODES 1
	started kafka
	KAFKA_PENDING_PID=$pid
	KAFKA_BROKERS_V="127.0.0.1:$port"
}

kafka_wait() {
	kafka_cluster_wait
	[[ -n $KAFKA_PENDING_PID ]] || return 0
	local pid=$KAFKA_PENDING_PID port
	port=$(state_get KAFKA_PORT)
	wait_for kafka "$KAFKA_TIMEOUT" "$pid" "$LOGS/kafka.log" kafka_ready "$port"
	log "kafka ready in $(since "$KAFKA_T0")s (pid $pid, 127.0.0.1:$port)"
	KAFKA_PENDING_PID=""
}

kafka_down() {
	local pid
	kafka_cluster_down
	pid=$(kafka_pid) || return 0
	# SIGTERM = controlled shutdown; a single node needs a few seconds.
	stop_pid kafka "$pid" "$STOP_TIMEOUT"
	rm -f "$PIDS/kafka.pid"
}

kafka_status() {
	local pid port
	if [[ $(state_get KAFKA_NODES) == "$KAFKA_CLUSTER_NODES" ]] && ! kafka_pid >/dev/null; then
		kafka_cluster_status
	elif pid=$(kafka_pid); then
		port=$(state_get KAFKA_PORT)
		if kafka_ready "$port"; then
			status_line kafka running "$pid" "127.0.0.1:$port"
		else
			status_line kafka starting "$pid" "127.0.0.1:$port (not ready)"
		fi
	else
		status_line kafka stopped - "-"
	fi
}

# ---------------------------------------------------------------- three-node cluster (KAFKA_NODES=3)

# kafka_nodes_wanted — sets KAFKA_NODES_WANTED: KAFKA_NODES when set (1 or 3), else the count of
# what of ours runs (3 when our cluster does, else 1). Refuses to mix: one layout at a time.
KAFKA_NODES_WANTED=1
kafka_nodes_wanted() {
	KAFKA_NODES_WANTED=$(layout_nodes kafka KAFKA_NODES "${KAFKA_NODES:-}" "$KAFKA_CLUSTER_NODES" kafka_cluster_any_running kafka_pid)
}

kafka_node_dir() { echo "$KAFKA_DIR/node-$1"; }
kafka_node_conf() { echo "$KAFKA_DIR/node-$1/server.properties"; }
kafka_node_pid() { running_pid "$PIDS/kafka-$1.pid" "$(kafka_node_conf "$1")"; }

# kafka_node_port broker|controller K — node K's port, from the base ports in .stack/state.
kafka_node_port() {
	local base
	if [[ $1 == broker ]]; then base=$(state_get KAFKA_PORT); else base=$(state_get KAFKA_CONTROLLER_PORT); fi
	echo $((base + KAFKA_NODE_PORT_STEP * ($2 - 1)))
}

kafka_node_ports() {
	local k
	for ((k = 1; k <= KAFKA_CLUSTER_NODES; k++)); do kafka_node_port "$1" "$k"; done
}

# kafka_cluster_brokers — the bootstrap list of all nodes (KAFKA_BROKERS).
kafka_cluster_brokers() {
	local p list=()
	for p in $(kafka_node_ports broker); do list+=("127.0.0.1:$p"); done
	local IFS=,
	echo "${list[*]}"
}

# kafka_cluster_voters — controller.quorum.voters: id@host:controller-port of every node.
kafka_cluster_voters() {
	local k list=()
	for ((k = 1; k <= KAFKA_CLUSTER_NODES; k++)); do list+=("$k@127.0.0.1:$(kafka_node_port controller "$k")"); done
	local IFS=,
	echo "${list[*]}"
}

kafka_cluster_any_running() {
	local k
	for ((k = 1; k <= KAFKA_CLUSTER_NODES; k++)); do kafka_node_pid "$k" >/dev/null && return 0; done
	return 1
}

# kafka_node_check K — K names a node of our cluster (the subcommands take a node number).
kafka_node_check() {
	[[ $(state_get KAFKA_NODES) == "$KAFKA_CLUSTER_NODES" ]] ||
		die "kafka: no $KAFKA_CLUSTER_NODES-node cluster of ours (start it with KAFKA_NODES=$KAFKA_CLUSTER_NODES)"
	[[ ${1:-} =~ ^[1-9]$ ]] && (($1 <= KAFKA_CLUSTER_NODES)) || die "kafka: node must be 1..$KAFKA_CLUSTER_NODES (got ${1:-nothing})"
}

# kafka_write_node_config K VOTERS — node K's server.properties: broker and controller in one
# process, a voter of the static quorum VOTERS; replication 3 / min ISR 2 everywhere.
kafka_write_node_config() {
	local k=$1 voters=$2 port cport
	port=$(kafka_node_port broker "$k")
	cport=$(kafka_node_port controller "$k")
	mkdir -p "$(kafka_node_dir "$k")"
	cat >"$(kafka_node_conf "$k")" <<CONF
# Written by dev/stack.sh: node $k of a local three-node KRaft cluster (combined broker +
# controller, static quorum), local only.
process.roles=broker,controller
node.id=$k
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$(kafka_node_dir "$k")/data
num.partitions=3
# Every partition on all three nodes; an acks=all write is acknowledged once two have it, so one
# node may die without losing an acknowledged message or stopping writes.
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
# Consumers join at once (tests would otherwise wait 3 s per new group).
group.initial.rebalance.delay.ms=0
# The services create their topics themselves; auto-creation stays on as a convenience.
auto.create.topics.enable=true
CONF
}

# kafka_cluster_format VOTERS — format the three nodes' storage with one cluster id, once. The
# quorum is recorded at format time: when it changes (other ports), the local data is re-formatted.
kafka_cluster_format() {
	local voters=$1 cid t k formatted=1 pids=()
	for ((k = 1; k <= KAFKA_CLUSTER_NODES; k++)); do
		[[ -f $(kafka_node_dir "$k")/data/meta.properties ]] || formatted=0
	done
	if ((formatted)); then
		[[ $(cat "$KAFKA_DIR/formatted-voters" 2>/dev/null) == "$voters" ]] && return 0
		warn "kafka: controller quorum changed to $voters: re-formatting the cluster's storage (topics are lost)"
	fi
	for ((k = 1; k <= KAFKA_CLUSTER_NODES; k++)); do rm -rf "$(kafka_node_dir "$k")/data"; done
	cid=$(kafka_cluster_id)
	t=$(clock)
	for ((k = 1; k <= KAFKA_CLUSTER_NODES; k++)); do
		java -cp "$KAFKA_LIBS/*" -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2-tools.properties" \
			kafka.tools.StorageTool format --cluster-id="$cid" -c "$(kafka_node_conf "$k")" \
			</dev/null >"$LOGS/kafka-$k-format.log" 2>&1 &
		pids+=($!)
	done
	for ((k = 1; k <= KAFKA_CLUSTER_NODES; k++)); do
		wait "${pids[$((k - 1))]}" ||
			fail "kafka-$k" "$LOGS/kafka-$k-format.log" "kafka.tools.StorageTool format failed"
	done
	echo "$voters" >"$KAFKA_DIR/formatted-voters"
	log "kafka: $KAFKA_CLUSTER_NODES nodes' storage formatted in $(since "$t")s (cluster id $cid)"
}

kafka_node_ready() { tcp_open 127.0.0.1 "$(kafka_node_port broker "$1")" && grep -q 'Kafka Server started' "$LOGS/kafka-$1.log"; }

# kafka_node_spawn K — start node K (configured and formatted) without waiting.
KAFKA_PENDING_NODES=()
declare -A KAFKA_NODE_T0=()
kafka_node_spawn() {
	local k=$1
	rotate_log "kafka-$k"
	KAFKA_NODE_T0[$k]=$(clock)
	# shellcheck disable=SC2086 # KAFKA_NODE_HEAP_OPTS holds several JVM options
	nohup java $KAFKA_NODE_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" \
		-cp "$KAFKA_LIBS/*" kafka.Kafka "$(kafka_node_conf "$k")" </dev/null >>"$LOGS/kafka-$k.log" 2>&1 &
	echo "$!" >"$PIDS/kafka-$k.pid"
	KAFKA_PENDING_NODES+=("$k")
}

# kafka_cluster_start — the three nodes (those not running yet), without waiting.
kafka_cluster_start() {
	local k port cport p all voters running=0
	for ((k = 1; k <= KAFKA_CLUSTER_NODES; k++)); do kafka_node_pid "$k" >/dev/null && running=$((running + 1)); done
	if ((running == 0)); then
		java_ok || die "kafka: Java 17+ not found (run: dev/stack.sh install)"
		kafka_libs
		port=$(pick_port kafka "${KAFKA_PORT:-9092}" 19092 "${KAFKA_PORT:+1}") || exit 1
		cport=$(pick_port kafka-controller "${KAFKA_CONTROLLER_PORT:-9093}" 19192 "${KAFKA_CONTROLLER_PORT:+1}") || exit 1
		state_set KAFKA_PORT "$port"
		state_set KAFKA_CONTROLLER_PORT "$cport"
		all=$(kafka_node_ports broker && kafka_node_ports controller)
		[[ $(sort -u <<<"$all" | wc -l) == $((2 * KAFKA_CLUSTER_NODES)) ]] ||
			die "kafka: KAFKA_PORT=$port and KAFKA_CONTROLLER_PORT=$cport give overlapping node ports ($(echo $all)): choose bases that are not a multiple of $KAFKA_NODE_PORT_STEP apart"
		for p in $all; do
			port_in_use "$p" && die "kafka: node port $p is in use by another process (node ports $(echo $all); set KAFKA_PORT / KAFKA_CONTROLLER_PORT)"
		done
	fi
	state_set KAFKA_NODES "$KAFKA_CLUSTER_NODES"
	voters=$(kafka_cluster_voters)
	if ((running == 0)); then
		for ((k = 1; k <= KAFKA_CLUSTER_NODES; k++)); do kafka_write_node_config "$k" "$voters"; done
		kafka_write_log4j
		kafka_cluster_format "$voters"
	fi
	for ((k = 1; k <= KAFKA_CLUSTER_NODES; k++)); do
		if kafka_node_pid "$k" >/dev/null; then
			log "kafka-$k already running (pid $(kafka_node_pid "$k"), 127.0.0.1:$(kafka_node_port broker "$k"))"
		else
			kafka_node_spawn "$k"
		fi
	done
	((${#KAFKA_PENDING_NODES[@]})) && started kafka
	KAFKA_BROKERS_V=$(kafka_cluster_brokers)
	KAFKA_REPLICATION_V=3
	KAFKA_MIN_INSYNC_V=2
	# The services started by this command inherit them (bus::kafka's topic creation).
	export KAFKA_REPLICATION=$KAFKA_REPLICATION_V KAFKA_MIN_INSYNC_REPLICAS=$KAFKA_MIN_INSYNC_V
}

# kafka_cluster_wait — wait until every node spawned by this command is ready.
kafka_cluster_wait() {
	local k
	for k in "${KAFKA_PENDING_NODES[@]}"; do
		wait_for "kafka-$k" "$KAFKA_TIMEOUT" "$(pid_of "$PIDS/kafka-$k.pid")" "$LOGS/kafka-$k.log" kafka_node_ready "$k"
		log "kafka-$k ready in $(since "${KAFKA_NODE_T0[$k]}")s (pid $(pid_of "$PIDS/kafka-$k.pid"), 127.0.0.1:$(kafka_node_port broker "$k"))"
	done
	KAFKA_PENDING_NODES=()
}

# kafka_cluster_down — SIGTERM to every node at once (a node shutting down alone would wait for a
# controller quorum the others already left), then wait for each.
kafka_cluster_down() {
	local k pid pids=()
	for ((k = 1; k <= KAFKA_CLUSTER_NODES; k++)); do
		if pid=$(kafka_node_pid "$k"); then
			kill -TERM "$pid" 2>/dev/null || true
			pids[k]=$pid
		fi
	done
	for k in "${!pids[@]}"; do
		stop_pid "kafka-$k" "${pids[$k]}" "$STOP_TIMEOUT"
		rm -f "$PIDS/kafka-$k.pid"
	done
}

kafka_cluster_status() {
	local k pid addr
	for ((k = 1; k <= KAFKA_CLUSTER_NODES; k++)); do
		addr="127.0.0.1:$(kafka_node_port broker "$k") (controller :$(kafka_node_port controller "$k"))"
		if pid=$(kafka_node_pid "$k"); then
			if kafka_node_ready "$k"; then
				status_line "kafka-$k" running "$pid" "$addr"
			else
				status_line "kafka-$k" starting "$pid" "$addr, not ready"
			fi
		else
			status_line "kafka-$k" stopped - "$addr"
		fi
	done
}

# kafka_node_kill K — SIGKILL of node K (no controlled shutdown): the fault of crates/faults.
kafka_node_kill() {
	local pid
	kafka_node_check "$1"
	pid=$(kafka_node_pid "$1") || die "kafka-$1 is not running"
	kill -KILL "$pid"
	wait_gone "$pid" 10 || die "kafka-$1 (pid $pid) survived SIGKILL"
	rm -f "$PIDS/kafka-$1.pid"
	log "kafka-$1 killed (SIGKILL, pid $pid)"
}

# kafka_node_start K — start node K again (its data kept) and wait until it is ready.
kafka_node_start() {
	kafka_node_check "$1"
	if kafka_node_pid "$1" >/dev/null; then
		log "kafka-$1 already running (pid $(kafka_node_pid "$1"))"
		return 0
	fi
	kafka_node_spawn "$1"
	kafka_cluster_wait
}

# kafka_cluster_restart — a rolling restart: each node stopped (controlled shutdown) and started
# again, the next one only once it is ready, so two of three are up throughout.
kafka_cluster_restart() {
	local k pid
	for ((k = 1; k <= KAFKA_CLUSTER_NODES; k++)); do
		if pid=$(kafka_node_pid "$k"); then stop_pid "kafka-$k" "$pid" "$STOP_TIMEOUT"; fi
		rm -f "$PIDS/kafka-$k.pid"
		kafka_node_spawn "$k"
		kafka_cluster_wait
	done
}
