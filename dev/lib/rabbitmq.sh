# shellcheck shell=bash disable=SC2034 # the *_V variables are read by dev/stack.sh
# RabbitMQ (Debian's rabbitmq-server 3.10): a private node rabbit@localhost whose database, logs,
# pid file and config all live in .stack/rabbitmq. Or the external broker of AMQP_URL.
# Sets AMQP_URL_V. Started only on request (STACK_RABBITMQ=1, BROKER=rabbitmq, infra, test).
#
# RABBITMQ_NODES=3: a local three-node cluster instead — node k (1..3) is rabbit-k@localhost with
# its mnesia, logs, pid file and config in .stack/rabbitmq/node-k, its log linked as
# .stack/logs/rabbitmq-k.log, AMQP on RABBITMQ_PORT + 10(k-1) (5672/5682/5692 by default; a busy
# default is replaced like the single node's), its Erlang distribution port picked like the single
# node's. Nodes 2 and 3 join node 1 the first time; afterwards the data in node-k/mnesia makes a
# restarted node rejoin by itself. cluster_partition_handling = pause_minority (a node cut off from
# the other two stops serving: no split brain); the services declare quorum queues themselves.
# AMQP_URL_V lists the three URLs, comma-separated, in node order. The node count and the ports
# are kept in .stack/state (RABBITMQ_NODES, RABBITMQ_PORT_k, RABBITMQ_DIST_PORT_k); one layout
# runs at a time (the single node's data in .stack/rabbitmq/mnesia and the cluster's in node-k
# never mix).

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
rmq() { rmq_in "$RMQ_DIR" "$RMQ_NODENAME" "$@"; }

