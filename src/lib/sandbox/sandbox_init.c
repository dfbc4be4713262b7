/*
 * The relay and the container's init: everything that runs in forked children of the caller.
 *
 * relay (C1): unshares mnt/pid/uts/ipc[/net], forks init (pid 1 of the new pid namespace), sends
 * init's host pid to the caller and exits with init's exit status (128+N if init was killed).
 *
 * init (I): waits for the caller's go (the caller then holds init's pidfd and netns), builds the
 * root (sandbox_rootfs.c), resolves the user and the command, starts the app and runs one event
 * loop: signalfd (SIGCHLD: reap, handle ptrace stops; signals from the caller are forwarded to
 * the app), fanotify, the control socket (exec requests; EOF = the caller is gone). When the app
 * exits, init kills whatever is left in the namespace and exits with the app's code.
 *
 * Container processes (app, exec'd commands) are forked by init, wait until the tracer has seized
 * them, install the tracing seccomp filter, cut the capability bounding set to docker's default,
 * switch to the image's user and exec. The relay and init are single threaded, so malloc is
 * consistent after fork; they leave with _exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/sandbox_internal.h"

/* Signals init forwards to the app when they come from the caller (outside the namespace). */
static const int forwarded_signals[] = {SIGHUP,  SIGINT,  SIGQUIT,  SIGTERM,
                                        SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT};

static void send_error(int fd, const es_error *err)
{
    sb_msg m;
    memset(&m, 0, sizeof m);
    m.kind = SB_MSG_ERROR;
    m.err = *err;
    if (write(fd, &m, sizeof m) < 0) { /* the caller is gone: nothing to tell */
    }
}

/* Closes every fd except those in keep[] (and 0, 1, 2). */
static void close_other_fds(const int *keep, size_t n)
{
    for (int fd = 3; fd < 1024; fd++) {
        int k = 0;
        for (size_t i = 0; i < n; i++)
            k |= keep[i] == fd;
        if (!k) close(fd);
    }
    close_range(1024, ~0U, 0);
}

/* Puts the requested stdio fds on 0, 1, 2 (via fresh copies, so the order cannot clobber). */
static void install_stdio(int in, int out, int errfd)
{
    int src[3] = {in, out, errfd}, tmp[3];
    for (int i = 0; i < 3; i++)
        tmp[i] = src[i] >= 0 ? fcntl(src[i], F_DUPFD_CLOEXEC, 3) : -1;
    for (int i = 0; i < 3; i++)
        if (tmp[i] >= 0) {
            dup2(tmp[i], i);
            close(tmp[i]);
        }
}

/* ---------------------------------------------------------------- spawning container processes */

typedef struct spawn_ctx {
    const sb_launch *l;
    sb_identity id;
    char **env;
    const char *workdir;
    sb_tracer *tracer; /* NULL when not tracing */
} spawn_ctx;

/* The capabilities docker leaves a container's root with; everything else leaves the bounding set
 * so root in the container cannot mount, load modules, trace the host, ... */
static int cap_kept(int cap)
{
    static const int keep[] = {CAP_CHOWN,   CAP_DAC_OVERRIDE, CAP_FSETID,           CAP_FOWNER,
                               CAP_MKNOD,   CAP_NET_RAW,      CAP_SETGID,           CAP_SETUID,
                               CAP_SETFCAP, CAP_SETPCAP,      CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT,
                               CAP_KILL,    CAP_AUDIT_WRITE};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        if (keep[i] == cap) return 1;
    return 0;
}

static void drop_capabilities(void)
{
    for (int cap = 0; cap <= 63; cap++)
        if (!cap_kept(cap) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno == EINVAL) break;
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
}

