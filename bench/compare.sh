#!/usr/bin/env bash
# Measures pipecache next to Redis and memcached on this machine, in one run, with the same
# load generator (cmd/pipecache-bench) and the same workloads, alternating the servers over
# several rounds. Installs redis-server and memcached from Debian if missing, starts every server
# on loopback, stops everything it started, and prints one table per workload.
#
# The servers: pipecached on its embedded store (every write fsync'd before it is acknowledged);
# Redis without persistence ("redis"); Redis with appendonly yes and appendfsync always
# ("redis-aof": it too acknowledges a write only after fsync, the like-for-like comparison for
# writes); memcached. Each table reports, besides throughput and latency, the server's CPU per
# operation, the load generator's own CPU per operation (that is, each client library's cost:
# pipecache's SDK, go-redis, gomemcache), and for pipecache its datagrams and stage wake-ups per
# operation (from its admin /metrics).
#
#   bench/compare.sh                 # 3 rounds of 10 s per server and workload (about 15 minutes)
#   ROUNDS=5 DURATION=20s bench/compare.sh
#
# Client and servers share the machine's cores; see BENCHMARKS.md for how to read the numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}

need() { command -v "$1" >/dev/null 2>&1; }
if ! need redis-server || ! need memcached; then
  echo "== installing redis-server and memcached"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server memcached >/dev/null
fi

# shellcheck source=bench/lib.sh
source bench/lib.sh

echo "== building"
go build -o "$work/" ./cmd/pipecached ./cmd/pipecache-bench

declare -A pid port
# start NAME COMMAND...: start a server in the background and remember its PID (for -pid).
start() {
  local name=$1
  shift
  "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
  pid[$name]=$!
}

start_servers() {
  local s
  for s in redis redis-aof memcached pipecache pipecache-miss; do port[$s]=$(free_port); done
  echo "== starting servers on 127.0.0.1: redis :${port[redis]}, redis-aof :${port[redis-aof]}," \
    "memcached :${port[memcached]}, pipecached :${port[pipecache]}, pipecached with 4 MiB :${port[pipecache-miss]}"
  start redis redis-server --port "${port[redis]}" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$work" --loglevel warning
  mkdir -p "$work/redis-aof"
  start redis-aof redis-server --port "${port[redis-aof]}" --bind 127.0.0.1 --save '' --appendonly yes \
    --appendfsync always --dir "$work/redis-aof" --loglevel warning
  start memcached memcached -u nobody -l 127.0.0.1 -p "${port[memcached]}" -U 0 -m 2048 -t 2
  # pipecached's admin HTTP listens on TCP at the same port number (its default).
  start pipecache "$work/pipecached" -listen "127.0.0.1:${port[pipecache]}" -data-dir "$work/data" \
    -memory-mb 1024 -log-level warn
  start pipecache-miss "$work/pipecached" -listen "127.0.0.1:${port[pipecache-miss]}" -data-dir "$work/data-miss" \
    -memory-mb 4 -log-level warn
  sleep 1
}

results="$work/results.jsonl"

# bench SERVER LABEL PRELOAD FLAGS...: one run of pipecache-bench against SERVER, appended to the
# results. SERVER is a name above: redis-aof is the redis driver under another name, and the
# pipecached runs also read its /metrics.
bench() {
  local server=$1 label=$2 preload=$3 driver=$1 extra=()
  shift 3
  case $server in
    redis-aof) driver=redis extra=(-name redis-aof) ;;
    pipecache*) driver=pipecache extra=(-metrics "http://127.0.0.1:${port[$server]}/metrics") ;;
  esac
  "$work/pipecache-bench" -server "$driver" -addr "127.0.0.1:${port[$server]}" -pid "${pid[$server]}" "${extra[@]}" "$@" \
    -duration "$DURATION" -warmup "$WARMUP" -preload="$preload" -quiet -json -label "$label" >>"$results"
}

# The workloads: name | the servers it runs on | bench flags. Get-only leaves redis-aof out: a
# read never touches its append-only file, so it would measure plain Redis twice.
common="-value 100 -keys 100000 -sessions 50"
all="pipecache redis redis-aof memcached"
workloads=(
  "90% get, 10% set, 100 B, 100k keys, 50 sessions, 1 in flight|$all|-mix get=90,set=10 $common -inflight 1"
  "90% get, 10% set, 100 B, 100k keys, 50 sessions, 16 in flight|$all|-mix get=90,set=10 $common -inflight 16"
  "90% get, 10% set, 1 KiB, 100k keys, 50 sessions, 1 in flight|$all|-mix get=90,set=10 -value 1024 -keys 100000 -sessions 50 -inflight 1"
  "100% get, 100 B, 100k keys, 50 sessions, 1 in flight|pipecache redis memcached|-mix get=100 $common -inflight 1"
  "90% get, 10% set, 100 B, 100k keys, 50 goroutines sharing ONE client (pipecache: one Client, one session; go-redis: one client, pool of 50; gomemcache: one client)|$all|-mix get=90,set=10 $common -inflight 1 -shared"
)

# run_workload W NAME SERVERS FLAGS: ROUNDS rounds, servers alternated and the order rotated
# each round; the first round preloads the keys.
run_workload() {
  local w=$1 name=$2 flags=$3 servers r i n preload
  read -ra servers <<<"$4"
  n=${#servers[@]}
  for ((r = 1; r <= ROUNDS; r++)); do
    preload=false
    [ "$r" = 1 ] && preload=true
    for ((i = 0; i < n; i++)); do
      local s=${servers[$(((i + r) % n))]}
      echo "== $name: round $r/$ROUNDS: $s"
      # shellcheck disable=SC2086 # flags are words
      bench "$s" "$name" "$preload" $flags -prefix "w$w:"
    done
  done
}

start_servers
w=0
for wl in "${workloads[@]}"; do
  IFS='|' read -r name servers flags <<<"$wl"
  w=$((w + 1))
  run_workload "$w" "$name" "$flags" "$servers"
done

name="read-through (pipecache only): 100% get, 100 B, 100k keys in the store, 4 MiB cache, 50 sessions"
for ((r = 1; r <= ROUNDS; r++)); do
  preload=false
  [ "$r" = 1 ] && preload=true
  echo "== $name: round $r/$ROUNDS"
  bench pipecache-miss "$name" "$preload" -name pipecache -mix get=100 -value 100 -keys 100000 -sessions 50 -inflight 1
done

echo
echo "== results ($(nproc) cores shared by client and servers; steal = CPU taken by the host during the runs)"
"$work/pipecache-bench" -summarize "$results"
cp "$results" "${RESULTS_OUT:-/dev/null}" 2>/dev/null || true
