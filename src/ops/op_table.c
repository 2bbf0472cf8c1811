/* op_table.c — assembles the op tables from ops.def: names, arities, flags, and pointers to
 * each op's kn__opdef_<ENUM> (defined in its family file; a missing one fails the link). */
#include "op_table.h"

#include <stdio.h>

#define KN_OP(e, name, lo, hi, fl) extern const kn__op_info kn__opdef_##e;
#include "ops.def"
#undef KN_OP

const kn__op_info *const kn__op_table[KN_OP_COUNT] = {
#define KN_OP(e, name, lo, hi, fl) [KN_OP_##e] = &kn__opdef_##e,
#include "ops.def"
#undef KN_OP
};

const char *const kn__op_names[KN_OP_COUNT] = {
#define KN_OP(e, name, lo, hi, fl) [KN_OP_##e] = name,
#include "ops.def"
#undef KN_OP
};

const int kn__op_min_src[KN_OP_COUNT] = {
#define KN_OP(e, name, lo, hi, fl) [KN_OP_##e] = lo,
#include "ops.def"
#undef KN_OP
};

const int kn__op_max_src[KN_OP_COUNT] = {
#define KN_OP(e, name, lo, hi, fl) [KN_OP_##e] = hi,
#include "ops.def"
#undef KN_OP
};

const unsigned kn__op_flags[KN_OP_COUNT] = {
#define KN_OP(e, name, lo, hi, fl) [KN_OP_##e] = (fl),
#include "ops.def"
#undef KN_OP
};

/* One count check: ops.def and the enum can never disagree, but the tables above must all
 * have an entry for the last op (a forgotten table would be shorter). */
_Static_assert(sizeof(kn__op_names) / sizeof(kn__op_names[0]) == KN_OP_COUNT, "op name table");

kn_status kn__kerr(const kn__kargs *a, const char *fmt, ...)
{
    if (a->err && a->err_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(a->err, a->err_size, fmt, ap);
        va_end(ap);
    }
    return KN_ERR_RANGE;
}

kn_status kn__check_float(kn_graph *g, const kn_node *n, int i)
{
    if (!kn_dtype_is_float(n->src[i]->dtype))
        return kn__fail(g, KN_ERR_DTYPE, "%s: input %d has dtype %s, expected a floating type",
                        kn__op_names[n->op], i, kn_dtype_name(n->src[i]->dtype));
    return KN_OK;
}

kn_status kn__check_index(kn_graph *g, const kn_node *n, int i)
{
    kn_dtype dt = n->src[i]->dtype;
    if (dt != KN_I32 && dt != KN_I64 && dt != KN_U8 && dt != KN_I8)
        return kn__fail(g, KN_ERR_DTYPE, "%s: input %d has dtype %s, expected an integer type (i32/i64)",
                        kn__op_names[n->op], i, kn_dtype_name(dt));
    return KN_OK;
}

kn_status kn__check_same_dtype(kn_graph *g, const kn_node *n)
{
    kn_dtype first = (kn_dtype)-1;
    for (int i = 0; i < n->nsrc; i++) {
        kn_dtype dt = n->src[i]->dtype;
        if (!kn_dtype_is_float(dt))
            continue;
        if ((int)first < 0)
            first = dt;
        else if (dt != first)
            return kn__fail(g, KN_ERR_DTYPE, "%s: inputs have dtypes %s and %s, they must match (cast one)",
                            kn__op_names[n->op], kn_dtype_name(first), kn_dtype_name(dt));
    }
    return KN_OK;
}

kn_status kn__check_ndim(kn_graph *g, const kn_node *n, int i, int ndim)
{
    if (n->src[i]->ndim != ndim)
        return kn__fail(g, KN_ERR_SHAPE, "%s: input %d has shape %s, expected %d dimensions",
                        kn__op_names[n->op], i, kn__shp(n->src[i]), ndim);
    return KN_OK;
}

double kn__flops_per_elem(const kn_node *n, double per)
{
    return (double)kn__numel(n) * per;
}
