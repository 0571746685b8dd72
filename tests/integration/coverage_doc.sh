#!/usr/bin/env bash
# coverage_doc.sh - docs/COVERAGE.md is current and true.
#
#   coverage_doc.sh BUILD_DIR
#
# 1. The build's BUILD_DIR/docs/COVERAGE.md (shim/gen_coverage.py) agrees
#    with the real lists, read here without the generator: its counts and
#    its rows are the defined functions of the toolkit's libcudart.so.13
#    (nm), the names in shim/implemented.list marked implemented, and every
#    other export marked as returning cudaErrorNotSupported, each once.
# 2. The committed docs/COVERAGE.md is byte for byte the generated one.
#
# Environment (set by ctest): CUDA_HOME, TR_SRC.  Exit 0 pass, 1 fail,
# 77 skip.
set -uo pipefail

build=${1:?usage: coverage_doc.sh BUILD_DIR}
cuda=${CUDA_HOME:-/usr/local/cuda}
src=${TR_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
cudart=$cuda/lib64/libcudart.so.13
gen=$build/docs/COVERAGE.md
committed=$src/docs/COVERAGE.md
ns='returns cudaErrorNotSupported'

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }

[ -f "$gen" ] || { echo "FAIL: $gen not built (target shim_coverage_doc)"; exit 1; }
[ -f "$cudart" ] || { echo "SKIP: no $cudart"; exit 77; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

# The real lists.
nm -D --defined-only "$cudart" | awk 'NF == 3 && $2 != "A" { sub(/@.*/, "", $3); print $3 }' |
	LC_ALL=C sort -u >"$tmp/exports"
sed -e 's/#.*//' -e 's/[[:space:]]//g' "$src/shim/implemented.list" | grep -v '^$' |
	LC_ALL=C sort -u >"$tmp/impl"
LC_ALL=C comm -23 "$tmp/exports" "$tmp/impl" >"$tmp/stubbed"
n=$(wc -l <"$tmp/exports") ni=$(wc -l <"$tmp/impl") ns_n=$(wc -l <"$tmp/stubbed")
[ "$n" -gt 0 ] || { echo "FAIL: nm found no functions in $cudart"; exit 1; }

# The counts table: "| exported | N |" and so on.
count_of() { awk -F' *\\| *' -v k="$1" '$2 == k { print $3 }' "$gen"; }
for pair in "exported:$n" "implemented:$ni" "$ns:$ns_n"; do
	key=${pair%:*} want=${pair##*:} got=$(count_of "$key")
	[ "$got" = "$want" ] && ok "counts: $key = $want" ||
		bad "counts: $key is '$got' in $gen, the lists say $want"
done

# The rows: "| `NAME` | STATUS |", one per export.
awk -F' *\\| *' '$2 ~ /^`[A-Za-z_0-9]+`$/ { gsub(/`/, "", $2); print $2 "\t" $3 }' "$gen" >"$tmp/rows"
cut -f1 "$tmp/rows" | LC_ALL=C sort >"$tmp/rownames"
if LC_ALL=C sort -u "$tmp/rownames" | cmp -s - "$tmp/rownames" &&
	cmp -s "$tmp/rownames" "$tmp/exports"; then
	ok "one row for each of the $n exports"
else
	bad "the rows are not the exports, each once:"
	LC_ALL=C diff "$tmp/exports" "$tmp/rownames" | head -20
fi
awk -F'\t' '$2 ~ /^implemented( |$)/ { print $1 }' "$tmp/rows" | LC_ALL=C sort >"$tmp/rowimpl"
awk -F'\t' -v s="$ns" '$2 == s { print $1 }' "$tmp/rows" | LC_ALL=C sort >"$tmp/rowstub"
cmp -s "$tmp/rowimpl" "$tmp/impl" && ok "the $ni implemented.list names are marked implemented" ||
	bad "rows marked implemented differ from implemented.list: $(LC_ALL=C diff "$tmp/impl" "$tmp/rowimpl" | head -10)"
cmp -s "$tmp/rowstub" "$tmp/stubbed" && ok "the other $ns_n exports are marked '$ns'" ||
	bad "rows marked '$ns' differ from the stubbed exports: $(LC_ALL=C diff "$tmp/stubbed" "$tmp/rowstub" | head -10)"

# The committed copy.
if [ ! -f "$committed" ]; then
	bad "$committed is missing: copy $gen to docs/"
elif diff -u "$committed" "$gen" >"$tmp/diff"; then
	ok "docs/COVERAGE.md is the generated one"
else
	bad "docs/COVERAGE.md is out of date; regenerate it: build, then copy build/docs/COVERAGE.md to docs/ ($gen here).  Differences (- committed, + generated):"
	head -40 "$tmp/diff"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
