/*
 * no_uring ERRNO PROGRAM [ARG]...: run PROGRAM with io_uring_setup(2)
 * failing with ERRNO (a number, e.g. 1 for EPERM, 38 for ENOSYS), as
 * under a container's seccomp profile that refuses io_uring or on a kernel
 * without it.  A seccomp filter, installed with no_new_privs, so it needs
 * no privilege; every other system call is allowed.  Exit 125 if the
 * filter cannot be installed, 127 if PROGRAM cannot be run.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define ARCH AUDIT_ARCH_AARCH64
#else
#error "no_uring: add this architecture's AUDIT_ARCH"
#endif

int main(int argc, char **argv)
{
  char *end;
  long err;

  if (argc < 3) {
    fprintf(stderr, "usage: no_uring ERRNO PROGRAM [ARG]...\n");
    return 125;
  }
  err = strtol(argv[1], &end, 10);
  if (*end || end == argv[1] || err < 1 || err > 4095) {
    fprintf(stderr, "no_uring: ERRNO must be a number from 1 to 4095\n");
    return 125;
  }
  struct sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K,
               SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {.len = sizeof(f) / sizeof(f[0]), .filter = f};

  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
      prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) {
    fprintf(stderr, "no_uring: cannot install the seccomp filter: %s\n",
            strerror(errno));
    return 125;
  }
  execvp(argv[2], argv + 2);
  fprintf(stderr, "no_uring: %s: %s\n", argv[2], strerror(errno));
  return 127;
}
