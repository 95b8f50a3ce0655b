# shellcheck shell=bash disable=SC2034 # the *_V variables are read by dev/stack.sh
# RabbitMQ (Debian's rabbitmq-server 3.10): a private node rabbit@localhost whose database, logs,
# pid file and config all live in .stack/rabbitmq. Or the external broker of AMQP_URL.
# Sets AMQP_URL_V. Started only on request (STACK_RABBITMQ=1, BROKER=rabbitmq, infra, test).

RMQ_DIR=$STACK/rabbitmq
RMQ_NODENAME=${STACK_RABBITMQ_NODENAME:-rabbit@localhost}
RMQ_PIDFILE=$RMQ_DIR/rabbit.pid
RMQ_TIMEOUT=${RABBITMQ_TIMEOUT:-60}
RMQ_LOG=$RMQ_DIR/log/$RMQ_NODENAME.log

# Our beam knows its private directories from its environment (RABBITMQ_MNESIA_BASE).
rabbitmq_pid() { running_pid "$RMQ_PIDFILE" "RABBITMQ_MNESIA_BASE=$RMQ_DIR/mnesia"; }
amqp_url_for() { echo "amqp://guest:guest@127.0.0.1:$1/%2f"; }

# rmq TOOL ARGS... — run rabbitmq-server / rabbitmqctl with our private environment, bounded in
# time. As root, Debian's wrapper in /usr/sbin switches to the rabbitmq user (keeping RABBITMQ_*).
rmq() {
	local tool=$1
	shift
	(
		export RABBITMQ_NODENAME=$RMQ_NODENAME
		export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
		export RABBITMQ_MNESIA_BASE=$RMQ_DIR/mnesia
		export RABBITMQ_LOG_BASE=$RMQ_DIR/log
		export RABBITMQ_PID_FILE=$RMQ_PIDFILE
		export RABBITMQ_ENABLED_PLUGINS_FILE=$RMQ_DIR/enabled_plugins
		export RABBITMQ_CONFIG_FILE=$RMQ_DIR/rabbitmq.conf
		export RABBITMQ_ADVANCED_CONFIG_FILE=$RMQ_DIR/advanced.config
		export RABBITMQ_CONF_ENV_FILE=$RMQ_DIR/rabbitmq-env.conf
		[[ -n ${RMQ_PORT:-} ]] && export RABBITMQ_NODE_PORT=$RMQ_PORT RABBITMQ_DIST_PORT=$RMQ_DIST_PORT
		if [[ $EUID -eq 0 ]]; then
			exec timeout "${RMQ_CMD_TIMEOUT:-60}" "/usr/sbin/$tool" "$@"
		else
			exec timeout "${RMQ_CMD_TIMEOUT:-60}" "/usr/lib/rabbitmq/bin/$tool" "$@"
		fi
	)
}

# amqp_wants_local VALUE — is this AMQP_URL just the address of our own local node? (see
# kafka_wants_local: true when it is 127.0.0.1/localhost and ours runs there or nothing listens).
amqp_wants_local() {
	local v=$1 hp pid
	read -r -a hp <<<"$(host_port_of "$v" 5672)"
	[[ ${hp[0]} == 127.0.0.1 || ${hp[0]} == localhost ]] || return 1
	if pid=$(rabbitmq_pid) && [[ ${hp[1]} == "$(state_get RABBITMQ_PORT)" ]]; then return 0; fi
	if port_in_use "${hp[1]}"; then return 1; fi
	RABBITMQ_PORT=${hp[1]}
	return 0
}

rabbitmq_ready() {
	tcp_open 127.0.0.1 "$1" && rmq rabbitmqctl -q -n "$RMQ_NODENAME" status >/dev/null 2>&1
}

# rabbitmq_url — AMQP_URL_V without starting anything (when RabbitMQ is not requested).
rabbitmq_url() {
	if [[ -n $EXT_AMQP_URL ]]; then
		AMQP_URL_V=$EXT_AMQP_URL
	elif rabbitmq_pid >/dev/null; then
		AMQP_URL_V=$(amqp_url_for "$(state_get RABBITMQ_PORT)")
	else
		AMQP_URL_V=$(amqp_url_for "${RABBITMQ_PORT:-5672}")
	fi
}

# rabbitmq_start boots the node (or settles on an external/running one) without waiting;
# rabbitmq_wait waits for readiness.
RMQ_PENDING=0
rabbitmq_up() {
	rabbitmq_start
	rabbitmq_wait
}

