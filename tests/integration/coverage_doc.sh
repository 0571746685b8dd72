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
# 2. Its CUDA 12 part lists each function of shim/cudart12.exports once,
#    the names of shim/implemented12.list as CUDA 12 versions.
# 3. The committed docs/COVERAGE.md is byte for byte the generated one.
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

# The CUDA 12 part: one row "| `NAME@libcudart.so.12` | STATUS |..." per
# name of shim/cudart12.exports; "CUDA 12 version" exactly for the names
# of shim/implemented12.list.
awk -F'\t' '/^#/ || NF < 2 { next } { print $1 }' "$src/shim/cudart12.exports" |
	LC_ALL=C sort >"$tmp/exports12"
sed -e 's/#.*//' -e 's/[[:space:]]//g' "$src/shim/implemented12.list" | grep -v '^$' |
	LC_ALL=C sort -u >"$tmp/impl12"
awk -F' *\\| *' '$2 ~ /^`[A-Za-z_0-9]+@libcudart\.so\.12`$/ {
	gsub(/`/, "", $2); sub(/@.*/, "", $2); print $2 "\t" $3 }' "$gen" >"$tmp/rows12"
cut -f1 "$tmp/rows12" | LC_ALL=C sort >"$tmp/rownames12"
n12=$(wc -l <"$tmp/exports12")
if [ "$n12" -gt 0 ] && LC_ALL=C sort -u "$tmp/rownames12" | cmp -s - "$tmp/rownames12" &&
	cmp -s "$tmp/rownames12" "$tmp/exports12"; then
	ok "one CUDA 12 row for each of the $n12 functions of shim/cudart12.exports"
else
	bad "the CUDA 12 rows are not shim/cudart12.exports, each once:"
	LC_ALL=C diff "$tmp/exports12" "$tmp/rownames12" | head -20
fi
awk -F'\t' '$2 ~ /^CUDA 12 version/ { print $1 }' "$tmp/rows12" | LC_ALL=C sort >"$tmp/rowown12"
cmp -s "$tmp/rowown12" "$tmp/impl12" && ok "the $(wc -l <"$tmp/impl12") implemented12.list names are CUDA 12 versions" ||
	bad "CUDA 12 rows marked 'CUDA 12 version' differ from implemented12.list: $(LC_ALL=C diff "$tmp/impl12" "$tmp/rowown12" | head -10)"
got=$(count_of "CUDA 12 exported")
[ "$got" = "$n12" ] && ok "counts: CUDA 12 exported = $n12" ||
	bad "counts: CUDA 12 exported is '$got' in $gen, shim/cudart12.exports lists $n12"

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