static void reset_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++)
        sigaction(s, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/* In the forked child: becomes the container process and execs, or reports and _exits. */
static void child_exec(const spawn_ctx *c, const char *path, char *const argv[], const int *stdio,
                       int sync_fd, int err_fd)
{
    es_error err;
    memset(&err, 0, sizeof err);
    reset_signals();
    if (stdio) install_stdio(stdio[0], stdio[1], stdio[2]);
    if (sync_fd >= 0) {
        char b;
        if (read(sync_fd, &b, 1) != 1) _exit(127);
        close(sync_fd);
    }
    if (c->tracer && sb_tracer_install_filter(c->l->o->trace_syscalls, &err) < 0) goto fail;
    drop_capabilities();
    if (setgroups(c->id.n_groups, c->id.groups) < 0 || setgid(c->id.gid) < 0 ||
        setuid(c->id.uid) < 0) {
        es_err_sys(&err, ES_ERUN, "switching to uid %u gid %u", (unsigned)c->id.uid,
                   (unsigned)c->id.gid);
        goto fail;
    }
    if (chdir(c->workdir) < 0) {
        es_err_sys(&err, ES_ERUN, "working directory %s", c->workdir);
        goto fail;
    }
    close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    execve(path, argv, c->env);
    es_err_sys(&err, ES_ERUN, "exec %s in the container", argv[0]);
fail:
    send_error(err_fd, &err);
    _exit(errno == ENOENT ? 127 : 126);
}

/* Forks a container process (seized by the tracer before it can run anything). */
static pid_t spawn(const spawn_ctx *c, const char *path, char *const argv[], const int *stdio,
                   int err_fd, es_error *err)
{
    int sync[2] = {-1, -1};
    if (c->tracer && pipe2(sync, O_CLOEXEC) < 0) {
        es_err_sys(err, ES_ERUN, "pipe");
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        es_err_sys(err, ES_ERUN, "fork");
        return -1;
    }
    if (pid == 0) {
        if (sync[1] >= 0) close(sync[1]);
        child_exec(c, path, argv, stdio, sync[0], err_fd);
    }
    if (c->tracer) {
        close(sync[0]);
        int rc = sb_tracer_seize(pid, err);
        if (rc == 0 && write(sync[1], "g", 1) != 1)
            rc = es_err_sys(err, ES_ERUN, "starting pid %d", pid);
        close(sync[1]);
        if (rc < 0) {
            kill(pid, SIGKILL);
            return -1;
        }
    }
    return pid;
}

/* ---------------------------------------------------------------- init's event loop */

typedef struct exec_job {
    pid_t pid;
    int err_rfd;
    int timed_out;
    struct timespec deadline;
    int has_deadline;
} exec_job;

typedef struct init_state {
    spawn_ctx sc;
    int sig_fd, ctl_fd;
    pid_t app;
    int app_done, app_code;
    int stop_code; /* >= 0: leave with this code (idle sandbox signalled, caller gone) */
    exec_job job;  /* pid 0 when none */
} init_state;

static int code_of(int status)
{
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void reply_exec(init_state *s, int result, int status, const es_error *e)
{
    sb_exec_reply r;
    memset(&r, 0, sizeof r);
    r.result = result;
    r.exit_status = status;
    if (e) r.err = *e;
    send(s->ctl_fd, &r, sizeof r, MSG_NOSIGNAL);
}

static void finish_job(init_state *s, int status)
{
    sb_msg m;
    memset(&m, 0, sizeof m);
    ssize_t n = read(s->job.err_rfd, &m, sizeof m);
    close(s->job.err_rfd);
    if (n == (ssize_t)sizeof m && m.kind == SB_MSG_ERROR)
        reply_exec(s, -1, code_of(status), &m.err);
    else
        reply_exec(s, s->job.timed_out ? 1 : 0, s->job.timed_out ? 137 : code_of(status), NULL);
    memset(&s->job, 0, sizeof s->job);
}

static void reap_children(init_state *s)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, __WALL | WNOHANG)) > 0) {
        if (WIFSTOPPED(status)) {
            if (s->sc.tracer)
                sb_tracer_on_stop(s->sc.tracer, pid, status);
            else
                kill(pid, SIGCONT);
            continue;
        }
        sb_tracer_on_exit(s->sc.tracer, pid);
        if (pid == s->app) {
            s->app_done = 1;
            s->app_code = code_of(status);
        } else if (s->job.pid && pid == s->job.pid) {
            finish_job(s, status);
        }
    }
}

static int is_terminating(int sig)
{
    return sig == SIGTERM || sig == SIGINT || sig == SIGHUP || sig == SIGQUIT;
}

static void on_signal(init_state *s)
{
    struct signalfd_siginfo si;
    while (read(s->sig_fd, &si, sizeof si) == (ssize_t)sizeof si) {
        int sig = (int)si.ssi_signo;
        if (sig == SIGCHLD) {
            reap_children(s);
            continue;
        }
        /* From the tty (SI_KERNEL) the app got the signal itself: it shares our process group. */
        if (si.ssi_code == SI_KERNEL) continue;
        if (s->app > 0 && !s->app_done)
            kill(s->app, sig);
        else if (s->app <= 0 && is_terminating(sig))
            s->stop_code = 128 + sig;
    }
}

