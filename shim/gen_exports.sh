#!/usr/bin/env bash
# gen_exports.sh - derive the shim's export list from the toolkit's libcudart.
#
#   gen_exports.sh NM LIBCUDART_SO IMPLEMENTED_LIST CUDART12_EXPORTS
#                  IMPLEMENTED12_LIST OUTDIR
#
# Runs at build time (shim/CMakeLists.txt).  Reads the defined dynamic
# symbols of LIBCUDART_SO (libcudart.so.13: 422 functions, all with the
# version node libcudart.so.13), the committed list of CUDA 12's exports
# with their ABI verdicts (CUDART12_EXPORTS, shim/cudart12.exports, made by
# shim/abi12_audit.py) and writes into OUTDIR:
#
#   libcudart.map        linker version script: every exported name under the
#                        same node, `local: *` for everything else, so the
#                        program's cudaX@libcudart.so.13 references bind to
#                        the preloaded shim (DESIGN.md) and the shim exports
#                        CUDA's symbols and nothing else (STYLE.md habit 1);
#                        and the node libcudart.so.12, which the .symver
#                        directives of the CUDA 12 functions name.
#   shim_stubs.c         one stub per exported name that IMPLEMENTED_LIST does
#                        not name: prints "tremote: NAME is not supported yet
#                        (cudaErrorNotSupported)" once, records 801 as the
#                        thread's last error and returns 801.
#   shim_stubcheck.c     compile-only checks that every stubbed name is
#   shim_stubcheck_ptsz.c  declared by the toolkit's headers as returning
#                        cudaError_t: a stub returns an int in the return
#                        register, which is right only for those (the _ptsz
#                        and _ptds names are checked in the second file, with
#                        CUDA_API_PER_THREAD_DEFAULT_STREAM defined).
#   shim_abi12_gen.c     the CUDA 12 ABI: for each CUDA 12 name whose ABI CUDA
#                        13 kept ("same"), a trampoline NAME@libcudart.so.12
#                        that jumps to CUDA 13's NAME; for each other name
#                        ("differs", "only12") that IMPLEMENTED12_LIST does
#                        not name, a stub like the ones above.  The names
#                        IMPLEMENTED12_LIST names are shim_abi12.c's.
#   abi12.tsv            NAME, verdict, what the shim does (trampoline, own,
#                        stub), reason: the table gen_coverage.py documents.
#
# It stops with a message when the library exports something it cannot
# handle (a data symbol, a second version node), when IMPLEMENTED_LIST
# names something libcudart does not export, when a line of
# CUDART12_EXPORTS is not NAME<TAB>same|differs|only12 or disagrees with
# LIBCUDART_SO about which names CUDA 13 has, when IMPLEMENTED12_LIST names
# a CUDA 12 function that is not in the table or whose ABI CUDA 13 kept, or
# when a CUDA 12 function to be stubbed does not return cudaError_t.
# Outputs are replaced only when everything succeeded.
set -euo pipefail

