/*
 * edgeslim run: runs an image (or an unpacked root directory) in edgeslim's own sandbox and
 * returns the app's exit code. Signals sent to edgeslim (kill, timeout, CI runners) are forwarded
 * to the app; signals from the terminal reach the app directly (same process group). Whatever
 * happens, the temporary root is removed and no mount is left behind (they live and die with the
 * sandbox's mount namespace).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <glob.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "fs/apply.h"
#include "oci/image.h"
#include "sandbox/sandbox.h"
#include "util/progress.h"

static const int run_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

typedef struct run_args {
    const char *image, *rootfs, *platform, *user, *workdir, *entrypoint, *hostname, *trace_out;
    es_net_mode net;
    char **env;
    size_t n_env;
    char **cmd;
} run_args;

static void usage(FILE *f)
{
    fprintf(
        f,
        "Usage: edgeslim run [OPTIONS] IMAGE [-- CMD [ARG...]]\n"
        "       edgeslim run [OPTIONS] --rootfs DIR -- CMD [ARG...]\n\n"
        "Runs an image in edgeslim's own sandbox: no daemon, no cgroups. The layers are unpacked\n"
        "into a temporary root used through an overlay (the run cannot change it), with private\n"
        "mount/pid/uts/ipc/network namespaces, minimal /dev, /proc, tmpfs /tmp, the image's user,\n"
        "env, workdir, entrypoint and cmd. Exits with the app's exit code (128+N if killed by "
        "N).\n\n"
        "Options:\n"
        "  --net MODE          private (default: own netns, loopback only), none (no interface\n"
        "                      up), host (the host's network)\n"
        "  --user USER         name, uid, name:group or uid:gid (resolved in the image)\n"
        "  --env, -e K=V       set an environment variable (repeatable; K alone removes K)\n"
        "  --workdir, -w DIR   working directory (created if missing)\n"
        "  --entrypoint CMD    replace the image's entrypoint ('' clears it)\n"
        "  --hostname NAME     container hostname (default edgeslim)\n"
        "  --platform OS/ARCH  choose from a multi-platform image (must match this host)\n"
        "  --rootfs DIR        run an unpacked root directory instead of an image\n"
        "  --trace FILE        record the files the app touched (JSON), as slim sees them\n"
        "  --help              this help\n\n"
        "CMD after -- replaces the image's Cmd (docker semantics). See docs/run.md.\n");
}

static int parse_net(const char *s, es_net_mode *out)
{
    if (!strcmp(s, "private"))
        *out = ES_NET_PRIVATE;
    else if (!strcmp(s, "none"))
        *out = ES_NET_NONE;
    else if (!strcmp(s, "host"))
        *out = ES_NET_HOST;
    else
        return -1;
    return 0;
}

static int parse_args(int argc, char **argv, run_args *a)
{
    enum { O_NET = 256, O_USER, O_ENTRY, O_HOST, O_PLAT, O_ROOTFS, O_TRACE, O_HELP };
    static const struct option opts[] = {{"net", required_argument, 0, O_NET},
                                         {"user", required_argument, 0, O_USER},
                                         {"env", required_argument, 0, 'e'},
                                         {"workdir", required_argument, 0, 'w'},
                                         {"entrypoint", required_argument, 0, O_ENTRY},
                                         {"hostname", required_argument, 0, O_HOST},
                                         {"platform", required_argument, 0, O_PLAT},
                                         {"rootfs", required_argument, 0, O_ROOTFS},
                                         {"trace", required_argument, 0, O_TRACE},
                                         {"help", no_argument, 0, O_HELP},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+e:w:", opts, NULL)) != -1) {
        switch (c) {
        case O_NET:
            if (parse_net(optarg, &a->net) < 0)
                return cli_usage_error("run", "--net must be private, none or host");
            break;
        case O_USER:
            a->user = optarg;
            break;
        case 'e':
            a->env = es_xrealloc(a->env, (a->n_env + 1) * sizeof *a->env);
            a->env[a->n_env++] = optarg;
            break;
        case 'w':
            a->workdir = optarg;
            break;
        case O_ENTRY:
            a->entrypoint = optarg;
            break;
        case O_HOST:
            a->hostname = optarg;
            break;
        case O_PLAT:
            a->platform = optarg;
            break;
        case O_ROOTFS:
            a->rootfs = optarg;
            break;
        case O_TRACE:
            a->trace_out = optarg;
            break;
        case O_HELP:
            usage(stdout);
            return -1;
        default:
            return cli_usage_error("run", "unknown option");
        }
    }
    if (!a->rootfs) {
        if (optind >= argc) return cli_usage_error("run", "missing IMAGE");
        a->image = argv[optind++];
    }
    if (optind < argc && strcmp(argv[optind - 1], "--") != 0 && strcmp(argv[optind], "--") == 0)
        optind++;
    if (optind < argc) a->cmd = argv + optind;
    if (a->rootfs && !a->cmd) return cli_usage_error("run", "--rootfs needs a command after --");
    return 0;
}

/* Applies one --env K=V (or K to remove) to a NULL-terminated, owned env list. */
static void apply_env(char ***env, const char *kv)
{
    size_t klen = strcspn(kv, "=");
    size_t n = 0;
    for (char **p = *env; p && *p; p++)
        n++;
    for (size_t i = 0; i < n; i++) {
        if (strncmp((*env)[i], kv, klen) != 0 || (*env)[i][klen] != '=') continue;
        free((*env)[i]);
        if (kv[klen] == '=') {
            (*env)[i] = es_xstrdup(kv);
        } else {
            memmove(&(*env)[i], &(*env)[i + 1], (n - i) * sizeof **env);
        }
        return;
    }
    if (kv[klen] != '=') return;
    *env = es_xrealloc(*env, (n + 2) * sizeof **env);
    (*env)[n] = es_xstrdup(kv);
    (*env)[n + 1] = NULL;
}

