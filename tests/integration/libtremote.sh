#!/usr/bin/env bash
# libtremote.sh BUILD_DIR: libtremote against a real broker with one LOCAL
# machine (tests/unit/test_libtremote.c, "broker" group): a machine created
# through the library becomes machine 1 and a device, is found by index,
# compares equal to itself and not to machine 0, and is removed.
set -u
source "$(dirname "$0")/lib.sh"
tr_init "$1"
tr_start_broker --local 1 --emu-mem 1G
"$BUILD/tests/test_libtremote" broker || tr_fail "test_libtremote broker failed"
tr_stop_broker
echo "libtremote: ok"
