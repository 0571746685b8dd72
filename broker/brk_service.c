/*
 * brk_service.c: what the broker tells whoever started it, in brkcore
 * (which holds everything but main()) because machines call
 * brk_check_ready as their first starts end: "ready" on --ready-fd, and
 * systemd's notifications (Type=notify), which brk_main.c also sends on
 * reload and stop.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "brk.h"
#include "brk_log.h"

/*
 * systemd's readiness protocol (Type=notify): one datagram to the socket in
 * $NOTIFY_SOCKET ("@name" is in the abstract namespace).  Without the
 * variable, nothing.  Failures only go to the log: the service runs anyway.
 */
void brk_sd_notify(const char *state)
{
  const char *path = getenv("NOTIFY_SOCKET");
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  socklen_t len;
  int fd;

  if (!path || !path[0] || strlen(path) >= sizeof(sa.sun_path))
    return;
  memcpy(sa.sun_path, path, strlen(path));
  if (sa.sun_path[0] == '@')
    sa.sun_path[0] = 0;
  len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
  fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || sendto(fd, state, strlen(state), MSG_NOSIGNAL,
                       (struct sockaddr *)&sa, len) < 0)
    brk_warn("NOTIFY_SOCKET %s: %s", path, strerror(errno));
  if (fd >= 0)
    close(fd);
}

void brk_check_ready(struct brk *b)
{
  static const char msg[] = "ready\n";

  if (b->ready_sent || !b->listening)
    return;
  /* Not Modal machines: a Sandbox takes minutes, and programs that start
     meanwhile wait for it in their HELLO anyway.  Nor removed ones: a
     machine removed before its first start ended never finishes it. */
  for (unsigned i = 0; i < b->nmachines; i++) {
    const struct brk_machine *m = b->machines[i];

    if (!m->first_done && !m->modal && !m->removed)
      return;
  }
  b->ready_sent = 1;
  brk_info("ready: listening on %s (control %s), %u machine(s)",
           b->cfg.socket_path, b->cfg.control_path, b->nmachines);
  {
    char st[128];

    snprintf(st, sizeof(st), "READY=1\nSTATUS=%u machine(s)\nMAINPID=%d",
             b->nmachines, (int)getpid());
    brk_sd_notify(st);
  }
  if (b->cfg.ready_fd >= 0) {
    if (write(b->cfg.ready_fd, msg, sizeof(msg) - 1) < 0)
      brk_warn("--ready-fd %d: %s", b->cfg.ready_fd, strerror(errno));
    close(b->cfg.ready_fd);
    b->cfg.ready_fd = -1;
  }
}

int brk_accept_starved(struct brk *b, int res, unsigned which,
                       const char *what)
{
  if (res >= 0) {
    b->accept_starved &= ~which;
    return 0;
  }
  if (res != -EMFILE && res != -ENFILE && res != -ENOBUFS && res != -ENOMEM)
    return 0;
  if (!(b->accept_starved & which))
    brk_warn("%s: cannot accept: %s; trying again every %d ms (said once "
             "until it works)", what, strerror(-res), BRK_ACCEPT_RETRY_MS);
  b->accept_starved |= which;
  return 1;
}
