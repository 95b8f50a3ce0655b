# shellcheck shell=bash disable=SC2034 # the *_V variables are read by dev/stack.sh
# Kafka 4.3.1, KRaft combined broker+controller, single node, from its Maven Central jars
# (dev/kafka/pom.xml -> dev/.cache/kafka-libs). State in .stack/kafka, log in .stack/logs/kafka.log.
# Or the external cluster of KAFKA_BROKERS. Sets KAFKA_BROKERS_V.

KAFKA_DIR=$STACK/kafka
KAFKA_DATA=$KAFKA_DIR/data
KAFKA_CONF=$KAFKA_DIR/server.properties
KAFKA_POM=$ROOT/dev/kafka/pom.xml
KAFKA_LIBS=$ROOT/dev/.cache/kafka-libs
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xmx512m -Xms512m}
KAFKA_TIMEOUT=${KAFKA_TIMEOUT:-90}

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

# kafka_format PORT CPORT — format the storage once (standalone dynamic quorum). The controller
# endpoint is recorded at format time: when it has to change, the local data is re-formatted.
kafka_format() {
	local cport=$2 cid t
	if [[ -f $KAFKA_DATA/meta.properties ]]; then
		[[ $(cat "$KAFKA_DIR/formatted-controller-port" 2>/dev/null) == "$cport" ]] && return 0
		warn "kafka: controller port changed to $cport: re-formatting the local storage (topics are lost)"
		rm -rf "$KAFKA_DATA"
	fi
	# A cluster id is 16 random bytes in URL-safe base64 without padding (what random-uuid prints).
	cid=$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
	t=$(clock)
	java -cp "$KAFKA_LIBS/*" -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2-tools.properties" \
		kafka.tools.StorageTool format --standalone -t "$cid" -c "$KAFKA_CONF" \
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
	started kafka
	KAFKA_PENDING_PID=$pid
	KAFKA_BROKERS_V="127.0.0.1:$port"
}

kafka_wait() {
	[[ -n $KAFKA_PENDING_PID ]] || return 0
	local pid=$KAFKA_PENDING_PID port
	port=$(state_get KAFKA_PORT)
	wait_for kafka "$KAFKA_TIMEOUT" "$pid" "$LOGS/kafka.log" kafka_ready "$port"
	log "kafka ready in $(since "$KAFKA_T0")s (pid $pid, 127.0.0.1:$port)"
	KAFKA_PENDING_PID=""
}

kafka_down() {
	local pid
	pid=$(kafka_pid) || return 0
	# SIGTERM = controlled shutdown; a single node needs a few seconds.
	stop_pid kafka "$pid" "$STOP_TIMEOUT"
	rm -f "$PIDS/kafka.pid"
}

kafka_status() {
	local pid port
	if pid=$(kafka_pid); then
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
