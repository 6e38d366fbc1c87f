#!/usr/bin/env bash
# Measures pipecache next to Redis and memcached on this machine, in one run, with the same
# load generator (cmd/pipecache-bench) and the same workloads, alternating the servers over
# several rounds. Installs redis-server and memcached from Debian if missing, starts every server
# on loopback, stops everything it started, and prints one table per workload.
#
# The servers: pipecached on its embedded store (every write fsync'd before it is acknowledged,
# unless FSYNC says otherwise); Redis without persistence ("redis"); Redis with appendonly yes
# and appendfsync always ("redis-aof": it too acknowledges a write only after fsync, the
# like-for-like comparison for writes); memcached. Each table reports, besides throughput and
# latency, the server's CPU and context switches per operation, the load generator's own CPU per
# operation (that is, each client library's cost: pipecache's SDK, go-redis, gomemcache), and
# for pipecache its datagrams and stage wake-ups per operation (from its admin /metrics).
#
#   bench/compare.sh                 # 3 rounds of 10 s per server and workload (about 15 minutes)
#   ROUNDS=5 DURATION=20s bench/compare.sh
#
# Settings (environment):
#   WORKLOADS=threads     get-only and get=90/set=10 at 50 x 1 and 50 x 16 in flight, against
#                         redis and memcached (BENCHMARKS.md, "Threads"); default: the tables of
#                         BENCHMARKS.md, "pipecache next to Redis and memcached"
#   THREADS="1 2 4"       one pipecached per value, named pipecache-t1..., started with -threads N
#   VARIANTS="a=FLAGS;b=FLAGS"  one pipecached per entry, named pipecache-a..., with those flags
#                         (e.g. "l3=-loops incoming+sessionmgr+cacheprc,outgoing"); with neither,
#                         one pipecached, "pipecache", with -threads from its CPUs
#   PIN=1                 every server on CPU $SERVER_CPU (default 1), the load generator on CPU
#                         $CLIENT_CPU (default 0), with taskset: one core each
#   FSYNC=everysec        pipecached's -fsync (default always)
#   MEMCACHED_THREADS     memcached's -t (default 2; 1 with PIN)
#
# Client and servers share the machine's cores unless PIN; see BENCHMARKS.md for how to read
# the numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
WORKLOADS=${WORKLOADS:-default}
FSYNC=${FSYNC:-always}
SERVER_CPUS="" CLIENT_CPUS=""
if [ -n "${PIN:-}" ]; then
  SERVER_CPUS=${SERVER_CPU:-1} CLIENT_CPUS=${CLIENT_CPU:-0}
fi
MEMCACHED_THREADS=${MEMCACHED_THREADS:-$([ -n "${PIN:-}" ] && echo 1 || echo 2)}

need() { command -v "$1" >/dev/null 2>&1; }
if ! need redis-server || ! need memcached; then
  echo "== installing redis-server and memcached"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server memcached >/dev/null
fi

# shellcheck source=bench/lib.sh
source bench/lib.sh

echo "== building"
go build -o "$work/" ./cmd/pipecached ./cmd/pipecache-bench

# The pipecached servers: names, and the flags each is started with.
declare -A port pcflags
pcservers=()
if [ -n "${THREADS:-}" ]; then
  for n in $THREADS; do VARIANTS="${VARIANTS:+$VARIANTS;}t$n=-threads $n"; done
