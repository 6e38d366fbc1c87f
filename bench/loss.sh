#!/usr/bin/env bash
# Measures pipecache next to Redis under packet loss, in one run, with one command (issue 13).
#
# Two network namespaces made for the run (a server side and a client side) are joined by a veth
# pair; nftables on the input hook of both sides drops N% of the packets that arrive over it
# (on input, not output: a drop on the output hook makes sendto fail with EPERM, which the
# sender sees, instead of losing the packet on the wire). pipecached (embedded store) and Redis 7
# (no persistence) run in the server namespace, pipecache-bench in the client namespace against
# each in turn, over every loss level and number of requests in flight, plus a burst pattern
# (everything dropped for 200 ms every 2 s, switched by a timer in this script). The rules'
# counters are read around every run, so the table says what was really dropped. Everything is
# torn down on exit: processes stopped by PID, then the namespaces deleted.
#
#   bench/loss.sh                                # 2 rounds of 1+8 s: 48 runs, about 9 minutes
#   ROUNDS=1 DURATION=3s bench/loss.sh           # a quick look
#   LEVELS="0 5 burst" INFLIGHT=1 bench/loss.sh  # some of the table
#
# Needs root (namespaces, nftables). Installs redis-server, nftables and iproute2 from Debian if
# missing. Traffic stays inside the two namespaces: their addresses (10.203.0.0/24) exist only
# there.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-8s}
WARMUP=${WARMUP:-1s}
LEVELS=${LEVELS:-0 1 5 10 20 burst} # percent dropped at random on each side, or "burst"
INFLIGHT=${INFLIGHT:-1 16}
SESSIONS=${SESSIONS:-50}
KEYS=${KEYS:-10000}

# The burst pattern: everything dropped for BURST_MS every BURST_EVERY_MS.
BURST_MS=200
BURST_EVERY_MS=2000
BURST_NAME="100% for 200 ms every 2 s"

SRV=pcloss-srv-$$ # namespace names carry our PID: several runs never collide
CLI=pcloss-cli-$$
VSRV=pcls$$ # veth ends (at most 15 characters)
VCLI=pclc$$
SRV_IP=10.203.0.1
CLI_IP=10.203.0.2
PC_PORT=7070    # pipecached, UDP
ADMIN_PORT=7071 # pipecached's admin HTTP (/metrics), TCP: exempt from the loss rules
REDIS_PORT=6379

die() { echo "loss.sh: $*" >&2; exit 1; }

# seconds turns a duration of one unit (8s, 1500ms, 2m) into whole seconds, rounded up.
seconds() {
  case $1 in
    *ms) echo $(((${1%ms} + 999) / 1000)) ;;
    *s) echo "${1%s}" ;;
    *m) echo $((${1%m} * 60)) ;;
  esac
}

check_args() {
  [ "$(id -u)" = 0 ] || die "needs root (network namespaces, nftables)"
  local d l
  for d in "$DURATION" "$WARMUP"; do
    [[ $d =~ ^[0-9]+(ms|s|m)$ ]] || die "durations take one unit: 8s, 1500ms, 2m (not $d)"
  done
  for l in $LEVELS; do
    [[ $l = burst || ($l =~ ^[0-9]+$ && $l -le 100) ]] || die "LEVELS: percentages 0-100 or burst (not $l)"
  done
}

install_missing() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v nft >/dev/null || missing+=(nftables)
  command -v ip >/dev/null || missing+=(iproute2)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# in_cli runs a command in the client's namespace (in the foreground: see start_servers).
in_cli() { ip netns exec "$CLI" "$@"; }

delete_namespaces() {
  ip netns del "$SRV" 2>/dev/null || true
  ip netns del "$CLI" 2>/dev/null || true
}

# make_namespaces creates both namespaces and the veth pair between them. IPv6 is off inside
# them so that the counters see only the benchmark's own IPv4 traffic (no router solicitations).
make_namespaces() {
  after_cleanup+=(delete_namespaces) # first, so that a failure below still cleans up
  ip netns add "$SRV"
  ip netns add "$CLI"
  ip link add "$VSRV" netns "$SRV" type veth peer name "$VCLI" netns "$CLI"
  local ns dev ip
  for ns in "$SRV" "$CLI"; do
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" link set lo up
  done
  for spec in "$SRV $VSRV $SRV_IP" "$CLI $VCLI $CLI_IP"; do
    read -r ns dev ip <<<"$spec"
    ip -n "$ns" addr add "$ip/24" dev "$dev"
    ip -n "$ns" link set "$dev" up
  done
}