/* Signals are blocked for the whole command and read through a signalfd, so one arriving during
 * the unpack is handled (cleanup, exit 128+N) instead of killing us half way. */
static int block_run_signals(sigset_t *set)
{
    sigemptyset(set);
    for (size_t i = 0; i < sizeof run_signals / sizeof run_signals[0]; i++)
        sigaddset(set, run_signals[i]);
    sigprocmask(SIG_BLOCK, set, NULL);
    return signalfd(-1, set, SFD_CLOEXEC | SFD_NONBLOCK);
}

static int pending_stop_signal(int sfd)
{
    struct signalfd_siginfo si;
    while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
        if (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM || si.ssi_signo == SIGHUP ||
            si.ssi_signo == SIGQUIT)
            return (int)si.ssi_signo;
    return 0;
}

/* Waits for the app, forwarding signals sent to us (not those from the terminal: the app, in
 * our process group, got those itself). */
static int wait_forwarding(es_sandbox *sb, int sfd, int *code, es_error *err)
{
    for (;;) {
        struct pollfd p[2] = {{es_sandbox_pollfd(sb), POLLIN, 0}, {sfd, POLLIN, 0}};
        if (poll(p, 2, -1) < 0 && errno != EINTR) return es_err_sys(err, ES_EFAIL, "poll");
        if (p[1].revents) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
                if (si.ssi_code != SI_KERNEL) es_sandbox_signal(sb, (int)si.ssi_signo);
        }
        if (p[0].revents) return es_sandbox_wait(sb, -1, code, err);
    }
}

static const char *op_names[] = {"open", "exec", "stat", "readlink", "listdir", "missing", "dir"};

