# shellcheck shell=bash
# Shared helpers of dev/stack.sh: messages, timing, ports, our processes, the state file.
#
# Invariant kept by everything built on top: a process is "ours" only when its pid file says so
# AND its command line (or environment) names one of our private paths, so that a recycled pid
# is never touched.

# ---------------------------------------------------------------- messages
log() { printf '[stack] %s\n' "$*"; }
warn() { printf '[stack] WARNING: %s\n' "$*" >&2; }
die() {
	printf '[stack] ERROR: %s\n' "$*" >&2
	exit 1
}

# fail NAME LOGFILE MESSAGE... — a component did not come up: say why, show the tail of its log.
fail() {
	local name=$1 logfile=$2
	shift 2
	printf '[stack] ERROR: %s: %s\n' "$name" "$*" >&2
	if [[ -n $logfile && -s $logfile ]]; then
		# A long backtrace can push the cause out of the tail: show the first error lines too.
		local errors
		errors=$(grep -m 5 -E '^Error|panicked at|"level":"ERROR"|\] (ERROR|FATAL) |\[error\]|FATAL' "$logfile" || true)
		if [[ -n $errors ]]; then
			printf -- '----- first error lines of %s -----\n%s\n' "$logfile" "$errors" >&2
		fi
		printf -- '----- last %s lines of %s -----\n' "$TAIL_LINES" "$logfile" >&2
		tail -n "$TAIL_LINES" "$logfile" >&2
		printf -- '----- end of %s -----\n' "$logfile" >&2
	fi
	exit 1
}

# ---------------------------------------------------------------- timing
# clock prints a wall-clock timestamp with sub-second precision; since T prints seconds since T.
clock() {
	local t=$EPOCHREALTIME
	printf '%s' "${t/,/.}"
}
since() { awk -v s="$1" -v e="$(clock)" 'BEGIN { printf "%.1f", e - s }'; }

# ---------------------------------------------------------------- ports
# tcp_open HOST PORT — something accepts TCP connections there.
# shellcheck disable=SC2016 # $1/$2 expand in the inner bash
tcp_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null; }

