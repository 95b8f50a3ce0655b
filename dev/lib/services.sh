# shellcheck shell=bash disable=SC2034 # the *_V variables are read by dev/stack.sh
# The three Rust services (target/<profile>/{orders,payments,gateway}) and nginx for the frontend.
#
# Services get their configuration from the environment (names of notes/contract.md), log to
# .stack/logs/<name>.log, and count as ready when GET /health answers 200. Their authentication
# (AUTH, AUTH_INTERNAL_SECRET, the gateway's AUTH_JWKS ...) comes from dev/lib/auth.sh.

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PROFILE=${STACK_PROFILE:-debug}
BIN_DIR=$TARGET_DIR/$PROFILE
SERVICE_HOST=${STACK_HTTP_HOST:-127.0.0.1}
SERVICE_TIMEOUT=${SERVICE_TIMEOUT:-60}
GATEWAY_PORT=${GATEWAY_PORT:-8080}
ORDERS_PORT=${ORDERS_PORT:-8081}
PAYMENTS_PORT=${PAYMENTS_PORT:-8082}
FRONTEND_PORT=${FRONTEND_PORT:-8083}
NGINX_DIR=$STACK/nginx
NGINX_CONF=$NGINX_DIR/nginx.conf
FRONTEND_TEMPLATE=$ROOT/frontend/nginx.conf
FRONTEND_ROOT=$ROOT/frontend/public

# Instances: ORDERS_INSTANCES and PAYMENTS_INSTANCES (default 1, at most MAX_INSTANCES) run as
# orders, orders-2, ... on ports ORDERS_PORT, ORDERS_PORT+10, ...; the gateway balances across them.
MAX_INSTANCES=8
INSTANCE_PORT_STEP=10
ORDERS_INSTANCES=${ORDERS_INSTANCES:-1}
PAYMENTS_INSTANCES=${PAYMENTS_INSTANCES:-1}
for _count in "$ORDERS_INSTANCES" "$PAYMENTS_INSTANCES"; do
	[[ $_count =~ ^[1-9]$ ]] && ((_count <= MAX_INSTANCES)) ||
		die "ORDERS_INSTANCES and PAYMENTS_INSTANCES must be 1..$MAX_INSTANCES (got $_count)"
done
unset _count

# instance_names KIND COUNT — orders orders-2 ... (the first instance keeps the plain name).
instance_names() {
	local k
	echo "$1"
	for ((k = 2; k <= $2; k++)); do echo "$1-$k"; done
}
readarray -t SERVICES < <(
	instance_names orders "$ORDERS_INSTANCES"
	instance_names payments "$PAYMENTS_INSTANCES"
	echo gateway
)
# Every name an instance of ours may run under, wanted now or left from a larger stack.
readarray -t ALL_SERVICES < <(
	instance_names orders "$MAX_INSTANCES"
	instance_names payments "$MAX_INSTANCES"
	echo gateway
)

service_kind() { echo "${1%-[0-9]*}"; }
service_index() { [[ $1 == *-[0-9]* ]] && echo "${1##*-}" || echo 1; }

service_port() {
	local base
	case $(service_kind "$1") in
	gateway) base=$GATEWAY_PORT ;;
	orders) base=$ORDERS_PORT ;;
	payments) base=$PAYMENTS_PORT ;;
	*) die "unknown service $1" ;;
	esac
	echo $((base + INSTANCE_PORT_STEP * ($(service_index "$1") - 1)))
}

# upstream_urls KIND COUNT — the gateway's list of KIND's instances (ORDERS_URL, PAYMENTS_URL).
upstream_urls() {
	local name urls=()
	while read -r name; do urls+=("http://127.0.0.1:$(service_port "$name")"); done < <(instance_names "$1" "$2")
	local IFS=,
	echo "${urls[*]}"
}
# The running instance of service NAME started by us, whichever profile's binary it runs (the
# binary is recorded at start: a release stack must be found, restarted or stopped from a debug
# command and the other way round).
service_pid() { running_pid "$PIDS/$1.pid" "$(service_bin "$1")"; }
service_bin() {
	local bin
	bin=$(state_get "BIN_$1")
	echo "${bin:-$BIN_DIR/$(service_kind "$1")}"
}

