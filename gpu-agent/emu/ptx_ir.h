/*
 * ptx_ir.h: the pre-decoded form of a PTX module.
 *
 * The emulated device never interprets PTX text while a kernel runs.  At
 * module load the parser (ptx_parse.c) turns the text into the arrays below,
 * once per module (the agent caches them by the fatbin's XXH3-128 hash, so
 * every session and launch shares one immutable struct ptx_module); the
 * executor (ptx_exec.c) then validates every instruction against what it
 * implements (ptx_exec_prepare) and runs kernels from these arrays.
 *
 * Division of labour, so that "not implemented" is caught at load time and
 * never becomes a wrong result at run time:
 *   - the parser accepts the PTX grammar: it knows every opcode name in
 *     PTX_OPCODES below and every modifier in this header; an unknown
 *     opcode, modifier, type or directive fails the parse with an error that
 *     names it and its line;
 *   - the executor's prepare pass rejects any (opcode, type, modifiers)
 *     combination it does not implement, again naming it and its line.
 *
 * Ownership: a struct ptx_module owns every array it points to (one
 * allocation each, freed by ptx_module_free).  Nothing in it points into
 * the PTX text, which may be freed after ptx_parse returns.
 *
 * Registers.  Every PTX register (%r5, %rd3, %f1, %p2, %SP, %SPL ...) is
 * given a slot index in its function's register file; every slot is 64 bits
 * wide per thread, whatever its declared type (an .f32 lives in the low 32
 * bits, an .f16 in the low 16, a .pred is 0 or 1).  Slot numbers are dense
 * per function: 0 .. nregs-1.  Registers declared inside a nested { } scope
 * (the callseq blocks nvcc emits) get slots of their own.
 *
 * Immediates.  The parser stores an immediate already converted to the
 * bits of the type the instruction reads it as: `add.f32 %f1, %f2, 0f3F800000`
 * stores 0x3F800000; `add.f64 %fd1, %fd2, 1.5` stores the bits of 1.5 as
 * a double; `add.s32 %r1, %r2, -1` stores 0xFFFFFFFF sign-extended to 64
 * bits (0xFFFFFFFFFFFFFFFF).  Integer immediates are kept as the 64-bit
 * two's complement of the written value; the executor truncates.
 */
#ifndef PTX_IR_H
#define PTX_IR_H

#include <stddef.h>
#include <stdint.h>

/* ---- opcodes ------------------------------------------------------------ */

/*
 * X(ENUM, "ptx name").  The parser maps the first dot-separated token of an
 * instruction to one of these; the rest of the tokens are modifiers and
 * types (below).  Numbers are not part of any wire format and may change.
 */
