#!/usr/bin/env bash
# Provides and runs a real Kubernetes API server for kvsync's integration tests:
# upstream apiextensions-apiserver (serves CRDs and custom resources) backed by a real etcd.
#
#   scripts/test-apiserver.sh provide              -> prints the bin dir holding etcd + apiextensions-apiserver
#   scripts/test-apiserver.sh start DIR [OWNER]    -> starts both on free loopback ports; writes DIR/kubeconfig,
#                                                     DIR/env; with OWNER (a PID), a watchdog stops both as soon
#                                                     as OWNER exits (also on SIGKILL of the test binary)
#   scripts/test-apiserver.sh restart-apiserver DIR -> stops and starts the API server only (same port, same etcd)
#   scripts/test-apiserver.sh stop DIR             -> stops both and removes DIR
#
# Binaries are cached in $KVSYNC_TEST_APISERVER_HOME (default ~/.cache/kvsync-test-apiserver). When absent they
# are unpacked from ../shared/tools/test-apiserver/prebuilt if that folder exists (a time saver on the team's
# machines), and otherwise built from Debian sid's Go source packages (~4 min cold; needs only the Debian
# mirror). Nothing outside the cache directory is touched.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
CACHE=${KVSYNC_TEST_APISERVER_HOME:-$HOME/.cache/kvsync-test-apiserver}
BIN=$CACHE/bin

die() { echo "test-apiserver.sh: $*" >&2; exit 1; }

have_bins() { [[ -x $BIN/apiextensions-apiserver && -x $BIN/etcd ]]; }