# port_in_use PORT — something listens on PORT (any address).
port_in_use() {
	if command -v ss >/dev/null 2>&1; then
		[[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]
	else
		tcp_open 127.0.0.1 "$1"
	fi
}

# pick_port NAME PREFERRED FALLBACK_FIRST EXPLICIT — PREFERRED when free; otherwise the first free
# port of FALLBACK_FIRST..+99, unless the caller set the port explicitly (EXPLICIT=1): then fail.
# Fallbacks stay below the ephemeral range (32768-60999): a client retrying a port in that range
# can connect to itself and hold the port (TCP self-connect; seen with Kafka's controller port).
pick_port() {
	local name=$1 preferred=$2 first=$3 explicit=${4:-0} p
	if ! port_in_use "$preferred"; then
		echo "$preferred"
		return 0
	fi
	[[ $explicit == 1 ]] && die "$name: port $preferred (set explicitly) is in use by another process"
	for ((p = first; p < first + 100; p++)); do
		if ! port_in_use "$p"; then
			warn "$name: port $preferred is in use by another process; using $p instead"
			echo "$p"
			return 0
		fi
	done
	die "$name: port $preferred and $first-$((first + 99)) are all in use"
}

# host_port_of URL_OR_HOSTPORT DEFAULT_PORT — "host port" of the first address in a URL or a
# comma-separated broker list (user info, path and query are ignored).
host_port_of() {
	local v=${1%%,*} default=$2
	v=${v#*://}
	v=${v##*@}
	v=${v%%/*}
	v=${v%%\?*}
	if [[ $v == *:* ]]; then echo "${v%:*} ${v##*:}"; else echo "$v $default"; fi
}

# mask_url URL — the URL with its password hidden, for messages.
mask_url() { sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$1"; }

# ---------------------------------------------------------------- processes
# alive PID — the process exists and is not a zombie.
alive() {
	[[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null || return 1
	local state
	state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
	[[ $state != Z ]]
}

# cmdline_has PID TEXT — the command line of PID contains TEXT.
# (No `| grep -q` here: with pipefail, grep leaving early can fail the pipeline through SIGPIPE.)
cmdline_has() {
	local c
	c=$({ tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null) || return 1
	[[ $c == *"$2"* ]]
}

# proc_mentions PID TEXT — the command line or the start-up environment of PID contains TEXT
# (RabbitMQ's beam gets its private paths through the environment, not its arguments).
proc_mentions() {
	cmdline_has "$1" "$2" && return 0
	local e
	e=$({ tr '\0' '\n' <"/proc/$1/environ"; } 2>/dev/null) || return 1
	[[ $e == *"$2"* ]]
}

# pid_of PIDFILE — the pid written in PIDFILE (first line).
pid_of() {
	[[ -s $1 ]] || return 1
	local pid
	pid=$(head -n1 "$1" | tr -dc '0-9')
	[[ -n $pid ]] && echo "$pid"
}

# running_pid PIDFILE TEXT — prints the pid of PIDFILE when it is alive and its command line
# (or environment) contains TEXT, one of our private paths: the one test of "ours and running".
running_pid() {
	local pid
	pid=$(pid_of "$1") || return 1
	alive "$pid" && proc_mentions "$pid" "$2" || return 1
	echo "$pid"
}

# wait_gone PID SECONDS — wait until PID has exited; false on the deadline.
wait_gone() {
	local deadline=$((SECONDS + $2))
	while alive "$1"; do
		((SECONDS >= deadline)) && return 1
		sleep 0.2
	done
	return 0
}

# stop_pid NAME PID [TIMEOUT] [SIGNAL] — SIGNAL (TERM), wait, then SIGKILL after the deadline.
stop_pid() {
	local name=$1 pid=$2 timeout=${3:-$STOP_TIMEOUT} sig=${4:-TERM} t
	t=$(clock)
	kill -s "$sig" "$pid" 2>/dev/null || true
	if ! wait_gone "$pid" "$timeout"; then
		warn "$name (pid $pid) still running ${timeout}s after SIG$sig: sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		wait_gone "$pid" 10 || warn "$name (pid $pid) survived SIGKILL"
	fi
	log "$name stopped in $(since "$t")s"
}

# wait_for NAME TIMEOUT PID|pidfile:PATH|"" LOGFILE CHECK... — poll CHECK until it succeeds.
# Fails loudly (tail of LOGFILE) when the process dies first or when TIMEOUT seconds pass.
wait_for() {
	local name=$1 timeout=$2 who=$3 logfile=$4 pid
	shift 4
	local deadline=$((SECONDS + timeout))
	until "$@"; do
		pid=$who
		if [[ $who == pidfile:* ]]; then pid=$(pid_of "${who#pidfile:}" || true); fi
		if [[ -n $pid ]] && ! alive "$pid"; then
			fail "$name" "$logfile" "process $pid exited before it was ready"
		fi
		((SECONDS >= deadline)) && fail "$name" "$logfile" "not ready after ${timeout}s"
		sleep 0.2
	done
}

# http_status URL — the HTTP status code (000 when nothing answers).
http_status() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null || true; }
http_ok() { [[ $(http_status "$1") == 200 ]]; }
http_any() { [[ $(http_status "$1") != 000 ]]; }

# ---------------------------------------------------------------- state
# .stack/state keeps KEY=VALUE facts that later commands need (ports actually chosen).
state_get() { [[ -f $STATE_FILE ]] && sed -n "s/^$1=//p" "$STATE_FILE" | tail -n1; }
state_set() {
	touch "$STATE_FILE"
	{
		grep -v "^$1=" "$STATE_FILE" || true
		echo "$1=$2"
	} >"$STATE_FILE.tmp"
	mv -f "$STATE_FILE.tmp" "$STATE_FILE"
}

# rotate_log NAME — keep the previous run's log as NAME.log.1 and start an empty one.
rotate_log() {
	local f="$LOGS/$1.log"
	[[ -f $f && ! -L $f ]] && mv -f "$f" "$f.1"
	: >"$f"
}

# as_root CMD... — run CMD as root (sudo when we are not root).
as_root() {
	if [[ $EUID -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "need root for: $*"
	fi
}

# started NAME — remember that this invocation started NAME (`test` stops exactly those).
started() { STARTED+=("$1"); }

# layout_nodes NAME VAR VALUE CLUSTER CLUSTER_RUNS SINGLE_RUNS — how many nodes of component NAME
# to run: VALUE (1 or CLUSTER, from the variable VAR) when set, else what of ours runs (CLUSTER
# when the command CLUSTER_RUNS succeeds, else 1). Dies rather than mix the two layouts while
# the other one runs (SINGLE_RUNS succeeds when the single node does).
layout_nodes() {
	local name=$1 var=$2 n=$3 cluster=$4 cluster_runs=$5 single_runs=$6
	if [[ -z $n ]]; then
		n=1
		"$cluster_runs" && n=$cluster
	fi
	[[ $n == 1 || $n == "$cluster" ]] || die "$var must be 1 or $cluster (got $n)"
	if [[ $n == 1 ]] && "$cluster_runs"; then
		die "$name: our $cluster-node cluster runs and $var=1: stop it first (dev/stack.sh down)"
	fi
	if [[ $n != 1 ]] && "$single_runs" >/dev/null; then
		die "$name: our single node runs and $var=$n: stop it first (dev/stack.sh down)"
	fi
	echo "$n"
}