#define PTX_OPCODES(X)                                                       \
  /* integer and float arithmetic */                                         \
  X(ADD, "add") X(SUB, "sub") X(MUL, "mul") X(MAD, "mad")                     \
  X(MUL24, "mul24") X(MAD24, "mad24") X(SAD, "sad") X(DIV, "div")             \
  X(REM, "rem") X(ABS, "abs") X(NEG, "neg") X(MIN, "min") X(MAX, "max")       \
  X(FMA, "fma") X(RCP, "rcp") X(SQRT, "sqrt") X(RSQRT, "rsqrt")               \
  X(SIN, "sin") X(COS, "cos") X(LG2, "lg2") X(EX2, "ex2") X(TANH, "tanh")     \
  X(COPYSIGN, "copysign") X(TESTP, "testp") X(ADDC, "addc")                   \
  X(SUBC, "subc") X(MADC, "madc")                                            \
  /* bits */                                                                 \
  X(AND, "and") X(OR, "or") X(XOR, "xor") X(NOT, "not") X(CNOT, "cnot")       \
  X(SHL, "shl") X(SHR, "shr") X(SHF, "shf") X(POPC, "popc") X(CLZ, "clz")     \
  X(BREV, "brev") X(BFE, "bfe") X(BFI, "bfi") X(BFIND, "bfind")               \
  X(FNS, "fns") X(PRMT, "prmt") X(LOP3, "lop3") X(DP4A, "dp4a")               \
  X(DP2A, "dp2a")                                                            \
  /* comparison and selection */                                             \
  X(SETP, "setp") X(SET, "set") X(SELP, "selp") X(SLCT, "slct")               \
  /* moves and conversions */                                                \
  X(MOV, "mov") X(CVT, "cvt") X(CVTA, "cvta") X(ISSPACEP, "isspacep")         \
  /* memory */                                                               \
  X(LD, "ld") X(LDU, "ldu") X(ST, "st") X(PREFETCH, "prefetch")               \
  X(PREFETCHU, "prefetchu") X(ATOM, "atom") X(RED, "red")                     \
  X(MEMBAR, "membar") X(FENCE, "fence")                                      \
  /* control */                                                              \
  X(BRA, "bra") X(BRX, "brx") X(CALL, "call") X(RET, "ret") X(EXIT, "exit")   \
  X(TRAP, "trap") X(BRKPT, "brkpt") X(NANOSLEEP, "nanosleep")                 \
  X(PMEVENT, "pmevent")                                                      \
  /* block and warp */                                                       \
  X(BAR, "bar") X(BARRIER, "barrier") X(SHFL, "shfl") X(VOTE, "vote")         \
  X(MATCH, "match") X(ACTIVEMASK, "activemask") X(REDUX, "redux")             \
  /* special */                                                              \
  X(ALLOCA, "alloca") X(STACKSAVE, "stacksave")                               \
  X(STACKRESTORE, "stackrestore")

enum ptx_op {
#define PTX_X_ENUM(e, s) PTX_OP_##e,
  PTX_OPCODES(PTX_X_ENUM)
#undef PTX_X_ENUM
  PTX_OP__COUNT
};

/* The PTX name of an opcode ("add"); "?" if out of range. */
const char *ptx_op_name(unsigned op);

/* ---- types -------------------------------------------------------------- */

#define PTX_TYPES(X)                                                         \
  X(NONE, "", 0)                                                             \
  X(B8, "b8", 1) X(B16, "b16", 2) X(B32, "b32", 4) X(B64, "b64", 8)           \
  X(B128, "b128", 16)                                                        \
  X(U8, "u8", 1) X(U16, "u16", 2) X(U32, "u32", 4) X(U64, "u64", 8)           \
  X(S8, "s8", 1) X(S16, "s16", 2) X(S32, "s32", 4) X(S64, "s64", 8)           \
  X(F16, "f16", 2) X(F16X2, "f16x2", 4) X(BF16, "bf16", 2)                    \
  X(BF16X2, "bf16x2", 4) X(TF32, "tf32", 4) X(F32, "f32", 4)                  \
  X(F64, "f64", 8) X(PRED, "pred", 1)

enum ptx_type {
#define PTX_X_ENUM(e, s, n) PTX_T_##e,
  PTX_TYPES(PTX_X_ENUM)
#undef PTX_X_ENUM
  PTX_T__COUNT
};

const char *ptx_type_name(unsigned t); /* "f32"; "" for NONE */
unsigned ptx_type_size(unsigned t);    /* bytes: 4 for f32, 1 for pred */

/* ---- state spaces --------------------------------------------------------- */

enum ptx_space {
  PTX_SP_NONE = 0, /* no space written: generic for ld/st/atom */
  PTX_SP_GLOBAL,
  PTX_SP_SHARED,   /* .shared and .shared::cta */
  PTX_SP_SHARED_CLUSTER, /* .shared::cluster (rejected by the executor) */
  PTX_SP_LOCAL,
  PTX_SP_CONST,
  PTX_SP_PARAM,    /* .param (kernel, function or call-site parameter) */
  PTX_SP_TEX,
  PTX_SP__COUNT
};