# rmq_in DIR NODENAME TOOL ARGS... — the same for the node whose files are in DIR (the single
# node's .stack/rabbitmq or a cluster node's .stack/rabbitmq/node-k). RMQ_CTL_ERL_ARGS, when set,
# are extra VM arguments of the CLI tools (the cluster's net_ticktime).
rmq_in() {
	local dir=$1 nodename=$2 tool=$3
	shift 3
	(
		export RABBITMQ_NODENAME=$nodename
		export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
		export RABBITMQ_MNESIA_BASE=$dir/mnesia
		export RABBITMQ_LOG_BASE=$dir/log
		export RABBITMQ_PID_FILE=$dir/rabbit.pid
		export RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins
		export RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf
		export RABBITMQ_ADVANCED_CONFIG_FILE=$dir/advanced.config
		export RABBITMQ_CONF_ENV_FILE=$dir/rabbitmq-env.conf
		[[ -n ${RMQ_PORT:-} ]] && export RABBITMQ_NODE_PORT=$RMQ_PORT RABBITMQ_DIST_PORT=$RMQ_DIST_PORT
		[[ -n ${RMQ_CTL_ERL_ARGS:-} ]] && export RABBITMQ_CTL_ERL_ARGS=$RMQ_CTL_ERL_ARGS
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
	local v=$1 hp pid p
	# Our three-node cluster's list (from a sourced .stack/env): running, or its ports all free.
	if [[ $v == *,* ]]; then
		[[ $(state_get RABBITMQ_NODES) == "$RMQ_CLUSTER_NODES" && $v == "$(rabbitmq_cluster_urls)" ]] || return 1
		rabbitmq_cluster_any_running && return 0
		for p in $(rmq_node_ports); do port_in_use "$p" && return 1; done
		RABBITMQ_NODES=$RMQ_CLUSTER_NODES
		RABBITMQ_PORT=${RABBITMQ_PORT:-$(rmq_node_port 1)}
		return 0
	fi
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
	elif rabbitmq_cluster_any_running; then
		AMQP_URL_V=$(rabbitmq_cluster_urls)
		rabbitmq_cluster_queue_type
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
	rabbitmq_nodes_wanted
	if [[ $RMQ_NODES_WANTED == "$RMQ_CLUSTER_NODES" ]]; then
		rabbitmq_cluster_start
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
	state_set RABBITMQ_NODES 1
	started rabbitmq
	RMQ_PENDING=1
	AMQP_URL_V=$(amqp_url_for "$port")
}

rabbitmq_wait() {
	rabbitmq_cluster_wait
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
	rabbitmq_cluster_down
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
	if [[ $(state_get RABBITMQ_NODES) == "$RMQ_CLUSTER_NODES" ]] && ! rabbitmq_pid >/dev/null; then
		rabbitmq_cluster_status
	elif pid=$(rabbitmq_pid); then
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

# ---------------------------------------------------------------- three-node cluster (RABBITMQ_NODES=3)
RMQ_CLUSTER_NODES=3
RMQ_NODE_PORT_STEP=10
RMQ_CLUSTER_TIMEOUT=${RABBITMQ_TIMEOUT:-120}
# A lost peer is noticed after about net_ticktime (10-12.5 s here) instead of Erlang's default
# 60-75 s: a partition or a killed node shows within seconds. The CLI tools get the same value
# (a node expects traffic on every connection within its own tick time, the CLI's included).
RMQ_NET_TICKTIME=${RABBITMQ_NET_TICKTIME:-10}

rmq_node_dir() { echo "$RMQ_DIR/node-$1"; }
rmq_node_name() { echo "rabbit-$1@localhost"; }
rmq_node_log() { echo "$(rmq_node_dir "$1")/log/$(rmq_node_name "$1").log"; }
rmq_node_pidfile() { echo "$(rmq_node_dir "$1")/rabbit.pid"; }
rmq_node_pid() { running_pid "$(rmq_node_pidfile "$1")" "RABBITMQ_MNESIA_BASE=$(rmq_node_dir "$1")/mnesia"; }
rmq_node_port() { state_get "RABBITMQ_PORT_$1"; }
rmq_node_dist_port() { state_get "RABBITMQ_DIST_PORT_$1"; }
# The source address of node K's outgoing distribution connections (advanced.config), so that a
# partition can drop them by address (dev/lib/netfault.sh).
rmq_node_addr() { echo "127.0.0.$((10 + $1))"; }

rmq_node_ports() {
	local k
	for ((k = 1; k <= RMQ_CLUSTER_NODES; k++)); do rmq_node_port "$k"; done
}

# rmq_ctl K ARGS... — rabbitmqctl against node K.
rmq_ctl() {
	local k=$1
	shift
	RMQ_CTL_ERL_ARGS="-kernel net_ticktime $RMQ_NET_TICKTIME" \
		rmq_in "$(rmq_node_dir "$k")" "$(rmq_node_name "$k")" rabbitmqctl -q -n "$(rmq_node_name "$k")" "$@"
}

# rabbitmq_cluster_urls — AMQP_URL of the cluster: the three nodes' URLs in node order.
rabbitmq_cluster_urls() {
	local p list=()
	for p in $(rmq_node_ports); do list+=("$(amqp_url_for "$p")"); done
	local IFS=,
	echo "${list[*]}"
}

rabbitmq_cluster_any_running() {
	local k
	for ((k = 1; k <= RMQ_CLUSTER_NODES; k++)); do rmq_node_pid "$k" >/dev/null && return 0; done
	return 1
}

# rabbitmq_nodes_wanted — sets RMQ_NODES_WANTED: RABBITMQ_NODES when set (1 or 3), else the count
# of what of ours runs. Refuses to mix: one layout at a time.
RMQ_NODES_WANTED=1
rabbitmq_nodes_wanted() {
	RMQ_NODES_WANTED=$(layout_nodes rabbitmq RABBITMQ_NODES "${RABBITMQ_NODES:-}" "$RMQ_CLUSTER_NODES" rabbitmq_cluster_any_running rabbitmq_pid)
}

# rmq_node_check K — K names a node of our cluster (the subcommands take a node number).
rmq_node_check() {
	[[ $(state_get RABBITMQ_NODES) == "$RMQ_CLUSTER_NODES" ]] ||
		die "rabbitmq: no $RMQ_CLUSTER_NODES-node cluster of ours (start it with RABBITMQ_NODES=$RMQ_CLUSTER_NODES)"
	if ! [[ ${1:-} =~ ^[1-9]$ ]] || (($1 > RMQ_CLUSTER_NODES)); then
		die "rabbitmq: node must be 1..$RMQ_CLUSTER_NODES (got ${1:-nothing})"
	fi
}

# rabbitmq_cluster_ports — choose every node's AMQP and distribution port (.stack/state): node k
# prefers RABBITMQ_PORT + 10(k-1) and that + 20000, like the single node; fallbacks of different
# nodes come from disjoint ranges, so two nodes never pick the same free port.
rabbitmq_cluster_ports() {
	local k base=${RABBITMQ_PORT:-5672} port dist all=()
	for ((k = 1; k <= RMQ_CLUSTER_NODES; k++)); do
		port=$(pick_port "rabbitmq-$k" $((base + RMQ_NODE_PORT_STEP * (k - 1))) $((15872 + 100 * (k - 1))) "${RABBITMQ_PORT:+1}") || exit 1
		dist=$((port + 20000))
		if ((dist >= 32768)) || port_in_use "$dist"; then
			dist=$(pick_port "rabbitmq-$k-dist" $((25672 + RMQ_NODE_PORT_STEP * (k - 1))) $((25772 + 100 * (k - 1))) 0) || exit 1
		fi
		all+=("$port" "$dist")
		state_set "RABBITMQ_PORT_$k" "$port"
		state_set "RABBITMQ_DIST_PORT_$k" "$dist"
	done
	[[ $(printf '%s\n' "${all[@]}" | sort -u | wc -l) == "${#all[@]}" ]] ||
		die "rabbitmq: the nodes' ports overlap (${all[*]}): choose another RABBITMQ_PORT"
}

# rmq_node_write_config K — node K's config files, rewritten at every start (the data stays).
rmq_node_write_config() {
	local k=$1 dir
	dir=$(rmq_node_dir "$k")
	mkdir -p "$dir/mnesia" "$dir/log"
	echo '[].' >"$dir/enabled_plugins"
	cat >"$dir/rabbitmq.conf" <<CONF
# Written by dev/stack.sh: node $k of the local three-node cluster. Listener address/port come
# from RABBITMQ_NODE_IP_ADDRESS/_PORT.
log.file.level = info
# A node that sees no majority of the cluster (cut off, or the other two gone) pauses: it closes
# its listeners and stops serving until it sees a majority again. No split brain; the majority
# side keeps the quorum queues available.
cluster_partition_handling = pause_minority
CONF
	# advanced.config is Erlang terms (a list of {App, [{Key, Value}]} ending with a dot), merged
	# into the application environment before the node starts its distribution.
	cat >"$dir/advanced.config" <<CONF
%% Written by dev/stack.sh: node $k of the local three-node cluster.
[
  {kernel, [
    %% Outgoing Erlang distribution connections leave from $(rmq_node_addr "$k") (the listener
    %% stays on every address): a partition of this node drops them by address.
    {inet_dist_connect_options, [{ip, {$(rmq_node_addr "$k" | tr . ,)}}]},
    {net_ticktime, $RMQ_NET_TICKTIME}
  ]}
].
CONF
	echo '# Written by dev/stack.sh: keeps /etc/rabbitmq/rabbitmq-env.conf out of our node.' >"$dir/rabbitmq-env.conf"
	if [[ $EUID -eq 0 ]]; then chown -R rabbitmq:rabbitmq "$dir"; fi
}

# rmq_node_spawn K — start node K (ports in .stack/state) without waiting.
RMQ_PENDING_NODES=()
RMQ_CLUSTER_JOIN=0
declare -A RMQ_NODE_T0=()
rmq_node_spawn() {
	local k=$1 name port dist log
	name=$(rmq_node_name "$k")
	port=$(rmq_node_port "$k")
	dist=$(rmq_node_dist_port "$k")
	log=$(rmq_node_log "$k")
	[[ -n $port && -n $dist ]] || die "rabbitmq-$k: no ports in $STATE_FILE (start the cluster with RABBITMQ_NODES=$RMQ_CLUSTER_NODES dev/stack.sh infra)"
	if epmd -names 2>/dev/null | grep -q "^name ${name%@*} "; then
		die "rabbitmq-$k: a node named $name runs already (not ours)"
	fi
	port_in_use "$port" && die "rabbitmq-$k: its AMQP port $port is in use by another process"
	port_in_use "$dist" && die "rabbitmq-$k: its distribution port $dist is in use by another process"
	rmq_node_write_config "$k"
	[[ -f $log ]] && mv -f "$log" "$log.1"
	ln -sfn "$log" "$LOGS/rabbitmq-$k.log"
	rm -f "$(rmq_node_pidfile "$k")"
	RMQ_NODE_T0[$k]=$(clock)
	RMQ_PORT=$port RMQ_DIST_PORT=$dist rmq_in "$(rmq_node_dir "$k")" "$name" rabbitmq-server -detached \
		</dev/null >"$LOGS/rabbitmq-$k-startup.log" 2>&1 ||
		fail "rabbitmq-$k" "$LOGS/rabbitmq-$k-startup.log" "rabbitmq-server -detached failed"
	RMQ_PENDING_NODES+=("$k")
}

# rabbitmq_cluster_start — the three nodes (those not running yet), without waiting.
rabbitmq_cluster_start() {
	local k running=0
	for ((k = 1; k <= RMQ_CLUSTER_NODES; k++)); do rmq_node_pid "$k" >/dev/null && running=$((running + 1)); done
	if ((running == 0)); then
		[[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] || die "rabbitmq: rabbitmq-server not installed (run: dev/stack.sh install)"
		command -v jq >/dev/null 2>&1 || die "rabbitmq: jq not found (run: dev/stack.sh install)"
		rabbitmq_cluster_ports
		# epmd outlives the nodes: remember whether it is ours to stop later.
		if epmd_pid >/dev/null; then rm -f "$PIDS/epmd.ours"; else touch "$PIDS/epmd.ours"; fi
	fi
	state_set RABBITMQ_NODES "$RMQ_CLUSTER_NODES"
	for ((k = 1; k <= RMQ_CLUSTER_NODES; k++)); do
		if rmq_node_pid "$k" >/dev/null; then
			log "rabbitmq-$k already running (pid $(rmq_node_pid "$k"), 127.0.0.1:$(rmq_node_port "$k"))"
		else
			rmq_node_spawn "$k"
		fi
	done
	if ((${#RMQ_PENDING_NODES[@]})); then
		started rabbitmq
		RMQ_CLUSTER_JOIN=1
		RMQ_T0=$(clock)
	fi
	AMQP_URL_V=$(rabbitmq_cluster_urls)
	rabbitmq_cluster_queue_type
}

# rabbitmq_cluster_queue_type — the cluster's services declare quorum queues (replicated on the
# three nodes, confirmed after a majority wrote): RABBITMQ_QUEUE_TYPE for the services this
# command starts and in .stack/env.
RABBITMQ_QUEUE_TYPE_V=""
rabbitmq_cluster_queue_type() {
	RABBITMQ_QUEUE_TYPE_V=quorum
	export RABBITMQ_QUEUE_TYPE=$RABBITMQ_QUEUE_TYPE_V
}

rmq_node_ready() { tcp_open 127.0.0.1 "$(rmq_node_port "$1")" && rmq_ctl "$1" status >/dev/null 2>&1; }

# rmq_cluster_json K — `rabbitmqctl cluster_status` as node K sees it (JSON).
rmq_cluster_json() { rmq_ctl "$1" cluster_status --formatter json 2>/dev/null; }

# rmq_cluster_whole K — node K sees all nodes running and no partition.
rmq_cluster_whole() {
	rmq_cluster_json "$1" | jq -e --argjson n "$RMQ_CLUSTER_NODES" \
		'(.running_nodes | length) == $n and (.partitions | length) == 0' >/dev/null 2>&1
}

# rmq_node_seen_down K M — node M does not count node K among its running nodes. Asked with an
# eval of M's local view: `cluster_status` on M also calls every member and, while K is cut off,
# waits for each connection attempt to time out (a poll took 10-20 s instead of 0.4).
rmq_node_seen_down() {
	local running
	running=$(rmq_ctl "$2" eval 'rabbit_mnesia:cluster_nodes(running).' 2>/dev/null) || return 1
	[[ $running == \[* && $running != *"'$(rmq_node_name "$1")'"* ]]
}

# rmq_other_node K — a running node of ours other than K (the one to ask about K).
rmq_other_node() {
	local m
	for ((m = 1; m <= RMQ_CLUSTER_NODES; m++)); do
		((m != $1)) && rmq_node_pid "$m" >/dev/null && echo "$m" && return 0
	done
	return 1
}

# rabbitmq_cluster_join — the first start: nodes 2 and 3 join node 1 (one after the other: each
# join changes the cluster's schema). A node that already belongs to the cluster is left alone.
rabbitmq_cluster_join() {
	local k first out
	first=$(rmq_node_name 1)
	for ((k = 2; k <= RMQ_CLUSTER_NODES; k++)); do
		rmq_cluster_json "$k" | jq -e --arg n "$first" '.disk_nodes | index($n)' >/dev/null 2>&1 && continue
		log "rabbitmq-$k joins $first (first start of the cluster)"
		out=$LOGS/rabbitmq-$k-startup.log
		{ rmq_ctl "$k" stop_app && rmq_ctl "$k" join_cluster "$first" && rmq_ctl "$k" start_app; } </dev/null >>"$out" 2>&1 ||
			fail "rabbitmq-$k" "$out" "join_cluster $first failed (a fresh cluster: dev/stack.sh down; rm -rf $RMQ_DIR/node-*)"
	done
}

# rabbitmq_quorum_flag — quorum queues need the quorum_queue feature flag (a fresh 3.10 node
# enables every stable flag; enabled here should an older data directory lack it).
rabbitmq_quorum_flag() {
	local state
	state=$(rmq_ctl 1 list_feature_flags --formatter json 2>/dev/null |
		jq -r '.[] | select(.name == "quorum_queue") | .state' 2>/dev/null) || state=""
	[[ $state == enabled ]] && return 0
	log "rabbitmq: feature flag quorum_queue is '${state:-unknown}': enabling it"
	rmq_ctl 1 enable_feature_flag quorum_queue </dev/null >>"$LOGS/rabbitmq-1-startup.log" 2>&1 ||
		fail rabbitmq-1 "$LOGS/rabbitmq-1-startup.log" "enable_feature_flag quorum_queue failed"
}

# rabbitmq_cluster_wait — wait until every node spawned by this command is ready, joined (first
# start) and the cluster whole (all nodes running, no partition) as the last of them sees it.
rabbitmq_cluster_wait() {
	((${#RMQ_PENDING_NODES[@]})) || return 0
	local k
	for k in "${RMQ_PENDING_NODES[@]}"; do
		wait_for "rabbitmq-$k" "$RMQ_CLUSTER_TIMEOUT" "pidfile:$(rmq_node_pidfile "$k")" "$(rmq_node_log "$k")" rmq_node_ready "$k"
		log "rabbitmq-$k ready in $(since "${RMQ_NODE_T0[$k]}")s (pid $(rmq_node_pid "$k"), 127.0.0.1:$(rmq_node_port "$k"), dist :$(rmq_node_dist_port "$k"))"
	done
	RMQ_PENDING_NODES=()
	if ((RMQ_CLUSTER_JOIN)); then
		rabbitmq_cluster_join
		rabbitmq_quorum_flag
		RMQ_CLUSTER_JOIN=0
	fi
	wait_for rabbitmq-cluster "$RMQ_CLUSTER_TIMEOUT" "" "$(rmq_node_log "$k")" rmq_cluster_whole "$k"
	log "rabbitmq cluster whole: $RMQ_CLUSTER_NODES nodes running, in $(since "$RMQ_T0")s"
}

# rmq_node_stop K — a clean stop of node K (rabbitmqctl stop, SIGTERM/SIGKILL after the deadline).
rmq_node_stop() {
	local k=$1 pid t
	pid=$(rmq_node_pid "$k") || return 0
	t=$(clock)
	RMQ_CMD_TIMEOUT=$STOP_TIMEOUT rmq_ctl "$k" stop "$(rmq_node_pidfile "$k")" \
		</dev/null >>"$LOGS/rabbitmq-$k-startup.log" 2>&1 || warn "rabbitmq-$k: rabbitmqctl stop failed"
	if alive "$pid"; then
		stop_pid "rabbitmq-$k" "$pid" 10
	else
		log "rabbitmq-$k stopped in $(since "$t")s"
	fi
}

# rabbitmq_cluster_down — every node stopped at the same time (they start together again, so no
# node waits long for the one that stopped last).
rabbitmq_cluster_down() {
	local k jobs=()
	for ((k = 1; k <= RMQ_CLUSTER_NODES; k++)); do
		rmq_node_pid "$k" >/dev/null || continue
		rmq_node_stop "$k" &
		jobs+=($!)
	done
	((${#jobs[@]})) || return 0
	local j
	for j in "${jobs[@]}"; do wait "$j" || true; done
}

rabbitmq_cluster_status() {
	local k pid addr
	for ((k = 1; k <= RMQ_CLUSTER_NODES; k++)); do
		addr="127.0.0.1:$(rmq_node_port "$k") (dist :$(rmq_node_dist_port "$k"))"
		if pid=$(rmq_node_pid "$k"); then
			if tcp_open 127.0.0.1 "$(rmq_node_port "$k")"; then
				status_line "rabbitmq-$k" running "$pid" "$addr"
			else
				status_line "rabbitmq-$k" starting "$pid" "$addr, AMQP port closed (booting, paused or cut off)"
			fi
		else
			status_line "rabbitmq-$k" stopped - "$addr"
		fi
	done
}

# rmq_descendants PID — every process below PID (erl_child_setup, its inet_gethost helpers).
rmq_descendants() {
	local c
	for c in $(pgrep -P "$1" || true); do
		echo "$c"
		rmq_descendants "$c"
	done
}

# rabbitmq_node_kill K — SIGKILL of node K's VM and its helpers, all at once: a machine loss
# (the helpers would otherwise linger a moment after the VM).
rabbitmq_node_kill() {
	local k=${1:-} pid helpers
	rmq_node_check "$k"
	pid=$(rmq_node_pid "$k") || die "rabbitmq-$k is not running"
	helpers=$(rmq_descendants "$pid" | tr '\n' ' ')
	# shellcheck disable=SC2086 # zero or more helper pids
	kill -KILL "$pid" $helpers 2>/dev/null || true
	wait_gone "$pid" 10 || die "rabbitmq-$k (pid $pid) survived SIGKILL"
	rm -f "$(rmq_node_pidfile "$k")"
	log "rabbitmq-$k killed (SIGKILL of beam.smp $pid and its helpers ${helpers% })"
}

# rabbitmq_node_start K — start node K again (its data kept) and return once it is running and
# back in the cluster (the data makes it rejoin by itself).
rabbitmq_node_start() {
	local k=${1:-}
	rmq_node_check "$k"
	if rmq_node_pid "$k" >/dev/null; then
		log "rabbitmq-$k already running (pid $(rmq_node_pid "$k"))"
		return 0
	fi
	RMQ_T0=$(clock)
	rmq_node_spawn "$k"
	rabbitmq_cluster_wait
}

# rabbitmq_cluster_restart — a rolling restart: each node stopped cleanly and started again, the
# next one only once the cluster is whole, so two of three are up throughout.
rabbitmq_cluster_restart() {
	local k
	for ((k = 1; k <= RMQ_CLUSTER_NODES; k++)); do
		rmq_node_stop "$k"
		RMQ_T0=$(clock)
		rmq_node_spawn "$k"
		rabbitmq_cluster_wait
	done
}