static int write_trace(es_sandbox *sb, const char *file, es_error *err)
{
    const es_trace_path *paths;
    size_t n = es_sandbox_trace_paths(sb, &paths);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *ops = json_array();
        for (unsigned b = 0; b < sizeof op_names / sizeof op_names[0]; b++)
            if (paths[i].ops & (1u << b)) json_array_append_new(ops, json_string(op_names[b]));
        json_array_append_new(arr, json_pack("{s:s, s:o}", "path", paths[i].path, "ops", ops));
    }
    json_t *sys = json_array();
    const char *const *names;
    size_t ns = es_sandbox_trace_syscalls(sb, &names);
    for (size_t i = 0; i < ns; i++)
        json_array_append_new(sys, json_string(names[i]));
    json_t *doc = json_pack("{s:o, s:o, s:b}", "paths", arr, "syscalls", sys, "overflowed",
                            es_sandbox_trace_overflowed(sb));
    es_cleanup_free char *tmp = es_xasprintf("%s.tmp.%d", file, (int)getpid());
    int rc = json_dump_file(doc, tmp, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(doc);
    if (rc < 0 || rename(tmp, file) < 0) {
        unlink(tmp);
        return es_err_sys(err, ES_EIO, "writing trace %s", file);
    }
    return 0;
}

typedef struct run_state {
    es_image *img;
    es_run_config rc;
    char *tmp_rootfs;
    es_sandbox *sb;
} run_state;

static void run_cleanup(run_state *s)
{
    es_sandbox_destroy(s->sb);
    if (s->tmp_rootfs) es_remove_tree(s->tmp_rootfs, NULL);
    free(s->tmp_rootfs);
    es_run_config_free(&s->rc);
    es_image_close(s->img);
}

/* Removes the unpack dir and any sibling es_unpack_image was filling ("DIR.tmp-XXXXXX"). */
static void remove_unpack_dirs(const char *dir)
{
    es_cleanup_free char *pattern = es_xasprintf("%s.tmp-*", dir);
    glob_t g;
    if (glob(pattern, GLOB_NOSORT, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++)
            es_remove_tree(g.gl_pathv[i], NULL);
        globfree(&g);
    }
    es_remove_tree(dir, NULL);
}

static void unpack_child(es_image *img, const char *dir, int out_fd) __attribute__((noreturn));
static void unpack_child(es_image *img, const char *dir, int out_fd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    es_apply_opts o;
    es_apply_opts_default(&o);
    o.allow_devices = geteuid() == 0;
    o.skip_devices = !o.allow_devices;
    es_progress *prog = es_progress_new("unpacking", 0);
    es_error e;
    memset(&e, 0, sizeof e);
    int rc = es_unpack_image(img, dir, &o, NULL, prog, &e);
    es_progress_done(prog);
    if (rc < 0 && write(out_fd, &e, sizeof e) < 0) _exit(2);
    _exit(rc < 0 ? 1 : 0);
}

/* The layers are unpacked in a child process so that a signal (Ctrl-C, kill) stops the run at once
 * instead of after the unpack: the child is killed and its dirs removed. Returns 0 unpacked,
 * 1 stopped by *stop_sig, -1 error. */
static int unpack_interruptibly(run_state *s, int sfd, int *stop_sig, es_error *err)
{
    const char *tmp = getenv("TMPDIR");
    s->tmp_rootfs = es_xasprintf("%s/edgeslim-rootfs-XXXXXX", tmp && *tmp ? tmp : "/var/tmp");
    if (!mkdtemp(s->tmp_rootfs)) {
        es_err_sys(err, ES_EIO, "creating %s", s->tmp_rootfs);
        free(s->tmp_rootfs);
        s->tmp_rootfs = NULL;
        return -1;
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) return es_err_sys(err, ES_EFAIL, "pipe");
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return es_err_sys(err, ES_EFAIL, "fork");
    if (pid == 0) unpack_child(s->img, s->tmp_rootfs, p[1]);
    close(p[1]);
    es_cleanup_close int rfd = p[0];
    for (;;) {
        struct pollfd pf[2] = {{rfd, POLLIN, 0}, {sfd, POLLIN, 0}};
        if (poll(pf, 2, -1) < 0 && errno != EINTR) return es_err_sys(err, ES_EFAIL, "poll");
        int sig = pf[1].revents ? pending_stop_signal(sfd) : 0;
        if (sig) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            remove_unpack_dirs(s->tmp_rootfs);
            *stop_sig = sig;
            return 1;
        }
        if (!pf[0].revents) continue;
        es_error e;
        ssize_t n = read(rfd, &e, sizeof e);
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        if (n == (ssize_t)sizeof e) {
            *err = e;
            return -1;
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            return es_err(err, ES_EFAIL, "unpacking %s failed (status %d)", s->img->ref.path,
                          status);
        return 0;
    }
}