/* ---- modifiers ---------------------------------------------------------- */

/* ptx_insn.rnd: rounding modifier. */
enum ptx_rnd {
  PTX_RND_NONE = 0,
  PTX_RND_RN, PTX_RND_RZ, PTX_RND_RM, PTX_RND_RP,     /* float rounding */
  PTX_RND_RNI, PTX_RND_RZI, PTX_RND_RMI, PTX_RND_RPI, /* to integral */
  PTX_RND_RNA, PTX_RND_RS
};

/* ptx_insn.mode for SETP/SET: the comparison. */
enum ptx_cmp {
  PTX_CMP_NONE = 0,
  PTX_CMP_EQ, PTX_CMP_NE, PTX_CMP_LT, PTX_CMP_LE, PTX_CMP_GT, PTX_CMP_GE,
  PTX_CMP_LO, PTX_CMP_LS, PTX_CMP_HI, PTX_CMP_HS,
  PTX_CMP_EQU, PTX_CMP_NEU, PTX_CMP_LTU, PTX_CMP_LEU, PTX_CMP_GTU,
  PTX_CMP_GEU, PTX_CMP_NUM, PTX_CMP_NAN
};

/* ptx_insn.mode2 for SETP/SET (the .and/.or/.xor with a third predicate),
   and for BAR/BARRIER .red (.and/.or/.popc). */
enum ptx_boolop {
  PTX_BOOL_NONE = 0, PTX_BOOL_AND, PTX_BOOL_OR, PTX_BOOL_XOR, PTX_BOOL_POPC
};

/* ptx_insn.mode for ATOM/RED/REDUX. */
enum ptx_atomop {
  PTX_ATOM_NONE = 0,
  PTX_ATOM_ADD, PTX_ATOM_MIN, PTX_ATOM_MAX, PTX_ATOM_EXCH, PTX_ATOM_CAS,
  PTX_ATOM_AND, PTX_ATOM_OR, PTX_ATOM_XOR, PTX_ATOM_INC, PTX_ATOM_DEC
};

/* ptx_insn.mode for SHFL. */
enum ptx_shfl { PTX_SHFL_NONE = 0, PTX_SHFL_UP, PTX_SHFL_DOWN,
                PTX_SHFL_BFLY, PTX_SHFL_IDX };

/* ptx_insn.mode for VOTE and MATCH. */
enum ptx_vote { PTX_VOTE_NONE = 0, PTX_VOTE_ALL, PTX_VOTE_ANY, PTX_VOTE_UNI,
                PTX_VOTE_BALLOT, PTX_MATCH_ANY, PTX_MATCH_ALL };

/* ptx_insn.mode for BAR/BARRIER: bar.sync = bar.cta.sync = barrier.sync;
   bar.warp.sync is PTX_BAR_WARP_SYNC. */
enum ptx_bar { PTX_BAR_NONE = 0, PTX_BAR_SYNC, PTX_BAR_ARRIVE, PTX_BAR_RED,
               PTX_BAR_WARP_SYNC };

/* ptx_insn.mode for PRMT: default (0) or one of the .f4e .b4e .rc8 .ecl
   .ecr .rc16 modes. */
enum ptx_prmt { PTX_PRMT_DEFAULT = 0, PTX_PRMT_F4E, PTX_PRMT_B4E,
                PTX_PRMT_RC8, PTX_PRMT_ECL, PTX_PRMT_ECR, PTX_PRMT_RC16 };

/* ptx_insn.mode for SHF: .l or .r; ptx_insn.mode2: .wrap (0) or .clamp. */
enum ptx_shf { PTX_SHF_L = 1, PTX_SHF_R = 2 };
enum ptx_shf_kind { PTX_SHF_WRAP = 0, PTX_SHF_CLAMP = 1 };

/* ptx_insn.mode for MUL/MAD (integer): which part of the product. */
enum ptx_mulpart { PTX_MUL_NONE = 0, PTX_MUL_LO, PTX_MUL_HI, PTX_MUL_WIDE };