if [ $# -ne 6 ]; then
	echo "usage: $0 NM LIBCUDART_SO IMPLEMENTED_LIST CUDART12_EXPORTS IMPLEMENTED12_LIST OUTDIR" >&2
	exit 2
fi
nm=$1 so=$2 list=$3 list12=$4 impl12=$5 out=$6

die() { echo "gen_exports.sh: $*" >&2; exit 1; }

[ -r "$so" ] || die "cannot read $so (set CUDA_HOME)"
[ -r "$list" ] || die "cannot read $list"
[ -r "$list12" ] || die "cannot read $list12"
[ -r "$impl12" ] || die "cannot read $impl12"
mkdir -p "$out"
tmp=$(mktemp -d "$out/.gen.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# nm prints "ADDR TYPE NAME@@NODE" (binutils >= 2.37 shows versions by
# default; --with-symbol-versions asks for them on older ones).  The version
# definition itself appears as an absolute symbol named after the node.
"$nm" -D --defined-only --with-symbol-versions "$so" >"$tmp/nm.txt" ||
	die "$nm failed on $so"

awk -v so="$so" '
	NF == 3 && $2 == "A" { nodes[$3] = 1; next }
	NF == 3 {
		if ($2 != "T" && $2 != "W" && $2 != "i")
			{ print "not a function: " $0 > "/dev/stderr"; bad = 1; next }
		n = index($3, "@@")
		if (n == 0)
			{ print "not a default-versioned symbol: " $0 > "/dev/stderr"; bad = 1; next }
		name = substr($3, 1, n - 1); node = substr($3, n + 2)
		fnodes[node] = 1
		print name > "'"$tmp"'/names.txt"
		next
	}
	{ print "unexpected nm line: " $0 > "/dev/stderr"; bad = 1 }
	END {
		k = 0
		for (v in fnodes) { k++; node = v }
		if (k != 1) { print "expected one version node in " so ", found " k > "/dev/stderr"; exit 1 }
		if (!(node in nodes)) { print "no version definition for " node > "/dev/stderr"; exit 1 }
		if (bad) exit 1
		print node > "'"$tmp"'/node.txt"
	}
' "$tmp/nm.txt" || die "cannot handle the exports of $so (see above)"

node=$(cat "$tmp/node.txt")
LC_ALL=C sort -u "$tmp/names.txt" >"$tmp/exports.txt"
nexports=$(wc -l <"$tmp/exports.txt")
[ "$nexports" -gt 0 ] || die "no exported functions in $so"

# implemented.list: one name per line, '#' comments, blank lines ignored.
sed -e 's/#.*//' -e 's/[[:space:]]//g' "$list" | grep -v '^$' |
	LC_ALL=C sort >"$tmp/impl-all.txt" || true
dups=$(uniq -d "$tmp/impl-all.txt")
[ -z "$dups" ] || die "$list names these twice: $dups"
unknown=$(LC_ALL=C comm -23 "$tmp/impl-all.txt" "$tmp/exports.txt")
[ -z "$unknown" ] || die "$list names what $so does not export: $unknown"
LC_ALL=C comm -23 "$tmp/exports.txt" "$tmp/impl-all.txt" >"$tmp/stubbed.txt"

# The CUDA 12 table: NAME<TAB>same|differs|only12[<TAB>why], '#' comments.
# Every name once; "same" and "differs" name a CUDA 13 export, "only12"
# names none.
awk -F'\t' -v f="$list12" -v out="$tmp/t12.txt" '
	/^#/ || /^$/ { next }
	NF < 2 || ($2 != "same" && $2 != "differs" && $2 != "only12") {
		printf "%s:%d: expected NAME<TAB>same|differs|only12[<TAB>why]: %s\n", f, NR, $0 > "/dev/stderr"
		bad = 1; next
	}
	$1 !~ /^[A-Za-z_][A-Za-z_0-9]*$/ { printf "%s:%d: not a name: %s\n", f, NR, $1 > "/dev/stderr"; bad = 1; next }
	seen[$1]++ { printf "%s:%d: %s is listed twice\n", f, NR, $1 > "/dev/stderr"; bad = 1; next }
	{ print $1 "\t" $2 "\t" $3 > out }
	END { exit bad }
' "$list12" || die "cannot use the CUDA 12 table $list12 (see above)"
[ -s "$tmp/t12.txt" ] || die "$list12 lists no functions"
LC_ALL=C sort -t "$(printf '\t')" -k1,1 "$tmp/t12.txt" >"$tmp/t12s.txt"
cut -f1 "$tmp/t12s.txt" >"$tmp/names12.txt"
awk -F'\t' '$2 != "only12" { print $1 }' "$tmp/t12s.txt" >"$tmp/common12.txt"
awk -F'\t' '$2 == "only12" { print $1 }' "$tmp/t12s.txt" >"$tmp/only12.txt"
missing=$(LC_ALL=C comm -23 "$tmp/common12.txt" "$tmp/exports.txt")
[ -z "$missing" ] || die "$list12 says CUDA 13 has these, but $so does not export them: $missing"
both=$(LC_ALL=C comm -12 "$tmp/only12.txt" "$tmp/exports.txt")
[ -z "$both" ] || die "$list12 says only CUDA 12 has these, but $so exports them: $both"

# implemented12.list, read like implemented.list: CUDA 12 names whose ABI
# differs from CUDA 13's, or that CUDA 13 lacks (a "same" name jumps to
# CUDA 13's function; it has nothing to implement).
sed -e 's/#.*//' -e 's/[[:space:]]//g' "$impl12" | grep -v '^$' |
	LC_ALL=C sort >"$tmp/impl12.txt" || true
dups=$(uniq -d "$tmp/impl12.txt")
[ -z "$dups" ] || die "$impl12 names these twice: $dups"
unknown=$(LC_ALL=C comm -23 "$tmp/impl12.txt" "$tmp/names12.txt")
[ -z "$unknown" ] || die "$impl12 names what libcudart.so.12 does not export ($list12): $unknown"
same_impl=$(awk -F'\t' '$2 == "same" { print $1 }' "$tmp/t12s.txt" |
	LC_ALL=C comm -12 - "$tmp/impl12.txt")
[ -z "$same_impl" ] || die "$impl12 names these, whose ABI CUDA 13 kept (they jump to CUDA 13's function): $same_impl"

# NAME, verdict, what the shim does (trampoline | own | stub), why.
awk -F'\t' -v impl="$tmp/impl12.txt" '
	BEGIN { while ((getline n < impl) > 0) own[n] = 1 }
	{ what = $2 == "same" ? "trampoline" : ($1 in own ? "own" : "stub")
	  print $1 "\t" $2 "\t" what "\t" $3 }
' "$tmp/t12s.txt" >"$tmp/abi12.tsv"
# A stub returns an int, right only for a function returning cudaError_t:
# the audit notes any other return type ("; returns T"), and a changed
# prototype shows its own.
nonerr=$(awk -F'\t' '$3 == "stub" && ($4 ~ /; returns / ||
	($4 ~ /^prototype: / && $4 !~ /^prototype: cudaError_t \(/)) { print $1 }' "$tmp/abi12.tsv")
[ -z "$nonerr" ] || die "these CUDA 12 functions do not return cudaError_t, so a stub cannot stand in for them; implement them in shim_abi12.c: $nonerr"
n12=$(wc -l <"$tmp/abi12.tsv")
ntramp=$(awk -F'\t' '$3 == "trampoline"' "$tmp/abi12.tsv" | wc -l)
nstub12=$(awk -F'\t' '$3 == "stub"' "$tmp/abi12.tsv" | wc -l)

# The version script.
{
	echo "/* Generated by shim/gen_exports.sh from $so and $list12; do not edit. */"
	echo "/* CUDA 12's functions are bound to this node by the .symver"
	echo "   directives of shim_abi12_gen.c and shim_abi12.c. */"
	echo "libcudart.so.12 {"
	echo "};"
	echo "$node {"
	echo "  global:"
	sed 's/.*/    &;/' "$tmp/exports.txt"
	echo "  local: *;"
	echo "};"
	echo "/* The shim's own, for libtremote (include/tremote/shim_entry.h). */"
	echo "TREMOTE_SHIM_1 {"
	echo "  global:"
	echo "    tremote_shim_v1;"
	echo "};"
} >"$tmp/libcudart.map"

# The stubs.  They take no parameters on purpose: in the C ABI the caller
# cleans up its own arguments, so a function that ignores them and returns
# an int in the return register serves any caller of a function returning
# cudaError_t (an enum, int-sized).  shim_stubcheck*.c prove that every
# stubbed name returns cudaError_t.
nstubs=$(wc -l <"$tmp/stubbed.txt")
{
	cat <<EOF
/*
 * Generated by shim/gen_exports.sh from $so; do not edit.
 * $nstubs of its $nexports exports are stubs here; shim/implemented.list
 * names the ones implemented by hand.
 */
#include <stdatomic.h>

#include "shim_errstate.h"

EOF
	if [ "$nstubs" -gt 0 ]; then
		echo "static const char *const stub_names[$nstubs] = {"
		sed 's/.*/\t"&",/' "$tmp/stubbed.txt"
		echo "};"
		echo
		echo "static atomic_int stub_once[$nstubs];"
		echo
		echo "static int stub_fail(int i)"
		echo "{"
		echo "	return shim_unsupported(&stub_once[i], stub_names[i]);"
		echo "}"
		echo
		awk '{ printf "int %s(void);\nint %s(void) { return stub_fail(%d); }\n", $1, $1, NR - 1 }' \
			"$tmp/stubbed.txt"
	fi
} >"$tmp/shim_stubs.c"

# The type checks.  __builtin_types_compatible_p(T, cudaError_t()) holds
# when T is a function returning cudaError_t (whatever its parameters, as
# long as they survive the default argument promotions, which all of
# CUDA's do); a name no header declares is a compile error, which is what
# we want too: such a name must be handled by hand.  An unsigned int
# return would pass (it is the enum's compatible type) and is harmless.
gen_check() { # $1 = 0: plain names, 1: _ptsz/_ptds names
	cat <<EOF
/*
 * Generated by shim/gen_exports.sh from $so; do not edit.
 * Compiled, never linked: it fails the build if a stubbed export does not
 * return cudaError_t.  See gen_exports.sh.
 */
EOF
	[ "$1" = 1 ] && echo "#define CUDA_API_PER_THREAD_DEFAULT_STREAM 1"
	cat <<'EOF'
#include <cuda_runtime_api.h>
#include <cuda_profiler_api.h>
#include <cuda_gl_interop.h>
#include <cuda_vdpau_interop.h>
#if __has_include(<EGL/egl.h>) && __has_include(<EGL/eglext.h>)
#include <cuda_egl_interop.h>
#define TR_HAVE_EGL 1
#endif

#define TR_RETURNS_CUDA_ERROR(f) \
	_Static_assert(__builtin_types_compatible_p(__typeof__(f), \
						    cudaError_t()), \
		       #f " does not return cudaError_t: implement it by hand " \
		       "and add it to shim/implemented.list")

EOF
	awk -v pt="$1" '
		{ suffixed = ($1 ~ /_pt(sz|ds)$/) }
		(pt == 1) != suffixed { next }
		/EGL|Egl/ { printf "#ifdef TR_HAVE_EGL\nTR_RETURNS_CUDA_ERROR(%s);\n#endif\n", $1; next }
		{ printf "TR_RETURNS_CUDA_ERROR(%s);\n", $1 }
	' "$tmp/stubbed.txt"
	echo
	echo "/* ISO C forbids an empty translation unit. */"
	echo "extern int tr_stubcheck_unused_$1;"
}
gen_check 0 >"$tmp/shim_stubcheck.c"
gen_check 1 >"$tmp/shim_stubcheck_ptsz.c"

# The CUDA 12 ABI.  A .symver must sit in the object that defines its
# symbol, so each trampoline is a function of its own, shim12_tr_NAME,
# exported as NAME@libcudart.so.12, that jumps to CUDA 13's NAME: a tail
# call through the PLT, no frame, the arguments left where the caller put
# them, so it serves any prototype.  The stubs are the CUDA 13 ones under
# other names.  An only12 name is the default version of its name
# (NAME@@), as in libcudart.so.12; the others cannot be: CUDA 13's is.
{
	cat <<EOF
/*
 * Generated by shim/gen_exports.sh from $list12; do not edit.
 * The $n12 functions of libcudart.so.12: $ntramp jump to CUDA 13's function
 * of the same name, $nstub12 are stubs here, and shim/implemented12.list
 * names the ones shim_abi12.c implements.
 */
#include <stdatomic.h>

#include "shim_errstate.h"

#if defined(__x86_64__)
#define SHIM12_JUMP(name) "\tjmp " #name "@PLT\n"
#elif defined(__aarch64__)
#define SHIM12_JUMP(name) "\tb " #name "\n"
#else
#error "shim_abi12_gen.c: CUDA 12 trampolines exist for x86-64 and aarch64 only"
#endif

#define SHIM12_TRAMPOLINE(name)                                   \\
  __asm__(".text\n"                                               \\
          ".globl shim12_tr_" #name "\n"                          \\
          ".type shim12_tr_" #name ", %function\n"                \\
          "shim12_tr_" #name ":\n"                                \\
          SHIM12_JUMP(name)                                       \\
          ".size shim12_tr_" #name ", . - shim12_tr_" #name "\n"  \\
          ".symver shim12_tr_" #name ", " #name "@libcudart.so.12\n")

EOF
	awk -F'\t' '$3 == "trampoline" { printf "SHIM12_TRAMPOLINE(%s);\n", $1 }' "$tmp/abi12.tsv"
	if [ "$nstub12" -gt 0 ]; then
		echo
		echo "static const char *const stub12_names[$nstub12] = {"
		awk -F'\t' '$3 == "stub" { printf "\t\"%s\",\n", $1 }' "$tmp/abi12.tsv"
		echo "};"
		echo
		echo "static atomic_int stub12_once[$nstub12];"
		echo
		echo "static int stub12_fail(int i)"
		echo "{"
		echo "	return shim_unsupported(&stub12_once[i], stub12_names[i]);"
		echo "}"
		echo
		awk -F'\t' '$3 == "stub" {
			printf "int shim12_stub_%s(void);\n", $1
			printf "int shim12_stub_%s(void) { return stub12_fail(%d); }\n", $1, k++
			printf "__asm__(\".symver shim12_stub_%s, %s%slibcudart.so.12\");\n", $1, $1, ($2 == "only12" ? "@@" : "@")
		}' "$tmp/abi12.tsv"
	fi
} >"$tmp/shim_abi12_gen.c"

for f in libcudart.map shim_stubs.c shim_stubcheck.c shim_stubcheck_ptsz.c \
	shim_abi12_gen.c abi12.tsv; do
	mv -f "$tmp/$f" "$out/$f"
done
echo "gen_exports.sh: $nexports exports of $node, $nstubs stubs;" \
	"$n12 of libcudart.so.12: $ntramp trampolines, $nstub12 stubs"
