# moto's server (a stand-in for AWS's control plane: STS AssumeRole and
# AssumeRoleWithWebIdentity, S3 with server-side encryption headers) for tests/it/aws.rs.
# Source this file, then:
#   moto_install  install moto[server] $MOTO_VERSION once into a virtual environment in the
#                 cache (about 2 minutes the first time)
#   moto_start    start it on 127.0.0.1 on a free port; export S3AM_TEST_MOTO_ENDPOINT
#   moto_stop     stop it
# The cache lives in $S3AM_CACHE_DIR (default ~/.cache/s3-asset-manager).

. "$(dirname "${BASH_SOURCE[0]}")/serve.sh"

MOTO_VERSION=5.2.5
S3AM_CACHE_DIR=${S3AM_CACHE_DIR:-$HOME/.cache/s3-asset-manager}
MOTO_ROOT=$S3AM_CACHE_DIR/moto-$MOTO_VERSION

moto_install() {
  # The stamp is written last, so an interrupted install is redone from scratch.
  if [ -f "$MOTO_ROOT/.installed" ] && "$MOTO_ROOT/bin/python" -c 'import moto.server' 2>/dev/null; then
    return 0
  fi
  echo "moto: installing moto[server] $MOTO_VERSION from PyPI into $MOTO_ROOT (once; about 2 minutes)" >&2
  mkdir -p "$S3AM_CACHE_DIR"
  rm -rf "$MOTO_ROOT"
  python3 -m venv "$MOTO_ROOT" >&2 || {
    echo "moto: python3 -m venv failed: install Python's venv module (Debian: apt-get install python3-venv), then rerun" >&2
    return 1
  }
  "$MOTO_ROOT/bin/python" -m pip install --quiet --disable-pip-version-check \
    "moto[server]==$MOTO_VERSION" >&2
  touch "$MOTO_ROOT/.installed"
}

moto_start() {
  MOTO_LOG=$(mktemp "${TMPDIR:-/tmp}/s3am-moto.XXXXXX")
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
  "$MOTO_ROOT/bin/moto_server" -H 127.0.0.1 -p "$port" </dev/null >"$MOTO_LOG" 2>&1 &
  MOTO_PID=$!
  export S3AM_TEST_MOTO_ENDPOINT="http://127.0.0.1:$port"
  export MOTO_PID MOTO_LOG
  server_wait moto "$MOTO_PID" "$MOTO_LOG" 30 "no answer" \
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/moto-api/data.json", timeout=1)' "$S3AM_TEST_MOTO_ENDPOINT" 2>/dev/null || return 1
  echo "moto: running at $S3AM_TEST_MOTO_ENDPOINT" >&2
}

moto_stop() {
  if [ -n "${MOTO_PID:-}" ]; then
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
  fi
  [ -n "${MOTO_LOG:-}" ] && rm -f "$MOTO_LOG"
  MOTO_PID=""
}
