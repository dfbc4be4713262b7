/*
 * The tracer, run by the container's init (pid 1), which is also every traced process's ancestor.
 *
 * Two sources, because neither sees everything:
 *  - fanotify (FAN_CLASS_NOTIF, mount mark on the container's root overlay): every file or
 *    directory opened or executed, including what the kernel opens itself (ELF interpreters,
 *    script interpreters). The path comes from readlink(/proc/self/fd/N); init's root is the
 *    container's root, so it is already the path as the container sees it. A FAN_Q_OVERFLOW
 *    event is recorded: the caller must fail rather than trust an incomplete trace.
 *  - ptrace + a seccomp filter returning SECCOMP_RET_TRACE for path syscalls only (so ordinary
 *    syscalls run at full speed): stat family, access, readlink, getdents, open*, execve*,
 *    chdir. At the seccomp stop the path argument is read (process_vm_readv) and made absolute
 *    (dirfd / cwd via /proc/TID); the tracee is resumed with PTRACE_SYSCALL to learn the result
 *    at syscall exit (ENOENT/ENOTDIR -> ES_TR_MISSING). PTRACE_O_TRACEFORK/VFORK/CLONE follow
 *    forks and threads, PTRACE_O_EXITKILL kills tracees if init dies.
 *
 * Invariant: every path is recorded once per new op bit, appended to the trace memfd as one
 * write() (see sandbox_internal.h), so P can read a consistent prefix at any time.
 * Kernel >= 5.3 (PTRACE_GET_SYSCALL_INFO) and >= 5.0 (FAN_OPEN_EXEC) are required.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/sandbox_internal.h"

#define SB_MAX_NR 1024

/* How a traced syscall names its path. */
typedef enum { K_NONE = 0, K_PATH0, K_AT_PATH1, K_FD0 } arg_kind;
typedef struct {
    const char *name;
    arg_kind kind;
    unsigned op;
    int flags_arg; /* index of an AT_* flags argument (AT_EMPTY_PATH = fd op), -1 none */
} syscall_spec;

static const syscall_spec path_syscalls[] = {
    {"stat", K_PATH0, ES_TR_STAT, -1},         {"lstat", K_PATH0, ES_TR_STAT, -1},
    {"newfstatat", K_AT_PATH1, ES_TR_STAT, 3}, {"fstatat64", K_AT_PATH1, ES_TR_STAT, 3},
    {"statx", K_AT_PATH1, ES_TR_STAT, 2},      {"access", K_PATH0, ES_TR_STAT, -1},
    {"faccessat", K_AT_PATH1, ES_TR_STAT, -1}, {"faccessat2", K_AT_PATH1, ES_TR_STAT, 3},
    {"readlink", K_PATH0, ES_TR_READLINK, -1}, {"readlinkat", K_AT_PATH1, ES_TR_READLINK, -1},
    {"getdents64", K_FD0, ES_TR_LISTDIR, -1},  {"getdents", K_FD0, ES_TR_LISTDIR, -1},
    {"open", K_PATH0, ES_TR_OPEN, -1},         {"openat", K_AT_PATH1, ES_TR_OPEN, -1},
    {"openat2", K_AT_PATH1, ES_TR_OPEN, -1},   {"execve", K_PATH0, ES_TR_EXEC, -1},
    {"execveat", K_AT_PATH1, ES_TR_EXEC, 4},   {"chdir", K_PATH0, ES_TR_STAT, -1},
};

/* Per-thread state between a seccomp stop and the matching syscall exit. */
typedef struct {
    pid_t tid;
    unsigned op;
    char *path;
} pending_call;

typedef struct {
    char *path;
    unsigned ops;
} path_slot;

struct sb_tracer {
    int trace_fd;
    int fan_fd;
    int trace_syscalls;
    int overflowed;
    const syscall_spec *by_nr[SB_MAX_NR];
    unsigned char seen_nr[SB_MAX_NR];
    pending_call *pending;
    size_t n_pending, cap_pending;
    path_slot *slots; /* open addressing, power-of-two size */
    size_t n_slots, n_used;
};

/* ---------------------------------------------------------------- records */

static void write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return; /* memfd full (ENOSPC): P sees a short trace, nothing better to do */
        p += w;
        n -= (size_t)w;
    }
}