/* ptx_insn.mode for MEMBAR/FENCE and the scope of atomics (ptx_insn.scope). */
enum ptx_scope { PTX_SCOPE_NONE = 0, PTX_SCOPE_CTA, PTX_SCOPE_CLUSTER,
                 PTX_SCOPE_GPU, PTX_SCOPE_SYS };

/* ptx_insn.mode for TESTP. */
enum ptx_testp { PTX_TESTP_NONE = 0, PTX_TESTP_FINITE, PTX_TESTP_INFINITE,
                 PTX_TESTP_NUMBER, PTX_TESTP_NOTANUMBER, PTX_TESTP_NORMAL,
                 PTX_TESTP_SUBNORMAL };

/* ptx_insn.flags bits. */
#define PTX_F_FTZ      0x0001u /* .ftz */
#define PTX_F_SAT      0x0002u /* .sat */
#define PTX_F_APPROX   0x0004u /* .approx */
#define PTX_F_FULL     0x0008u /* .full (div.full.f32) */
#define PTX_F_UNI      0x0010u /* .uni (bra.uni, call.uni) */
#define PTX_F_CC       0x0020u /* .cc: writes the carry flag (add.cc ...) */
#define PTX_F_RELU     0x0040u /* .relu */
#define PTX_F_NAN      0x0080u /* .NaN (min/max) */
#define PTX_F_XORSIGN  0x0100u /* .xorsign.abs */
#define PTX_F_ALIGNED  0x0200u /* .aligned (bar.sync is always aligned) */
#define PTX_F_VOLATILE 0x0400u /* ld.volatile / st.volatile */
#define PTX_F_SHIFTAMT 0x0800u /* bfind.shiftamt */
#define PTX_F_TO       0x1000u /* cvta.to.<space>: generic -> space */
#define PTX_F_PAIR     0x2000u /* first destination is "d|p": ops[0] = d,
                                  ops[1] = p (setp, shfl) */
#define PTX_F_SYNC     0x4000u /* .sync (shfl.sync, vote.sync, match.sync) */
#define PTX_F_ABS      0x8000u /* .abs (min/max .abs, xorsign) */
#define PTX_F_MEMORD   0x10000u/* a memory-order qualifier was given
                                  (.relaxed/.acquire/.release/.acq_rel/.sc);
                                  the executor may treat every access as
                                  sequentially consistent */
#define PTX_F_NC       0x20000u/* ld.global.nc */

/* ---- operands ------------------------------------------------------------ */

#define PTX_NOREG 0xFFFFFFFFu
#define PTX_NOSYM 0xFFFFFFFFu

enum ptx_opnd_kind {
  PTX_O_NONE = 0,
  PTX_O_REG,   /* reg = slot.  flags PTX_OF_NOT: "!%p" (predicate operand) */
  PTX_O_IMM,   /* imm = bits in the instruction's operand type */
  PTX_O_SREG,  /* special register: sreg = enum ptx_sreg, sub = 0..3 for
                  .x .y .z .w (0 when no component) */
  PTX_O_ADDR,  /* [reg + sym + imm]: reg may be PTX_NOREG, sym PTX_NOSYM;
                  imm is the signed byte offset.  "[%rd1+8]", "[gvar+4]",
                  "[param0+0]", "[%r3]", "[1024]" */
  PTX_O_SYM,   /* the address of a symbol as a value ("mov.u64 %rd1, cc;"
                  "mov.u32 %r1, sh;"), plus imm (sym+4) */
  PTX_O_VEC,   /* {a, b, c, d}: n (2..4) slots at vec[0..n); a slot is
                  PTX_NOREG for the "_" sink */
  PTX_O_LABEL, /* branch target: target = instruction index in the
                  function (absolute index into ptx_module.insns) */
  PTX_O_FUNC,  /* call target: target = function index */
  PTX_O_LIST,  /* call argument or return list: n symbols (call-site .param
                  names) at vec[0..n) are sym indices; n may be 0 */
};

