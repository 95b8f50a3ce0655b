#!/usr/bin/env bash
# A short fault round per broker on the replicated layout (docs/RELIABILITY.md, "High
# availability"): PostgreSQL as a two-node Patroni cluster (PG_NODES=2), Kafka and RabbitMQ as
# three nodes each, and the faults that only that layout has among the others (kill -9 of the
# PostgreSQL primary, of one broker node, a partition of one broker node). 2,000 orders and 8
# faults per broker; exits non-zero on any violation. It replaces whatever .stack holds (one
# layout at a time) and removes it afterwards: run it after `make test`, not beside it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
BIN_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/debug

cleanup() { ./dev/stack.sh clean >/dev/null 2>&1 || true; }
trap cleanup EXIT

./dev/stack.sh clean
PG_NODES=2 KAFKA_NODES=3 RABBITMQ_NODES=3 STACK_RABBITMQ=1 ./dev/stack.sh infra
# shellcheck source=/dev/null
. .stack/env
cargo build -q -p orders -p payments -p gateway -p faults
for broker in kafka rabbitmq; do
	echo "ha-round: $broker"
	"$BIN_DIR/faults" --broker "$broker" --bin-dir "$BIN_DIR" --orders 2000 --faults 8 --ha-weight 2 \
		--report "$ROOT/target/faults-ha-$broker.json"
done
