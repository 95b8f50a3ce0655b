# shellcheck shell=bash
# Network partitions of one node of our local three-node broker cluster (KAFKA_NODES=3 or
# RABBITMQ_NODES=3), on loopback with nftables: `partition-broker-node N` / `heal-broker-node N`,
# BROKER choosing the cluster. Everything lives in one table of ours, inet orders_payments_faults,
# rebuilt atomically from the rule files .stack/netfault/<broker>-<node>.rules (one per cut-off
# node) and deleted once the last one is healed, and by `down`. Needs root (nft, cgroups).
#
# A partition cuts node N from the other nodes AND from clients, both ways, for new and for
# established connections (packets are dropped, not refused: peers see silence, as on a real
# network split, and notice through their own timeouts):
#   RabbitMQ  tcp to/from N's AMQP and distribution ports (dport or sport) — every connection to
#             N — and everything from/to 127.0.0.(10+N), the source address of N's own outgoing
#             distribution connections (inet_dist_connect_options in its advanced.config).
#   Kafka     tcp to/from N's broker and controller ports (every connection to N). Java cannot
#             bind a source address for Kafka's own client connections, so those (N's replica
#             fetchers, its controller-quorum and heartbeat requests to the other nodes) are cut
#             by owner instead: N's JVM is moved into a cgroup v2 of ours and nft drops packets of
#             sockets of that cgroup (`socket cgroupv2`, output and input); a socket keeps the
#             cgroup it was created in, so N's connections opened before the move are cut by
#             their local ports (read with ss). Without a usable cgroup v2 mount this falls back
#             to an inbound-only (asymmetric) partition and says so: N could still reach the
#             others, keep heartbeating to the controller and keep its partition leaderships.

NETFAULT_TABLE=orders_payments_faults
NETFAULT_DIR=$STACK/netfault
NETFAULT_CGROUP_NAME=orders_payments_faults
NETFAULT_HEAL_TIMEOUT=${NETFAULT_HEAL_TIMEOUT:-30}
NETFAULT_SEEN_TIMEOUT=${NETFAULT_SEEN_TIMEOUT:-60}
NETFAULT_T0=""
NETFAULT_LOG_MARK=0

netfault_file() { echo "$NETFAULT_DIR/$1-$2.rules"; }
netfault_active() { [[ -f $(netfault_file "$1" "$2") ]]; }
netfault_table_exists() { command -v nft >/dev/null 2>&1 && as_root nft list table inet "$NETFAULT_TABLE" >/dev/null 2>&1; }

