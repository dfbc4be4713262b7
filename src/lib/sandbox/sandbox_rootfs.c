/*
 * The container's root file system and its uts/net setup, built by init inside its fresh mount
 * namespace: private propagation; a tmpfs state dir; overlayfs with the image dir as its only
 * (read-only) lower layer and upper/work dirs on that tmpfs; /proc (with /proc/sys and global
 * knobs read-only, kernel memory masked), /dev (tmpfs with bind-mounted host null zero full random
 * urandom tty, a new devpts, shm, fd/std* links), /tmp tmpfs, /sys read-only; pivot_root; then
 * /etc/hostname, /etc/hosts, /etc/resolv.conf written into the overlay, hostname set, lo up.
 *
 * Invariants: nothing is ever mounted or written on the host (all mounts are in the private
 * namespace; the image dir is only a lower layer). Mount targets are lstat'ed and, when the image
 * has something else than a directory there (a symlink to /etc, say), replaced in the overlay view,
 * never followed. Every file write happens after pivot_root, so even absolute symlinks in the image
 * resolve inside the container.
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox/sandbox_internal.h"

#define SB_DEFAULT_HOSTS "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"

static int mount_or_err(const char *src, const char *dst, const char *type, unsigned long flags,
                        const char *data, es_error *err)
{
    if (mount(src, dst, type, flags, data) < 0)
        return es_err_sys(err, ES_ERUN, "mount %s on %s", type ? type : src, dst);
    return 0;
}

/* Makes root/name a real directory: an image entry of another type there (a symlink, a file) is
 * removed from the overlay view, never followed. */
static int ensure_mount_dir(const char *root, const char *name, es_error *err)
{
    es_cleanup_free char *p = es_xasprintf("%s/%s", root, name);
    struct stat st;
    if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
    if (unlink(p) < 0 && errno != ENOENT)
        return es_err_sys(err, ES_ERUN, "replacing /%s in the container", name);
    if (mkdir(p, 0755) < 0) return es_err_sys(err, ES_ERUN, "creating /%s in the container", name);
    return 0;
}

/* overlayfs option values must escape ',' ':' and '\'. */
static char *escape_overlay_path(const char *p)
{
    char *out = es_xmalloc(strlen(p) * 2 + 1), *o = out;
    for (; *p; p++) {
        if (*p == ',' || *p == ':' || *p == '\\') *o++ = '\\';
        *o++ = *p;
    }
    *o = '\0';
    return out;
}

static int mount_overlay_root(const sb_launch *l, const char *root, es_error *err)
{
    const char *st = l->statedir;
    if (mount_or_err("tmpfs", st, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700", err) < 0) return -1;
    es_cleanup_free char *upper = es_xasprintf("%s/upper", st);
    es_cleanup_free char *work = es_xasprintf("%s/work", st);
    if (mkdir(upper, 0755) < 0 || mkdir(work, 0700) < 0 || mkdir(root, 0755) < 0)
        return es_err_sys(err, ES_ERUN, "creating the overlay dirs in %s", st);
    es_cleanup_free char *lower = escape_overlay_path(l->rootfs);
    es_cleanup_free char *opts =
        es_xasprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work);
    if (mount("overlay", root, "overlay", 0, opts) < 0)
        return es_err_sys(err, ES_ERUN, "overlay mount of %s (lower) on a tmpfs upper", l->rootfs);
    return 0;
}

static int bind_dev_node(const char *dev, const char *name, es_error *err)
{
    es_cleanup_free char *dst = es_xasprintf("%s/%s", dev, name);
    es_cleanup_free char *src = es_xasprintf("/dev/%s", name);
    int fd = open(dst, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666);
    if (fd < 0) return es_err_sys(err, ES_ERUN, "creating /dev/%s in the container", name);
    close(fd);
    return mount_or_err(src, dst, NULL, MS_BIND, NULL, err);
}

static int build_dev(const char *root, es_error *err)
{
    static const char *const nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
    es_cleanup_free char *dev = es_xasprintf("%s/dev", root);
    if (mount_or_err("tmpfs", dev, "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k",
                     err) < 0)
        return -1;
    for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++)
        if (bind_dev_node(dev, nodes[i], err) < 0) return -1;
    es_cleanup_free char *shm = es_xasprintf("%s/shm", dev);
    es_cleanup_free char *pts = es_xasprintf("%s/pts", dev);
    if (mkdir(shm, 01777) < 0 || mkdir(pts, 0755) < 0)
        return es_err_sys(err, ES_ERUN, "creating /dev/shm, /dev/pts");
    if (mount_or_err("shm", shm, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k",
                     err) < 0)
        return -1;
    if (mount("devpts", pts, "devpts", MS_NOSUID | MS_NOEXEC,
              "newinstance,ptmxmode=0666,mode=0620,gid=5") == 0) {
        es_cleanup_free char *ptmx = es_xasprintf("%s/ptmx", dev);
        if (symlink("pts/ptmx", ptmx) < 0) return es_err_sys(err, ES_ERUN, "creating /dev/ptmx");
    }
    static const char *const links[][2] = {{"/proc/self/fd", "fd"},
                                           {"/proc/self/fd/0", "stdin"},
                                           {"/proc/self/fd/1", "stdout"},
                                           {"/proc/self/fd/2", "stderr"}};
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
        es_cleanup_free char *p = es_xasprintf("%s/%s", dev, links[i][1]);
        if (symlink(links[i][0], p) < 0)
            return es_err_sys(err, ES_ERUN, "creating /dev/%s", links[i][1]);
    }
    return 0;
}

