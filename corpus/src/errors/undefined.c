/* Calls three functions that exist nowhere: loading must fail and name all three. */

extern long dlkm_missing_one(long);
extern long dlkm_missing_two(long);
extern long dlkm_missing_three(long);

long undefined_user(long x)
{
    return dlkm_missing_one(x) + dlkm_missing_two(x) * dlkm_missing_three(x);
}