# service_env NAME — the environment of service NAME, one VAR=value per line.
service_env() {
	local name=$1
	printf '%s\n' "HTTP_HOST=$SERVICE_HOST" "HTTP_PORT=$(service_port "$name")" "RUST_LOG=${RUST_LOG:-info}"
	# Panics keep RUST_BACKTRACE; an error returned from main stays one readable line.
	printf '%s\n' "RUST_LIB_BACKTRACE=${RUST_LIB_BACKTRACE:-0}"
	case $(service_kind "$name") in
	orders | payments)
		if [[ $(service_kind "$name") == orders ]]; then
			printf '%s\n' "DATABASE_URL=$DATABASE_URL_ORDERS_V"
		else
			printf '%s\n' "DATABASE_URL=$DATABASE_URL_PAYMENTS_V"
		fi
		printf '%s\n' "BROKER=${BROKER:-kafka}" "KAFKA_BROKERS=$KAFKA_BROKERS_V" "AMQP_URL=$AMQP_URL_V"
		;;
	gateway)
		printf '%s\n' "ORDERS_URL=$(upstream_urls orders "$ORDERS_INSTANCES")" \
			"PAYMENTS_URL=$(upstream_urls payments "$PAYMENTS_INSTANCES")"
		# Only when the caller set them: otherwise the gateway's own defaults apply — except the
		# per-address limit with AUTH=off: every local client (curl, the load tool, nginx for every
		# browser) is 127.0.0.1, so one bucket would throttle them all together.
		[[ -z ${RATE_LIMIT_PER_SUBJECT:-} ]] || printf '%s\n' "RATE_LIMIT_PER_SUBJECT=$RATE_LIMIT_PER_SUBJECT"
		if [[ -n ${RATE_LIMIT_PER_IP:-} ]]; then
			printf '%s\n' "RATE_LIMIT_PER_IP=$RATE_LIMIT_PER_IP"
		elif ! auth_on; then
			printf '%s\n' "RATE_LIMIT_PER_IP=off"
		fi
		;;
	esac
	auth_service_env "$name" # dev/lib/auth.sh: AUTH=jwt|off and what goes with it
}

build_services() {
	if [[ ${STACK_SKIP_BUILD:-0} == 1 ]]; then
		log "cargo build skipped (STACK_SKIP_BUILD=1)"
		return 0
	fi
	local t args=(build --workspace --bins)
	[[ $PROFILE == debug ]] || args+=(--profile "$PROFILE") # target/<profile> (release, ...)
	log "cargo ${args[*]} ..."
	t=$(clock)
	(cd "$ROOT" && cargo "${args[@]}") || die "cargo build failed"
	log "cargo build in $(since "$t")s"
}

# migrate NAME — `NAME migrate` applies the service's migrations and exits.
migrate() {
	local name=$1 t envs
	readarray -t envs < <(service_env "$name")
	t=$(clock)
	env "${envs[@]}" "$BIN_DIR/$(service_kind "$name")" migrate </dev/null >"$LOGS/$name-migrate.log" 2>&1 ||
		fail "$name migrate" "$LOGS/$name-migrate.log" "migrations failed"
	log "$name: migrations applied in $(since "$t")s"
}

