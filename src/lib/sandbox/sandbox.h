/*
 * The sandbox: runs an unpacked image root filesystem the way a container runtime would, without
 * a daemon and without cgroups, and (optionally) traces which files the app touches.
 *
 * Shape of a running sandbox (host pids on the left):
 *
 *   caller (P) ── relay (C1, host pid ns; relays the exit status of init)
 *                   └─ init (pid 1 in new mnt/pid/uts/ipc[/net] namespaces: our code, no exec)
 *                        ├─ app (argv: the image's entrypoint+cmd, as the image's user)
 *                        └─ exec'd commands (es_sandbox_exec), same root/user/env
 *
 * Invariants:
 *  - The image directory (opts.rootfs) is never modified: the container's root is an overlayfs
 *    with rootfs as its only lower layer and a tmpfs upper layer that lives in the sandbox's
 *    private mount namespace. Every mount is private to that namespace, so nothing is left on
 *    the host when it ends (also on SIGKILL of the caller: init has PDEATHSIG).
 *  - init (pid 1) reaps orphans, forwards signals it gets from the caller to the app, and exits
 *    with the app's exit code (128+N when the app was killed by signal N), killing everything
 *    left in the pid namespace.
 *  - When tracing, init is the tracer: fanotify on the container's root mount (every file opened
 *    or executed) plus ptrace with a seccomp SECCOMP_RET_TRACE filter on path syscalls (stat
 *    family, access, readlink, getdents, open/openat/openat2, execve, chdir), across fork,
 *    clone (threads) and exec. Records are appended to a memfd as they happen, so the trace
 *    survives the sandbox being killed and can be read at any time, also while it runs.
 *  - The sandbox must be started and destroyed from the same thread, and that thread must live
 *    as long as the sandbox (init's PDEATHSIG is tied to the thread that forked it).
 *
 * Exit codes (util/error.h): ES_ERUN for anything that stops a container from starting,
 * including "command not found in image: X"; ES_EUNSUPPORTED for another architecture.
 */
#ifndef ES_SANDBOX_SANDBOX_H
#define ES_SANDBOX_SANDBOX_H

#include <stddef.h>

#include "oci/image.h"
#include "util/error.h"
#include "util/progress.h"

typedef enum {
    /* own network namespace with loopback up (the default; = docker's "none") */
    ES_NET_PRIVATE = 0,
    ES_NET_NONE, /* own network namespace with no interface up at all, not even lo */
    ES_NET_HOST, /* the host's network namespace */
} es_net_mode;

typedef struct es_sandbox_opts {
    /* unpacked image dir; the read-only lower layer of an overlay (never modified) */
    const char *rootfs;
    char *const *argv;   /* the app; argv[0] without '/' is looked up in the env's PATH inside the
                            rootfs. NULL: no app, the sandbox idles until signalled/destroyed
                            (useful to run es_sandbox_exec probes only) */
    char *const *env;    /* NULL-terminated "K=V"; PATH, HOME and HOSTNAME are added when absent */
    const char *workdir; /* NULL = "/"; created (as root, 0755) when missing, like runc */
    const char *user;    /* NULL/"" = root; "name", "uid", "name:group", "uid:gid", resolved in the
                            rootfs /etc/passwd and /etc/group; supplementary groups from /etc/group */
    es_net_mode net;
    int trace;          /* record accessed paths (es_sandbox_trace_paths) */
    int trace_syscalls; /* record every syscall made (es_sandbox_trace_syscalls): costs one ptrace
                           stop per syscall, use for --seccomp only */
    int stdin_fd, stdout_fd,
        stderr_fd;        /* -1 = inherit the caller's (es_sandbox_opts_init sets -1) */
    const char *hostname; /* NULL = "edgeslim" */
} es_sandbox_opts;

typedef struct es_sandbox es_sandbox;

/* Zeroes o and sets the stdio fds to -1 (inherit). */
void es_sandbox_opts_init(es_sandbox_opts *o);

/* Sets up the namespaces and root, starts the app (traced from its first instruction when
 * opts->trace) and returns once it has exec'd. Fails with ES_ERUN (message says why: not root,
 * overlay mount failed, command not found in image, exec failed, bad user...). */
int es_sandbox_start(const es_sandbox_opts *o, es_sandbox **out, es_error *err);

/* Runs a command inside the running container (same namespaces, root, user, env, workdir; traced
 * when the sandbox traces) and waits for it. *exit_status = its exit code, 128+N if killed by
 * signal N. Returns 0 when it ran to completion, 1 on timeout (it is killed; *exit_status = 137),
 * -1 on error (ES_ERUN: sandbox not running, command not found in image...). timeout_ms < 0:
 * no timeout. Its stdio is the sandbox's (opts std*_fd, else the caller's at start), or the given
 * fds. */
int es_sandbox_exec(es_sandbox *sb, char *const argv[], int timeout_ms, int *exit_status,
                    es_error *err);
int es_sandbox_exec_io(es_sandbox *sb, char *const argv[], int in_fd, int out_fd, int err_fd,
                       int timeout_ms, int *exit_status, es_error *err);

/* Runs a HOST command (argv[0] looked up in the caller's PATH) inside the container's network
 * namespace only, so 127.0.0.1:PORT reaches the app. Same return convention as es_sandbox_exec. */
int es_sandbox_host_cmd(es_sandbox *sb, char *const argv[], int timeout_ms, int *exit_status,
                        es_error *err);

/* A socket created inside the container's network namespace (the caller's for ES_NET_HOST);
 * connect it to 127.0.0.1. Returns the fd (CLOEXEC) or -1. */
