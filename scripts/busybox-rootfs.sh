#!/bin/sh
# Writes a small root filesystem with Debian's static busybox to the tarball $1: /bin/busybox and its applet
# links, /etc/passwd and /etc/group (root, nobody), /tmp (1777) and /root. Base image for the demo and tests.
set -eu
out=${1:?usage: busybox-rootfs.sh OUT.tar}
bb=${BUSYBOX:-/bin/busybox}
case "$(file -bL "$bb" 2>/dev/null)" in
  *statically\ linked*|*static-pie\ linked*) ;;
  *) echo "busybox-rootfs.sh: $bb is not a static busybox (apt-get install busybox-static)" >&2; exit 1 ;;
esac
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/bin" "$dir/etc" "$dir/tmp" "$dir/root" "$dir/var/www"
cp "$bb" "$dir/bin/busybox"
for a in $("$dir/bin/busybox" --list); do
  [ -e "$dir/bin/$a" ] || ln -s busybox "$dir/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$dir/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
chmod 1777 "$dir/tmp"
chmod 700 "$dir/root"
tar --numeric-owner --owner=0 --group=0 -C "$dir" -cf "$out" .
