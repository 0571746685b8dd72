#!/usr/bin/env bash
# accept_limits.sh BUILD_DIR: the broker's listeners under a flood.  The
# broker raises its soft open-files limit to the hard one; --metrics
# (which any local user may reach) and the control socket take at most 16
# connections each, the rest waiting in the backlog; and when descriptors
# run out (the limit lowered under it with prlimit) accept waits and tries
# again instead of failing at once forever: no spinning CPU, one log line
# per listener, and the broker answers again once descriptors are free.
set -u
source "$(dirname "$0")/lib.sh"
tr_init "$1"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ulimit -Sn 256 # below the hard limit, which the broker takes
tr_start_broker --local 0 --metrics "127.0.0.1:$port"
python3 - "$BROKER_PID" "$port" "$TR_TMP" <<'PY' || tr_fail "see above"
import os, resource, socket, sys, time

pid, port, tmp = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
log = tmp + "/broker.log"

def fail(why):
    print("FAIL:", why)
    sys.exit(1)

def nfds():
    return len(os.listdir("/proc/%d/fd" % pid))

def cpu():  # the broker's user + system time, seconds
    with open("/proc/%d/stat" % pid) as f:
        x = f.read().rsplit(")", 1)[1].split()
    return (int(x[11]) + int(x[12])) / os.sysconf("SC_CLK_TCK")

soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
if soft != hard:
    fail("open files limit %d, hard %d: not raised" % (soft, hard))
print("open files limit raised to the hard one (%d)" % hard)

def connect_idle(metrics, control):
    """Idle connections: metrics ones over TCP, control ones over Unix."""
    held = [socket.create_connection(("127.0.0.1", port))
            for _ in range(metrics)]
    ctl = []
    for _ in range(control):
        s = socket.socket(socket.AF_UNIX)
        s.connect(tmp + "/control.sock")
        ctl.append(s)
    return held, ctl

base = nfds()
held, ctl = connect_idle(40, 24)
time.sleep(0.5)
if nfds() - base > 32:
    fail("%d idle metrics and control connections took %d descriptors "
         "(16 + 16 at most)" % (len(held) + len(ctl), nfds() - base))
print("40 metrics and 24 control connections: %d descriptors" % (nfds() - base))

# Out of descriptors: every listener has a connection waiting it cannot take.
for s in held + ctl:
    s.close()
time.sleep(0.5)
base = nfds()
resource.prlimit(pid, resource.RLIMIT_NOFILE, (base + 4, hard))
held, ctl = connect_idle(8, 4)
prog = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
prog.connect(tmp + "/broker.sock")
time.sleep(0.5)
c0, l0 = cpu(), os.path.getsize(log)
time.sleep(2)
c1, l1 = cpu(), os.path.getsize(log)
print("out of descriptors for 2 s: %.2f s of CPU, %d bytes of log" % (c1 - c0, l1 - l0))
if c1 - c0 > 0.5:
    fail("the broker spun: %.2f s of CPU in 2 s" % (c1 - c0))
if l1 - l0 > 1000:
    fail("the log grew %d bytes in 2 s" % (l1 - l0))
text = open(log).read()
if "cannot accept: Too many open files" not in text:
    fail("no line saying the broker ran out of descriptors")

# Descriptors back: it answers again.
resource.prlimit(pid, resource.RLIMIT_NOFILE, (hard, hard))
for s in held + ctl:
    s.close()
prog.close()
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(tmp + "/control.sock")
s.sendall(b'{"version":1,"op":"broker"}\n')
if b'"broker"' not in s.recv(4096):
    fail("no answer on the control socket once descriptors were free")
print("descriptors back: the control socket answers")
PY
grep -c "cannot accept" "$TR_TMP/broker.log" | {
    read -r n; [ "$n" -le 3 ] || tr_fail "$n lines saying accept failed (one per listener)"; }
echo "accept_limits: ok"