# add_rules sets up, in namespace $1, a table whose input chain counts every packet arriving over
# the veth $2 ("seen") and passes it through the chain "loss", whose rules set_loss and burst
# change (and whose drops count as "dropped"). The admin port is let through first: reading
# /metrics is not part of the workload.
add_rules() {
  ip netns exec "$1" nft -f - <<EOF
table ip pcloss {
  counter seen {}
  counter dropped {}
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "$2" tcp dport $ADMIN_PORT accept
    iifname "$2" tcp sport $ADMIN_PORT accept
    iifname "$2" counter name seen jump loss
  }
  chain loss {
  }
}
EOF
}

# set_loss makes both sides drop $1 percent of the packets they receive, at random.
set_loss() {
  local ns
  for ns in "$SRV" "$CLI"; do
    ip netns exec "$ns" nft flush chain ip pcloss loss
    if [ "$1" -gt 0 ]; then
      ip netns exec "$ns" nft add rule ip pcloss loss numgen random mod 100 '<' "$1" counter name dropped drop
    fi
  done
}

# drop_all on|off switches dropping everything, on both sides (one after the other: a few
# milliseconds apart).
drop_all() {
  local ns
  for ns in "$SRV" "$CLI"; do
    if [ "$1" = on ]; then
      ip netns exec "$ns" nft add rule ip pcloss loss counter name dropped drop
    else
      ip netns exec "$ns" nft flush chain ip pcloss loss
    fi
  done
}

# burst_loop drops everything for BURST_MS every BURST_EVERY_MS, $1 times at most, until the
# file $2 exists, adding a line to the file $3 per burst. It stops by itself rather than by a
# signal: killed between forking an nft and its end, it could leave an "everything" rule behind
# after the caller's clean-up.
burst_loop() {
  local quiet on i
  quiet=$(printf '%d.%03d' $(((BURST_EVERY_MS - BURST_MS) / 1000)) $(((BURST_EVERY_MS - BURST_MS) % 1000)))
  on=$(printf '%d.%03d' $((BURST_MS / 1000)) $((BURST_MS % 1000)))
  for ((i = 0; i < $1; i++)); do
    sleep "$quiet"
    [ -e "$2" ] && break
    drop_all on
    sleep "$on"
    drop_all off
    echo burst >>"$3"
  done
}

burst_pid=""
# start_bursts starts burst_loop in the background, bounded by the run's length plus a minute.
start_bursts() {
  local bound=$((($(seconds "$DURATION") + $(seconds "$WARMUP") + 60) * 1000 / BURST_EVERY_MS))
  rm -f "$work/bursts.stop" "$work/bursts.count"
  touch "$work/bursts.count"
  burst_loop "$bound" "$work/bursts.stop" "$work/bursts.count" &
  burst_pid=$!
  pids+=("$burst_pid")
}

# stop_bursts asks burst_loop to stop and waits for it: at most one quiet period and a burst.
stop_bursts() {
  [ -n "$burst_pid" ] || return 0
  touch "$work/bursts.stop"
  wait "$burst_pid" || true
  forget_pid "$burst_pid"
  burst_pid=""
}

# counters prints "seen dropped": the packets both sides' rules counted so far.
counters() {
  local seen=0 dropped=0 ns n
  for ns in "$SRV" "$CLI"; do
    n=$(ip netns exec "$ns" nft list counter ip pcloss seen | awk '/packets/ {print $2}')
    seen=$((seen + n))
    n=$(ip netns exec "$ns" nft list counter ip pcloss dropped | awk '/packets/ {print $2}')
    dropped=$((dropped + n))
  done
  echo "$seen $dropped"
}

# wait_tcp waits (at most 10 s) until something in the server namespace accepts TCP on port $1,
# seen from the client namespace.
wait_tcp() {
  local i
  for ((i = 0; i < 50; i++)); do
    if in_cli bash -c "exec 3<>/dev/tcp/$SRV_IP/$1" 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  die "nothing accepts $SRV_IP:$1 (see $work/*.log)"
}

# start_servers starts both servers in the server namespace, through ip netns exec itself rather
# than a function: ip execs the server, so $! is the server's PID (for -pid and for stopping it),
# where a function run in the background would be a subshell.
declare -A pid addr
start_servers() {
  ip netns exec "$SRV" "$work/pipecached" -listen "$SRV_IP:$PC_PORT" -admin "$SRV_IP:$ADMIN_PORT" -data-dir "$work/data" \
    -memory-mb 1024 -log-level warn >"$work/pipecached.log" 2>&1 &
  pids+=($!)
  pid[pipecache]=$!
  addr[pipecache]=$SRV_IP:$PC_PORT
  ip netns exec "$SRV" redis-server --bind "$SRV_IP" --port "$REDIS_PORT" --protected-mode no --save '' --appendonly no \
    --dir "$work" --loglevel warning >"$work/redis.log" 2>&1 &
  pids+=($!)
  pid[redis]=$!
  addr[redis]=$SRV_IP:$REDIS_PORT
  wait_tcp "$ADMIN_PORT"
  wait_tcp "$REDIS_PORT"
}