# netfault_apply — the table as the rule files say: replaced in one nft transaction (an absent
# table is created first so that the delete cannot fail), deleted when no file is left.
netfault_apply() {
	local rules chain
	rules=$(cat "$NETFAULT_DIR"/*.rules 2>/dev/null || true)
	if [[ -z $rules ]]; then
		if netfault_table_exists; then as_root nft delete table inet "$NETFAULT_TABLE"; fi
		return 0
	fi
	command -v nft >/dev/null 2>&1 || die "netfault: nft not found (apt-get install nftables)"
	{
		echo "table inet $NETFAULT_TABLE"
		echo "delete table inet $NETFAULT_TABLE"
		echo "table inet $NETFAULT_TABLE {"
		# Both hooks: on loopback a packet passes output (its sender's socket known) and then
		# input (its receiver's socket looked up), and the cgroup rule needs both.
		for chain in input output; do
			echo "	chain $chain {"
			echo "		type filter hook $chain priority filter - 10; policy accept;"
			echo "		${rules//$'\n'/$'\n\t\t'}"
			echo "	}"
		done
		echo "}"
	} | as_root nft -f - || die "netfault: nft -f failed (rules in $NETFAULT_DIR)"
}

# netfault_set ITEMS... — an nft anonymous set "{ a, b }".
netfault_set() {
	local IFS=,
	echo "{ $* }"
}

# ---------------------------------------------------------------- RabbitMQ

# netfault_rabbitmq_rules K — what cuts RabbitMQ node K (see the header).
netfault_rabbitmq_rules() {
	local k=$1 ports addr c
	ports=$(netfault_set "$(rmq_node_port "$k")" "$(rmq_node_dist_port "$k")")
	addr=$(rmq_node_addr "$k")
	c="comment \"rabbitmq-$k\""
	echo "tcp dport $ports drop $c"
	echo "tcp sport $ports drop $c"
	echo "ip saddr $addr drop $c"
	echo "ip daddr $addr drop $c"
}

# netfault_rabbitmq_cut K — after the cut (at NETFAULT_T0, K's log then NETFAULT_LOG_MARK lines
# long): wait until another node no longer lists K as running (about net_ticktime), then report
# when K paused itself (pause_minority: a line of its log).
netfault_rabbitmq_cut() {
	local k=$1 m t=$NETFAULT_T0 log
	m=$(rmq_other_node "$k") || die "rabbitmq: no other node of ours runs to watch rabbitmq-$k from"
	log=$(rmq_node_log "$k")
	wait_for "rabbitmq-$m" "$NETFAULT_SEEN_TIMEOUT" "" "$(rmq_node_log "$m")" rmq_node_seen_down "$k" "$m"
	log "rabbitmq-$m sees rabbitmq-$k down $(since "$t")s after the cut"
	local t1 json
	t1=$(clock)
	json=$(rmq_cluster_json "$m") || true
	log "  rabbitmq-$m cluster_status ($(since "$t1")s): running $(jq -r '.running_nodes | join(" ")' <<<"$json" 2>/dev/null), partitions $(jq -c '.partitions' <<<"$json" 2>/dev/null)"
	# The minority side pauses once its own tick times out too; its log says so.
	local deadline=$((SECONDS + 20)) line
	until line=$(tail -n "+$((NETFAULT_LOG_MARK + 1))" "$log" 2>/dev/null | grep -i -m1 'minority'); do
		if ((SECONDS >= deadline)); then
			warn "rabbitmq-$k: no pause_minority line in $log yet"
			return 0
		fi
		sleep 0.5
	done
	log "rabbitmq-$k paused itself (pause_minority) within $(since "$t")s of the cut: ${line:0:200}"
}

# netfault_rabbitmq_healed K — wait until the cluster is whole again as another node sees it.
# A paused node resumes by itself once it sees a majority; should it not within the timeout, its
# app is restarted (stop_app/start_app) and the wait repeated — and the log says so.
netfault_rabbitmq_healed() {
	local k=$1 m t
	t=$(clock)
	m=$(rmq_other_node "$k") || die "rabbitmq: no other node of ours runs to watch rabbitmq-$k from"
	local deadline=$((SECONDS + NETFAULT_HEAL_TIMEOUT))
	until rmq_cluster_whole "$m" && rmq_node_ready "$k"; do
		if ((SECONDS >= deadline)); then
			# Seen on 3.10 after a rolling restart: the paused node's `global` never re-syncs
			# ("Faking nodedown/nodeup") and stop_app hangs too. A supervisor restarts such a
			# node; so do we (SIGKILL, then start with its data: it rejoins by itself).
			warn "rabbitmq-$k: the cluster is not whole ${NETFAULT_HEAL_TIMEOUT}s after the heal: restarting the node"
			rabbitmq_node_kill "$k"
			rabbitmq_node_start "$k"
			break
		fi
		sleep 0.5
	done
	log "rabbitmq cluster whole again (3 running, no partition, rabbitmq-$k serving AMQP) $(since "$t")s after the heal"
}

# ---------------------------------------------------------------- Kafka

# The cgroup v2 mount (unified, or the hybrid layout's /sys/fs/cgroup/unified). nft names a
# cgroup by its path below /sys/fs/cgroup and its level below the cgroup2 root: ours is
# <mount>/orders_payments_faults/kafka-N, level 2 (a cgroup namespace would shift the real level:
# not handled).
netfault_cgroup_mount() {
	local m
	m=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
	[[ -n $m && $m == /sys/fs/cgroup* && -w $m ]] && echo "$m"
}

netfault_kafka_cgroup() { echo "$1/$NETFAULT_CGROUP_NAME/kafka-$2"; }

# netfault_kafka_ephemeral PID PORT... — local ports of PID's TCP connections, but PORT... (its
# listeners, cut already).
netfault_kafka_ephemeral() {
	local pid=$1
	shift
	ss -tanpH 2>/dev/null | awk -v p="pid=$pid," -v skip=" $* " '
		$1 != "LISTEN" && index($0, p) { n = split($4, a, ":"); if (index(skip, " " a[n] " ") == 0) print a[n] }' | sort -un
}

# netfault_kafka_rules K PID — what cuts Kafka node K (see the header); moves PID into its cgroup.
netfault_kafka_rules() {
	local k=$1 pid=$2 c ports mount cg rel orig eph bport cport
	c="comment \"kafka-$k\""
	bport=$(kafka_node_port broker "$k")
	cport=$(kafka_node_port controller "$k")
	ports=$(netfault_set "$bport" "$cport")
	echo "tcp dport $ports drop $c"
	echo "tcp sport $ports drop $c"
	if ! mount=$(netfault_cgroup_mount); then
		warn "kafka-$k: no writable cgroup v2 mount: an inbound-only (asymmetric) partition — kafka-$k can still open connections to the other nodes" >&2
		return 0
	fi
	cg=$(netfault_kafka_cgroup "$mount" "$k")
	mkdir -p "$cg"
	orig=$(sed -n 's/^0:://p' "/proc/$pid/cgroup")
	echo "${orig:-/}" >"$NETFAULT_DIR/kafka-$k.cgroup"
	echo "$pid" >"$cg/cgroup.procs"
	rel=${cg#/sys/fs/cgroup/}
	echo "socket cgroupv2 level 2 \"$rel\" drop $c"
	# Read after the move: a connection made since is in the cgroup, one made before is listed.
	eph=$(netfault_kafka_ephemeral "$pid" "$bport" "$cport" | tr '\n' ' ')
	if [[ -n ${eph// /} ]]; then
		# shellcheck disable=SC2086 # one port per word
		eph=$(netfault_set $eph)
		echo "tcp sport $eph drop $c"
		echo "tcp dport $eph drop $c"
	fi
}

# netfault_kafka_release K — N's JVM back into the cgroup it came from; our cgroup removed.
netfault_kafka_release() {
	local k=$1 mount cg orig pid
	mount=$(netfault_cgroup_mount) || return 0
	cg=$(netfault_kafka_cgroup "$mount" "$k")
	[[ -d $cg ]] || return 0
	orig=$(cat "$NETFAULT_DIR/kafka-$k.cgroup" 2>/dev/null || echo /)
	while read -r pid; do
		echo "$pid" >"$mount${orig%/}/cgroup.procs" 2>/dev/null || echo "$pid" >"$mount/cgroup.procs"
	done <"$cg/cgroup.procs"
	rmdir "$cg" 2>/dev/null || warn "kafka-$k: cgroup $cg not removed"
	rmdir "$mount/$NETFAULT_CGROUP_NAME" 2>/dev/null || true
	rm -f "$NETFAULT_DIR/kafka-$k.cgroup"
}

# netfault_kafka_cut K — after the cut: node K's broker port no longer answers.
netfault_kafka_cut() {
	local k=$1 t
	t=$(clock)
	if tcp_open 127.0.0.1 "$(kafka_node_port broker "$k")"; then
		die "kafka-$k: its broker port still answers after the cut"
	fi
	log "kafka-$k: broker port $(kafka_node_port broker "$k") silent (checked in $(since "$t")s)"
}

# netfault_kafka_mark K — remember how long the other nodes' logs are when K is cut off.
netfault_kafka_mark() {
	local k=$1 m
	for ((m = 1; m <= KAFKA_CLUSTER_NODES; m++)); do
		((m == $1)) || echo "$m $(wc -l <"$LOGS/kafka-$m.log" 2>/dev/null || echo 0)"
	done >"$NETFAULT_DIR/kafka-$k.marks"
}

# netfault_kafka_logged K REGEX — a line of another node's log written since K was cut off
# matches REGEX (extended).
netfault_kafka_logged() {
	local m n
	while read -r m n; do
		tail -n "+$((n + 1))" "$LOGS/kafka-$m.log" 2>/dev/null | grep -q -E "$2" && return 0
	done <"$NETFAULT_DIR/kafka-$1.marks"
	return 1
}

# netfault_kafka_healed K — the node answers again (kafka_node_ready) and, when the controller
# fenced it during the cut (its broker session timed out, ~9 s: its partitions got other leaders
# and it left their ISRs), until the controller has unfenced it: a live broker again, whose
# replica fetchers catch up and rejoin the ISRs within a few seconds (not checked here: no admin
# tool among the stack's jars).
netfault_kafka_healed() {
	local k=$1 t
	t=$(clock)
	wait_for "kafka-$k" "$NETFAULT_HEAL_TIMEOUT" "$(pid_of "$PIDS/kafka-$k.pid")" "$LOGS/kafka-$k.log" kafka_node_ready "$k"
	log "kafka-$k answers again $(since "$t")s after the heal"
	[[ -f $NETFAULT_DIR/kafka-$k.marks ]] || return 0
	if netfault_kafka_logged "$k" "Fencing broker $k "; then
		wait_for "kafka-$k" "$NETFAULT_HEAL_TIMEOUT" "$(pid_of "$PIDS/kafka-$k.pid")" "$LOGS/kafka-$k.log" \
			netfault_kafka_logged "$k" "registration for broker $k: BrokerRegistrationChangeRecord\(brokerId=$k, .*fenced=-1"
		log "kafka-$k unfenced by the controller (a live broker again) $(since "$t")s after the heal"
	else
		log "kafka-$k was not fenced during the cut (shorter than its broker session)"
	fi
	rm -f "$NETFAULT_DIR/kafka-$k.marks"
}

# ---------------------------------------------------------------- commands

# netfault_partition BROKER K — cut node K of BROKER's three-node cluster off (see the header).
netfault_partition() {
	local broker=$1 k=$2 pid file rules
	case $broker in
	rabbitmq)
		rmq_node_check "$k"
		pid=$(rmq_node_pid "$k") || die "rabbitmq-$k is not running"
		# One node out at a time: a second one would take the majority every queue needs.
		rmq_cluster_whole "$(rmq_other_node "$k")" || die "rabbitmq: the cluster is not whole; rabbitmq-$k is not cut off on top of that"
		;;
	kafka)
		kafka_node_check "$k"
		pid=$(kafka_node_pid "$k") || die "kafka-$k is not running"
		;;
	*) die "partition-broker-node: unknown BROKER=$broker" ;;
	esac
	file=$(netfault_file "$broker" "$k")
	[[ -f $file ]] && die "$broker-$k is partitioned already (heal it: BROKER=$broker dev/stack.sh heal-broker-node $k)"
	mkdir -p "$NETFAULT_DIR"
	NETFAULT_LOG_MARK=0
	if [[ $broker == rabbitmq ]]; then NETFAULT_LOG_MARK=$(wc -l <"$(rmq_node_log "$k")" 2>/dev/null || echo 0); else netfault_kafka_mark "$k"; fi
	NETFAULT_T0=$(clock)
	if [[ $broker == rabbitmq ]]; then rules=$(netfault_rabbitmq_rules "$k"); else rules=$(netfault_kafka_rules "$k" "$pid"); fi
	echo "$rules" >"$file"
	netfault_apply
	log "$broker-$k cut off at $(date +%T.%3N) (nft table inet $NETFAULT_TABLE):"
	sed 's/^/[stack]   /' "$file"
	if [[ $broker == rabbitmq ]]; then netfault_rabbitmq_cut "$k"; else netfault_kafka_cut "$k"; fi
}

# netfault_heal BROKER K — remove node K's cut and wait until it is back.
netfault_heal() {
	local broker=$1 k=$2
	case $broker in
	rabbitmq) rmq_node_check "$k" ;;
	kafka) kafka_node_check "$k" ;;
	*) die "heal-broker-node: unknown BROKER=$broker" ;;
	esac
	if netfault_active "$broker" "$k"; then
		rm -f "$(netfault_file "$broker" "$k")"
		netfault_apply
		[[ $broker == kafka ]] && netfault_kafka_release "$k"
		log "$broker-$k reconnected at $(date +%T.%3N)"
	else
		log "$broker-$k is not partitioned"
	fi
	if [[ $broker == rabbitmq ]]; then netfault_rabbitmq_healed "$k"; else netfault_kafka_healed "$k"; fi
}

# netfault_down — every cut removed (the table deleted), JVMs out of our cgroups; for `down`.
netfault_down() {
	local f name
	for f in "$NETFAULT_DIR"/*.rules; do
		[[ -e $f ]] || continue
		name=$(basename "$f" .rules)
		rm -f "$f"
		log "netfault: $name healed"
	done
	netfault_apply
	for f in "$NETFAULT_DIR"/kafka-*.cgroup; do
		[[ -e $f ]] || continue
		name=$(basename "$f" .cgroup)
		netfault_kafka_release "${name#kafka-}"
	done
	rm -f "$NETFAULT_DIR"/*.marks
	return 0
}

netfault_status() {
	local f
	for f in "$NETFAULT_DIR"/*.rules; do
		[[ -e $f ]] || continue
		status_line netfault active - "$(basename "$f" .rules) cut off (nft table inet $NETFAULT_TABLE)"
	done
	return 0
}
