/*
** main.c — plush-engine: one Lua namespace served to a controller.
**
**   plush-engine [--file CONNECTION.json] [--id N] [--log FILE]
**                [--reconnect S] [--memory-limit BYTES]
**
** The command line is engine_main.c, the engine engine_host.c.
*/
#include "engine_main.h"

static const plush_engine_program engine = {
    "plush-engine",
    "Connects to the controller named in the connection file and serves\n"
    "one Lua namespace until the controller shuts it down.\n",
    "the controller picks", NULL, NULL, NULL, NULL};

int main(int argc, char **argv) { return plush_engine_main(argc, argv, &engine); }
