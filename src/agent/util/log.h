/* util/log.h: one-line log messages on stderr ("edgeagent: level: message"), level-filtered. */
#ifndef EA_UTIL_LOG_H
#define EA_UTIL_LOG_H
enum { EA_LOG_ERROR = 0, EA_LOG_WARN = 1, EA_LOG_INFO = 2, EA_LOG_DEBUG = 3 };
void ea_log_set_level(int level);
int ea_log_parse_level(const char *s); /* "error".."debug"; -1 if unknown */
void ea_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#endif