use_prebuilt() {
  local pre=$ROOT/../shared/tools/test-apiserver/prebuilt
  [[ -f $pre/SHA256SUMS && -f $pre/apiextensions-apiserver.xz && -f $pre/etcd.xz ]] || return 1
  mkdir -p "$BIN"
  (cd "$pre" && sha256sum -c --quiet SHA256SUMS) || return 1
  xz -dc "$pre/apiextensions-apiserver.xz" > "$BIN/apiextensions-apiserver.tmp"
  xz -dc "$pre/etcd.xz" > "$BIN/etcd.tmp"
  chmod +x "$BIN"/*.tmp
  mv "$BIN/apiextensions-apiserver.tmp" "$BIN/apiextensions-apiserver"
  mv "$BIN/etcd.tmp" "$BIN/etcd"
  cp "$pre/VERSIONS" "$CACHE/VERSIONS" 2>/dev/null || true
}

build_from_debian() {
  local w; w=$(mktemp -d "${TMPDIR:-/tmp}/kvsync-apiserver-build.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$w'" RETURN
  mkdir -p "$w"/apt/lists/partial "$w"/apt/cache/archives/partial "$w"/apt/parts "$w"/debs "$w"/root "$BIN"
  local uri
  uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [[ -n $uri ]] || uri=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [[ -n $uri ]] || die "no Debian mirror configured in /etc/apt"
  echo "deb $uri sid main" > "$w"/apt/sources.list
  touch "$w"/apt/status
  local o=(-o Dir::Etc::SourceList="$w"/apt/sources.list -o Dir::Etc::SourceParts="$w"/apt/parts
           -o Dir::State::Lists="$w"/apt/lists -o Dir::Cache="$w"/apt/cache -o Dir::State::status="$w"/apt/status)
  apt-get "${o[@]}" update -qq
  local go_pkg
  go_pkg=$(apt-cache "${o[@]}" depends golang-k8s-apiextensions-apiserver-dev golang-go 2>/dev/null \
           | awk '/Depends: golang-1\.[0-9]+-go$/{print $2}' | sort -V | tail -n1)
  go_pkg=${go_pkg:-golang-1.26-go}
  apt-cache "${o[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances golang-k8s-apiextensions-apiserver-dev "$go_pkg" etcd-server \
    | grep -v '^ ' | sort -u | grep -E '^(golang-|etcd-)' > "$w"/pkgs.txt
  # shellcheck disable=SC2046
  (cd "$w"/debs && apt-get "${o[@]}" download -qq $(cat "$w"/pkgs.txt))
  local f
  for f in "$w"/debs/*.deb; do dpkg -x "$f" "$w"/root; done
  local goroot; goroot=$(ls -d "$w"/root/usr/lib/go-1.* | sort -V | tail -n1)
  env GOROOT="$goroot" GOPATH="$w"/root/usr/share/gocode GO111MODULE=off GOPROXY=off GOTOOLCHAIN=local \
      GOFLAGS= GOCACHE="$w"/gocache CGO_ENABLED=0 \
      "$goroot"/bin/go build -trimpath -ldflags=-s -o "$BIN"/apiextensions-apiserver k8s.io/apiextensions-apiserver
  cp "$w"/root/usr/bin/etcd "$BIN"/etcd
  (cd "$w"/debs && ls | grep -E '^(golang-1\.|golang-k8s-api|etcd-server)') > "$CACHE"/VERSIONS
}

provide() {
  if have_bins; then echo "$BIN"; return; fi
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"
  flock 9
  if ! have_bins; then
    use_prebuilt || build_from_debian
  fi
  have_bins || die "could not provide etcd + apiextensions-apiserver in $BIN"
  echo "$BIN"
}

start_apiserver() { # DIR
  local d=$1
  # shellcheck disable=SC1091
  source "$d/ports"
  "$BIN"/apiextensions-apiserver --etcd-servers="http://127.0.0.1:$EP" --bind-address=127.0.0.1 \
    --secure-port="$PORT" --tls-cert-file="$d"/pki/server.crt --tls-private-key-file="$d"/pki/server.key \
    --client-ca-file="$d"/pki/ca.crt --authentication-skip-lookup --kubeconfig="$d/kubeconfig" \
    --authentication-kubeconfig="$d/kubeconfig" --authorization-kubeconfig="$d/kubeconfig" \
    --disable-admission-plugins=NamespaceLifecycle,MutatingAdmissionPolicy,MutatingAdmissionWebhook,ValidatingAdmissionPolicy,ValidatingAdmissionWebhook \
    --enable-priority-and-fairness=false >> "$d"/apiserver.log 2>&1 &
  echo $! > "$d"/apiserver.pid
  local _
  for _ in $(seq 1 600); do
    if curl -fsS --cacert "$d"/pki/ca.crt --cert "$d"/pki/admin.crt --key "$d"/pki/admin.key \
         "https://127.0.0.1:$PORT/apis/apiextensions.k8s.io/v1" >/dev/null 2>&1; then return 0; fi
    alive "$(cat "$d"/apiserver.pid)" || die "API server exited; see $d/apiserver.log"
    sleep 0.1
  done
  die "API server not ready after 60 s; see $d/apiserver.log"
}

alive() { # PID: running and not a zombie (orphans may stay unreaped in minimal containers)
  kill -0 "$1" 2>/dev/null || return 1
  local state; state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || echo X)
  [[ $state != Z && $state != X ]]
}

stop_pid_file() { # FILE
  [[ -f $1 ]] || return 0
  local pid; pid=$(cat "$1")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do alive "$pid" || { rm -f "$1"; return 0; }; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$1"
}

start() { # DIR [OWNER_PID]
  local d=${1:?usage: start DIR [OWNER_PID]} owner=${2:-}
  provide >/dev/null
  mkdir -p "$d"/pki; d=$(cd "$d" && pwd)
  local ports
  ports=$(python3 -c 'import socket
ss=[socket.socket() for _ in range(3)]
[s.bind(("127.0.0.1",0)) for s in ss]
print(*[s.getsockname()[1] for s in ss])')
  read -r PORT EP PEER <<<"$ports"
  printf 'PORT=%s\nEP=%s\nPEER=%s\n' "$PORT" "$EP" "$PEER" > "$d"/ports
  (
    cd "$d"/pki
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 -subj /CN=test-ca 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 30 \
      -extfile <(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n') 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj /O=system:masters/CN=admin 2>/dev/null
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out admin.crt -days 30 \
      -extfile <(printf 'extendedKeyUsage=clientAuth\n') 2>/dev/null
  )
  cat > "$d"/kubeconfig <<KC
apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "https://127.0.0.1:$PORT", certificate-authority: $d/pki/ca.crt}}]
users: [{name: admin, user: {client-certificate: $d/pki/admin.crt, client-key: $d/pki/admin.key}}]
contexts: [{name: test, context: {cluster: test, user: admin, namespace: default}}]
current-context: test
KC
  "$BIN"/etcd --name test --data-dir "$d"/etcd --listen-client-urls "http://127.0.0.1:$EP" \
    --advertise-client-urls "http://127.0.0.1:$EP" --listen-peer-urls "http://127.0.0.1:$PEER" \
    --initial-advertise-peer-urls "http://127.0.0.1:$PEER" --initial-cluster "test=http://127.0.0.1:$PEER" \
    --unsafe-no-fsync > "$d"/etcd.log 2>&1 &
  echo $! > "$d"/etcd.pid
  printf 'KUBECONFIG=%s\nAPISERVER=https://127.0.0.1:%s\nETCD=http://127.0.0.1:%s\n' "$d/kubeconfig" "$PORT" "$EP" > "$d"/env
  if [[ -n $owner ]]; then
    # The watchdog outlives this script, not the owner: it polls the owner and tears everything down.
    nohup bash -c '
      owner=$1; d=$2; script=$3
      while kill -0 "$owner" 2>/dev/null && [[ -d $d ]]; do sleep 0.3; done
      "$script" stop "$d"' _ "$owner" "$d" "$HERE/test-apiserver.sh" >/dev/null 2>&1 &
    echo $! > "$d"/watchdog.pid
  fi
  start_apiserver "$d"
  echo "$d"
}

restart_apiserver() { # DIR
  local d=${1:?usage: restart-apiserver DIR}
  stop_pid_file "$d"/apiserver.pid
  start_apiserver "$d"
}

stop() { # DIR
  local d=${1:?usage: stop DIR}
  [[ -d $d ]] || return 0
  stop_pid_file "$d"/apiserver.pid
  stop_pid_file "$d"/etcd.pid
  rm -rf "$d"
}

cmd=${1:-provide}; shift || true
case $cmd in
  provide) provide ;;
  start) start "$@" ;;
  restart-apiserver) restart_apiserver "$@" ;;
  stop-apiserver) stop_pid_file "${1:?usage: stop-apiserver DIR}"/apiserver.pid ;;
  stop) stop "$@" ;;
  *) die "unknown command $cmd (provide | start DIR [OWNER_PID] | restart-apiserver DIR | stop-apiserver DIR | stop DIR)" ;;
esac