static void start_job(init_state *s, const sb_exec_req *req, const char *strings, size_t len,
                      int *fds, int nfds)
{
    es_error err;
    memset(&err, 0, sizeof err);
    char **argv = es_xcalloc(req->argc + 1, sizeof *argv);
    size_t off = 0;
    for (uint32_t i = 0; i < req->argc && off < len; i++) {
        argv[i] = (char *)strings + off;
        off += strnlen(strings + off, len - off) + 1;
    }
    int stdio[3] = {-1, -1, -1}, k = 0;
    for (int i = 0; i < 3; i++)
        if ((req->fd_mask & (1u << i)) && k < nfds) stdio[i] = fds[k++];
    int errp[2] = {-1, -1};
    char *path = NULL;
    if (s->job.pid)
        es_err(&err, ES_ERUN, "another exec is still running in this sandbox");
    else if (!argv[0])
        es_err(&err, ES_ERUN, "empty command");
    else
        path = sb_find_command(argv[0], s->sc.env, s->sc.workdir, &err);
    if (path && pipe2(errp, O_CLOEXEC) < 0) es_err_sys(&err, ES_ERUN, "pipe");
    pid_t pid = err.code ? -1 : spawn(&s->sc, path, argv, stdio, errp[1], &err);
    if (errp[1] >= 0) close(errp[1]);
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    free(path);
    free(argv);
    if (pid < 0) {
        if (errp[0] >= 0) close(errp[0]);
        reply_exec(s, -1, 0, &err);
        return;
    }
    s->job.pid = pid;
    s->job.err_rfd = errp[0];
    if (req->timeout_ms >= 0) {
        clock_gettime(CLOCK_MONOTONIC, &s->job.deadline);
        s->job.deadline.tv_sec += req->timeout_ms / 1000;
        s->job.deadline.tv_nsec += (long)(req->timeout_ms % 1000) * 1000000L;
        if (s->job.deadline.tv_nsec >= 1000000000L)
            s->job.deadline.tv_sec++, s->job.deadline.tv_nsec -= 1000000000L;
        s->job.has_deadline = 1;
    }
}

static void on_control(init_state *s)
{
    static char buf[SB_REQ_MAX];
    char cbuf[CMSG_SPACE(3 * sizeof(int))];
    struct iovec iov = {buf, sizeof buf};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    ssize_t n = recvmsg(s->ctl_fd, &mh, MSG_CMSG_CLOEXEC);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
        s->stop_code = 137; /* the caller is gone or destroyed us */
        return;
    }
    if (n < (ssize_t)sizeof(sb_exec_req)) return;
    int fds[3], nfds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            nfds = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            if (nfds > 3) nfds = 3;
            memcpy(fds, CMSG_DATA(c), (size_t)nfds * sizeof(int));
        }
    sb_exec_req req;
    memcpy(&req, buf, sizeof req);
    start_job(s, &req, buf + sizeof req, (size_t)n - sizeof req, fds, nfds);
}

static int poll_timeout_ms(const init_state *s)
{
    if (!s->job.pid || !s->job.has_deadline || s->job.timed_out) return -1;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long ms = (s->job.deadline.tv_sec - now.tv_sec) * 1000 +
              (s->job.deadline.tv_nsec - now.tv_nsec) / 1000000;
    return ms < 0 ? 0 : (int)ms;
}

static void check_deadline(init_state *s)
{
    if (poll_timeout_ms(s) == 0) {
        s->job.timed_out = 1;
        kill(s->job.pid, SIGKILL);
    }
}

static void run_loop(init_state *s)
{
    while (!s->app_done && s->stop_code < 0) {
        struct pollfd p[3] = {{s->sig_fd, POLLIN, 0},
                              {s->ctl_fd, POLLIN, 0},
                              {sb_tracer_fanotify_fd(s->sc.tracer), POLLIN, 0}};
        int n = poll(p, 3, poll_timeout_ms(s));
        if (n < 0 && errno != EINTR) break;
        if (p[2].revents) sb_tracer_drain_fanotify(s->sc.tracer);
        if (p[0].revents) on_signal(s);
        if (p[1].revents) on_control(s);
        check_deadline(s);
    }
}

/* Kills everything else in the pid namespace, reaps it, records the last events, leaves. */
static void shutdown_container(init_state *s, int code) __attribute__((noreturn));
static void shutdown_container(init_state *s, int code)
{
    kill(-1, SIGKILL);
    int status;
    while (waitpid(-1, &status, __WALL) > 0 || errno == EINTR) {
    }
    sb_tracer_drain_fanotify(s->sc.tracer);
    _exit(code);
}

static void ignore_handler(int sig)
{
    (void)sig;
}

/* Forwarded signals and SIGCHLD are read through a signalfd. pid 1 of a namespace only gets
 * signals from outside it that it handles, hence a (never run) handler besides the block. */
