#!/usr/bin/env bash
# Measures pipecached over etcd with one node and with three, on this machine, through the SDK's
# Cluster (and a plain Client against the one node, to price the Cluster layer). Installs
# etcd-server from Debian if missing, starts one etcd member and the nodes on loopback, each
# set-up on a fresh key prefix, stops everything it started, and prints one table per set-up.
#
#   bench/cluster.sh                  # 3 rounds of 20 s per set-up and workload
#   ROUNDS=1 DURATION=10s bench/cluster.sh
#
# Everything shares the machine's cores; see BENCHMARKS.md for how to read the numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-20s}
WARMUP=${WARMUP:-5s}

if ! command -v etcd >/dev/null 2>&1; then
  echo "== installing etcd-server"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null
fi

# shellcheck source=bench/lib.sh
source bench/lib.sh

echo "== building"
go build -o "$work/" ./cmd/pipecached ./cmd/pipecache-bench

CLIENT=$(free_port); PEER=$(free_port)
echo "== starting etcd on 127.0.0.1:$CLIENT"
etcd --name bench --data-dir "$work/etcd" --listen-client-urls "http://127.0.0.1:$CLIENT" \
  --advertise-client-urls "http://127.0.0.1:$CLIENT" --listen-peer-urls "http://127.0.0.1:$PEER" \
  --initial-advertise-peer-urls "http://127.0.0.1:$PEER" --initial-cluster "bench=http://127.0.0.1:$PEER" \
  --log-level error >"$work/etcd.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
  etcdctl --endpoints "http://127.0.0.1:$CLIENT" endpoint health >/dev/null 2>&1 && break
  sleep 0.2
done

results="$work/results.jsonl"
run=0
# setup nodes client mix
measure() {
  local label=$1 n=$2 server=$3 mix=$4 node_pids=() first=""
  run=$((run + 1))
  local store="etcd://127.0.0.1:$CLIENT/run$run"
  for ((i = 0; i < n; i++)); do
    local port; port=$(free_port)
    "$work/pipecached" -listen "127.0.0.1:$port" -store "$store" -log-level warn >>"$work/nodes.log" 2>&1 &
    node_pids+=($!)
    [ -z "$first" ] && first="127.0.0.1:$port"
  done
  sleep 1.5
  local addr=$store
  [ "$server" = pipecache ] && addr=$first
  echo "== $label"
  "$work/pipecache-bench" -server "$server" -addr "$addr" -sessions 50 -mix "$mix" -keys 100000 \
    -duration "$DURATION" -warmup "$WARMUP" -quiet -json -label "$label" >>"$results"
  kill "${node_pids[@]}"
  wait "${node_pids[@]}" 2>/dev/null || true
}

for ((r = 1; r <= ROUNDS; r++)); do
  echo "== round $r/$ROUNDS"
  measure "1 node, plain Client, get=90,set=10" 1 pipecache get=90,set=10
  measure "1 node, Cluster, get=90,set=10" 1 pipecache-cluster get=90,set=10
  measure "3 nodes, Cluster, get=90,set=10" 3 pipecache-cluster get=90,set=10
  measure "1 node, Cluster, get=100" 1 pipecache-cluster get=100
  measure "3 nodes, Cluster, get=100" 3 pipecache-cluster get=100
done

echo
echo "== results ($(nproc) cores shared by etcd, the nodes and the load generator)"
"$work/pipecache-bench" -summarize "$results"
cp "$results" "${RESULTS_OUT:-/dev/null}" 2>/dev/null || true