rabbitmq_start() {
	local pid port dist hp
	if [[ -n $EXT_AMQP_URL ]] && ! amqp_wants_local "$EXT_AMQP_URL"; then
		AMQP_URL_V=$EXT_AMQP_URL
		read -r -a hp <<<"$(host_port_of "$EXT_AMQP_URL" 5672)"
		tcp_open "${hp[0]}" "${hp[1]}" ||
			die "rabbitmq: AMQP_URL=$(mask_url "$EXT_AMQP_URL") does not answer on ${hp[0]}:${hp[1]}"
		log "rabbitmq: using the external broker of AMQP_URL ($(mask_url "$EXT_AMQP_URL")), not starting one"
		return 0
	fi
	if pid=$(rabbitmq_pid); then
		port=$(state_get RABBITMQ_PORT)
		log "rabbitmq already running (pid $pid, 127.0.0.1:$port)"
		AMQP_URL_V=$(amqp_url_for "$port")
		return 0
	fi
	[[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] || die "rabbitmq: rabbitmq-server not installed (run: dev/stack.sh install)"
	port=$(pick_port rabbitmq "${RABBITMQ_PORT:-5672}" 15872 "${RABBITMQ_PORT:+1}") || exit 1
	# Erlang distribution port: AMQP port + 20000 by default; kept free and below the ephemeral range.
	dist=$((port + 20000))
	if ((dist >= 32768)) || port_in_use "$dist"; then
		dist=$(pick_port rabbitmq-dist 25672 25772 0) || exit 1
	fi
	if epmd -names 2>/dev/null | grep -q "^name ${RMQ_NODENAME%@*} "; then
		die "rabbitmq: a node named $RMQ_NODENAME runs already (not ours); set STACK_RABBITMQ_NODENAME or AMQP_URL"
	fi

	mkdir -p "$RMQ_DIR/mnesia" "$RMQ_DIR/log"
	# No plugin: bus::rabbitmq routes keys itself (and no management UI port is opened).
	echo '[].' >"$RMQ_DIR/enabled_plugins"
	cat >"$RMQ_DIR/rabbitmq.conf" <<'EOF'
# Written by dev/stack.sh. Listener address/port come from RABBITMQ_NODE_IP_ADDRESS/_PORT.
log.file.level = info
EOF
	echo '# Written by dev/stack.sh: keeps /etc/rabbitmq/rabbitmq-env.conf out of our node.' >"$RMQ_DIR/rabbitmq-env.conf"
	[[ $EUID -eq 0 ]] && chown -R rabbitmq:rabbitmq "$RMQ_DIR"
	[[ -f $RMQ_LOG ]] && mv -f "$RMQ_LOG" "$RMQ_LOG.1"
	ln -sfn "$RMQ_LOG" "$LOGS/rabbitmq.log"
	rm -f "$RMQ_PIDFILE"

	# epmd outlives the node: remember whether it is ours to stop later (even if we fail early).
	if epmd_pid >/dev/null; then rm -f "$PIDS/epmd.ours"; else touch "$PIDS/epmd.ours"; fi
	RMQ_T0=$(clock)
	RMQ_PORT=$port RMQ_DIST_PORT=$dist rmq rabbitmq-server -detached \
		</dev/null >"$LOGS/rabbitmq-startup.log" 2>&1 ||
		fail rabbitmq "$LOGS/rabbitmq-startup.log" "rabbitmq-server -detached failed"
	state_set RABBITMQ_PORT "$port"
	started rabbitmq
	RMQ_PENDING=1
	AMQP_URL_V=$(amqp_url_for "$port")
}

rabbitmq_wait() {
	((RMQ_PENDING)) || return 0
	local pid port
	port=$(state_get RABBITMQ_PORT)
	wait_for rabbitmq "$RMQ_TIMEOUT" "pidfile:$RMQ_PIDFILE" "$RMQ_LOG" rabbitmq_ready "$port"
	pid=$(rabbitmq_pid) || fail rabbitmq "$RMQ_LOG" "no beam process behind $RMQ_PIDFILE"
	log "rabbitmq ready in $(since "$RMQ_T0")s (pid $pid, 127.0.0.1:$port)"
	RMQ_PENDING=0
}

# The live epmd of this machine (pgrep also lists zombies, which must not count).
epmd_pid() {
	local pid
	for pid in $(pgrep -x epmd || true); do
		if alive "$pid"; then
			echo "$pid"
			return 0
		fi
	done
	return 1
}

# Stop the epmd that our node started (none ran before it), once no node is registered with it.
epmd_down() {
	[[ -f $PIDS/epmd.ours ]] || return 0
	local pid
	pid=$(epmd_pid) || true
	if [[ -z $pid ]]; then
		rm -f "$PIDS/epmd.ours"
		return 0
	fi
	if epmd -names 2>/dev/null | grep -q '^name '; then
		warn "epmd (pid $pid) still has registered nodes: left running"
		return 0
	fi
	stop_pid epmd "$pid" 5
	rm -f "$PIDS/epmd.ours"
}

rabbitmq_down() {
	local pid t
	if pid=$(rabbitmq_pid); then
		t=$(clock)
		RMQ_CMD_TIMEOUT=$STOP_TIMEOUT rmq rabbitmqctl -q -n "$RMQ_NODENAME" stop "$RMQ_PIDFILE" \
			</dev/null >>"$LOGS/rabbitmq-startup.log" 2>&1 || warn "rabbitmq: rabbitmqctl stop failed"
		if alive "$pid"; then
			stop_pid rabbitmq "$pid" 10
		else
			log "rabbitmq stopped in $(since "$t")s"
		fi
	fi
	epmd_down
}

rabbitmq_status() {
	local pid port
	if pid=$(rabbitmq_pid); then
		port=$(state_get RABBITMQ_PORT)
		if tcp_open 127.0.0.1 "$port"; then
			status_line rabbitmq running "$pid" "127.0.0.1:$port"
		else
			status_line rabbitmq starting "$pid" "127.0.0.1:$port (AMQP port closed)"
		fi
	else
		status_line rabbitmq stopped - "-"
	fi
}