static void emit_path(sb_tracer *t, const char *path, unsigned ops)
{
    uint32_t len = (uint32_t)strlen(path), o = ops;
    size_t n = 1 + 4 + 4 + len;
    char *rec = es_xmalloc(n);
    rec[0] = SB_REC_PATH;
    memcpy(rec + 1, &o, 4);
    memcpy(rec + 5, &len, 4);
    memcpy(rec + 9, path, len);
    write_all(t->trace_fd, rec, n);
    free(rec);
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void grow_slots(sb_tracer *t)
{
    size_t n = t->n_slots ? t->n_slots * 2 : 1024;
    path_slot *s = es_xcalloc(n, sizeof *s);
    for (size_t i = 0; i < t->n_slots; i++) {
        if (!t->slots[i].path) continue;
        size_t j = hash_str(t->slots[i].path) & (n - 1);
        while (s[j].path)
            j = (j + 1) & (n - 1);
        s[j] = t->slots[i];
    }
    free(t->slots);
    t->slots = s;
    t->n_slots = n;
}

/* Paths on init's own mounts are not part of the image. */
static int outside_image(const char *p)
{
    static const char *const skip[] = {"/proc", "/sys", "/dev", "/tmp"};
    for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++) {
        size_t n = strlen(skip[i]);
        if (strncmp(p, skip[i], n) == 0 && (p[n] == '\0' || p[n] == '/')) return 1;
    }
    return 0;
}

static void record_path(sb_tracer *t, const char *path, unsigned ops)
{
    if (!path || path[0] != '/' || outside_image(path)) return;
    if ((t->n_used + 1) * 2 > t->n_slots) grow_slots(t);
    size_t j = hash_str(path) & (t->n_slots - 1);
    while (t->slots[j].path && strcmp(t->slots[j].path, path) != 0)
        j = (j + 1) & (t->n_slots - 1);
    path_slot *s = &t->slots[j];
    if (!s->path) {
        s->path = es_xstrdup(path);
        t->n_used++;
    } else if ((s->ops | ops) == s->ops) {
        return;
    }
    s->ops |= ops;
    emit_path(t, path, s->ops);
}

static void record_syscall(sb_tracer *t, int nr)
{
    if (nr < 0 || nr >= SB_MAX_NR || t->seen_nr[nr]) return;
    t->seen_nr[nr] = 1;
    char rec[5] = {SB_REC_SYSCALL};
    uint32_t v = (uint32_t)nr;
    memcpy(rec + 1, &v, 4);
    write_all(t->trace_fd, rec, sizeof rec);
}

/* ---------------------------------------------------------------- paths */

/* Collapses "//", "/./" and "/../" in an absolute path, in place. */
static void normalize_path(char *p)
{
    char *out = p, *in = p;
    while (*in) {
        while (*in == '/')
            in++;
        char *seg = in;
        while (*in && *in != '/')
            in++;
        size_t n = (size_t)(in - seg);
        if (n == 0 || (n == 1 && seg[0] == '.')) continue;
        if (n == 2 && seg[0] == '.' && seg[1] == '.') {
            while (out > p && *--out != '/') {
            }
            continue;
        }
        *out++ = '/';
        memmove(out, seg, n);
        out += n;
    }
    if (out == p) *out++ = '/';
    *out = '\0';
}

static int readlink_str(const char *link, char *buf, size_t size)
{
    ssize_t n = readlink(link, buf, size - 1);
    if (n < 0) return -1;
    buf[n] = '\0';
    return 0;
}

/* The directory a *at() call is relative to, as the container sees it. */
static int dir_of(pid_t tid, long dirfd, char *buf, size_t size)
{
    char link[64];
    if ((int)dirfd == AT_FDCWD)
        snprintf(link, sizeof link, "/proc/%d/cwd", (int)tid);
    else
        snprintf(link, sizeof link, "/proc/%d/fd/%d", (int)tid, (int)dirfd);
    if (readlink_str(link, buf, size) < 0 || buf[0] != '/') return -1;
    return 0;
}

/* Reads a NUL-terminated string from the tracee, page by page (a string may end just before an
 * unmapped page). */
