# moto's server (a stand-in for AWS's control plane: STS AssumeRole and
# AssumeRoleWithWebIdentity, IAM, S3 with server-side encryption headers) for tests/it/aws.rs.
# Source this file, then:
#   moto_install     install moto[server] $MOTO_VERSION once into a virtual environment in the
#                    cache (about 2 minutes the first time)
#   moto_start       start one that checks no signature on 127.0.0.1 on a free port; export
#                    S3AM_TEST_MOTO_ENDPOINT
#   moto_start_auth  start a second one that checks every request as IAM would (SigV4 signatures
#                    against the keys it issued, session tokens, policies): export
#                    S3AM_TEST_MOTO_AUTH_ENDPOINT, and the key of an IAM user allowed everything
#                    in S3AM_TEST_MOTO_AUTH_ACCESS_KEY and S3AM_TEST_MOTO_AUTH_SECRET_KEY
#   moto_stop        stop both
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

# moto_serve NAME [VAR=VALUE...]: starts a moto server named NAME (for messages) with the
# environment VAR=VALUE... on 127.0.0.1 on a free port and waits for its answer; sets
# moto_url, moto_pid and moto_log.
moto_serve() {
  local name=$1 port
  shift
  moto_log=$(mktemp "${TMPDIR:-/tmp}/s3am-$name.XXXXXX")
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
  env "$@" "$MOTO_ROOT/bin/moto_server" -H 127.0.0.1 -p "$port" </dev/null >"$moto_log" 2>&1 &
  moto_pid=$!
  moto_url="http://127.0.0.1:$port"
  server_wait "$name" "$moto_pid" "$moto_log" 30 "no answer" \
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/moto-api/data.json", timeout=1)' "$moto_url" 2>/dev/null || return 1
  echo "$name: running at $moto_url" >&2
}

moto_start() {
  moto_serve moto || return 1
  MOTO_PID=$moto_pid MOTO_LOG=$moto_log
  export S3AM_TEST_MOTO_ENDPOINT=$moto_url
  export MOTO_PID MOTO_LOG
}

moto_start_auth() {
  # IAM-like access control is on after the first INITIAL_NO_AUTH_ACTION_COUNT actions: the
  # three that make the user whose key signs the tests' IAM setup. Nothing else may reach the
  # server before them, and the fourth, signed with a made-up key, must be refused.
  moto_serve moto-auth INITIAL_NO_AUTH_ACTION_COUNT=3 || return 1
  MOTO_AUTH_PID=$moto_pid MOTO_AUTH_LOG=$moto_log
  export MOTO_AUTH_PID MOTO_AUTH_LOG
  local key
  key=$("$MOTO_ROOT/bin/python" - "$moto_url" <<'PY'
import json, sys
import boto3, botocore.exceptions
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="AKIAS3AMBOOTSTRAP000", aws_secret_access_key="bootstrap")
iam.create_user(UserName="s3am-admin")
iam.put_user_policy(UserName="s3am-admin", PolicyName="everything", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
key = iam.create_access_key(UserName="s3am-admin")["AccessKey"]
try:
    iam.list_users()
    sys.exit("the server answered a request signed with a key it never issued: it checks no signature")
except botocore.exceptions.ClientError:
    pass
print(key["AccessKeyId"], key["SecretAccessKey"])
PY
  ) || { echo "moto-auth: setting up its IAM user failed; its log:" >&2; tail -20 "$MOTO_AUTH_LOG" >&2; return 1; }
  export S3AM_TEST_MOTO_AUTH_ENDPOINT=$moto_url
  export S3AM_TEST_MOTO_AUTH_ACCESS_KEY=${key% *} S3AM_TEST_MOTO_AUTH_SECRET_KEY=${key#* }
}

moto_stop() {
  local log
  server_stop "${MOTO_PID:-}" "${MOTO_AUTH_PID:-}"
  for log in "${MOTO_LOG:-}" "${MOTO_AUTH_LOG:-}"; do
    [ -n "$log" ] && rm -f "$log"
  done
  MOTO_PID="" MOTO_AUTH_PID=""
}
