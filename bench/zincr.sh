#!/usr/bin/env bash
# Measures a leaderboard update (the zincr workload of cmd/pipecache-bench): pipecache's exec of
# the built-in zset processor, the same update by get + decode + change + encode + CAS retried
# (pipecache-cas: no processor), and Redis's ZINCRBY, without persistence ("redis") and with
# appendfsync always ("redis-aof": it too acknowledges a write once it is fsync'd, as
# pipecached does), in one run on this machine: 50 callers on one hot board, then on 10,000
# boards; -members 100 per board. Starts every server on loopback, stops what it started, and
# prints one table per workload.
#
#   bench/zincr.sh                       # 1 round of 5 s per server and workload (about 1 minute)
#   ROUNDS=3 DURATION=10s bench/zincr.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-1}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}

command -v redis-server >/dev/null 2>&1 || { echo "zincr.sh: redis-server is not installed" >&2; exit 1; }
# shellcheck source=bench/lib.sh
source bench/lib.sh

echo "== building"
go build -o "$work/" ./cmd/pipecached ./cmd/pipecache-bench

declare -A port
for s in pipecache redis redis-aof; do port[$s]=$(free_port); done
echo "== starting on 127.0.0.1: pipecached :${port[pipecache]}, redis :${port[redis]}, redis-aof :${port[redis-aof]}"
start pipecache "$work/pipecached" -listen "127.0.0.1:${port[pipecache]}" -data-dir "$work/data" -log-level warn
start redis redis-server --port "${port[redis]}" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" --loglevel warning
mkdir -p "$work/redis-aof"
start redis-aof redis-server --port "${port[redis-aof]}" --bind 127.0.0.1 --save '' --appendonly yes \
  --appendfsync always --dir "$work/redis-aof" --loglevel warning
sleep 1

results="$work/results.jsonl"
# bench SERVER LABEL FLAGS...: one run, appended to the results.
bench() {
  local server=$1 label=$2 driver=$1 extra=()
  shift 2
  case $server in
    pipecache) extra=(-metrics "http://127.0.0.1:${port[pipecache]}/metrics") ;;
    pipecache-cas) driver=pipecache server=pipecache extra=(-name pipecache-cas -zincr-cas) ;;
    redis-aof) driver=redis extra=(-name redis-aof) ;;
  esac
  "$work/pipecache-bench" -server "$driver" -addr "127.0.0.1:${port[$server]}" -pid "${pid[$server]}" "${extra[@]}" "$@" \
    -mix zincr=100 -members 100 -sessions 50 -inflight 1 -preload=false \
    -duration "$DURATION" -warmup "$WARMUP" -quiet -json -label "$label" >>"$results"
}

servers=(pipecache pipecache-cas redis redis-aof)
w=0
for boards in 1 10000; do
  w=$((w + 1))
  name="zincr: 50 callers, $boards board(s) of up to 100 members"
  for ((r = 1; r <= ROUNDS; r++)); do
    for ((i = 0; i < ${#servers[@]}; i++)); do
      s=${servers[$(((i + r) % ${#servers[@]}))]}
      echo "== $name: round $r/$ROUNDS: $s"
      bench "$s" "$name" -keys "$boards" -prefix "w$w.$s:"
    done
  done
done

echo
echo "== results ($(nproc) cores shared by client and servers; steal = CPU taken by the host during the runs)"
"$work/pipecache-bench" -summarize "$results"
cp "$results" "${RESULTS_OUT:-/dev/null}" 2>/dev/null || true
