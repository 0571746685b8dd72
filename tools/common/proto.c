/*
 * proto.c: packing, checking and incremental decoding of tremote records.
 * The format is described in include/tremote/proto.h and docs/PROTOCOL.md.
 *
 * Everything here must survive arbitrary input (the decoder is fuzzed): every
 * length is checked against the bytes actually present before it is used.
 */
#include <errno.h>
#include <stdlib.h>

#include "tremote/proto.h"

static const char *const op_names[] = {
#define TR_OP_NAME_(num, name, fl, doc) [num] = #name,
  TR_OPCODES(TR_OP_NAME_)
#undef TR_OP_NAME_
};

const char *tr_op_name(uint16_t opcode)
{
  if (opcode >= sizeof(op_names) / sizeof(op_names[0]))
    return NULL;
  return op_names[opcode];
}

void tr_hdr_init(struct tr_hdr *h, uint16_t opcode, uint16_t flags,
                 uint64_t request_id, uint32_t payload_len)
{
  memset(h, 0, sizeof(*h));
  h->magic = TR_PROTO_MAGIC;
  h->version = TR_PROTO_VERSION_MAX;
  h->opcode = opcode;
  h->flags = flags;
  h->request_id = request_id;
  h->payload_len = payload_len;
}

void tr_hdr_pack(const struct tr_hdr *h, uint8_t out[TR_HDR_SIZE])
{
  tr_put_u32(out + 0, h->magic);
  tr_put_u16(out + 4, h->version);
  tr_put_u16(out + 6, h->opcode);
  tr_put_u16(out + 8, h->flags);
  tr_put_u16(out + 10, h->device);
  tr_put_u32(out + 12, h->status);
  tr_put_u64(out + 16, h->request_id);
  tr_put_u32(out + 24, h->payload_len);
  tr_put_u32(out + 28, h->aux);
}

void tr_hdr_unpack(const uint8_t in[TR_HDR_SIZE], struct tr_hdr *h)
{
  h->magic = tr_get_u32(in + 0);
  h->version = tr_get_u16(in + 4);
  h->opcode = tr_get_u16(in + 6);
  h->flags = tr_get_u16(in + 8);
  h->device = tr_get_u16(in + 10);
  h->status = tr_get_u32(in + 12);
  h->request_id = tr_get_u64(in + 16);
  h->payload_len = tr_get_u32(in + 24);
  h->aux = tr_get_u32(in + 28);
}

int tr_hdr_check(const struct tr_hdr *h, uint32_t max_payload, int allow_pad,
                 const char **why)
{
  const char *dummy;

  if (!why)
    why = &dummy;
  if (h->magic != TR_PROTO_MAGIC) {
    *why = "bad magic (not a tremote record)";
    return -EPROTO;
  }
  if (h->version < TR_PROTO_VERSION_MIN || h->version > TR_PROTO_VERSION_MAX) {
    *why = "record version outside the negotiated range";
    return -EPROTO;
  }
  if (h->flags & ~TR_F_KNOWN) {
    *why = "unknown flag bits";
    return -EPROTO;
  }
  if (!tr_op_name(h->opcode) || (h->opcode == TR_OP_PAD && !allow_pad)) {
    *why = "unknown opcode";
    return -EBADMSG;
  }
  if (h->payload_len > max_payload) {
    *why = "payload larger than the limit";
    return -EMSGSIZE;
  }
  return 0;
}

void tr_shmref_pack(const struct tr_shmref *r, uint8_t out[TR_SHMREF_SIZE])
{
  tr_put_u32(out, r->area);
  tr_put_u32(out + 4, 0);
  tr_put_u64(out + 8, r->pos);
  tr_put_u64(out + 16, r->len);
}

void tr_shmref_unpack(const uint8_t in[TR_SHMREF_SIZE], struct tr_shmref *r)
{
  r->area = tr_get_u32(in);
  r->pos = tr_get_u64(in + 8);
  r->len = tr_get_u64(in + 16);
}

void tr_hello_pack(const struct tr_hello *h, uint8_t out[TR_HELLO_SIZE])
{
  tr_put_u16(out, h->min_version);
  tr_put_u16(out + 2, h->max_version);
  tr_put_u32(out + 4, h->role);
  tr_put_u64(out + 8, h->caps);
  tr_put_u32(out + 16, h->pid);
  tr_put_u32(out + 20, h->extra_len);
}

