#!/usr/bin/env bash
# scripts/images.sh: build the Docker images the tests deploy, FROM scratch (no registry is
# reachable, so nothing can be pulled):
#   vamp-test/demo-app:1  the demo service, statically linked
#   vamp-test/exits:1     a container that exits at once (busybox-static `false`)
#   vamp-test/run-prints:1, run-fails:1, run-sleeps:1, run-env:1
#                         runs to completion for the driver kit and the workflow tests
#                         (busybox-static `sh`, `env`)
# Needs DOCKER_HOST pointing at a running dockerd (scripts/services.sh start).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/vamp/target} DOCKER_BUILDKIT=0
target=$(rustc -vV | sed -n 's/^host: //p')
# A static binary runs in an empty image. --target keeps these flags out of the host build.
RUSTFLAGS="-C target-feature=+crt-static" cargo build -q -p vamp-demo-app --target "$target"
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/demo" "$ctx/exits"
cp "$CARGO_TARGET_DIR/$target/debug/vamp-demo-app" "$ctx/demo/"
printf 'FROM scratch\nCOPY vamp-demo-app /vamp-demo-app\nENTRYPOINT ["/vamp-demo-app"]\n' > "$ctx/demo/Dockerfile"
docker build -q -t vamp-test/demo-app:1 "$ctx/demo" > /dev/null
cp /bin/busybox "$ctx/exits/"
printf 'FROM scratch\nCOPY busybox /busybox\nENTRYPOINT ["/busybox", "false"]\n' > "$ctx/exits/Dockerfile"
docker build -q -t vamp-test/exits:1 "$ctx/exits" > /dev/null
run_image() { # name, entrypoint (JSON array)
  mkdir -p "$ctx/$1"
  cp /bin/busybox "$ctx/$1/"
  printf 'FROM scratch\nCOPY busybox /busybox\nENTRYPOINT %s\n' "$2" > "$ctx/$1/Dockerfile"
  docker build -q -t "vamp-test/$1:1" "$ctx/$1" > /dev/null
}
run_image run-prints '["/busybox", "sh", "-c", "echo \"$VAMP_KIT\"; echo to-stderr >&2"]'
run_image run-fails '["/busybox", "sh", "-c", "exit 3"]'
run_image run-sleeps '["/busybox", "sleep", "60"]'
run_image run-env '["/busybox", "env"]'
echo "built vamp-test/demo-app:1 vamp-test/exits:1 vamp-test/run-{prints,fails,sleeps,env}:1"
