/*
 * The caller's side of a sandbox: starting it (fork of the relay, handshake on the status pipe),
 * waiting, signalling, exec requests over the control socket, host commands and sockets in the
 * container's network namespace, reading the trace memfd, and tearing everything down.
 *
 * Invariants: every fd the sandbox holds is CLOEXEC and >= 3 (so the relay can put the caller's
 * stdio on 0-2 without clobbering them); init is signalled through a pidfd taken while it is
 * known to be alive, so a recycled pid can never be hit; the relay is our child and its exit
 * status is the container's exit code.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/sandbox_internal.h"

struct es_sandbox {
    pid_t relay;
    int relay_pidfd;
    pid_t init_pid;
    int init_pidfd;
    int netns_fd; /* -1 for ES_NET_HOST */
    int ctl_fd;
    int trace_fd;
    char *statedir;
    int done, exit_code;
    /* trace read back */
    off_t trace_off;
    es_trace_path *paths;
    size_t n_paths, cap_paths, n_sorted;
    int overflowed;
    int *nrs;
    size_t n_nrs;
    char **sc_names;
    size_t n_sc_names;
};

void es_sandbox_opts_init(es_sandbox_opts *o)
{
    memset(o, 0, sizeof *o);
    o->stdin_fd = o->stdout_fd = o->stderr_fd = -1;
}