fi
if [ -n "${VARIANTS:-}" ]; then
  IFS=';' read -ra entries <<<"$VARIANTS"
  for e in "${entries[@]}"; do
    pcservers+=("pipecache-${e%%=*}")
    pcflags[pipecache-${e%%=*}]=${e#*=}
  done
else
  pcservers=(pipecache)
  pcflags[pipecache]=""
fi
others=(redis memcached)
[ "$WORKLOADS" = default ] && others=(redis redis-aof memcached)

start_servers() {
  local s
  for s in "${pcservers[@]}" "${others[@]}" pipecache-miss; do port[$s]=$(free_port); done
  echo "== starting servers on 127.0.0.1${SERVER_CPUS:+, pinned to CPU $SERVER_CPUS}:"
  start redis redis-server --port "${port[redis]}" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$work" --loglevel warning
  if [ "$WORKLOADS" = default ]; then
    mkdir -p "$work/redis-aof"
    start redis-aof redis-server --port "${port[redis-aof]}" --bind 127.0.0.1 --save '' --appendonly yes \
      --appendfsync always --dir "$work/redis-aof" --loglevel warning
    # pipecached's admin HTTP listens on TCP at the same port number (its default).
    start pipecache-miss "$work/pipecached" -listen "127.0.0.1:${port[pipecache-miss]}" -data-dir "$work/data-miss" \
      -memory-mb 4 -log-level warn -fsync "$FSYNC"
  fi
  start memcached memcached -u nobody -l 127.0.0.1 -p "${port[memcached]}" -U 0 -m 2048 -t "$MEMCACHED_THREADS"
  for s in "${pcservers[@]}"; do
    # shellcheck disable=SC2086 # the variant's flags are words
    start "$s" "$work/pipecached" -listen "127.0.0.1:${port[$s]}" -data-dir "$work/data-$s" \
      -memory-mb 1024 -log-level warn -fsync "$FSYNC" ${pcflags[$s]}
  done
  sleep 1
  for s in "${pcservers[@]}" "${others[@]}"; do
    echo "   $s :${port[$s]} (pid ${pid[$s]}) ${pcflags[$s]:-}"
  done
  [ "$WORKLOADS" != default ] || echo "   pipecache-miss :${port[pipecache-miss]} (4 MiB cache)"
  echo "   memcached -t $MEMCACHED_THREADS; pipecached -fsync $FSYNC"
}

results="$work/results.jsonl"

# bench SERVER LABEL PRELOAD FLAGS...: one run of pipecache-bench against SERVER, appended to the
# results, on $CLIENT_CPUS if set. SERVER is a name above: redis-aof is the redis driver under
# another name, and the pipecached runs also read its /metrics.
bench() {
  local server=$1 label=$2 preload=$3 driver=$1 extra=()
  shift 3
  case $server in
    redis-aof) driver=redis extra=(-name redis-aof) ;;
    pipecache*) driver=pipecache extra=(-name "$server" -metrics "http://127.0.0.1:${port[$server]}/metrics") ;;
  esac
  on_cpus "$CLIENT_CPUS" "$work/pipecache-bench" -server "$driver" -addr "127.0.0.1:${port[$server]}" -pid "${pid[$server]}" \
    "${extra[@]}" "$@" -duration "$DURATION" -warmup "$WARMUP" -preload="$preload" -quiet -json -label "$label" >>"$results"
}

# The workloads: name | the servers it runs on | bench flags. Get-only leaves redis-aof out: a
# read never touches its append-only file, so it would measure plain Redis twice.
common="-value 100 -keys 100000 -sessions 50"
pc="${pcservers[*]}"
case $WORKLOADS in
  default)
    all="$pc redis redis-aof memcached"
    workloads=(
      "90% get, 10% set, 100 B, 100k keys, 50 sessions, 1 in flight|$all|-mix get=90,set=10 $common -inflight 1"
      "90% get, 10% set, 100 B, 100k keys, 50 sessions, 16 in flight|$all|-mix get=90,set=10 $common -inflight 16"
      "90% get, 10% set, 1 KiB, 100k keys, 50 sessions, 1 in flight|$all|-mix get=90,set=10 -value 1024 -keys 100000 -sessions 50 -inflight 1"
      "100% get, 100 B, 100k keys, 50 sessions, 1 in flight|$pc redis memcached|-mix get=100 $common -inflight 1"
      "90% get, 10% set, 100 B, 100k keys, 50 goroutines sharing ONE client (pipecache: one Client, one session; go-redis: one client, pool of 50; gomemcache: one client)|$all|-mix get=90,set=10 $common -inflight 1 -shared"
    )
    ;;
  threads)
    all="$pc redis memcached"
    workloads=(
      "100% get, 100 B, 100k keys, 50 sessions, 1 in flight|$all|-mix get=100 $common -inflight 1"
      "100% get, 100 B, 100k keys, 50 sessions, 16 in flight|$all|-mix get=100 $common -inflight 16"
      "90% get, 10% set, 100 B, 100k keys, 50 sessions, 1 in flight|$all|-mix get=90,set=10 $common -inflight 1"
      "90% get, 10% set, 100 B, 100k keys, 50 sessions, 16 in flight|$all|-mix get=90,set=10 $common -inflight 16"
    )
    ;;
  *)
    echo "compare.sh: WORKLOADS=$WORKLOADS: default or threads" >&2
    exit 2
    ;;
esac

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

if [ "$WORKLOADS" = default ]; then
  name="read-through (pipecache only): 100% get, 100 B, 100k keys in the store, 4 MiB cache, 50 sessions"
  for ((r = 1; r <= ROUNDS; r++)); do
    preload=false
    [ "$r" = 1 ] && preload=true
    echo "== $name: round $r/$ROUNDS"
    bench pipecache-miss "$name" "$preload" -mix get=100 -value 100 -keys 100000 -sessions 50 -inflight 1
  done
fi

echo
where="$(nproc) cores shared by client and servers"
[ -z "$SERVER_CPUS" ] || where="servers on CPU $SERVER_CPUS, load generator on CPU $CLIENT_CPUS"
echo "== results ($where; steal = CPU taken by the host during the runs)"
"$work/pipecache-bench" -summarize "$results"
cp "$results" "${RESULTS_OUT:-/dev/null}" 2>/dev/null || true
