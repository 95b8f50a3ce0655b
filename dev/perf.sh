#!/usr/bin/env bash
# dev/perf.sh LABEL — the load-tool runs of docs/PERFORMANCE.md against the running stack (start
# it with `STACK_PROFILE=release make up`, add BROKER=rabbitmq for RabbitMQ), reports and plots
# to docs/perf/LABEL-<broker>-<run>.{json,svg}:
#   closed   32 clients at max, 2,000 orders over 100 users, pgbench-32 afterwards
#   open500  open loop at 500 orders/s, 5,000 orders
#   backlog  20,000 orders accepted while payments is stopped (SIGSTOP), then drained
# and the services' resident memory idle and at its peak during the closed loop (ps, every 0.2 s).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LABEL=${1:?usage: dev/perf.sh LABEL}
OUT=$ROOT/docs/perf
# shellcheck source=/dev/null
. "$ROOT/.stack/env"
BROKER_NOW=$(tr '\0' '\n' <"/proc/$(cat "$ROOT/.stack/pids/orders.pid")/environ" | sed -n 's/^BROKER=//p')
BROKER_NOW=${BROKER_NOW:-kafka}
LOADGEN=$ROOT/target/release/loadgen
(cd "$ROOT" && cargo build -q --release -p loadgen)

pids() { for s in orders payments gateway; do printf '%s=%s ' "$s" "$(cat "$ROOT/.stack/pids/$s.pid")"; done; }
rss_kib() { ps -o rss= -p "$1" | tr -d ' '; }

# sample_rss FILE — the peak RSS (KiB) of each service, until killed.
sample_rss() {
	local -A peak=()
	local s pid r
	trap 'for s in "${!peak[@]}"; do echo "$s ${peak[$s]}"; done >"$1"; exit 0' TERM
	while :; do
		for s in orders payments gateway; do
			pid=$(cat "$ROOT/.stack/pids/$s.pid")
			r=$(rss_kib "$pid" || echo 0)
			((r > ${peak[$s]:-0})) && peak[$s]=$r
		done
		sleep 0.2
	done
}

echo "perf: $LABEL on $BROKER_NOW ($(pids))"
for s in orders payments gateway; do
	echo "perf: idle RSS $s $(($(rss_kib "$(cat "$ROOT/.stack/pids/$s.pid")") / 1024)) MiB"
done

base=$OUT/$LABEL-$BROKER_NOW
sample_rss "$base-rss-peak.txt" &
sampler=$!
"$LOADGEN" --clients 32 --orders 2000 --users 100 --report "$base-closed.json"
kill -TERM "$sampler"
wait "$sampler" || true
while read -r s kib; do echo "perf: peak RSS under the closed loop $s $((kib / 1024)) MiB"; done <"$base-rss-peak.txt"
rm -f "$base-rss-peak.txt"

"$LOADGEN" --rate 500 --clients 64 --orders 5000 --users 100 --pgbench-seconds 0 \
	--report "$base-open500.json"

payments_pid=$(cat "$ROOT/.stack/pids/payments.pid")
"$LOADGEN" --clients 32 --orders 20000 --users 1000 --settle-timeout-s 300 \
	--backlog-hold "kill -STOP $payments_pid" --backlog-release "kill -CONT $payments_pid" \
	--report "$base-backlog.json"