int tr_hello_unpack(const uint8_t *in, size_t len, struct tr_hello *h)
{
  if (len < TR_HELLO_SIZE)
    return -EBADMSG;
  h->min_version = tr_get_u16(in);
  h->max_version = tr_get_u16(in + 2);
  h->role = tr_get_u32(in + 4);
  h->caps = tr_get_u64(in + 8);
  h->pid = tr_get_u32(in + 16);
  h->extra_len = tr_get_u32(in + 20);
  if (h->min_version > h->max_version || h->extra_len > len - TR_HELLO_SIZE)
    return -EBADMSG;
  return 0;
}

int tr_hello_choose(const struct tr_hello *mine, const struct tr_hello *theirs)
{
  uint16_t lo = mine->min_version > theirs->min_version ? mine->min_version
                                                        : theirs->min_version;
  uint16_t hi = mine->max_version < theirs->max_version ? mine->max_version
                                                        : theirs->max_version;
  return lo <= hi ? hi : -1;
}

size_t tr_devinfo_size(const struct tr_devinfo *d)
{
  return TR_DEVINFO_FIXED + 8u * d->nattr;
}

void tr_devinfo_pack(const struct tr_devinfo *d, uint8_t *out)
{
  size_t size = tr_devinfo_size(d);

  memset(out, 0, TR_DEVINFO_FIXED);
  tr_put_u32(out, (uint32_t)size);
  tr_put_u32(out + 4, d->nattr);
  tr_put_u64(out + 8, d->total_mem);
  tr_put_u64(out + 16, d->va_base);
  tr_put_u64(out + 24, d->va_size);
  tr_put_u64(out + 32, d->caps);
  memcpy(out + 40, d->uuid, 16);
  memcpy(out + 56, d->name, TR_DEVINFO_NAME);
  out[56 + TR_DEVINFO_NAME - 1] = 0;
  tr_put_u32(out + 120, d->machine_index);
  for (uint32_t i = 0; i < d->nattr; i++) {
    tr_put_u32(out + TR_DEVINFO_FIXED + 8 * i, d->attr[i].attr);
    tr_put_u32(out + TR_DEVINFO_FIXED + 8 * i + 4, (uint32_t)d->attr[i].value);
  }
}

int tr_devinfo_unpack(const uint8_t *in, size_t len, struct tr_devinfo *d,
                      size_t *used)
{
  uint32_t size, nattr;

  if (len < TR_DEVINFO_FIXED)
    return -EBADMSG;
  size = tr_get_u32(in);
  nattr = tr_get_u32(in + 4);
  if (nattr > TR_DEVINFO_MAX_ATTR || size < TR_DEVINFO_FIXED + 8u * nattr ||
      size > len)
    return -EBADMSG;
  memset(d, 0, sizeof(*d));
  d->nattr = nattr;
  d->total_mem = tr_get_u64(in + 8);
  d->va_base = tr_get_u64(in + 16);
  d->va_size = tr_get_u64(in + 24);
  d->caps = tr_get_u64(in + 32);
  memcpy(d->uuid, in + 40, 16);
  memcpy(d->name, in + 56, TR_DEVINFO_NAME);
  d->name[TR_DEVINFO_NAME - 1] = 0;
  d->machine_index = tr_get_u32(in + 120);
  for (uint32_t i = 0; i < nattr; i++) {
    d->attr[i].attr = tr_get_u32(in + TR_DEVINFO_FIXED + 8 * i);
    d->attr[i].value = (int32_t)tr_get_u32(in + TR_DEVINFO_FIXED + 8 * i + 4);
  }
  if (used)
    *used = size;
  return 0;
}

int tr_devinfo_attr(const struct tr_devinfo *d, uint32_t attr, int32_t *value)
{
  for (uint32_t i = 0; i < d->nattr; i++) {
    if (d->attr[i].attr == attr) {
      *value = d->attr[i].value;
      return 0;
    }
  }
  return -ENOENT;
}

int tr_decoder_init(struct tr_decoder *d, uint32_t max_payload)
{
  memset(d, 0, sizeof(*d));
  d->max_payload = max_payload;
  d->buf = malloc((size_t)TR_HDR_SIZE + max_payload);
  return d->buf ? 0 : -ENOMEM;
}