# pattern_name is a loss level's name in the table.
pattern_name() { if [ "$1" = burst ]; then echo "$BURST_NAME"; else echo "$1%"; fi; }

failed=()
declare -A preloaded

# measure runs pipecache-bench against server $1 at loss level $2 with $3 requests in flight,
# and appends its result, with the counters' view of the loss, to the results file. A run that
# fails is reported at the end, and the others go on.
measure() {
  local server=$1 level=$2 inflight=$3 name random=0 burst=false preload=false extra=() out loss
  local before_seen before_dropped after_seen after_dropped bursts=0
  name=$(pattern_name "$level")
  if [ "$level" = burst ]; then burst=true; else random=$level; fi
  if [ -z "${preloaded[$server]:-}" ]; then # each server's first run fills the keys
    preload=true
    preloaded[$server]=1
  fi
  if [ "$server" = pipecache ]; then extra=(-metrics "http://$SRV_IP:$ADMIN_PORT/metrics"); fi
  read -r before_seen before_dropped <<<"$(counters)"
  $burst && start_bursts
  if out=$(in_cli "$work/pipecache-bench" -server "$server" -addr "${addr[$server]}" -pid "${pid[$server]}" "${extra[@]}" \
    -sessions "$SESSIONS" -inflight "$inflight" -mix get=90,set=10 -value 100 -keys "$KEYS" -prefix loss: \
    -duration "$DURATION" -warmup "$WARMUP" -preload="$preload" -quiet -json -label "$name" 2>>"$work/bench.log"); then
    stop_bursts
    read -r after_seen after_dropped <<<"$(counters)"
    if $burst; then bursts=$(wc -l <"$work/bursts.count"); fi
    loss=$(printf '{"pattern":"%s","random_pct":%d,"burst":%s,"bursts":%d,"seen":%d,"dropped":%d}' "$name" "$random" "$burst" \
      "$bursts" $((after_seen - before_seen)) $((after_dropped - before_dropped)))
    echo "${out%\}},\"loss\":$loss}" >>"$results"
    echo "   $server: $(grep -o '"ops_per_sec":[0-9]*' <<<"$out" | cut -d: -f2) ops/s, p99 $(grep -o '"p99_us":[0-9]*' <<<"$out" | cut -d: -f2) µs;" \
      "dropped $((after_dropped - before_dropped)) of $((after_seen - before_seen)) packets"
  else
    local status=$?
    stop_bursts
    if ((status >= 128)); then exit "$status"; fi # interrupted (Ctrl-C): stop here, and clean up
    failed+=("$name, $inflight in flight, $server")
    echo "   $server: FAILED (see the end)"
  fi
}

main() {
  echo "== building"
  go build -o "$work/" ./cmd/pipecached ./cmd/pipecache-bench
  echo "== namespaces $SRV ($SRV_IP) and $CLI ($CLI_IP), nftables on both input hooks"
  make_namespaces
  add_rules "$SRV" "$VSRV"
  add_rules "$CLI" "$VCLI"
  echo "== starting pipecached and Redis in $SRV"
  start_servers
  local levels inflights runs r n=0 level inflight i servers=(pipecache redis)
  read -ra levels <<<"$LEVELS"
  read -ra inflights <<<"$INFLIGHT"
  runs=$((ROUNDS * ${#levels[@]} * ${#inflights[@]} * 2))
  echo "== $runs runs of $WARMUP + $DURATION"
  for ((r = 1; r <= ROUNDS; r++)); do
    for level in "${levels[@]}"; do
      if [ "$level" = burst ]; then set_loss 0; else set_loss "$level"; fi
      for inflight in "${inflights[@]}"; do
        echo "== round $r/$ROUNDS: loss $(pattern_name "$level"), $inflight in flight"
        for ((i = 0; i < 2; i++)); do
          measure "${servers[$(((i + n) % 2))]}" "$level" "$inflight" # alternate which goes first
        done
        n=$((n + 1))
      done
    done
  done
  set_loss 0
  echo
  echo "== results: $SESSIONS sessions, get=90,set=10, 100 B values, $KEYS keys, medians of $ROUNDS rounds of $DURATION;" \
    "loss on both sides' input; $(nproc) cores shared by client and servers"
  "$work/pipecache-bench" -summarize-loss "$results"
  if [ ${#failed[@]} -gt 0 ]; then
    echo
    echo "runs that failed (pipecache-bench's errors follow):"
    printf '  %s\n' "${failed[@]}"
    grep -v '^$' "$work/bench.log" | tail -20 | sed 's/^/  | /'
  fi
  cp "$results" "${RESULTS_OUT:-/dev/null}" 2>/dev/null || true
}

check_args
install_missing
# shellcheck source=bench/lib.sh
source bench/lib.sh
results="$work/results.jsonl"
main
