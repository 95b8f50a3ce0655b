# shellcheck shell=bash
# Prometheus (Debian's `prometheus` package), optional: `STACK_PROMETHEUS=1 make up` starts it on
# PROMETHEUS_PORT (9090) scraping the gateway and every orders and payments instance every 5 s.
# Its data lives in .stack/prometheus; `make down` stops it like everything else.

PROMETHEUS_PORT=${PROMETHEUS_PORT:-9090}
PROMETHEUS_DIR=$STACK/prometheus
PROMETHEUS_CONF=$PROMETHEUS_DIR/prometheus.yml

prometheus_wanted() { [[ ${STACK_PROMETHEUS:-0} == 1 ]]; }
prometheus_pid() { running_pid "$PIDS/prometheus.pid" "$PROMETHEUS_CONF"; }

# prometheus_targets KIND — the instances of KIND as a YAML flow list of host:port.
prometheus_targets() {
	local name targets=()
	for name in "${SERVICES[@]}"; do
		[[ $(service_kind "$name") == "$1" ]] && targets+=("'127.0.0.1:$(service_port "$name")'")
	done
	local IFS=,
	echo "[${targets[*]}]"
}

prometheus_write_config() {
	mkdir -p "$PROMETHEUS_DIR/data"
	cat >"$PROMETHEUS_CONF.tmp" <<-YAML
		# Written by dev/stack.sh: the gateway and every instance of orders and payments.
		global:
		  scrape_interval: 5s
		  evaluation_interval: 5s
		scrape_configs:
		  - job_name: gateway
		    static_configs: [{targets: $(prometheus_targets gateway)}]
		  - job_name: orders
		    static_configs: [{targets: $(prometheus_targets orders)}]
		  - job_name: payments
		    static_configs: [{targets: $(prometheus_targets payments)}]
	YAML
	mv -f "$PROMETHEUS_CONF.tmp" "$PROMETHEUS_CONF"
}

prometheus_up() {
	prometheus_wanted || return 0
	command -v prometheus >/dev/null 2>&1 || die "prometheus not installed (run: STACK_PROMETHEUS=1 dev/stack.sh install)"
	local pid t
	prometheus_write_config
	if pid=$(prometheus_pid); then
		kill -HUP "$pid" # re-reads the targets (instances may have changed)
		log "prometheus already running (pid $pid, http://127.0.0.1:$PROMETHEUS_PORT): configuration reloaded"
		return 0
	fi
	port_in_use "$PROMETHEUS_PORT" && die "prometheus: port $PROMETHEUS_PORT is in use by a process not started by dev/stack.sh"
	rotate_log prometheus
	t=$(clock)
	nohup prometheus --config.file="$PROMETHEUS_CONF" --storage.tsdb.path="$PROMETHEUS_DIR/data" \
		--web.listen-address="127.0.0.1:$PROMETHEUS_PORT" </dev/null >>"$LOGS/prometheus.log" 2>&1 &
	echo $! >"$PIDS/prometheus.pid"
	started prometheus
	wait_for prometheus 30 "$(pid_of "$PIDS/prometheus.pid")" "$LOGS/prometheus.log" http_ok "http://127.0.0.1:$PROMETHEUS_PORT/-/ready"
	log "prometheus ready in $(since "$t")s (pid $(pid_of "$PIDS/prometheus.pid"), http://127.0.0.1:$PROMETHEUS_PORT)"
}

prometheus_down() {
	local pid
	pid=$(prometheus_pid) || return 0
	stop_pid prometheus "$pid" 20
	rm -f "$PIDS/prometheus.pid"
}

prometheus_status() {
	local pid
	if pid=$(prometheus_pid); then
		status_line prometheus running "$pid" "http://127.0.0.1:$PROMETHEUS_PORT (/-/ready $(http_status "http://127.0.0.1:$PROMETHEUS_PORT/-/ready"))"
	elif prometheus_wanted; then
		status_line prometheus stopped - "-"
	fi
}
