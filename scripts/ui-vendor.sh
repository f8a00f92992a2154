#!/usr/bin/env bash
# scripts/ui-vendor.sh: refresh the web UI's vendored libraries (examples/server/ui/vendor/)
# from the npm registry. Not part of the build or the tests: the files are committed, so
# `cargo build` needs no Node toolchain (issue 23). Run it only to move to new versions;
# edit the pins (and their integrity, from `npm view <pkg>@<version> dist.integrity`).
#
#   bash scripts/ui-vendor.sh
#
# Takes each package's published ES module build as it is, with two edits: the bare
# `from"preact"` import of the hooks becomes `./preact.mjs` (browsers need a path; an import
# map would be an inline script, which the UI's Content-Security-Policy forbids), and the
# `sourceMappingURL` comment goes (the maps are not shipped).
set -euo pipefail
cd "$(dirname "$0")/.."
out=examples/server/ui/vendor
PINS=(
  "preact@10.28.0 sha512-rytDAoiXr3+t6OIP3WGlDd0ouCUG1iCWzkcY3++Nreuoi17y6T5i/zRhe6uYfoVcxq6YU+sBtJouuRDsq8vvqA=="
  "htm@3.1.1 sha512-983Vyg8NwUE7JkZ6NmOqpCZ+sh1bKv2iYTlUkzlWmA5JD2acKoxd4KVxbMmxX/85mtfdnDmTFoNKcg5DGAvxNQ=="
)
command -v npm >/dev/null || { echo "ui-vendor.sh: npm is needed (Debian: apt-get install npm)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for pin in "${PINS[@]}"; do
  read -r spec integrity <<<"$pin"
  name=${spec%@*}
  (cd "$work" && npm pack --silent "$spec" > /dev/null)
  tarball=$(ls "$work"/"$name"-*.tgz)
  got="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
  [ "$got" = "$integrity" ] || { echo "ui-vendor.sh: $spec: integrity $got, expected $integrity" >&2; exit 1; }
  mkdir -p "$work/$name" && tar xzf "$tarball" -C "$work/$name" --strip-components=1
done
strip_map() { sed -e '/^\/\/# sourceMappingURL=/d' "$1"; }
mkdir -p "$out"
strip_map "$work/preact/dist/preact.module.js" > "$out/preact.mjs"
strip_map "$work/preact/hooks/dist/hooks.module.js" | sed -e 's|from"preact"|from"./preact.mjs"|g' > "$out/hooks.mjs"
strip_map "$work/htm/dist/htm.module.js" > "$out/htm.mjs"
cp "$work/preact/LICENSE" "$out/LICENSE-preact"
cp "$work/htm/LICENSE" "$out/LICENSE-htm"
grep -q 'from"./preact.mjs"' "$out/hooks.mjs" || { echo "ui-vendor.sh: the hooks' import was not rewritten" >&2; exit 1; }
echo "ui-vendor.sh: $(ls "$out" | tr '\n' ' ')"