static int prepare_image(const run_args *a, run_state *s, int sfd, int *stop_sig, es_error *err)
{
    es_open_opts oo = {.platform = a->platform};
    if (es_image_open(a->image, &oo, &s->img, err) < 0) return -1;
    if (es_sandbox_check_platform(s->img, err) < 0) return -1;
    if (es_run_config_from_image(s->img, a->cmd, a->entrypoint, &s->rc, err) < 0) return -1;
    return unpack_interruptibly(s, sfd, stop_sig, err);
}

static int run_main(const run_args *a, run_state *s, int sfd, es_error *err)
{
    int stop_sig = 0;
    int pr = a->image ? prepare_image(a, s, sfd, &stop_sig, err) : 0;
    if (pr < 0) return -1;
    if (pr == 1) return 128 + stop_sig;
    if (a->rootfs) { /* no image: parse_args made sure --rootfs comes with a command */
        s->rc.argv = es_xcalloc(1, sizeof *s->rc.argv);
        s->rc.env = es_xcalloc(1, sizeof *s->rc.env);
        size_t n = 0;
        for (; a->cmd[n]; n++) {
            s->rc.argv = es_xrealloc(s->rc.argv, (n + 2) * sizeof *s->rc.argv);
            s->rc.argv[n] = es_xstrdup(a->cmd[n]);
            s->rc.argv[n + 1] = NULL;
        }
    }
    for (size_t i = 0; i < a->n_env; i++)
        apply_env(&s->rc.env, a->env[i]);
    int sig = pending_stop_signal(sfd);
    if (sig) return 128 + sig;
    es_sandbox_opts o;
    es_sandbox_opts_init(&o);
    o.rootfs = a->rootfs ? a->rootfs : s->tmp_rootfs;
    o.argv = s->rc.argv;
    o.env = s->rc.env;
    o.workdir = a->workdir ? a->workdir : s->rc.workdir;
    o.user = a->user ? a->user : s->rc.user;
    o.net = a->net;
    o.hostname = a->hostname;
    o.trace = o.trace_syscalls = a->trace_out != NULL;
    if (es_sandbox_start(&o, &s->sb, err) < 0) return -1;
    int code = 0;
    if (wait_forwarding(s->sb, sfd, &code, err) < 0) return -1;
    if (a->trace_out && write_trace(s->sb, a->trace_out, err) < 0) return -1;
    return code;
}

int cmd_run(int argc, char **argv)
{
    run_args a;
    memset(&a, 0, sizeof a);
    int pr = parse_args(argc, argv, &a); /* -1: --help printed; > 0: usage error printed */
    if (pr != 0) {
        free(a.env);
        return pr < 0 ? ES_OK : ES_EUSAGE;
    }
    es_progress_enable(isatty(2));
    sigset_t set;
    int sfd = block_run_signals(&set);
    run_state s;
    memset(&s, 0, sizeof s);
    es_error err;
    memset(&err, 0, sizeof err);
    int code = run_main(&a, &s, sfd, &err);
    run_cleanup(&s);
    free(a.env);
    close(sfd);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    return code < 0 ? cli_fail("run", &err) : code;
}
