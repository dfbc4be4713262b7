/* Shared helpers of the command files: each command is `int cmd_NAME(int argc, char **argv)`
 * (argv[0] is the command name) returning an exit code from util/error.h. */
#ifndef ES_CLI_H
#define ES_CLI_H

#include "util/error.h"

/* Prints "edgeslim CMD: MESSAGE" once on stderr and returns err->code (ES_EFAIL if unset). */
int cli_fail(const char *cmd, const es_error *err);
/* Prints "edgeslim CMD: MESSAGE\nTry 'edgeslim CMD --help'." */
void cli_usage_print(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* cli_usage_print(), evaluating to ES_EUSAGE. A macro so the value is visible where it is returned
 * (clang's analyzer does not look into other files and otherwise assumes a usage error may be 0). */
#define cli_usage_error(...) (cli_usage_print(__VA_ARGS__), ES_EUSAGE)
/* A command option (--entrypoint, --cmd): '["a","b"]' gives that array, "a b" gives ["a","b"]
 * (split on spaces and tabs). NULL when the JSON form is not an array of strings. */
struct json_t;
struct json_t *cli_command_array(const char *s);
/* Human-readable byte count ("12.3 MB", decimal units like docker/podman). */
void cli_human_bytes(long long n, char *buf, unsigned len);

int cmd_inspect(int argc, char **argv) __attribute__((weak));
int cmd_unpack(int argc, char **argv) __attribute__((weak));
int cmd_import(int argc, char **argv) __attribute__((weak));
int cmd_convert(int argc, char **argv) __attribute__((weak));
int cmd_run(int argc, char **argv) __attribute__((weak));
int cmd_slim(int argc, char **argv) __attribute__((weak));
int cmd_pack(int argc, char **argv) __attribute__((weak));

#endif
