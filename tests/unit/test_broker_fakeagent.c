/*
 * test_broker_fakeagent.c: a tremote-gpu-agent impostor that misbehaves on
 * purpose, for the broker's failure paths (tests/integration/broker_cli.sh).
 * It takes the agent's command line (--listen, --secret-fd, --ready-fd,
 * ...), reports its port like the agent, serves one HTTP/2 connection and
 * answers POST /v1/hello according to $FAKE_AGENT_MODE:
 *
 *   version   a HELLO reply with status TR_ST_VERSION and a message
 *   401       HTTP 401 (wrong secret)
 *   garbage   200 with bytes that are no record
 *   ok        a proper HELLO reply; sessions and lanes get 200 and nothing
 *
 * Not a test by itself; built next to the tests.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tremote/proto.h"

static const char *mode;
static int fd = -1;

struct reply {
  uint8_t body[1024];
  size_t len, off;
};

static ssize_t send_cb(nghttp2_session *s, const uint8_t *data, size_t len,
                       int flags, void *user)
{
  ssize_t n = write(fd, data, len);

  return n < 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : n;
}

static ssize_t body_cb(nghttp2_session *s, int32_t id, uint8_t *buf,
                       size_t len, uint32_t *flags, nghttp2_data_source *src,
                       void *user)
{
  struct reply *r = src->ptr;
  size_t n = r->len - r->off;

  if (n > len)
    n = len;
  memcpy(buf, r->body + r->off, n);
  r->off += n;
  if (r->off == r->len)
    *flags |= NGHTTP2_DATA_FLAG_EOF;
  return (ssize_t)n;
}

static void hello_reply(struct reply *r)
{
  struct tr_hdr h;
  struct tr_hello he = {TR_PROTO_VERSION_MAX, TR_PROTO_VERSION_MAX,
                        TR_ROLE_AGENT, 0, (uint32_t)getpid(), 0};
  struct tr_devinfo d;
  const char *msg = "fake agent speaks versions 7..9";

  memset(&d, 0, sizeof(d));
  if (!strcmp(mode, "garbage")) {
    memset(r->body, 'x', 64);
    r->len = 64;
    return;
  }
  if (!strcmp(mode, "version")) {
    tr_hdr_init(&h, TR_OP_HELLO, TR_F_REPLY, 1, (uint32_t)strlen(msg));
    h.status = TR_ST_VERSION;
    tr_hdr_pack(&h, r->body);
    memcpy(r->body + TR_HDR_SIZE, msg, strlen(msg));
    r->len = TR_HDR_SIZE + strlen(msg);
    return;
  }
  d.total_mem = 1u << 30;
  snprintf(d.name, sizeof(d.name), "Fake Device");
  he.extra_len = (uint32_t)tr_devinfo_size(&d);
  tr_hdr_init(&h, TR_OP_HELLO, TR_F_REPLY, 1, TR_HELLO_SIZE + he.extra_len);
  tr_hdr_pack(&h, r->body);
  tr_hello_pack(&he, r->body + TR_HDR_SIZE);
  tr_devinfo_pack(&d, r->body + TR_HDR_SIZE + TR_HELLO_SIZE);
  r->len = TR_HDR_SIZE + TR_HELLO_SIZE + he.extra_len;
}

static int on_frame(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
  static struct reply replies[64];
  static int n;
  nghttp2_data_provider prd;
  nghttp2_nv nv[1] = {{(uint8_t *)":status", (uint8_t *)"200", 7, 3, 0}};
  struct reply *r;

  if (!(f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) ||
      !(f->hd.flags & NGHTTP2_FLAG_END_STREAM) || n == 64)
    return 0;
  r = &replies[n++];
  if (!strcmp(mode, "401")) {
    nv[0].value = (uint8_t *)"401";
    return nghttp2_submit_response(s, f->hd.stream_id, nv, 1, NULL);
  }
  hello_reply(r);
  prd.source.ptr = r;
  prd.read_callback = body_cb;
  return nghttp2_submit_response(s, f->hd.stream_id, nv, 1, &prd);
}

int main(int argc, char **argv)
{
  struct sockaddr_in sa = {.sin_family = AF_INET};
  socklen_t len = sizeof(sa);
  nghttp2_session_callbacks *cbs;
  nghttp2_session *s;
  int lfd, ready_fd = 4, one = 1;
  char line[32], buf[65536];
  ssize_t n;

  mode = getenv("FAKE_AGENT_MODE");
  if (!mode)
    mode = "ok";
  for (int i = 1; i + 1 < argc; i++)
    if (!strcmp(argv[i], "--ready-fd"))
      ready_fd = atoi(argv[i + 1]);
  lfd = socket(AF_INET, SOCK_STREAM, 0);
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0 ||
      getsockname(lfd, (struct sockaddr *)&sa, &len) < 0)
    return 1;
  snprintf(line, sizeof(line), "%u\n", ntohs(sa.sin_port));
  if (write(ready_fd, line, strlen(line)) < 0)
    return 1;
  close(ready_fd);
  fd = accept(lfd, NULL, NULL);
  if (fd < 0)
    return 1;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_send_callback(cbs, send_cb);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame);
  nghttp2_session_server_new(&s, cbs, NULL);
  nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, NULL, 0);
  nghttp2_session_send(s);
  while ((n = read(fd, buf, sizeof(buf))) > 0) {
    if (nghttp2_session_mem_recv(s, (uint8_t *)buf, (size_t)n) < 0 ||
        nghttp2_session_send(s) != 0)
      break;
  }
  nghttp2_session_del(s);
  nghttp2_session_callbacks_del(cbs);
  return 0;
}