/* As docker: /proc/sys and a few global knobs read-only (container root could otherwise change
 * the host kernel, e.g. kernel.core_pattern), kernel memory and keys masked with /dev/null. */
static void protect_proc(const char *root)
{
    static const char *const ro[] = {"sys", "sysrq-trigger", "irq", "bus", "fs"};
    static const char *const masked[] = {"kcore", "keys", "timer_list", "sched_debug"};
    for (size_t i = 0; i < sizeof ro / sizeof ro[0]; i++) {
        es_cleanup_free char *p = es_xasprintf("%s/proc/%s", root, ro[i]);
        if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) == 0)
            mount(NULL, p, NULL,
                  MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    }
    for (size_t i = 0; i < sizeof masked / sizeof masked[0]; i++) {
        es_cleanup_free char *p = es_xasprintf("%s/proc/%s", root, masked[i]);
        mount("/dev/null", p, NULL, MS_BIND, NULL);
    }
}

static int mount_special_dirs(const char *root, es_error *err)
{
    static const char *const dirs[] = {"proc", "dev", "tmp", "sys"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
        if (ensure_mount_dir(root, dirs[i], err) < 0) return -1;
    es_cleanup_free char *proc = es_xasprintf("%s/proc", root);
    es_cleanup_free char *tmp = es_xasprintf("%s/tmp", root);
    es_cleanup_free char *sys = es_xasprintf("%s/sys", root);
    if (mount_or_err("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, err) < 0)
        return -1;
    protect_proc(root);
    if (build_dev(root, err) < 0) return -1;
    if (mount_or_err("tmpfs", tmp, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", err) < 0) return -1;
    /* sysfs is best effort (read-only, for tools that look at /sys) */
    mount("sysfs", sys, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    return 0;
}

static int pivot_into(const char *root, es_error *err)
{
    if (chdir(root) < 0) return es_err_sys(err, ES_ERUN, "chdir %s", root);
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        return es_err_sys(err, ES_ERUN, "pivot_root into %s", root);
    if (umount2(".", MNT_DETACH) < 0) return es_err_sys(err, ES_ERUN, "detaching the old root");
    if (chdir("/") < 0) return es_err_sys(err, ES_ERUN, "chdir /");
    return 0;
}

/* Replaces path inside the container (after pivot_root) with the given contents. */
static int write_container_file(const char *path, const char *data, es_error *err)
{
    if (unlink(path) < 0 && errno != ENOENT && errno != EISDIR)
        return es_err_sys(err, ES_ERUN, "replacing %s in the container", path);
    int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) return es_err_sys(err, ES_ERUN, "writing %s in the container", path);
    size_t n = strlen(data);
    ssize_t w = write(fd, data, n);
    close(fd);
    if (w != (ssize_t)n) return es_err_sys(err, ES_ERUN, "writing %s in the container", path);
    return 0;
}

static int write_etc_files(const sb_launch *l, es_error *err)
{
    struct stat st;
    if (lstat("/etc", &st) < 0 && mkdir("/etc", 0755) < 0)
        return es_err_sys(err, ES_ERUN, "creating /etc");
    es_cleanup_free char *hostname = es_xasprintf("%s\n", l->hostname);
    es_cleanup_free char *hosts =
        l->o->net == ES_NET_HOST && l->host_hosts
            ? es_xstrdup(l->host_hosts)
            : es_xasprintf(SB_DEFAULT_HOSTS "127.0.1.1\t%s\n", l->hostname);
    if (write_container_file("/etc/hostname", hostname, err) < 0) return -1;
    if (write_container_file("/etc/hosts", hosts, err) < 0) return -1;
    return write_container_file("/etc/resolv.conf", l->resolv_conf ? l->resolv_conf : "", err);
}

static int bring_lo_up(es_error *err)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return es_err_sys(err, ES_ERUN, "socket for lo");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
    int rc = ioctl(s, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        rc = ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    close(s);
    return rc < 0 ? es_err_sys(err, ES_ERUN, "bringing lo up") : 0;
}

/* As docker in its own netns: any user may bind ports < 1024 (nginx as non-root on port 80).
 * /proc/sys/net is per network namespace, and we are already in the new one. */
static void allow_unprivileged_ports(void)
{
    int fd = open("/proc/sys/net/ipv4/ip_unprivileged_port_start", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return;
    if (write(fd, "0", 1) < 0) { /* best effort: old kernels lack the knob */
    }
    close(fd);
}

int sb_build_container(const sb_launch *l, es_error *err)
{
    es_cleanup_free char *root = es_xasprintf("%s/root", l->statedir);
    if (l->o->net != ES_NET_HOST) allow_unprivileged_ports();
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return es_err_sys(err, ES_ERUN, "making mounts private");
    if (mount_overlay_root(l, root, err) < 0) return -1;
    if (mount_special_dirs(root, err) < 0) return -1;
    if (pivot_into(root, err) < 0) return -1;
    if (write_etc_files(l, err) < 0) return -1;
    if (sethostname(l->hostname, strlen(l->hostname)) < 0)
        return es_err_sys(err, ES_ERUN, "sethostname");
    if (l->o->net == ES_NET_PRIVATE && bring_lo_up(err) < 0) return -1;
    return 0;
}
