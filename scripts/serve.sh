# What the test servers' scripts (garage.sh, seaweedfs.sh, moto.sh) share. Sourced by them.

# server_wait NAME PID LOG SECONDS WHAT CHECK...: runs CHECK every 0.2 s until it succeeds.
# If the process PID exits first, says so with the tail of LOG; if SECONDS pass, says that
# WHAT never came. Returns 1 in both cases.
server_wait() {
  local name=$1 pid=$2 log=$3 secs=$4 what=$5 i
  shift 5
  for i in $(seq 1 $((secs * 5))); do
    if "$@"; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$name: the server exited; its log:" >&2; tail -50 "$log" >&2; return 1
    fi
    sleep 0.2
  done
  echo "$name: $what after $secs s; its log:" >&2; tail -50 "$log" >&2; return 1
}

# server_stop PID...: stops each process PID (empty ones are skipped): TERM, up to 5 s for it
# to exit, then KILL.
server_stop() {
  local pid i
  for pid in "$@"; do
    [ -n "$pid" ] || continue
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