services_up() {
	build_services
	local name kind bin pid port envs fresh t0=() waiting=()
	for kind in orders payments gateway; do
		[[ -x $BIN_DIR/$kind ]] || die "$BIN_DIR/$kind not found (cargo build --workspace --bins should produce it)"
	done
	# AUTH=jwt: keys and secret (kept when present), then the dev identity provider.
	auth_prepare
	devauth_up
	# Instances beyond the wanted counts (a larger stack before) stop first.
	for name in "${ALL_SERVICES[@]}"; do
		[[ " ${SERVICES[*]} " == *" $name "* ]] && continue
		if pid=$(service_pid "$name"); then
			log "$name: not wanted (ORDERS_INSTANCES=$ORDERS_INSTANCES PAYMENTS_INSTANCES=$PAYMENTS_INSTANCES): stopping"
			service_down "$name"
		fi
	done
	for name in "${SERVICES[@]}"; do
		fresh=1
		kind=$(service_kind "$name")
		bin=$BIN_DIR/$kind
		if pid=$(service_pid "$name"); then
			fresh=0 # running before this command: a restart is not ours to stop in `test`
			if [[ $(service_bin "$name") != "$bin" ]]; then
				log "$name: runs $(service_bin "$name"), STACK_PROFILE=$PROFILE wanted: restarting"
				stop_pid "$name" "$pid" "$STOP_TIMEOUT"
			elif [[ $bin -nt $PIDS/$name.pid ]]; then
				log "$name: binary rebuilt since it started: restarting"
				stop_pid "$name" "$pid" "$STOP_TIMEOUT"
			elif [[ $kind != gateway && $(state_get "BROKER_$name") != "${BROKER:-kafka}" ]]; then
				log "$name: runs on $(state_get "BROKER_$name"), BROKER=${BROKER:-kafka} wanted: restarting"
				stop_pid "$name" "$pid" "$STOP_TIMEOUT"
			elif [[ $kind == gateway && $(state_get UPSTREAMS_gateway) != "$(upstreams_wanted)" ]]; then
				log "gateway: balances $(state_get UPSTREAMS_gateway), $(upstreams_wanted) wanted: restarting"
				stop_pid "$name" "$pid" "$STOP_TIMEOUT"
			elif [[ $(state_get "AUTH_$name") != "$(auth_fingerprint)" ]]; then
				log "$name: runs with other authentication settings, AUTH=$STACK_AUTH wanted: restarting"
				stop_pid "$name" "$pid" "$STOP_TIMEOUT"
			else
				log "$name already running (pid $pid, :$(service_port "$name"))"
				continue
			fi
		fi
		port=$(service_port "$name")
		port_in_use "$port" && die "$name: port $port is in use by a process not started by dev/stack.sh"
		[[ $kind == gateway ]] || migrate "$name"
		rotate_log "$name"
		readarray -t envs < <(service_env "$name")
		t0+=("$(clock)")
		nohup env "${envs[@]}" "$bin" </dev/null >>"$LOGS/$name.log" 2>&1 &
		echo $! >"$PIDS/$name.pid"
		state_set "BIN_$name" "$bin"
		state_set "AUTH_$name" "$(auth_fingerprint)"
		if [[ $kind == gateway ]]; then
			state_set UPSTREAMS_gateway "$(upstreams_wanted)"
		else
			state_set "BROKER_$name" "${BROKER:-kafka}"
		fi
		if ((fresh)); then started "$name"; fi
		waiting+=("$name")
	done
	local i
	for i in "${!waiting[@]}"; do
		name=${waiting[$i]}
		pid=$(pid_of "$PIDS/$name.pid")
		port=$(service_port "$name")
		wait_for "$name" "$SERVICE_TIMEOUT" "$pid" "$LOGS/$name.log" http_ok "http://127.0.0.1:$port/health"
		log "$name ready in $(since "${t0[$i]}")s (pid $pid, http://127.0.0.1:$port)"
	done
}

# What the gateway should balance across: orders and payments instance counts.
upstreams_wanted() { echo "orders=$ORDERS_INSTANCES,payments=$PAYMENTS_INSTANCES"; }

service_down() {
	local pid
	pid=$(service_pid "$1") || return 0
	stop_pid "$1" "$pid" "$STOP_TIMEOUT"
	rm -f "$PIDS/$1.pid"
}

service_status() {
	local name=$1 pid port
	port=$(service_port "$name")
	if pid=$(service_pid "$name"); then
		status_line "$name" running "$pid" "http://127.0.0.1:$port (/health $(http_status "http://127.0.0.1:$port/health"))"
	else
		status_line "$name" stopped - "-"
	fi
}

# ---------------------------------------------------------------- nginx (frontend)

nginx_pid() { running_pid "$NGINX_DIR/nginx.pid" "$NGINX_CONF"; }

# The account the workers run as when we are root: www-data when it can read the frontend,
# else root (a checkout under /root is not readable by www-data).
nginx_user_line() {
	[[ $EUID -eq 0 ]] || return 0
	if id www-data >/dev/null 2>&1 && runuser -u www-data -- test -r "$FRONTEND_ROOT/index.html" 2>/dev/null; then
		echo 'user www-data;'
	else
		echo 'user root;'
	fi
}