static int read_tracee_string(pid_t tid, uint64_t addr, char *buf, size_t size)
{
    size_t got = 0;
    while (got < size - 1) {
        size_t page_left = 4096 - ((addr + got) & 4095);
        size_t want = page_left < size - 1 - got ? page_left : size - 1 - got;
        struct iovec local = {buf + got, want}, remote = {(void *)(uintptr_t)(addr + got), want};
        ssize_t n = process_vm_readv(tid, &local, 1, &remote, 1, 0);
        if (n <= 0) return -1;
        if (memchr(buf + got, '\0', (size_t)n)) return 0;
        got += (size_t)n;
    }
    buf[size - 1] = '\0';
    return 0;
}

/* Absolute container path named by a syscall's arguments, malloc'd; NULL when it names none. */
static char *path_of_call(pid_t tid, const syscall_spec *sp, const uint64_t *args)
{
    char path[PATH_MAX], base[PATH_MAX];
    if (sp->kind == K_FD0) {
        if (dir_of(tid, (long)(int)args[0], base, sizeof base) < 0) return NULL;
        normalize_path(base);
        return es_xstrdup(base);
    }
    uint64_t addr = sp->kind == K_PATH0 ? args[0] : args[1];
    if (!addr || read_tracee_string(tid, addr, path, sizeof path) < 0) return NULL;
    if (sp->flags_arg >= 0 && (args[sp->flags_arg] & AT_EMPTY_PATH) && path[0] == '\0') return NULL;
    if (path[0] == '\0') return NULL;
    char *abs;
    if (path[0] == '/')
        abs = es_xstrdup(path);
    else {
        long dirfd = sp->kind == K_AT_PATH1 ? (long)(int)args[0] : AT_FDCWD;
        if (dir_of(tid, dirfd, base, sizeof base) < 0) return NULL;
        abs = es_xasprintf("%s/%s", base, path);
    }
    normalize_path(abs);
    return abs;
}

/* ---------------------------------------------------------------- pending calls */

static pending_call *pending_find(sb_tracer *t, pid_t tid)
{
    for (size_t i = 0; i < t->n_pending; i++)
        if (t->pending[i].tid == tid) return &t->pending[i];
    return NULL;
}

static void pending_drop(sb_tracer *t, pid_t tid)
{
    for (size_t i = 0; i < t->n_pending; i++) {
        if (t->pending[i].tid != tid) continue;
        free(t->pending[i].path);
        t->pending[i] = t->pending[--t->n_pending];
        return;
    }
}

static void pending_set(sb_tracer *t, pid_t tid, char *path, unsigned op)
{
    pending_drop(t, tid);
    if (t->n_pending == t->cap_pending) {
        t->cap_pending = t->cap_pending ? t->cap_pending * 2 : 16;
        t->pending = es_xrealloc(t->pending, t->cap_pending * sizeof *t->pending);
    }
    t->pending[t->n_pending++] = (pending_call){tid, op, path};
}

/* ---------------------------------------------------------------- ptrace stops */

static void on_seccomp_stop(sb_tracer *t, pid_t tid)
{
    struct __ptrace_syscall_info info;
    memset(&info, 0, sizeof info);
    if (ptrace(PTRACE_GET_SYSCALL_INFO, tid, (void *)sizeof info, &info) <= 0 ||
        info.op != PTRACE_SYSCALL_INFO_SECCOMP) {
        ptrace(PTRACE_CONT, tid, 0, 0);
        return;
    }
    int nr = (int)info.seccomp.nr;
    if (t->trace_syscalls) record_syscall(t, nr);
    const syscall_spec *sp = nr >= 0 && nr < SB_MAX_NR ? t->by_nr[nr] : NULL;
    char *path = sp ? path_of_call(tid, sp, info.seccomp.args) : NULL;
    if (!path) {
        ptrace(PTRACE_CONT, tid, 0, 0);
        return;
    }
    if (sp->kind == K_FD0) { /* the directory exists: it is open */
        record_path(t, path, sp->op);
        free(path);
        ptrace(PTRACE_CONT, tid, 0, 0);
        return;
    }
    pending_set(t, tid, path, sp->op);
    ptrace(PTRACE_SYSCALL, tid, 0, 0); /* stop again at syscall exit to see the result */
}

