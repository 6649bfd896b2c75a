/* Driver module for lua.o: runs Lua chunks through the Lua C API, resolved at
 * load time against the Lua module. */

#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

/* Runs a chunk and converts its first result to an integer: integers as they
 * are, floats truncated, strings by length, booleans 0/1, nothing 0.
 * A chunk that fails gives -999999. */
long lua_eval(const char *chunk)
{
    lua_State *L = luaL_newstate();
    if (!L)
        return -999998;
    luaL_openlibs(L);
    long result;
    if (luaL_loadstring(L, chunk) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK)
        result = -999999;
    else if (lua_isinteger(L, -1))
        result = (long)lua_tointeger(L, -1);
    else if (lua_type(L, -1) == LUA_TNUMBER)
        result = (long)lua_tonumber(L, -1);
    else if (lua_type(L, -1) == LUA_TSTRING)
        result = (long)lua_rawlen(L, -1);
    else if (lua_type(L, -1) == LUA_TBOOLEAN)
        result = lua_toboolean(L, -1);
    else
        result = 0;
    lua_close(L);
    return result;
}

/* Tables, table.sort with a Lua comparator, string functions and patterns,
 * string.format with %d, %g and %.3f (libc's snprintf on doubles), math,
 * closures, coroutines, pcall/error (setjmp/longjmp inside Lua), integer and
 * float arithmetic; folded into one integer. Only ordered iteration (no pairs),
 * so the answer does not depend on Lua's per-state hash seed. */
static const char selftest_script[] =
    "local t = {}\n"
    "for i = 1, 200 do t[i] = (i * 7919) % 1000 end\n"
    "table.sort(t, function(a, b) return a > b end)\n"
    "local parts = {}\n"
    "for i = 1, #t, 20 do\n"
    "  parts[#parts + 1] = string.format('%d:%g:%.3f', t[i], t[i] / 7, math.sqrt(t[i]))\n"
    "end\n"
    "local s = table.concat(parts, ',')\n"
    "local words = {}\n"
    "for w in ('the quick brown fox jumps over the lazy dog'):gmatch('%a+') do\n"
    "  words[#words + 1] = w:upper():reverse()\n"
    "end\n"
    "local joined = table.concat(words, '-'):gsub('O', '0')\n"
    "local function counter()\n"
    "  local n = 0\n"
    "  return function(k) n = n + k; return n end\n"
    "end\n"
    "local c = counter()\n"
    "for i = 1, 10 do c(i) end\n"
    "local ok1, e1 = pcall(function() error({ code = 17 }) end)\n"
    "local ok2, e2 = pcall(function() local x = nil; return x.field end)\n"
    "local ok3, e3 = pcall(error, 'plain message', 0)\n"
    "local co = coroutine.wrap(function(a)\n"
    "  local b = coroutine.yield(a * 2)\n"
    "  return a + b\n"
    "end)\n"
    "local y1 = co(20)\n"
    "local y2 = co(22)\n"
    "local h = 0\n"
    "local all = s .. '|' .. joined .. '|' .. string.format('%g %g %g', 1/3, math.pi, 2^60)\n"
    "for i = 1, #all do h = (h * 31 + all:byte(i)) % 2147483647 end\n"
    "local r = h\n"
    "r = r + #words * 1000000000 + c(0) * 100000\n"
    "r = r + (ok1 and 0 or e1.code) * 1000 + (ok2 and 0 or #e2) + (ok3 and 0 or #e3)\n"
    "r = r + y1 * 7 + y2 + math.floor(math.sin(1) * 1000) + (7 // 2) + math.maxinteger % 1000\n"
    "r = r + #string.rep('ab', 50, ',') + select('#', 1, 2, 3) + ('%x'):format(255):len()\n"
    "return r\n";

long lua_selftest(void)
{
    lua_State *L = luaL_newstate();
    if (!L)
        return -999998;
    luaL_openlibs(L);
    long result;
    if (luaL_loadbuffer(L, selftest_script, sizeof selftest_script - 1, "=selftest") != LUA_OK ||
        lua_pcall(L, 0, 1, 0) != LUA_OK || !lua_isinteger(L, -1))
        result = -999999;
    else
        result = (long)lua_tointeger(L, -1);
    lua_close(L);
    return result;
}
