# Shared by the benchmark scripts (source it): a work directory, the processes started, and
# their cleanup on exit; free_port.

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() { # a free loopback TCP+UDP port
  local p
  while :; do
    p=$((20000 + RANDOM % 20000))
    if ! (ss -Htuln 2>/dev/null | grep -q ":$p "); then echo "$p"; return; fi
  done
}
