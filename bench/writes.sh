#!/usr/bin/env bash
# Measures the write targets of issue #22 in one run on this machine, servers alternated and the
# order rotated each round: pipecached with -fsync always ("pipecache": acknowledged means on
# disk) and with -fsync everysec ("pipecache-everysec"), Redis without persistence ("redis") and
# Redis with appendonly yes and appendfsync always ("redis-aof"). The workloads, 50 sessions x 1
# in flight, 100 B values: set=100 on 100,000 keys (the server's CPU per set), get=90/set=10 on
# 100,000 keys, and the hot leaderboard (zincr: exec zset incr / ZINCRBY on ONE board of up to
# 100 members). Starts every server on loopback, stops what it started, prints one table per
# workload. bench/compare.sh and bench/zincr.sh have the wider tables.
#
#   bench/writes.sh                       # 2 rounds of 5 s per server and workload (about 3 minutes)
#   ROUNDS=3 DURATION=10s bench/writes.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}

command -v redis-server >/dev/null 2>&1 || { echo "writes.sh: redis-server is not installed" >&2; exit 1; }
# shellcheck source=bench/lib.sh
source bench/lib.sh

echo "== building"
go build -o "$work/" ./cmd/pipecached ./cmd/pipecache-bench

declare -A pid port
launch() { # launch NAME COMMAND...: in the background, its PID in pids and pid[NAME]
  local name=$1
  shift
  "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
  pid[$name]=$!
}
servers=(pipecache pipecache-everysec redis redis-aof)
for s in "${servers[@]}"; do port[$s]=$(free_port); done
for mode in always everysec; do
  s=pipecache
  [ $mode = always ] || s=pipecache-$mode
  launch $s "$work/pipecached" -listen "127.0.0.1:${port[$s]}" -data-dir "$work/data-$mode" -fsync $mode \
    -memory-mb 1024 -log-level warn
done
launch redis redis-server --port "${port[redis]}" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" --loglevel warning
mkdir -p "$work/redis-aof"
launch redis-aof redis-server --port "${port[redis-aof]}" --bind 127.0.0.1 --save '' --appendonly yes \
  --appendfsync always --dir "$work/redis-aof" --loglevel warning
sleep 1
for s in "${servers[@]}"; do echo "   $s :${port[$s]} (pid ${pid[$s]})"; done

results="$work/results.jsonl"
# bench SERVER LABEL PRELOAD FLAGS...: one run, appended to the results.
bench() {
  local server=$1 label=$2 preload=$3 driver=redis extra=(-name "$1")
  shift 3
  case $server in
    pipecache*) driver=pipecache extra+=(-metrics "http://127.0.0.1:${port[$server]}/metrics") ;;
  esac
  "$work/pipecache-bench" -server "$driver" -addr "127.0.0.1:${port[$server]}" -pid "${pid[$server]}" "${extra[@]}" "$@" \
    -sessions 50 -inflight 1 -value 100 -duration "$DURATION" -warmup "$WARMUP" -preload="$preload" -quiet -json \
    -label "$label" >>"$results"
}

workloads=(
  "set=100, 100 B, 100k keys, 50 x 1|false|-mix set=100 -keys 100000"
  "get=90/set=10, 100 B, 100k keys, 50 x 1|true|-mix get=90,set=10 -keys 100000"
  "hot leaderboard: zincr on ONE board of up to 100 members, 50 x 1|false|-mix zincr=100 -keys 1 -members 100"
)
w=0
for wl in "${workloads[@]}"; do
  IFS='|' read -r name preload flags <<<"$wl"
  w=$((w + 1))
  for ((r = 1; r <= ROUNDS; r++)); do
    [ "$r" = 1 ] || preload=false
    for ((i = 0; i < ${#servers[@]}; i++)); do
      s=${servers[$(((i + r) % ${#servers[@]}))]}
      echo "== $name: round $r/$ROUNDS: $s"
      # shellcheck disable=SC2086 # flags are words
      bench "$s" "$name" "$preload" $flags -prefix "w$w:"
    done
  done
done

echo
echo "== results ($(nproc) cores shared by client and servers; steal = CPU taken by the host during the runs)"
"$work/pipecache-bench" -summarize "$results"
cp "$results" "${RESULTS_OUT:-/dev/null}" 2>/dev/null || true
