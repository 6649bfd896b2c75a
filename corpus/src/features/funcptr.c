/* Function pointers in data: a const table of pointers to static functions
 * (.data.rel.ro: R_X86_64_64 against .text in PIC objects), a writable table,
 * a single pointer to a static function, and a pointer to a global function. */

typedef long (*op_fn)(long);

static long op_add3(long x) { return x + 3; }
static long op_mul7(long x) { return x * 7; }
static long op_neg(long x) { return -x; }
static long op_sq(long x) { return x * x; }
long fp_global_op(long x) { return x ^ 0x55; }

/* Read-only table (relocated once, then never written). */
static op_fn const ro_table[] = { op_add3, op_mul7, op_neg, op_sq, fp_global_op };

/* Writable table: the module may change it at run time. */
op_fn fp_rw_table[] = { op_sq, op_neg, op_mul7, op_add3, fp_global_op };

/* One pointer to a static function. */
static op_fn single = op_mul7;

/* A struct with a name and a handler, as drivers' ops tables look. */
struct named_op {
    const char *name;
    op_fn fn;
};
static const struct named_op named[] = {
    { "add3", op_add3 }, { "mul7", op_mul7 }, { "neg", op_neg }, { "sq", op_sq },
};

/* Apply every entry of both tables to x and combine the results positionally. */
long fp_table_sum(long x)
{
    long acc = 0;
    for (unsigned i = 0; i < sizeof ro_table / sizeof ro_table[0]; i++)
        acc = acc * 31 + ro_table[i](x + (long)i);
    for (unsigned i = 0; i < sizeof fp_rw_table / sizeof fp_rw_table[0]; i++)
        acc = acc * 17 + fp_rw_table[i](x - (long)i);
    return acc + single(x);
}

/* Look an op up by name (string literals reached through a table) and apply it. */
long fp_by_name(long which, long x)
{
    const struct named_op *op = &named[which & 3];
    long len = 0;
    while (op->name[len])
        len++;
    return op->fn(x) * 100 + len;
}

/* Swap two entries of the writable table, use it, swap back. */
long fp_swap(long x)
{
    op_fn t = fp_rw_table[0];
    fp_rw_table[0] = fp_rw_table[4];
    fp_rw_table[4] = t;
    long r = fp_table_sum(x);
    fp_rw_table[4] = fp_rw_table[0];
    fp_rw_table[0] = t;
    return r;
}