nginx_write_config() {
	mkdir -p "$NGINX_DIR/tmp"
	FRONTEND_PORT=$FRONTEND_PORT FRONTEND_ROOT=$FRONTEND_ROOT GATEWAY_UPSTREAM="http://127.0.0.1:$GATEWAY_PORT" \
		DEVAUTH_UPSTREAM="http://127.0.0.1:$DEVAUTH_PORT" AUTH=${STACK_AUTH:-off} \
		envsubst "\${FRONTEND_PORT} \${FRONTEND_ROOT} \${GATEWAY_UPSTREAM} \${DEVAUTH_UPSTREAM} \${AUTH}" \
		<"$FRONTEND_TEMPLATE" >"$NGINX_DIR/frontend.conf"
	cat >"$NGINX_CONF" <<EOF
# Written by dev/stack.sh: a private nginx whose pid, logs and temp files stay in .stack.
$(nginx_user_line)
worker_processes 1;
pid $NGINX_DIR/nginx.pid;
error_log $LOGS/nginx.log notice;

events {
    worker_connections 512;
}

http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log $LOGS/nginx.log;
    sendfile on;
    keepalive_timeout 65;

    client_body_temp_path $NGINX_DIR/tmp/client_body;
    proxy_temp_path $NGINX_DIR/tmp/proxy;
    fastcgi_temp_path $NGINX_DIR/tmp/fastcgi;
    uwsgi_temp_path $NGINX_DIR/tmp/uwsgi;
    scgi_temp_path $NGINX_DIR/tmp/scgi;

    # frontend/nginx.conf rendered with envsubst (FRONTEND_PORT, FRONTEND_ROOT, GATEWAY_UPSTREAM,
    # DEVAUTH_UPSTREAM, AUTH).
    include $NGINX_DIR/frontend.conf;
}
EOF
}

nginx_up() {
	if [[ ! -f $FRONTEND_TEMPLATE ]]; then
		warn "frontend/nginx.conf not found: nginx (frontend on :$FRONTEND_PORT) skipped"
		return 0
	fi
	command -v nginx >/dev/null 2>&1 || die "nginx not installed (run: dev/stack.sh install)"
	command -v envsubst >/dev/null 2>&1 || die "envsubst not installed (run: dev/stack.sh install)"
	local pid t
	nginx_write_config
	nginx -t -q -p "$NGINX_DIR/" -c "$NGINX_CONF" -e "$LOGS/nginx.log" </dev/null >"$LOGS/nginx-check.log" 2>&1 ||
		fail nginx "$LOGS/nginx-check.log" "nginx -t rejects $NGINX_CONF"
	if pid=$(nginx_pid); then
		nginx -p "$NGINX_DIR/" -c "$NGINX_CONF" -e "$LOGS/nginx.log" -s reload </dev/null >>"$LOGS/nginx-check.log" 2>&1 ||
			warn "nginx: reload failed"
		log "nginx already running (pid $pid, http://127.0.0.1:$FRONTEND_PORT): configuration reloaded"
		return 0
	fi
	port_in_use "$FRONTEND_PORT" && die "nginx: port $FRONTEND_PORT is in use by a process not started by dev/stack.sh"
	rotate_log nginx
	t=$(clock)
	# shellcheck disable=SC2094 # -e names the error log; nothing reads it here
	nginx -p "$NGINX_DIR/" -c "$NGINX_CONF" -e "$LOGS/nginx.log" </dev/null >>"$LOGS/nginx.log" 2>&1 ||
		fail nginx "$LOGS/nginx.log" "nginx did not start"
	started nginx
	wait_for nginx 20 "pidfile:$NGINX_DIR/nginx.pid" "$LOGS/nginx.log" http_any "http://127.0.0.1:$FRONTEND_PORT/"
	log "nginx ready in $(since "$t")s (pid $(pid_of "$NGINX_DIR/nginx.pid"), http://127.0.0.1:$FRONTEND_PORT)"
}

nginx_down() {
	local pid
	pid=$(nginx_pid) || return 0
	stop_pid nginx "$pid" 10 QUIT # graceful: finish requests in flight
}

nginx_status() {
	local pid
	if pid=$(nginx_pid); then
		status_line nginx running "$pid" "http://127.0.0.1:$FRONTEND_PORT (/ $(http_status "http://127.0.0.1:$FRONTEND_PORT/"))"
	elif [[ -f $FRONTEND_TEMPLATE ]]; then
		status_line nginx stopped - "-"
	else
		status_line nginx absent - "(no frontend/nginx.conf)"
	fi
}