int es_sandbox_socket(es_sandbox *sb, int domain, int type, es_error *err);
/* Waits until 127.0.0.1:port accepts a TCP connection inside the container's netns; returns the
 * connected fd. -1 with ES_EPROBE when not ready within timeout_ms or when the app exited first
 * (the message says which, with the exit code). */
int es_sandbox_connect_tcp(es_sandbox *sb, int port, int timeout_ms, es_error *err);
/* HTTP GET http://127.0.0.1:port/path inside the netns (libcurl), waiting for readiness like
 * es_sandbox_connect_tcp. Fills *status with the HTTP status and, if body != NULL, *body
 * (malloc'd, NUL-terminated, at most 1 MiB kept) and *body_len. -1 with ES_EPROBE on
 * no-readiness/timeout/protocol error (e.g. the port does not speak HTTP). */
int es_sandbox_http_get(es_sandbox *sb, int port, const char *path, int timeout_ms, long *status,
                        char **body, size_t *body_len, es_error *err);

/* Sends sig to the app (through init). Returns 0, or -1 if the sandbox is gone. */
int es_sandbox_signal(es_sandbox *sb, int sig);
/* Waits for the container to end (the app exited and everything in it was killed). Returns 0 with
 * *exit_code (128+N when the app was killed by signal N), 1 on timeout (timeout_ms < 0: forever),
 * -1 on error. Calling it again after it returned 0 returns the same code. */
int es_sandbox_wait(es_sandbox *sb, int timeout_ms, int *exit_code, es_error *err);
/* 1 while the container runs, 0 once it ended. */
int es_sandbox_alive(es_sandbox *sb);
/* A fd that polls readable once the container ended (for event loops such as `run`'s). */
int es_sandbox_pollfd(es_sandbox *sb);
/* Host pid of the container's init (its namespaces: /proc/PID/ns/...; e.g. nsenter -t PID -n). */
int es_sandbox_pid(es_sandbox *sb);

/* ---- tracing (opts.trace) ----
 * Paths are absolute as seen inside the container, lexically normalised ("//", ".", ".."
 * collapsed), not symlink-resolved: fanotify reports the resolved file, ptrace the name the app
 * asked for, so a symlink chain shows up as both ends. Paths under /proc, /sys, /dev and /tmp
 * (not from the image) are left out. */
enum {
    /* The op bits say what was attempted on the path (fanotify: it was opened; ptrace: the call
     * was made, whatever its result); ES_TR_MISSING says at least one attempt found nothing. */
    ES_TR_OPEN = 1u << 0,     /* opened, or open*() called on it */
    ES_TR_EXEC = 1u << 1,     /* executed, or execve attempted */
    ES_TR_STAT = 1u << 2,     /* stat/lstat/statx/access/chdir on it */
    ES_TR_READLINK = 1u << 3, /* readlink on it */
    ES_TR_LISTDIR = 1u << 4,  /* directory listed (getdents) */
    ES_TR_MISSING = 1u << 5, /* at least one lookup failed with ENOENT/ENOTDIR: probed, not there */
    ES_TR_DIR = 1u << 6,     /* fanotify saw it opened as a directory */
};
typedef struct es_trace_path {
    char *path;
    unsigned ops; /* ES_TR_* bits, OR of everything seen */
} es_trace_path;

/* Unique paths seen so far, sorted by path. The array stays valid until the next call or destroy.
 */
size_t es_sandbox_trace_paths(es_sandbox *sb, const es_trace_path **paths);
/* Names of the syscalls seen so far (opts.trace_syscalls), sorted; valid as above. */
size_t es_sandbox_trace_syscalls(es_sandbox *sb, const char *const **names);
/* 1 when the fanotify queue overflowed (events were lost: the trace is incomplete and callers
 * must fail), 0 otherwise. Refreshed by es_sandbox_trace_paths. */
int es_sandbox_trace_overflowed(es_sandbox *sb);

/* Kills everything, waits, unmounts (the namespace dies), removes the sandbox's temp dir. Safe at
 * any point and with NULL. Does NOT remove opts.rootfs. */
void es_sandbox_destroy(es_sandbox *sb);

/* ---- helpers for `run` and `slim` ---- */

/* What to run for an image: argv = Entrypoint + Cmd (docker semantics: cmd_override, when not
 * NULL, replaces Cmd; entrypoint_override, when not NULL, replaces Entrypoint, "" clears it),
 * env, workdir and user from the config. As docker, an entrypoint override also drops the image's
 * Cmd. ES_ERUN "image has no entrypoint or cmd" when argv
 * would be empty. */
typedef struct es_run_config {
    char **argv;   /* NULL-terminated, owned */
    char **env;    /* NULL-terminated, owned */
    char *workdir; /* owned, NULL when unset */
    char *user;    /* owned, NULL when unset */
} es_run_config;
int es_run_config_from_image(const es_image *img, char *const *cmd_override,
                             const char *entrypoint_override, es_run_config *out, es_error *err);
void es_run_config_free(es_run_config *c);

/* ES_EUNSUPPORTED "image is linux/arm64, this host is linux/amd64" unless the image's platform
 * can run here (same os and arch). */
int es_sandbox_check_platform(const es_image *img, es_error *err);

/* Unpacks img (es_unpack_image) into a new temp dir under $TMPDIR or /var/tmp; *dir_out is
 * malloc'd. Remove it with es_remove_tree. */
int es_sandbox_unpack_temp(es_image *img, char **dir_out, es_progress *prog, es_error *err);
/* rm -rf dir without crossing mount points or following symlinks. */
int es_remove_tree(const char *dir, es_error *err);

#endif