static void on_syscall_stop(sb_tracer *t, pid_t tid)
{
    pending_call *pc = pending_find(t, tid);
    struct __ptrace_syscall_info info;
    memset(&info, 0, sizeof info);
    long r = ptrace(PTRACE_GET_SYSCALL_INFO, tid, (void *)sizeof info, &info);
    if (pc && r > 0 && info.op == PTRACE_SYSCALL_INFO_ENTRY) {
        ptrace(PTRACE_SYSCALL, tid, 0, 0); /* not the exit yet */
        return;
    }
    if (pc && r > 0 && info.op == PTRACE_SYSCALL_INFO_EXIT) {
        unsigned ops = pc->op;
        int64_t rv = info.exit.rval;
        if (info.exit.is_error && (rv == -ENOENT || rv == -ENOTDIR)) ops |= ES_TR_MISSING;
        record_path(t, pc->path, ops);
    }
    pending_drop(t, tid);
    ptrace(PTRACE_CONT, tid, 0, 0);
}

/* A non-leader thread that exec'd takes over the leader's tid: move its pending execve. */
static void on_exec_event(sb_tracer *t, pid_t tid)
{
    unsigned long former = 0;
    if (ptrace(PTRACE_GETEVENTMSG, tid, 0, &former) == 0 && (pid_t)former != tid) {
        pending_call *pc = pending_find(t, (pid_t)former);
        if (pc) {
            char *path = pc->path;
            unsigned op = pc->op;
            pc->path = NULL;
            pending_drop(t, (pid_t)former);
            pending_set(t, tid, path, op);
        }
    }
    /* The syscall-exit stop of execve follows only if we resumed with PTRACE_SYSCALL. */
    ptrace(pending_find(t, tid) ? PTRACE_SYSCALL : PTRACE_CONT, tid, 0, 0);
}

void sb_tracer_on_stop(sb_tracer *t, pid_t tid, int status)
{
    int sig = WSTOPSIG(status), event = (unsigned)status >> 16;
    if (sig == (SIGTRAP | 0x80)) {
        on_syscall_stop(t, tid);
    } else if (sig == SIGTRAP && event == PTRACE_EVENT_SECCOMP) {
        on_seccomp_stop(t, tid);
    } else if (sig == SIGTRAP && event == PTRACE_EVENT_EXEC) {
        on_exec_event(t, tid);
    } else if (event == PTRACE_EVENT_STOP) {
        if (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU)
            ptrace(PTRACE_LISTEN, tid, 0, 0); /* a real group-stop: stay stopped until SIGCONT */
        else
            ptrace(PTRACE_CONT, tid, 0, 0); /* initial stop of an auto-attached child */
    } else if (sig == SIGTRAP && event != 0) {
        /* fork/vfork/clone/vfork-done events: keep any pending exit watch */
        ptrace(pending_find(t, tid) ? PTRACE_SYSCALL : PTRACE_CONT, tid, 0, 0);
    } else {
        ptrace(PTRACE_CONT, tid, 0, (void *)(long)sig); /* signal-delivery-stop: deliver it */
    }
}

void sb_tracer_on_exit(sb_tracer *t, pid_t tid)
{
    if (t) pending_drop(t, tid);
}

int sb_tracer_seize(pid_t pid, es_error *err)
{
    long opts = PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK |
                PTRACE_O_TRACEVFORK | PTRACE_O_TRACEEXEC | PTRACE_O_TRACESECCOMP |
                PTRACE_O_EXITKILL;
    if (ptrace(PTRACE_SEIZE, pid, 0, (void *)opts) < 0)
        return es_err_sys(err, ES_ERUN, "ptrace(SEIZE) of pid %d", pid);
    return 0;
}

/* ---------------------------------------------------------------- fanotify */

