#!/usr/bin/env bash
# Measures pipecache next to Redis and memcached on this machine, in one run, with the same
# load generator (cmd/pipecache-bench) and the same workloads, alternating the servers over
# several rounds. Installs redis-server and memcached from Debian if missing, starts every server
# on loopback (persistence off for Redis; pipecached with its embedded store), stops everything it
# started, and prints one table per workload.
#
#   bench/compare.sh                 # 3 rounds of 10 s per server and workload
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
go build -o "$work/pipecached" ./cmd/pipecached
go build -o "$work/pipecache-bench" ./cmd/pipecache-bench

REDIS=$(free_port); MC=$(free_port); PC=$(free_port); PCMISS=$(free_port)

echo "== starting servers on 127.0.0.1 (redis :$REDIS, memcached :$MC, pipecached :$PC, pipecached 4 MiB :$PCMISS)"
declare -A pid
redis-server --port "$REDIS" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning >"$work/redis.log" 2>&1 &
pids+=($!); pid[redis]=$!
memcached -u nobody -l 127.0.0.1 -p "$MC" -U 0 -m 2048 -t 2 >"$work/memcached.log" 2>&1 &
pids+=($!); pid[memcached]=$!
"$work/pipecached" -listen "127.0.0.1:$PC" -data-dir "$work/data" -memory-mb 1024 -log-level warn >"$work/pipecached.log" 2>&1 &
pids+=($!); pid[pipecache]=$!
"$work/pipecached" -listen "127.0.0.1:$PCMISS" -data-dir "$work/data-miss" -memory-mb 4 -log-level warn >"$work/pipecached-miss.log" 2>&1 &
pids+=($!); pid[pipecache-miss]=$!
sleep 1

addr() { case $1 in redis) echo "127.0.0.1:$REDIS" ;; memcached) echo "127.0.0.1:$MC" ;; pipecache) echo "127.0.0.1:$PC" ;; pipecache-miss) echo "127.0.0.1:$PCMISS" ;; esac; }

results="$work/results.jsonl"
# workload name | bench flags
workloads=(
  "90% get, 10% set, 100 B, 100k keys, 50 sessions, 1 in flight|-mix get=90,set=10 -value 100 -keys 100000 -sessions 50 -inflight 1"
  "90% get, 10% set, 100 B, 100k keys, 50 sessions, 16 in flight|-mix get=90,set=10 -value 100 -keys 100000 -sessions 50 -inflight 16"
  "90% get, 10% set, 1 KiB, 100k keys, 50 sessions, 1 in flight|-mix get=90,set=10 -value 1024 -keys 100000 -sessions 50 -inflight 1"
)
w=0
for wl in "${workloads[@]}"; do
  name=${wl%%|*}; flags=${wl#*|}; w=$((w + 1))
  servers=(pipecache redis memcached)
  for ((r = 1; r <= ROUNDS; r++)); do
    for ((i = 0; i < 3; i++)); do
      s=${servers[$(((i + r) % 3))]} # rotate the order every round
      preload=false; [ "$r" = 1 ] && preload=true
      echo "== $name: round $r/$ROUNDS: $s"
      # shellcheck disable=SC2086
      "$work/pipecache-bench" -server "$s" -addr "$(addr "$s")" -pid "${pid[$s]}" $flags -prefix "w$w:" \
        -duration "$DURATION" -warmup "$WARMUP" -preload=$preload -quiet -json -label "$name" >>"$results"
    done
  done
done

name="read-through (pipecache only): 100% get, 100 B, 100k keys in the store, 4 MiB cache, 50 sessions"
for ((r = 1; r <= ROUNDS; r++)); do
  preload=false; [ "$r" = 1 ] && preload=true
  echo "== $name: round $r/$ROUNDS"
  "$work/pipecache-bench" -server pipecache -addr "$(addr pipecache-miss)" -pid "${pid[pipecache-miss]}" -mix get=100 -value 100 -keys 100000 \
    -sessions 50 -inflight 1 -duration "$DURATION" -warmup "$WARMUP" -preload=$preload -quiet -json -label "$name" >>"$results"
done

echo
echo "== results ($(nproc) cores shared by client and servers; steal = CPU taken by the host during the runs)"
"$work/pipecache-bench" -summarize "$results"
cp "$results" "${RESULTS_OUT:-/dev/null}" 2>/dev/null || true