#define PTX_OF_NOT 0x01u /* predicate operand negated: "!%p1" */

/* Special registers.  sub selects .x/.y/.z (0/1/2) where they have parts. */
#define PTX_SREGS(X)                                                         \
  X(TID, "%tid") X(NTID, "%ntid") X(CTAID, "%ctaid") X(NCTAID, "%nctaid")     \
  X(LANEID, "%laneid") X(WARPID, "%warpid") X(NWARPID, "%nwarpid")           \
  X(SMID, "%smid") X(NSMID, "%nsmid") X(GRIDID, "%gridid")                   \
  X(CLOCK, "%clock") X(CLOCK_HI, "%clock_hi") X(CLOCK64, "%clock64")          \
  X(GLOBALTIMER, "%globaltimer") X(GLOBALTIMER_LO, "%globaltimer_lo")         \
  X(GLOBALTIMER_HI, "%globaltimer_hi")                                       \
  X(LANEMASK_EQ, "%lanemask_eq") X(LANEMASK_LE, "%lanemask_le")              \
  X(LANEMASK_LT, "%lanemask_lt") X(LANEMASK_GE, "%lanemask_ge")              \
  X(LANEMASK_GT, "%lanemask_gt")                                             \
  X(DYNAMIC_SMEM_SIZE, "%dynamic_smem_size")                                 \
  X(TOTAL_SMEM_SIZE, "%total_smem_size") X(ENVREG, "%envreg")                \
  /* shared memory the runtime reserves for cooperative groups (nvcc -G      \
     code reads %reserved_smem_offset_1 for a tile's scratch) */             \
  X(RESERVED_SMEM_BEGIN, "%reserved_smem_offset_begin")                      \
  X(RESERVED_SMEM_END, "%reserved_smem_offset_end")                          \
  X(RESERVED_SMEM_CAP, "%reserved_smem_offset_cap")                          \
  X(RESERVED_SMEM_0, "%reserved_smem_offset_0")                              \
  X(RESERVED_SMEM_1, "%reserved_smem_offset_1")

enum ptx_sreg {
#define PTX_X_ENUM(e, s) PTX_SR_##e,
  PTX_SREGS(PTX_X_ENUM)
#undef PTX_X_ENUM
  PTX_SR__COUNT
};

struct ptx_operand {
  uint8_t kind;  /* enum ptx_opnd_kind */
  uint8_t flags; /* PTX_OF_* */
  uint8_t n;     /* VEC, LIST: number of entries */
  uint8_t sub;   /* SREG: component */
  uint32_t reg;  /* REG, ADDR base (or PTX_NOREG); SREG: enum ptx_sreg */
  uint32_t sym;  /* ADDR, SYM: symbol index or PTX_NOSYM */
  uint32_t target; /* LABEL: insn index; FUNC: function index */
  int64_t imm;   /* IMM bits; ADDR/SYM byte offset */
  uint32_t vec[4]; /* VEC: slots; LIST: symbol indices (n <= 4 inline;
                      longer lists use list_off into ptx_module.lists) */
  uint32_t list_off; /* LIST with n > 4: start in ptx_module.lists */
  uint32_t pad_;
};

/* ---- instructions -------------------------------------------------------- */

#define PTX_MAX_OPS 6

