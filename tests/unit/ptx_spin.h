/*
 * ptx_spin.h: the hand-written PTX of a kernel that keeps the device busy
 * for a given time, for tests that need calls to overlap (test_agent's
 * kernels, test_proc_backend's channels).  A string to paste into a
 * module after its .version/.target header:
 *
 *   spin(u64 ns): runs until %globaltimer has advanced by ns.
 */
#ifndef TR_TEST_PTX_SPIN_H
#define TR_TEST_PTX_SPIN_H

#define PTX_SPIN_ENTRY                                                       \
  ".visible .entry spin(.param .u64 ns)\n{\n"                                \
  "  .reg .b64 %rd<5>;\n  .reg .pred %p<2>;\n"                               \
  "  ld.param.u64 %rd1, [ns];\n  mov.u64 %rd2, %globaltimer;\n"              \
  "  add.u64 %rd3, %rd2, %rd1;\nLOOP:\n"                                     \
  "  mov.u64 %rd4, %globaltimer;\n  setp.lt.u64 %p1, %rd4, %rd3;\n"          \
  "  @%p1 bra LOOP;\n  ret;\n}\n"

#endif
