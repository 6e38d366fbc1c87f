# shellcheck shell=bash
# Shared by the benchmark scripts (source it): a work directory, the processes started, and
# their cleanup on exit; free_port; start (a server in the background) and on_cpus (pinning).
#
# A script appends the PID of every process it starts to pids, and may append function names
# to after_cleanup: they run once those processes have stopped (loss.sh deletes its network
# namespaces there, which only works once nothing runs inside them). Ctrl-C and SIGTERM exit,
# so that the EXIT trap cleans up exactly once.

work=$(mktemp -d)
pids=()
after_cleanup=()
cleaned=false
cleanup() {
  $cleaned && return
  cleaned=true
  local p f
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for f in "${after_cleanup[@]}"; do "$f" || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# forget_pid removes a process that has been stopped and waited for from pids, so that cleanup
# never signals a PID the system may have given to another process since.
forget_pid() {
  local p kept=()
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done
  pids=("${kept[@]}")
}

free_port() { # a free loopback TCP+UDP port
  local p
  while :; do
    p=$((20000 + RANDOM % 20000))
    if ! (ss -Htuln 2>/dev/null | grep -q ":$p "); then echo "$p"; return; fi
  done
}

# on_cpus CPUS COMMAND...: runs COMMAND pinned to CPUS (taskset's list: 0, 1, 0-1), or as is
# when CPUS is empty.
on_cpus() {
  local cpus=$1
  shift
  if [ -n "$cpus" ]; then
    taskset -c "$cpus" "$@"
  else
    "$@"
  fi
}

# start NAME COMMAND...: starts a server in the background, pinned to $SERVER_CPUS if set,
# its output in $work/NAME.log; its PID goes to pids (for cleanup) and to pid[NAME] (for the
# load generator's -pid). The command is started directly, not through a function (which would
# run in a subshell of its own): $! is the server's PID (taskset execs it).
declare -A pid
start() {
  local name=$1
  shift
  if [ -n "${SERVER_CPUS:-}" ]; then
    taskset -c "$SERVER_CPUS" "$@" >"$work/$name.log" 2>&1 &
  else
    "$@" >"$work/$name.log" 2>&1 &
  fi
  pids+=($!)
  pid[$name]=$!
}
