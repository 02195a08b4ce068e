#include <lua.h>
int luaopen_natka_core(lua_State *L);
int luaopen_natka_core(lua_State *L) { (void)L; return 0; }
