/*
 * ptx_names.c: names and sizes of the enumerations in ptx_ir.h.
 *
 * The tables are generated from the X-macros of the header, so a new opcode
 * or type needs no edit here.
 */
#include "ptx_ir.h"

static const char *const op_names[PTX_OP__COUNT] = {
#define PTX_X_NAME(e, s) [PTX_OP_##e] = s,
  PTX_OPCODES(PTX_X_NAME)
#undef PTX_X_NAME
};

static const char *const type_names[PTX_T__COUNT] = {
#define PTX_X_NAME(e, s, n) [PTX_T_##e] = s,
  PTX_TYPES(PTX_X_NAME)
#undef PTX_X_NAME
};

static const unsigned char type_sizes[PTX_T__COUNT] = {
#define PTX_X_SIZE(e, s, n) [PTX_T_##e] = n,
  PTX_TYPES(PTX_X_SIZE)
#undef PTX_X_SIZE
};

const char *ptx_op_name(unsigned op)
{
  return op < PTX_OP__COUNT ? op_names[op] : "?";
}

const char *ptx_type_name(unsigned t)
{
  return t < PTX_T__COUNT ? type_names[t] : "?";
}

unsigned ptx_type_size(unsigned t)
{
  return t < PTX_T__COUNT ? type_sizes[t] : 0;
}
