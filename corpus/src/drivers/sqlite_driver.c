/* Driver module for sqlite.o: an in-memory database through the SQLite C API,
 * resolved at load time against the SQLite module. */

#include <string.h>
#include "sqlite3.h"

/* Creates a table, inserts 500 rows in one transaction with a prepared
 * statement, and folds the results of aggregate queries (GROUP BY, ORDER BY,
 * an index lookup, printf) into one number; a negative number names the step
 * that failed. */
long sqlite_selftest(void)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    long acc = 0;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK)
        return -1;
    if (sqlite3_exec(db,
                     "create table t(id integer primary key, grp text, val real, name text);"
                     "begin;",
                     0, 0, 0) != SQLITE_OK)
        return -2;
    if (sqlite3_prepare_v2(db, "insert into t(grp, val, name) values (?, ?, ?)", -1, &st, 0) !=
        SQLITE_OK)
        return -3;
    for (int i = 0; i < 500; i++) {
        char grp[16], name[32];
        sqlite3_snprintf(sizeof grp, grp, "g%d", i % 7);
        sqlite3_snprintf(sizeof name, name, "row-%d-%s", i * 37 % 101, i % 3 ? "x" : "yyy");
        sqlite3_bind_text(st, 1, grp, -1, SQLITE_TRANSIENT);
        sqlite3_bind_double(st, 2, i * 1.5);
        sqlite3_bind_text(st, 3, name, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) != SQLITE_DONE)
            return -4;
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    if (sqlite3_exec(db, "commit; create index t_val on t(val);", 0, 0, 0) != SQLITE_OK)
        return -5;
    if (sqlite3_prepare_v2(db,
                           "select grp, count(*), sum(val), max(length(name)), "
                           "printf('%.2f', avg(val)) from t group by grp "
                           "order by sum(val) desc",
                           -1, &st, 0) != SQLITE_OK)
        return -6;
    int rows = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        rows++;
        const unsigned char *grp = sqlite3_column_text(st, 0);
        const unsigned char *avg = sqlite3_column_text(st, 4);
        acc = acc * 31 + (grp ? grp[1] - '0' : 99);
        acc = acc * 7 + sqlite3_column_int(st, 1);
        acc = acc * 3 + (long)(sqlite3_column_double(st, 2) * 10);
        acc = acc * 5 + sqlite3_column_int(st, 3);
        acc += avg ? (long)strlen((const char *)avg) : 0;
        acc &= 0xffffffffffffL;
    }
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(db, "select count(*), min(id) from t where val between 100 and 200",
                           -1, &st, 0) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW)
        return -7;
    acc = acc * 1000 + sqlite3_column_int(st, 0) * 10 + sqlite3_column_int(st, 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return (acc & 0xffffffffffffL) * 10 + rows;
}

/* Opens :memory:, runs sql, and returns the first column of the first row as
 * an integer: sqlite_query("select 6*7") = 42. Errors: -1000001 open,
 * -1000002 prepare, -1000003 no row. */
long sqlite_query(const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    long result;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK)
        return -1000001;
    if (sqlite3_prepare_v2(db, sql, -1, &st, 0) != SQLITE_OK) {
        sqlite3_close(db);
        return -1000002;
    }
    if (sqlite3_step(st) == SQLITE_ROW)
        result = (long)sqlite3_column_int64(st, 0);
    else
        result = -1000003;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return result;
}