void sb_tracer_drain_fanotify(sb_tracer *t)
{
    if (!t || t->fan_fd < 0) return;
    char buf[16384] __attribute__((aligned(__alignof__(struct fanotify_event_metadata))));
    for (;;) {
        ssize_t n = read(t->fan_fd, buf, sizeof buf);
        if (n <= 0) return; /* EAGAIN: drained */
        struct fanotify_event_metadata *m = (struct fanotify_event_metadata *)buf;
        for (; FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
            if (m->vers != FANOTIFY_METADATA_VERSION) continue;
            if (m->mask & FAN_Q_OVERFLOW) {
                if (!t->overflowed) write_all(t->trace_fd, (char[]){SB_REC_OVERFLOW}, 1);
                t->overflowed = 1;
            }
            if (m->fd < 0) continue;
            char link[64], path[PATH_MAX];
            snprintf(link, sizeof link, "/proc/self/fd/%d", m->fd);
            if (m->pid != getpid() && readlink_str(link, path, sizeof path) == 0 &&
                path[0] == '/' && !strstr(path, " (deleted)")) {
                unsigned ops = ES_TR_OPEN;
                if (m->mask & FAN_OPEN_EXEC) ops |= ES_TR_EXEC;
                struct stat st; /* legacy (fd) mode never reports FAN_ONDIR in the mask */
                if (fstat(m->fd, &st) == 0 && S_ISDIR(st.st_mode)) ops |= ES_TR_DIR;
                record_path(t, path, ops);
            }
            close(m->fd);
        }
    }
}

int sb_tracer_fanotify_fd(sb_tracer *t)
{
    return t ? t->fan_fd : -1;
}

/* ---------------------------------------------------------------- setup */

static void map_syscalls(sb_tracer *t)
{
    for (size_t i = 0; i < sizeof path_syscalls / sizeof path_syscalls[0]; i++) {
        int nr = seccomp_syscall_resolve_name(path_syscalls[i].name);
        if (nr >= 0 && nr < SB_MAX_NR) t->by_nr[nr] = &path_syscalls[i];
    }
}

sb_tracer *sb_tracer_new(int trace_fd, int trace_syscalls, es_error *err)
{
    sb_tracer *t = es_xcalloc(1, sizeof *t);
    t->trace_fd = trace_fd;
    t->trace_syscalls = trace_syscalls;
    map_syscalls(t);
    t->fan_fd = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK,
                              O_RDONLY | O_LARGEFILE | O_CLOEXEC);
    if (t->fan_fd < 0) {
        es_err_sys(err, ES_ERUN, "fanotify_init");
        sb_tracer_free(t);
        return NULL;
    }
    /* FAN_OPEN_EXEC needs Linux 5.0; without it execs still show up as opens */
    unsigned int flags = FAN_MARK_ADD | FAN_MARK_MOUNT;
    if (fanotify_mark(t->fan_fd, flags, FAN_OPEN | FAN_OPEN_EXEC | FAN_ONDIR, AT_FDCWD, "/") < 0 &&
        fanotify_mark(t->fan_fd, flags, FAN_OPEN | FAN_ONDIR, AT_FDCWD, "/") < 0) {
        es_err_sys(err, ES_ERUN, "fanotify_mark on the container's root mount");
        sb_tracer_free(t);
        return NULL;
    }
    return t;
}

void sb_tracer_free(sb_tracer *t)
{
    if (!t) return;
    if (t->fan_fd >= 0) close(t->fan_fd);
    for (size_t i = 0; i < t->n_slots; i++)
        free(t->slots[i].path);
    for (size_t i = 0; i < t->n_pending; i++)
        free(t->pending[i].path);
    free(t->slots);
    free(t->pending);
    free(t);
}

int sb_tracer_install_filter(int trace_syscalls, es_error *err)
{
    scmp_filter_ctx ctx = seccomp_init(trace_syscalls ? SCMP_ACT_TRACE(0) : SCMP_ACT_ALLOW);
    if (!ctx) return es_err(err, ES_ERUN, "seccomp_init failed");
    /* No NO_NEW_PRIVS: setuid binaries in the image must keep working; we load as root. */
    int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
    if (!rc) rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ALLOW);
    for (size_t i = 0; !rc && !trace_syscalls && i < sizeof path_syscalls / sizeof path_syscalls[0];
         i++) {
        int nr = seccomp_syscall_resolve_name(path_syscalls[i].name);
        if (nr >= 0) rc = seccomp_rule_add(ctx, SCMP_ACT_TRACE(0), nr, 0);
    }
    if (!rc) rc = seccomp_load(ctx);
    seccomp_release(ctx);
    if (rc) {
        errno = -rc;
        return es_err_sys(err, ES_ERUN, "loading the tracing seccomp filter");
    }
    return 0;
}