struct ptx_insn {
  uint16_t op;      /* enum ptx_op */
  uint8_t type;     /* enum ptx_type: the instruction type (for CVT the
                       destination type; for SETP the compared type) */
  uint8_t type2;    /* second type: CVT source type; SET destination type
                       (set.lt.u32.f32 -> type f32, type2 u32); SLCT operand
                       type (slct.f32.s32 -> type f32, type2 s32); PRMT NONE;
                       DP4A/DP2A second signedness; otherwise NONE */
  uint8_t space;    /* enum ptx_space: LD ST ATOM RED CVTA ISSPACEP PREFETCH */
  uint8_t vec;      /* LD/ST vector width: 1, 2 or 4 (.v2, .v4) */
  uint8_t rnd;      /* enum ptx_rnd */
  uint8_t mode;     /* per-opcode sub-operation, see the enums above */
  uint8_t mode2;    /* second sub-operation (SETP bool op, SHF kind) */
  uint8_t scope;    /* enum ptx_scope (atom, red, fence, membar) */
  uint8_t nops;     /* operands used in ops[] */
  uint8_t neg_guard;/* guard is "@!%p" */
  uint32_t flags;   /* PTX_F_* */
  uint32_t guard;   /* guard predicate slot, or PTX_NOREG */
  uint32_t line;    /* source line in the PTX text (1-based), for errors */
  /*
   * Operands in PTX order, destination first (ld: d, [a]; st: [a], b;
   * atom: d, [a], b [, c]; red: [a], b; bra: label; call: see below).
   * CALL: ops[0] = LIST of return symbols (n = 0 if none), ops[1] = FUNC,
   * ops[2] = LIST of argument symbols.
   */
  struct ptx_operand ops[PTX_MAX_OPS];
  /* Free for the executor: filled by ptx_exec_prepare (a handler index). */
  uint32_t xop;
  uint32_t xaux;
};

/* ---- symbols ----------------------------------------------------------- */

/* Where a symbol lives; see ptx_symbol. */
enum ptx_symkind {
  PTX_SYM_GLOBAL = 1, /* .global variable at module scope */
  PTX_SYM_CONST,      /* .const variable at module scope */
  PTX_SYM_SHARED,     /* .shared, module scope or demoted into a function:
                         offset = byte offset in the block's shared memory */
  PTX_SYM_SHARED_EXTERN, /* .extern .shared x[]: dynamic shared memory; all
                         of them start at ptx_module.shared_static_size
                         rounded up to their alignment (offset holds it) */
  PTX_SYM_LOCAL,      /* .local inside a function (the __local_depotN):
                         offset = byte offset in that function's frame */
  PTX_SYM_KPARAM,     /* .param of a kernel (.entry): offset in the launch's
                         parameter buffer */
  PTX_SYM_FPARAM,     /* .param of a .func (parameter or return value) or a
                         call-site .param declared in a { } scope: offset
                         in the function's per-thread param area */
};

struct ptx_symbol {
  char *name;        /* owned, NUL-terminated */
  uint8_t kind;      /* enum ptx_symkind */
  uint8_t type;      /* declared element type (b8, u32, f32 ...) */
  uint16_t flags;    /* PTX_SYMF_* */
  uint32_t align;    /* bytes (declared .align, else the element size) */
  uint64_t size;     /* bytes (element size x array length; 0 for x[]) */
  uint64_t offset;   /* see ptx_symkind */
  uint32_t func;     /* owning function index for LOCAL/FPARAM/demoted
                        SHARED; UINT32_MAX at module scope */
  uint32_t init_off; /* GLOBAL/CONST with initializer: bytes at
                        ptx_module.init[init_off .. init_off + size) */
};

#define PTX_SYMF_INIT    0x01u /* has an initializer (init_off valid) */
#define PTX_SYMF_EXTERN  0x02u /* .extern */
#define PTX_SYMF_VISIBLE 0x04u /* .visible */
#define PTX_SYMF_WEAK    0x08u /* .weak */
#define PTX_SYMF_MANAGED 0x10u /* .attribute(.managed): a __managed__ variable */

/* ---- functions ----------------------------------------------------------- */

