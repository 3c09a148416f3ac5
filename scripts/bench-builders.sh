#!/usr/bin/env bash
# Side-by-side build benchmark: layerbuild and buildah (and, with BENCH_DOCKER=1, docker 20.10's BuildKit) on
# the same fixture (testdata/bench/fixture-8step) from the same busybox base, alternating the tools run by run.
# Scenarios: cold (--no-cache), cached (nothing changed), early (src/f1.go rewritten: the 20k-file RUN redoes),
# late (app.py rewritten: one COPY redoes). Prints medians and ratios (layerbuild / anchor), and writes the raw
# times to bench-results/builders-<date>.tsv.
#   RUNS=5 ./scripts/bench-builders.sh        (needs root; installs buildah, podman and busybox-static if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
SCENARIOS=${SCENARIOS:-"cold cached early late"}
lb=$PWD/bin/layerbuild
[ -x "$lb" ] || make build >/dev/null

need=()
command -v buildah >/dev/null || need+=(buildah)
command -v podman >/dev/null || need+=(podman)
file -bL /bin/busybox 2>/dev/null | grep -Eq 'statically linked|static-pie' || need+=(busybox-static)
if ((${#need[@]})); then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

work=$(mktemp -d /tmp/lbbench.XXXXXX)
trap 'rm -rf "$work"' EXIT
export LAYERBUILD_ROOT=$work/store
./scripts/busybox-rootfs.sh "$work/busybox.tar"
"$lb" import "$work/busybox.tar" bench-busybox:latest >/dev/null
podman import -q "$work/busybox.tar" localhost/bench-busybox:latest >/dev/null

# Each tool builds its own copy of the fixture, so a change made for one never reaches the other's context.
for t in lb buildah; do cp -r testdata/bench/fixture-8step "$work/ctx-$t"; done

build_lb() { "$lb" build -q --build-arg BASE=bench-busybox:latest "$@" -t bench-fixture "$work/ctx-lb" >/dev/null; }
build_buildah() {
  buildah bud -q --runtime runc --layers --build-arg BASE=localhost/bench-busybox:latest "$@" \
    -t bench-fixture "$work/ctx-buildah" >/dev/null 2>&1
}

now() { date +%s%N; }
# time_one TOOL SCENARIO: prepares the scenario (untimed), then times one build; prints seconds.
time_one() {
  local tool=$1 scn=$2 ctx=$work/ctx-$1 args=()
  case $scn in
    cold) args=(--no-cache) ;;
    cached) ;;
    early) echo "package main // $(now)" >"$ctx/src/f1.go" ;;
    late) echo "print('$(now)')" >"$ctx/app.py" ;;
  esac
  local t0 t1
  t0=$(now)
  "build_$tool" "${args[@]}"
  t1=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", (b - a) / 1e9 }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

mkdir -p bench-results
raw=bench-results/builders-$(date -u +%Y%m%dT%H%M%SZ).tsv
printf 'scenario\trun\ttool\tseconds\n' >"$raw"
# Warm both caches once so that "cached", "early" and "late" start from a built fixture.
build_lb; build_buildah
for scn in $SCENARIOS; do
  for i in $(seq 1 "$RUNS"); do
    # Alternate which tool goes first, run by run.
    if ((i % 2)); then order="lb buildah"; else order="buildah lb"; fi
    for tool in $order; do
      printf '%s\t%d\t%s\t%s\n' "$scn" "$i" "$tool" "$(time_one "$tool" "$scn")" >>"$raw"
    done
  done
done

printf '\n%-8s %12s %12s %8s\n' scenario layerbuild buildah ratio
for scn in $SCENARIOS; do
  a=$(awk -F'\t' -v s="$scn" '$1 == s && $3 == "lb" { print $4 }' "$raw" | median)
  b=$(awk -F'\t' -v s="$scn" '$1 == s && $3 == "buildah" { print $4 }' "$raw" | median)
  awk -v s="$scn" -v a="$a" -v b="$b" 'BEGIN { printf "%-8s %11.3fs %11.3fs %8.3f\n", s, a, b, a / b }'
done
echo "raw times: $raw ($(nproc) cores, $(uname -r), $(date -u +%Y-%m-%d))"
