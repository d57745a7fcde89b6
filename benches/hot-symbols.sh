#!/usr/bin/env bash
# Regenerate benches/hot-symbols.txt (`make hot-symbols`): the functions
# the common commands execute, which `make static` asks the linker to lay
# out first and together (lld --symbol-ordering-file).
#
# Why: every command and every supervisor starts by faulting in the code
# it runs. The kernel maps 64 KiB of a file-backed text around each fault
# (fault-around), so what a start-up costs is the number of 64 KiB blocks
# its code is spread over. In link order `status` took 44 faults and a
# 1.82 MB peak RSS; laid out together, 26 faults and 0.8-1.6 MB (and
# `run`'s front-end and supervisor 119 faults -> 83).
#
# How: callgrind (valgrind) runs each command below against an
# unstripped build, following the supervisor across its exec; every
# function that executed is listed, the ones more processes ran first,
# then by instructions spent in them. Only names that are text symbols of
# the build are kept. The names carry the toolchain's and the crate's
# hashes: a build with another rustc or another version of a dependency
# finds few of them, and is then laid out as the linker likes (lld is
# told not to warn) — slower to start, never wrong. Regenerate after such
# a change, or after a change that moves a lot of code onto the start-up
# path.
#
# Needs: valgrind, nm (binutils), the musl target.
set -euo pipefail
cd "$(dirname "$0")/.."

out=benches/hot-symbols.txt
tgt=target/hot-symbols
host=$(rustc -vV | sed -n 's/^host: //p')
musl="${host%%-*}-unknown-linux-musl"
# The same profile as `make static` (its settings are in the symbols'
# hashes), unstripped by a flag after it (flags are not).
CARGO_TARGET_DIR=$tgt \
  RUSTFLAGS="-C relocation-model=static -C linker=rust-lld -C linker-flavor=ld.lld -C strip=none" \
  cargo build --release --target "$musl"
bin=$PWD/$tgt/$musl/release/agent-exec

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
cg=$work/cg
mkdir -p "$cg"
vg() {
  valgrind -q --tool=callgrind --demangle=no --compress-strings=no \
    --compress-pos=no --dump-instr=no --trace-children=yes \
    --trace-children-skip='/bin/*,/usr/bin/*,*sh' \
    --callgrind-out-file="$cg/%p.out" "$bin" --root "$root" "$@"
}
id_of() { sed -n 's/.*"job_id": *"\([^"]*\)".*/\1/p' | head -1; }

"$bin" --root "$root" run -- true >/dev/null # the root, its spares
id=$(vg run --no-auto-gc --shell-wrapper 'sh -c' -- echo hello | id_of)
vg run -- echo hello >/dev/null
vg run --no-wait -- true >/dev/null
vg status "$id" >/dev/null
vg --yaml status "$id" >/dev/null
vg wait "$id" >/dev/null
vg tail "$id" >/dev/null
vg tail --follow "$id" >/dev/null
vg list >/dev/null
vg ps >/dev/null
long=$("$bin" --root "$root" run --no-wait -- sleep 30 | id_of)
vg kill "$long" >/dev/null
"$bin" --root "$root" wait "$long" >/dev/null
vg delete "$long" >/dev/null
vg --version >/dev/null
# Supervisors outlive their callers: wait until every one has written its
# profile (callgrind writes at exit).
for _ in $(seq 100); do
  pgrep -f "callgrind.*_supervise" >/dev/null || break
  sleep 0.1
done

# Per function: in how many processes it ran, and its own instructions
# (a cost line right after `calls=` is the call's inclusive cost: not
# counted).
awk '
  FNR == 1 { split("", seen) }
  /^fn=/ { fn = substr($0, 4); if (!(fn in seen)) { seen[fn] = 1; procs[fn]++ }; skip = 0; next }
  /^calls=/ { skip = 1; next }
  /^[0-9+*-]/ { if (skip) { skip = 0; next }; if (fn != "") cost[fn] += $2; next }
  END { for (f in procs) printf "%d %d %s\n", procs[f], cost[f], f }
' "$cg"/*.out | sort -k1,1nr -k2,2nr -k3,3 | cut -d' ' -f3- >"$work/ranked"
nm "$bin" | awk '$2 ~ /^[tTW]$/ { print $3 }' >"$work/text"
awk 'NR == FNR { t[$1] = 1; next } ($0 in t)' "$work/text" "$work/ranked" >"$out"
echo "$out: $(wc -l <"$out") functions"
# Cargo does not know that the link reads the list: make the next
# `make static` link again.
touch src/main.rs
