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