static int pidfd_open_pid(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int fd_above_stdio(int fd)
{
    if (fd < 0 || fd > 2) return fd;
    int n = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    close(fd);
    return n;
}

/* Reads a small host file (resolv.conf, hosts); NULL if unreadable. */
static char *slurp_small(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f) return NULL;
    char *buf = es_xmalloc(65536);
    size_t n = fread(buf, 1, 65535, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static es_sandbox *sandbox_new(void)
{
    es_sandbox *sb = es_xcalloc(1, sizeof *sb);
    sb->relay = -1;
    sb->relay_pidfd = sb->init_pidfd = sb->netns_fd = sb->ctl_fd = sb->trace_fd = -1;
    return sb;
}

/* Reads the relay's pid message, takes init's pidfd and netns while init waits for our go (so
 * even an app that exits at once cannot take them away), then reads EOF (started) or an error. */
static int await_start(es_sandbox *sb, int status_rfd, es_net_mode net, es_error *err)
{
    sb_msg m;
    ssize_t n;
    while ((n = read(status_rfd, &m, sizeof m)) < 0 && errno == EINTR) {
    }
    if (n != (ssize_t)sizeof m || m.kind != SB_MSG_PID) {
        if (n == (ssize_t)sizeof m && m.kind == SB_MSG_ERROR) {
            *err = m.err;
            return -1;
        }
        return es_err(err, ES_ERUN, "the sandbox relay died before starting the container");
    }
    sb->init_pid = m.pid;
    sb->init_pidfd = fd_above_stdio(pidfd_open_pid(m.pid));
    if (sb->init_pidfd < 0) return es_err_sys(err, ES_ERUN, "pidfd_open of the container's init");
    if (net != ES_NET_HOST) {
        char p[64];
        snprintf(p, sizeof p, "/proc/%d/ns/net", (int)sb->init_pid);
        sb->netns_fd = fd_above_stdio(open(p, O_RDONLY | O_CLOEXEC));
        if (sb->netns_fd < 0) return es_err_sys(err, ES_ERUN, "opening %s", p);
    }
    if (send(sb->ctl_fd, "g", 1, MSG_NOSIGNAL) != 1)
        return es_err_sys(err, ES_ERUN, "starting the container's init");
    while ((n = read(status_rfd, &m, sizeof m)) < 0 && errno == EINTR) {
    }
    if (n == (ssize_t)sizeof m && m.kind == SB_MSG_ERROR) {
        *err = m.err;
        return -1;
    }
    return 0;
}

static int check_start_preconditions(const es_sandbox_opts *o, char **rootfs, es_error *err)
{
    if (geteuid() != 0) return es_err(err, ES_ERUN, "the sandbox needs root (namespaces, mounts)");
    if (!o->rootfs) return es_err(err, ES_ERUN, "no root filesystem given");
    *rootfs = realpath(o->rootfs, NULL);
    struct stat st;
    if (!*rootfs || stat(*rootfs, &st) < 0)
        return es_err_sys(err, ES_ERUN, "root filesystem %s", o->rootfs);
    if (!S_ISDIR(st.st_mode))
        return es_err(err, ES_ERUN, "root filesystem %s is not a directory", o->rootfs);
    return 0;
}

static char *make_statedir(es_error *err)
{
    const char *tmp = getenv("TMPDIR");
    char *dir = es_xasprintf("%s/edgeslim-sandbox-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        es_err_sys(err, ES_ERUN, "creating %s", dir);
        free(dir);
        return NULL;
    }
    return dir;
}

int es_sandbox_start(const es_sandbox_opts *o, es_sandbox **out, es_error *err)
{
    *out = NULL;
    es_cleanup_free char *rootfs = NULL;
    if (check_start_preconditions(o, &rootfs, err) < 0) return -1;
    es_sandbox *sb = sandbox_new();
    sb->statedir = make_statedir(err);
    if (!sb->statedir) {
        es_sandbox_destroy(sb);
        return -1;
    }
    es_cleanup_free char *resolv = slurp_small("/etc/resolv.conf");
    es_cleanup_free char *hosts = o->net == ES_NET_HOST ? slurp_small("/etc/hosts") : NULL;
    int status[2], ctl[2];
    if (pipe2(status, O_CLOEXEC) < 0 ||
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0) {
        es_sandbox_destroy(sb);
        return es_err_sys(err, ES_ERUN, "pipe/socketpair");
    }
    status[0] = fd_above_stdio(status[0]), status[1] = fd_above_stdio(status[1]);
    ctl[0] = fd_above_stdio(ctl[0]), ctl[1] = fd_above_stdio(ctl[1]);
    sb->ctl_fd = ctl[0];
    if (o->trace) sb->trace_fd = fd_above_stdio(memfd_create("edgeslim-trace", MFD_CLOEXEC));
    sb_launch l = {.o = o,
                   .rootfs = rootfs,
                   .statedir = sb->statedir,
                   .hostname = o->hostname && *o->hostname ? o->hostname : "edgeslim",
                   .resolv_conf = resolv,
                   .host_hosts = hosts,
                   .status_wfd = status[1],
                   .ctl_fd = ctl[1],
                   .trace_fd = sb->trace_fd};
    fflush(NULL);
    sb->relay = fork();
    if (sb->relay == 0) {
        close(status[0]);
        close(ctl[0]);
        sb_relay_main(&l);
    }
    close(status[1]);
    close(ctl[1]);
    if (sb->relay < 0) {
        close(status[0]);
        es_sandbox_destroy(sb);
        return es_err_sys(err, ES_ERUN, "fork");
    }
    sb->relay_pidfd = fd_above_stdio(pidfd_open_pid(sb->relay));
    int rc = await_start(sb, status[0], o->net, err);
    close(status[0]);
    if (rc < 0) {
        es_sandbox_destroy(sb);
        return -1;
    }
    *out = sb;
    return 0;
}

/* ---------------------------------------------------------------- lifecycle */

static int reap_relay(es_sandbox *sb, int block)
{
    if (sb->done) return 1;
    int status;
    pid_t r;
    while ((r = waitpid(sb->relay, &status, block ? 0 : WNOHANG)) < 0 && errno == EINTR) {
    }
    if (r != sb->relay) return 0;
    sb->done = 1;
    sb->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return 1;
}

int es_sandbox_wait(es_sandbox *sb, int timeout_ms, int *exit_code, es_error *err)
{
    if (!sb->done) {
        struct pollfd p = {sb->relay_pidfd, POLLIN, 0};
        int n;
        while ((n = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR) {
        }
        if (n < 0) return es_err_sys(err, ES_EFAIL, "waiting for the container");
        if (n == 0) return 1;
        reap_relay(sb, 1);
    }
    if (exit_code) *exit_code = sb->exit_code;
    return 0;
}

int es_sandbox_alive(es_sandbox *sb)
{
    return !reap_relay(sb, 0);
}

int es_sandbox_pollfd(es_sandbox *sb)
{
    return sb->relay_pidfd;
}

int es_sandbox_pid(es_sandbox *sb)
{
    return (int)sb->init_pid;
}

int es_sandbox_signal(es_sandbox *sb, int sig)
{
    if (sb->done || sb->init_pidfd < 0) return -1;
    return syscall(SYS_pidfd_send_signal, sb->init_pidfd, sig, NULL, 0) < 0 ? -1 : 0;
}

void es_sandbox_destroy(es_sandbox *sb)
{
    if (!sb) return;
    if (sb->relay > 0 && !sb->done) {
        /* Kill init and let the relay reap it (so no zombie is left for the host's init); the
         * relay is killed itself only when init never started. */
        if (sb->init_pidfd < 0 ||
            syscall(SYS_pidfd_send_signal, sb->init_pidfd, SIGKILL, NULL, 0) < 0)
            kill(sb->relay, SIGKILL);
        reap_relay(sb, 1);
    }
    int fds[] = {sb->relay_pidfd, sb->init_pidfd, sb->netns_fd, sb->ctl_fd, sb->trace_fd};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] >= 0) close(fds[i]);
    if (sb->statedir) rmdir(sb->statedir);
    free(sb->statedir);
    for (size_t i = 0; i < sb->n_paths; i++)
        free(sb->paths[i].path);
    free(sb->paths);
    free(sb->nrs);
    for (size_t i = 0; i < sb->n_sc_names; i++)
        free(sb->sc_names[i]);
    free(sb->sc_names);
    free(sb);
}

/* ---------------------------------------------------------------- exec inside */

static int send_exec_request(es_sandbox *sb, char *const argv[], const int fds[3], int timeout_ms,
                             es_error *err)
{
    static char buf[SB_REQ_MAX];
    sb_exec_req req = {.timeout_ms = timeout_ms};
    size_t off = sizeof req;
    for (; argv[req.argc]; req.argc++) {
        size_t n = strlen(argv[req.argc]) + 1;
        if (off + n > sizeof buf) return es_err(err, ES_ERUN, "command line too long for exec");
        memcpy(buf + off, argv[req.argc], n);
        off += n;
    }
    int pass[3], npass = 0;
    for (int i = 0; i < 3; i++)
        if (fds[i] >= 0) {
            req.fd_mask |= 1u << i;
            pass[npass++] = fds[i];
        }
    memcpy(buf, &req, sizeof req);
    struct iovec iov = {buf, off};
    char cbuf[CMSG_SPACE(3 * sizeof(int))];
    memset(cbuf, 0, sizeof cbuf);
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (npass) {
        mh.msg_control = cbuf;
        mh.msg_controllen = CMSG_SPACE((size_t)npass * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN((size_t)npass * sizeof(int));
        memcpy(CMSG_DATA(c), pass, (size_t)npass * sizeof(int));
    }
    if (sendmsg(sb->ctl_fd, &mh, MSG_NOSIGNAL) < 0)
        return es_err_sys(err, ES_ERUN, "sending exec request to the container");
    return 0;
}

int es_sandbox_exec_io(es_sandbox *sb, char *const argv[], int in_fd, int out_fd, int err_fd,
                       int timeout_ms, int *exit_status, es_error *err)
{
    if (!argv || !argv[0]) return es_err(err, ES_EUSAGE, "exec: empty command");
    if (sb->done || !es_sandbox_alive(sb))
        return es_err(err, ES_ERUN, "exec %s: the container is not running", argv[0]);
    int fds[3] = {in_fd, out_fd, err_fd};
    if (send_exec_request(sb, argv, fds, timeout_ms, err) < 0) return -1;
    sb_exec_reply r;
    ssize_t n;
    while ((n = recv(sb->ctl_fd, &r, sizeof r, 0)) < 0 && errno == EINTR) {
    }
    if (n != (ssize_t)sizeof r)
        return es_err(err, ES_ERUN, "exec %s: the container ended while it ran", argv[0]);
    if (r.result < 0) {
        *err = r.err;
        return -1;
    }
    if (exit_status) *exit_status = r.exit_status;
    return r.result;
}

int es_sandbox_exec(es_sandbox *sb, char *const argv[], int timeout_ms, int *exit_status,
                    es_error *err)
{
    return es_sandbox_exec_io(sb, argv, -1, -1, -1, timeout_ms, exit_status, err);
}

/* ---------------------------------------------------------------- host side, container netns */

static int enter_netns(int netns_fd)
{
    return netns_fd < 0 ? 0 : setns(netns_fd, CLONE_NEWNET);
}

int es_sandbox_host_cmd(es_sandbox *sb, char *const argv[], int timeout_ms, int *exit_status,
                        es_error *err)
{
    if (!argv || !argv[0]) return es_err(err, ES_EUSAGE, "host command: empty command");
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return es_err_sys(err, ES_EFAIL, "fork");
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (enter_netns(sb->netns_fd) < 0) _exit(126);
        execvp(argv[0], argv);
        _exit(127);
    }
    es_cleanup_close int pfd = pidfd_open_pid(pid);
    struct pollfd p = {pfd, POLLIN, 0};
    int n;
    while ((n = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR) {
    }
    int timed_out = n == 0;
    if (timed_out) kill(pid, SIGKILL);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (exit_status)
        *exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return timed_out ? 1 : 0;
}

typedef struct {
    int netns_fd, domain, type;
    int fd, err_no;
} socket_job;

/* setns(CLONE_NEWNET) changes only the calling thread, so a throwaway thread makes the socket. */
static void *socket_in_netns(void *arg)
{
    socket_job *j = arg;
    if (enter_netns(j->netns_fd) < 0) {
        j->err_no = errno;
        return NULL;
    }
    j->fd = socket(j->domain, j->type | SOCK_CLOEXEC, 0);
    if (j->fd < 0) j->err_no = errno;
    return NULL;
}

int es_sandbox_socket(es_sandbox *sb, int domain, int type, es_error *err)
{
    socket_job j = {sb->netns_fd, domain, type, -1, 0};
    pthread_t th;
    if (pthread_create(&th, NULL, socket_in_netns, &j) != 0)
        return es_err(err, ES_EFAIL, "pthread_create");
    pthread_join(th, NULL);
    if (j.fd < 0) {
        errno = j.err_no;
        return es_err_sys(err, ES_EFAIL, "socket in the container's network namespace");
    }
    return j.fd;
}

/* ---------------------------------------------------------------- trace read back */

static void add_path(es_sandbox *sb, const char *p, size_t len, unsigned ops)
{
    if (sb->n_paths == sb->cap_paths) {
        sb->cap_paths = sb->cap_paths ? sb->cap_paths * 2 : 256;
        sb->paths = es_xrealloc(sb->paths, sb->cap_paths * sizeof *sb->paths);
    }
    char *s = es_xmalloc(len + 1);
    memcpy(s, p, len);
    s[len] = '\0';
    sb->paths[sb->n_paths++] = (es_trace_path){s, ops};
}

static void add_nr(es_sandbox *sb, int nr)
{
    for (size_t i = 0; i < sb->n_nrs; i++)
        if (sb->nrs[i] == nr) return;
    sb->nrs = es_xrealloc(sb->nrs, (sb->n_nrs + 1) * sizeof *sb->nrs);
    sb->nrs[sb->n_nrs++] = nr;
}

/* Parses complete records from buf; returns the bytes consumed. */
static size_t parse_records(es_sandbox *sb, const char *buf, size_t n)
{
    size_t off = 0;
    while (off < n) {
        char kind = buf[off];
        uint32_t a, b;
        if (kind == SB_REC_OVERFLOW) {
            sb->overflowed = 1;
            off += 1;
        } else if (kind == SB_REC_SYSCALL) {
            if (n - off < 5) break;
            memcpy(&a, buf + off + 1, 4);
            add_nr(sb, (int)a);
            off += 5;
        } else if (kind == SB_REC_PATH) {
            if (n - off < 9) break;
            memcpy(&a, buf + off + 1, 4);
            memcpy(&b, buf + off + 5, 4);
            if (n - off - 9 < b) break;
            add_path(sb, buf + off + 9, b, a);
            off += 9 + b;
        } else {
            off = n; /* corrupt: cannot happen with our writer; stop reading */
        }
    }
    return off;
}

static int cmp_path(const void *a, const void *b)
{
    return strcmp(((const es_trace_path *)a)->path, ((const es_trace_path *)b)->path);
}

/* Sorts and merges duplicates (a later record carries all bits, OR keeps it monotone anyway). */
static void merge_paths(es_sandbox *sb)
{
    if (sb->n_sorted == sb->n_paths) return;
    qsort(sb->paths, sb->n_paths, sizeof *sb->paths, cmp_path);
    size_t k = 0;
    for (size_t i = 0; i < sb->n_paths; i++) {
        if (k && strcmp(sb->paths[k - 1].path, sb->paths[i].path) == 0) {
            sb->paths[k - 1].ops |= sb->paths[i].ops;
            free(sb->paths[i].path);
        } else {
            sb->paths[k++] = sb->paths[i];
        }
    }
    sb->n_paths = sb->n_sorted = k;
}

static void refresh_trace(es_sandbox *sb)
{
    if (sb->trace_fd < 0) return;
    struct stat st;
    if (fstat(sb->trace_fd, &st) < 0 || st.st_size <= sb->trace_off) return;
    size_t n = (size_t)(st.st_size - sb->trace_off);
    char *buf = es_xmalloc(n);
    ssize_t got = pread(sb->trace_fd, buf, n, sb->trace_off);
    if (got > 0) sb->trace_off += (off_t)parse_records(sb, buf, (size_t)got);
    free(buf);
    merge_paths(sb);
}

size_t es_sandbox_trace_paths(es_sandbox *sb, const es_trace_path **paths)
{
    refresh_trace(sb);
    *paths = sb->paths;
    return sb->n_paths;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

size_t es_sandbox_trace_syscalls(es_sandbox *sb, const char *const **names)
{
    refresh_trace(sb);
    for (size_t i = 0; i < sb->n_sc_names; i++)
        free(sb->sc_names[i]);
    free(sb->sc_names);
    sb->sc_names = es_xcalloc(sb->n_nrs + 1, sizeof *sb->sc_names);
    sb->n_sc_names = 0;
    for (size_t i = 0; i < sb->n_nrs; i++) {
        char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, sb->nrs[i]);
        if (name) sb->sc_names[sb->n_sc_names++] = name;
    }
    qsort(sb->sc_names, sb->n_sc_names, sizeof *sb->sc_names, cmp_str);
    *names = (const char *const *)sb->sc_names;
    return sb->n_sc_names;
}

int es_sandbox_trace_overflowed(es_sandbox *sb)
{
    refresh_trace(sb);
    return sb->overflowed;
}
