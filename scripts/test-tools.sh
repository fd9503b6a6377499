# The Debian packages the tests start themselves: tinyproxy (an HTTP proxy, for the
# HTTPS_PROXY/NO_PROXY tests), stunnel4 (TLS in front of Garage, for the private-CA test) and
# openssh-client (ssh-keygen makes the signing tests' keys and checks their signatures).
# Source this file, then call test_tools_install; it does nothing when both are present.

test_tools_install() {
  local missing=()
  command -v tinyproxy >/dev/null 2>&1 || missing+=(tinyproxy)
  command -v stunnel4 >/dev/null 2>&1 || command -v stunnel >/dev/null 2>&1 || missing+=(stunnel4)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || {
      echo "test tools: install ${missing[*]} (Debian packages) as root, then rerun" >&2
      return 1
    }
    sudo=sudo
  fi
  echo "test tools: installing ${missing[*]} from Debian's packages" >&2
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  # The packages start system-wide daemons; the tests run their own on free ports.
  $sudo systemctl disable --now tinyproxy stunnel4 >/dev/null 2>&1 || true
  pkill -x tinyproxy 2>/dev/null || true
}