int tr_decoder_init_alloc(struct tr_decoder *d, uint32_t max_payload,
                          tr_decoder_alloc_fn alloc, void *arg)
{
  memset(d, 0, sizeof(*d));
  d->max_payload = max_payload;
  d->alloc = alloc;
  d->alloc_arg = arg;
  d->buf = malloc(TR_HDR_SIZE);
  return d->buf ? 0 : -ENOMEM;
}

int tr_decoder_init_split(struct tr_decoder *d, uint32_t max_payload,
                          uint32_t prefix, tr_decoder_split_fn fn, void *arg)
{
  memset(d, 0, sizeof(*d));
  d->max_payload = max_payload;
  d->split = fn;
  d->alloc_arg = arg;
  d->prefix = prefix;
  d->buf = malloc((size_t)TR_HDR_SIZE + prefix);
  return d->buf ? 0 : -ENOMEM;
}

void tr_decoder_release(struct tr_decoder *d)
{
  free(d->buf);
  d->buf = NULL;
}

uint8_t *tr_decoder_room(const struct tr_decoder *d, size_t *room)
{
  size_t base;

  if (d->err || d->have < TR_HDR_SIZE || !d->dst)
    return NULL;
  base = TR_HDR_SIZE + (d->split ? d->pre : 0);
  if (d->have < base || d->have >= TR_HDR_SIZE + d->hdr.payload_len)
    return NULL;
  *room = TR_HDR_SIZE + (size_t)d->hdr.payload_len - d->have;
  return d->dst + (d->have - base);
}

long tr_decoder_feed(struct tr_decoder *d, const uint8_t *in, size_t len,
                     int *complete, struct tr_hdr *h, const uint8_t **payload)
{
  size_t used = 0, want, take, base;
  int rc;

  *complete = 0;
  if (d->err)
    return d->err;
  if (d->have < TR_HDR_SIZE) {
    want = TR_HDR_SIZE - d->have;
    take = len < want ? len : want;
    memcpy(d->buf + d->have, in, take);
    d->have += (uint32_t)take;
    used += take;
    if (d->have < TR_HDR_SIZE)
      return (long)used;
    tr_hdr_unpack(d->buf, &d->hdr);
    /* PAD only exists inside rings; on the wire it is an error. */
    rc = tr_hdr_check(&d->hdr, d->max_payload, 0, &d->why);
    if (rc < 0) {
      d->err = rc;
      return rc;
    }
    if (d->split) {
      /* The destination is chosen once the prefix is in (below). */
      d->pre = d->hdr.payload_len < d->prefix ? d->hdr.payload_len : d->prefix;
      d->dst = NULL;
    } else {
      d->dst = d->alloc ? d->alloc(d->alloc_arg, &d->hdr)
                        : d->buf + TR_HDR_SIZE;
      if (!d->dst) {
        d->why = "out of memory for a record";
        d->err = -ENOMEM;
        return -ENOMEM;
      }
    }
  }
  if (d->split && !d->dst) {
    want = TR_HDR_SIZE + (size_t)d->pre - d->have;
    take = (len - used) < want ? (len - used) : want;
    if (take)
      memcpy(d->buf + d->have, in + used, take);
    d->have += (uint32_t)take;
    used += take;
    if (d->have < TR_HDR_SIZE + d->pre)
      return (long)used;
    d->dst = d->split(d->alloc_arg, &d->hdr, d->buf + TR_HDR_SIZE, d->pre);
    if (!d->dst) {
      d->why = "out of memory for a record";
      d->err = -ENOMEM;
      return -ENOMEM;
    }
  }
  /* Where dst's first byte sits in the record: after the prefix in split
     mode, right after the header otherwise. */
  base = TR_HDR_SIZE + (d->split ? d->pre : 0);
  want = TR_HDR_SIZE + (size_t)d->hdr.payload_len - d->have;
  take = (len - used) < want ? (len - used) : want;
  /* Bytes received in place (tr_decoder_room) are where they belong. */
  if (take && d->dst + (d->have - base) != in + used)
    memmove(d->dst + (d->have - base), in + used, take);
  d->have += (uint32_t)take;
  used += take;
  if (d->have == TR_HDR_SIZE + d->hdr.payload_len) {
    *complete = 1;
    *h = d->hdr;
    *payload = d->dst;
    d->have = 0;
  }
  return (long)used;
}
