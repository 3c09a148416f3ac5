#!/usr/bin/env bash
# The README's "run it" command (make demo): imports a busybox base image, builds the demo web app in
# testdata/demo into the default store, and shows the image and its history.
set -euo pipefail
cd "$(dirname "$0")/.."
lb=./bin/layerbuild

if ! file -bL /bin/busybox 2>/dev/null | grep -Eq 'statically linked|static-pie linked'; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "demo: needs a static /bin/busybox: run as root, or apt-get install busybox-static" >&2
    exit 1
  fi
  echo "==> installing busybox-static"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null; }
fi
command -v file >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq file >/dev/null

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if $lb history busybox:latest >/dev/null 2>&1; then
  echo "==> busybox:latest is already in the store"
else
  echo "==> importing a busybox base image as busybox:latest"
  ./scripts/busybox-rootfs.sh "$tmp/busybox.tar"
  $lb import "$tmp/busybox.tar" busybox:latest
fi

echo "==> building testdata/demo as layerbuild-demo:latest"
$lb build --progress plain -t layerbuild-demo:latest testdata/demo

echo "==> layerbuild images"
$lb images
echo "==> layerbuild history layerbuild-demo"
$lb history layerbuild-demo

# Run the demo image: detached, its port 8080 published on the host (8080, or the next free port).
name=layerbuild-demo-web
cleanup_web() {  # only a container: `rm` of a name that is no container would remove an image
  if $lb ps -a | grep -q " $name\$"; then $lb rm -f "$name" >/dev/null 2>&1 || true; fi
}
trap 'cleanup_web; rm -rf "$tmp"' EXIT
fetch() {
  if command -v curl >/dev/null; then curl -fsS --max-time 5 "$1"; else busybox wget -q -T 5 -O - "$1"; fi
}
port=
for p in $(seq 8080 8099); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then continue; fi  # something listens there
  echo "==> layerbuild run -d --name $name -p $p:8080 layerbuild-demo"
  if $lb run -d --name "$name" -p "$p:8080" layerbuild-demo; then port=$p; break; fi
  cleanup_web
done
[ -n "$port" ] || { echo "demo: no free port in 8080-8099" >&2; exit 1; }
$lb ps
for i in $(seq 50); do fetch "http://127.0.0.1:$port/" >/dev/null 2>&1 && break; sleep 0.1; done
echo "==> GET http://127.0.0.1:$port/"
fetch "http://127.0.0.1:$port/"
echo "==> GET http://127.0.0.1:$port/cgi-bin/hello"
fetch "http://127.0.0.1:$port/cgi-bin/hello"
echo "==> layerbuild logs $name"
$lb logs "$name"
echo "==> layerbuild stop $name && layerbuild rm $name"
$lb stop "$name"
$lb ps -a | sed -n "1p;/ $name\$/p"
$lb rm "$name"
