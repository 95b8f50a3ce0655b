#!/usr/bin/env bash
# dev/overhead.sh [ROUNDS] — what metrics and tracing cost the settle latency, measured in one
# run against the running release stack (`STACK_PROFILE=release make up`): ROUNDS (default 3)
# alternations of
#   on   TRACING=on (trace context kept, propagated, in every log line) and /metrics of the
#        gateway, orders and payments scraped every second (5x Prometheus' default rate)
#   off  TRACING=off and nothing scraping
# each an open loop of 200 orders/s, 3,000 orders over 100 users (reports in
# docs/perf/overhead-<mode>-<round>.json), the services restarted between modes. Metrics are
# recorded in both modes (a counter increment is a few atomic operations); "off" leaves out the
# scrape, which reads the outbox and asks the broker for the consumer lag.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${1:-3}
OUT=$ROOT/docs/perf
# shellcheck source=/dev/null
. "$ROOT/.stack/env"
LOADGEN=$ROOT/target/release/loadgen
(cd "$ROOT" && cargo build -q --release -p loadgen)

# restart TRACING — the three services again, with TRACING set (the stack's release binaries).
restart() {
	local s pid
	for s in gateway orders payments; do
		pid=$(cat "$ROOT/.stack/pids/$s.pid")
		kill -TERM "$pid" 2>/dev/null || true
		while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
	done
	TRACING=$1 STACK_PROFILE=release "$ROOT/dev/stack.sh" scale >/dev/null
}

scrape() {
	while :; do
		for url in "$GATEWAY_URL" "$ORDERS_URL" "$PAYMENTS_URL"; do
			curl -s -o /dev/null --max-time 5 "$url/metrics" || true
		done
		sleep 1
	done
}

printf '%-5s %-3s %12s %12s %12s %12s\n' round mode "settle p50" "settle p99" "POST p50" "POST p99"
for ((round = 1; round <= ROUNDS; round++)); do
	for mode in on off; do
		restart "$mode"
		scraper=
		if [[ $mode == on ]]; then
			scrape &
			scraper=$!
		fi
		report=$OUT/overhead-$mode-$round.json
		"$LOADGEN" --rate 200 --clients 64 --orders 3000 --users 100 --pgbench-seconds 0 \
			--report "$report" >/dev/null 2>&1
		[[ -z $scraper ]] || kill "$scraper"
		jq -r --arg r "$round" --arg m "$mode" \
			'[$r, $m, .settle_latency.p50_ms, .settle_latency.p99_ms, .post_latency.p50_ms, .post_latency.p99_ms] | @tsv' \
			"$report" | awk -F'\t' '{ printf "%-5s %-3s %9.1f ms %9.1f ms %9.1f ms %9.1f ms\n", $1, $2, $3, $4, $5, $6 }'
	done
done
restart on