static int block_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &sa, NULL);
    sa.sa_handler = ignore_handler;
    for (size_t i = 0; i < sizeof forwarded_signals / sizeof forwarded_signals[0]; i++) {
        sigaction(forwarded_signals[i], &sa, NULL);
        sigaddset(&set, forwarded_signals[i]);
    }
    sigprocmask(SIG_BLOCK, &set, NULL);
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

static int prepare_process(init_state *s, es_error *err)
{
    const es_sandbox_opts *o = s->sc.l->o;
    if (sb_resolve_user(o->user, &s->sc.id, err) < 0) return -1;
    s->sc.env = sb_build_env(o->env, s->sc.id.home, s->sc.l->hostname);
    s->sc.workdir = o->workdir && *o->workdir ? o->workdir : "/";
    if (s->sc.workdir[0] != '/')
        return es_err(err, ES_ERUN, "working directory must be absolute: %s", s->sc.workdir);
    if (sb_mkdir_p(s->sc.workdir, 0755) < 0)
        return es_err_sys(err, ES_ERUN, "creating working directory %s", s->sc.workdir);
    return 0;
}

static void init_main(sb_launch *l) __attribute__((noreturn));
static void init_main(sb_launch *l)
{
    es_error err;
    memset(&err, 0, sizeof err);
    init_state s;
    memset(&s, 0, sizeof s);
    s.sc.l = l;
    s.ctl_fd = l->ctl_fd;
    s.stop_code = -1;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    char go = 0; /* the caller holds our pidfd and netns before anything can exit */
    if (recv(l->ctl_fd, &go, 1, 0) != 1 || go != 'g') _exit(ES_ERUN);
    s.sig_fd = block_signals();
    if (s.sig_fd < 0) es_err_sys(&err, ES_ERUN, "signalfd");
    if (!err.code) sb_build_container(l, &err);
    if (!err.code) prepare_process(&s, &err);
    if (!err.code && l->o->trace)
        s.sc.tracer = sb_tracer_new(l->trace_fd, l->o->trace_syscalls, &err);
    char *path = NULL;
    if (!err.code && l->o->argv)
        path = sb_find_command(l->o->argv[0], s.sc.env, s.sc.workdir, &err);
    if (!err.code && path) s.app = spawn(&s.sc, path, l->o->argv, NULL, l->status_wfd, &err);
    free(path);
    if (err.code) {
        send_error(l->status_wfd, &err);
        _exit(ES_ERUN);
    }
    close(l->status_wfd); /* the app's CLOEXEC copy now decides when P sees EOF */
    run_loop(&s);
    shutdown_container(&s, s.app_done ? s.app_code : s.stop_code);
}

/* ---------------------------------------------------------------- relay */

static void ignore_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    for (size_t i = 0; i < sizeof forwarded_signals / sizeof forwarded_signals[0]; i++)
        if (forwarded_signals[i] != SIGCONT) sigaction(forwarded_signals[i], &sa, NULL);
    sigaction(SIGPIPE, &sa, NULL);
}

void sb_relay_main(sb_launch *l)
{
    es_error err;
    memset(&err, 0, sizeof err);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    ignore_signals(); /* tty signals reach the app directly; the relay must survive them */
    const es_sandbox_opts *o = l->o;
    install_stdio(o->stdin_fd, o->stdout_fd, o->stderr_fd);
    int keep[] = {l->status_wfd, l->ctl_fd, l->trace_fd};
    close_other_fds(keep, 3);
    int flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC;
    if (o->net != ES_NET_HOST) flags |= CLONE_NEWNET;
    if (unshare(flags) < 0) {
        es_err_sys(&err, ES_ERUN, "unshare(mount, pid, uts, ipc, net namespaces)");
        send_error(l->status_wfd, &err);
        _exit(ES_ERUN);
    }
    pid_t pid = fork();
    if (pid < 0) {
        es_err_sys(&err, ES_ERUN, "fork of the container's init");
        send_error(l->status_wfd, &err);
        _exit(ES_ERUN);
    }
    if (pid == 0) init_main(l);
    sb_msg m;
    memset(&m, 0, sizeof m);
    m.kind = SB_MSG_PID;
    m.pid = pid;
    if (write(l->status_wfd, &m, sizeof m) < 0) kill(pid, SIGKILL);
    close(l->status_wfd);
    close(l->ctl_fd);
    if (l->trace_fd >= 0) close(l->trace_fd);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) _exit(ES_ERUN);
    _exit(code_of(status));
}
