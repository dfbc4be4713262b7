/*
 * harden.h: start-up hardening of the agent process: refuse root unless allowed, optional secure
 * memory (mlockall, RLIMIT_CORE 0, PR_SET_DUMPABLE 0, PR_SET_NO_NEW_PRIVS) and a seccomp
 * allow-list installed after initialisation (the syscalls the running loop, spool, sockets, TLS
 * and DNS need; anything else kills the process).
 */
#ifndef EA_HARDEN_H
#define EA_HARDEN_H
#include <stddef.h>
int ea_harden_check_user(int allow_root, char *err, size_t errlen);
int ea_harden_secure_memory(char *err, size_t errlen);
int ea_harden_seccomp(char *err, size_t errlen);
#endif
