# Garage (a real S3-compatible store) for tests and benchmarks. Source this file, then:
#   garage_install   build Garage 2.5.0 once into the cache (about 6 minutes on 2 cores), reuse it after
#   garage_start     start a single node on 127.0.0.1 on free ports, create a key that may
#                    create buckets and a bucket "s3am-test", export S3AM_TEST_* variables
#   garage_stop      stop the node and delete its data
# The cache lives in $S3AM_CACHE_DIR (default ~/.cache/s3-asset-manager).

. "$(dirname "${BASH_SOURCE[0]}")/serve.sh"

GARAGE_VERSION=2.5.0
S3AM_CACHE_DIR=${S3AM_CACHE_DIR:-$HOME/.cache/s3-asset-manager}
# The tests' Garage is built at opt-level 1 (about 6 minutes on 2 cores, against 11 at full
# optimisation; the suites' timings do not notice). The benchmark sets GARAGE_OPT_LEVEL=3 and
# gets a build of its own, since there the store's CPU is part of what is measured.
GARAGE_OPT_LEVEL=${GARAGE_OPT_LEVEL:-1}
case $GARAGE_OPT_LEVEL in
  1) GARAGE_ROOT=$S3AM_CACHE_DIR/garage-$GARAGE_VERSION ;;
  *) GARAGE_ROOT=$S3AM_CACHE_DIR/garage-$GARAGE_VERSION-opt$GARAGE_OPT_LEVEL ;;
esac
GARAGE_BIN=$GARAGE_ROOT/bin/garage

# Whether Garage is built into the cache already.
garage_installed() {
  [ -x "$GARAGE_BIN" ] && "$GARAGE_BIN" --version >/dev/null 2>&1
}

garage_install() {
  if garage_installed; then
    return 0
  fi
  echo "garage: building Garage $GARAGE_VERSION into $GARAGE_ROOT (once; about 6 minutes on 2 cores)" >&2
  mkdir -p "$S3AM_CACHE_DIR"
  # A kept target dir lets an interrupted build resume instead of starting over. Only what the
  # tests use is built: LMDB metadata, no metrics, SQLite or K2V; and without Garage's LTO,
  # which costs minutes on 2 cores and nothing a test can see.
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    CARGO_PROFILE_RELEASE_OPT_LEVEL=$GARAGE_OPT_LEVEL \
    cargo install garage --version "$GARAGE_VERSION" --locked --root "$GARAGE_ROOT" \
    --no-default-features --features bundled-libs,lmdb \
    --target-dir "$GARAGE_ROOT-build" >&2
  rm -rf "$GARAGE_ROOT-build"
}

_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Whether the started Garage answers on RPC.
_garage_up() {
  $GARAGE_BIN -c "$GARAGE_DIR/garage.toml" status >/dev/null 2>&1
}

# Whether the started Garage's S3 endpoint answers HTTP at all.
_garage_s3_up() {
  python3 -c 'import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=1)
except urllib.error.HTTPError:
    sys.exit(0)
sys.exit(1)' "$S3AM_TEST_ENDPOINT" 2>/dev/null
}

garage_start() {
  GARAGE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/s3am-garage.XXXXXX")
  local rpc s3 admin
  rpc=$(_free_port); s3=$(_free_port); admin=$(_free_port)
  cat >"$GARAGE_DIR/garage.toml" <<TOML
metadata_dir = "$GARAGE_DIR/meta"
data_dir = "$GARAGE_DIR/data"
db_engine = "lmdb"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$(python3 -c 'import secrets; print(secrets.token_hex(32))')"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3"

[admin]
api_bind_addr = "127.0.0.1:$admin"
admin_token = "$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
TOML
  local g="$GARAGE_BIN -c $GARAGE_DIR/garage.toml"
  RUST_LOG=warn $GARAGE_BIN -c "$GARAGE_DIR/garage.toml" server >"$GARAGE_DIR/server.log" 2>&1 &
  GARAGE_PID=$!
  local id="" i
  # `node id` reads the key from disk; `status` proves the server answers on RPC.
  server_wait garage "$GARAGE_PID" "$GARAGE_DIR/server.log" 30 "no answer on RPC" _garage_up || return 1
  id=$($g node id -q)
  $g layout assign -z dc1 -c 1G "${id%%@*}" >/dev/null
  $g layout apply --version 1 >/dev/null
  local key_id secret
  key_id=GK$(python3 -c 'import secrets; print(secrets.token_hex(12))')
  secret=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
  $g key import --yes "$key_id" "$secret" -n s3am-test >/dev/null
  $g key allow --create-bucket s3am-test >/dev/null
  $g bucket create s3am-test >/dev/null
  $g bucket allow --read --write --owner s3am-test --key s3am-test >/dev/null
  export S3AM_TEST_ENDPOINT="http://127.0.0.1:$s3"
  export S3AM_TEST_REGION=garage
  export S3AM_TEST_ACCESS_KEY=$key_id
  export S3AM_TEST_SECRET_KEY=$secret
  export S3AM_TEST_BUCKET=s3am-test
  export GARAGE_DIR GARAGE_PID
  # S3 is ready once it answers HTTP (an unsigned request gets an error answer, which counts).
  server_wait garage "$GARAGE_PID" "$GARAGE_DIR/server.log" 20 "no answer on S3" _garage_s3_up || return 1
  echo "garage: running at $S3AM_TEST_ENDPOINT (data in $GARAGE_DIR)" >&2
}

garage_stop() {
  server_stop "${GARAGE_PID:-}"
  [ -n "${GARAGE_DIR:-}" ] && rm -rf "$GARAGE_DIR"
  GARAGE_PID=""
}