struct ptx_func {
  char *name;            /* owned: the mangled name */
  uint8_t is_entry;      /* .entry (a kernel) vs .func */
  uint8_t is_extern;     /* .extern .func with no body (vprintf, malloc,
                            free, __assertfail ...): the executor provides
                            it or rejects the module */
  uint16_t pad_;
  uint32_t insn_start;   /* first instruction in ptx_module.insns */
  uint32_t insn_count;   /* 0 for extern functions */
  uint32_t nregs;        /* register slots */
  uint32_t nparams;      /* .param parameters, in order */
  uint32_t params;       /* their symbol indices at ptx_module.lists[params
                            .. params + nparams) */
  uint32_t nrets;        /* return .params (0 or 1 for nvcc) */
  uint32_t rets;         /* symbol indices at ptx_module.lists[rets ..) */
  uint64_t param_size;   /* KPARAM bytes for an entry; per-thread FPARAM
                            area for a .func or for call-site params */
  uint64_t local_size;   /* bytes of .local in this function's frame */
  uint32_t local_align;  /* its alignment */
  uint32_t maxntid[3];   /* .maxntid / .reqntid (0 = not given) */
  uint32_t reqntid[3];
  uint32_t minnctapersm; /* .minnctapersm (0 = not given) */
  uint32_t maxnreg;      /* .maxnreg (0 = not given) */
  uint8_t *reg_types;    /* owned: nregs entries, enum ptx_type of each
                            slot (diagnostics, and the executor may use it) */
  uint64_t fparam_size;  /* per-thread FPARAM area: for a .func equal to
                            param_size; for an entry, the bytes of the
                            call-site .params declared in its body (its
                            KPARAMs are in param_size) */
};

/* ---- the module ----------------------------------------------------------- */

struct ptx_module {
  uint32_t version_major, version_minor; /* .version 9.0 */
  uint32_t target_sm;    /* .target sm_75 -> 75 */
  uint32_t address_size; /* .address_size 64 (32 is rejected) */

  struct ptx_func *funcs;    uint32_t nfuncs;
  struct ptx_symbol *syms;   uint32_t nsyms;
  struct ptx_insn *insns;    uint32_t ninsns;
  uint32_t *lists;           uint32_t nlists; /* see ptx_func, PTX_O_LIST */
  uint8_t *init;             uint64_t ninit;  /* initializer bytes */

  /* Static shared memory: every .shared symbol (module scope or demoted)
     has its own offset; this is the end of the last one.  One layout for
     the whole module (a kernel's static size is reported as this). */
  uint64_t shared_static_size;
  uint32_t shared_align; /* largest .align of a shared symbol (>= 16) */
};

/*
 * ptx_parse - parse PTX text (not necessarily NUL-terminated: exactly len
 * bytes) into a new module.
 *
 * Returns 0 and *out (freed with ptx_module_free).  On failure returns
 * -EINVAL (syntax error, unknown opcode/modifier/type/directive, undefined
 * label, register or symbol, an out-of-range immediate), -ENOTSUP (legal PTX
 * the parser does not support: .address_size 32, texture/surface
 * declarations, indirect calls, initializers holding addresses, a .version
 * newer than 9.x), -E2BIG (a limit exceeded: more than 1<<24 instructions,
 * registers or symbols) or -ENOMEM, and writes one line to err (always
 * NUL-terminated when errlen > 0) such as
 *   "line 57: unknown instruction 'wgmma.mma_async'"
 *   "line 12: unknown modifier '.foo' in 'add.foo.s32'"
 * Never reads outside [text, text + len) and never crashes on any input
 * (fuzzed).
 */
int ptx_parse(const char *text, size_t len, struct ptx_module **out,
              char *err, size_t errlen);

/* Free a module and everything it owns.  NULL is a no-op. */
void ptx_module_free(struct ptx_module *m);

/* Function index by name, or -1. */
int ptx_module_find_func(const struct ptx_module *m, const char *name);

/* Symbol index by name at module scope, or -1. */
int ptx_module_find_sym(const struct ptx_module *m, const char *name);

#endif /* PTX_IR_H */
