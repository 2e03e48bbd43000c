#!/usr/bin/env bash
# Debian packages the tests need on the host, installed when missing (root + apt-get, as .ci/run
# does); otherwise the exact apt-get command to run. Usage: hack/host-deps.sh [test|real]
#   test: what `make test` needs (python3-venv, chromium for the dashboard's browser test,
#         openssl for test certificates)
#   real: also the real node and the image build (`make test-real`)
set -euo pipefail
want=${1:-test}

need=()
have() { command -v "$1" >/dev/null 2>&1; }
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
have chromium || need+=(chromium)
have openssl || need+=(openssl)  # test certificates (extender TLS, API client)
if [ "$want" = real ]; then
  for pair in buildah:buildah debootstrap:debootstrap containerd:containerd runc:runc \
              iptables:iptables conntrack:conntrack ip:iproute2; do
    have "${pair%%:*}" || need+=("${pair##*:}")
  done
  [ -e /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
fi
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && have apt-get; then
  echo "[host-deps] installing Debian packages: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
else
  echo "[host-deps] missing Debian packages: ${need[*]}" >&2
  echo "[host-deps] install them first: sudo apt-get install ${need[*]}" >&2
  exit 1
fi
