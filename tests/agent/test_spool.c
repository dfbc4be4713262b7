/*
 * tests/agent/test_spool.c: the spool against the faults it claims to survive, on real files in a
 * temporary directory: replay order across reopen, ack watermark persistence, out-of-order acks,
 * torn tails (truncate at every offset of the last record), flipped bytes, both full policies,
 * and kill -9 of a writer process at random moments (every record reported durable before the
 * kill must be there after reopen, with its exact payload).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spool/spool.h"

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ea-spool-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static char *spool_dir(void)
{
    static char d[300];
    snprintf(d, sizeof d, "%s/spool", tmpdir);
    return d;
}

static ea_spool *open_spool(int fsync_policy, uint64_t max_bytes, int full, uint64_t seg_bytes)
{
    ea_spool_config c = {.dir = spool_dir(), .fsync_policy = fsync_policy, .max_bytes = max_bytes,
                         .full_policy = full, .segment_bytes = seg_bytes};
    char err[256] = "";
    ea_spool *s = ea_spool_open(&c, err, sizeof err);
    if (!s)
        fail_msg("open: %s", err);
    return s;
}

static void append_n(ea_spool *s, int n)
{
    char err[256];
    for (int i = 0; i < n; i++) {
        char p[64];
        uint64_t want = ea_spool_next_seq(s), got = 0;
        int len = snprintf(p, sizeof p, "{\"r\":%llu}", (unsigned long long)want);
        assert_int_equal(ea_spool_append(s, p, (size_t)len, &got, err, sizeof err), 0);
        assert_int_equal(got, want);
    }
    assert_int_equal(ea_spool_commit(s, 0), 0);
    assert_int_equal(ea_spool_sync(s), 0);
}

/* Reads everything deliverable from the cursor; checks payload matches seq; returns count and
 * stores seqs in out (if not NULL). */
static size_t drain(ea_spool *s, uint64_t *out, size_t max, int ack)
{
    size_t total = 0;
    for (;;) {
        ea_record_ref refs[100];
        size_t n = ea_spool_peek(s, refs, 100);
        if (!n)
            break;
        for (size_t i = 0; i < n; i++) {
            char p[64];
            int len = snprintf(p, sizeof p, "{\"r\":%llu}", (unsigned long long)refs[i].seq);
            assert_int_equal(refs[i].len, (size_t)len);
            assert_memory_equal(refs[i].data, p, (size_t)len);
            if (out && total < max)
                out[total] = refs[i].seq;
            total++;
            if (ack)
                ea_spool_ack(s, refs[i].seq);
        }
        ea_spool_advance(s, n);
    }
    return total;
}

static void test_replay_in_order_after_reopen(void **state)
{
    (void)state;
    ea_spool *s = open_spool(EA_FSYNC_BATCH, 0, 0, 4096);
    append_n(s, 500);
    ea_spool_close(s);
    s = open_spool(EA_FSYNC_BATCH, 0, 0, 4096);
    uint64_t seqs[600];
    size_t n = drain(s, seqs, 600, 0);
    assert_int_equal(n, 500);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(seqs[i], i + 1);
    ea_spool_stats st;
    ea_spool_get_stats(s, &st);
    assert_true(st.segments > 1);
    assert_int_equal(st.corrupt, 0);
    append_n(s, 1);
    assert_int_equal(drain(s, seqs, 1, 0), 1);
    assert_int_equal(seqs[0], 501);
    ea_spool_close(s);
}

static void test_ack_watermark_persists_and_trims(void **state)
{
    (void)state;
    ea_spool *s = open_spool(EA_FSYNC_ALWAYS, 0, 0, 4096);
    append_n(s, 1000);
    ea_spool_stats before;
    ea_spool_get_stats(s, &before);
    for (uint64_t q = 1; q <= 700; q++)
        ea_spool_ack(s, q);
    assert_int_equal(ea_spool_flush_acks(s), 0);
    ea_spool_stats after;
    ea_spool_get_stats(s, &after);
    assert_int_equal(after.acked_seq, 700);
    assert_true(after.segments < before.segments);
    assert_true(after.bytes < before.bytes);
    ea_spool_close(s);
    s = open_spool(EA_FSYNC_ALWAYS, 0, 0, 4096);
    uint64_t seqs[400];
    assert_int_equal(drain(s, seqs, 400, 0), 300);
    assert_int_equal(seqs[0], 701);
    ea_spool_close(s);
}

static void test_out_of_order_acks_and_rewind(void **state)
{
    (void)state;
    ea_spool *s = open_spool(EA_FSYNC_NONE, 0, 0, 0);
    append_n(s, 10);
    ea_record_ref refs[10];
    assert_int_equal(ea_spool_peek(s, refs, 10), 10);
    ea_spool_advance(s, 10);
    ea_spool_ack(s, 3);
    ea_spool_ack(s, 2);
    ea_spool_ack(s, 5);
    ea_spool_stats st;
    ea_spool_get_stats(s, &st);
    assert_int_equal(st.acked_seq, 0); /* 1 still out */
    ea_spool_ack(s, 1);
    ea_spool_get_stats(s, &st);
    assert_int_equal(st.acked_seq, 3);
    /* reconnect: everything unacked again, acked 5 not re-offered */
    ea_spool_rewind(s);
    uint64_t seqs[10];
    size_t n = drain(s, seqs, 10, 0);
    assert_int_equal(n, 6);
    uint64_t want[] = {4, 6, 7, 8, 9, 10};
    for (size_t i = 0; i < n; i++)
        assert_int_equal(seqs[i], want[i]);
    ea_spool_close(s);
}

static char *last_segment_path(void)
{
    static char path[600];
    DIR *d = opendir(spool_dir());
    assert_non_null(d);
    struct dirent *e;
    char best[64] = "";
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, "seg-", 4) && strcmp(e->d_name, best) > 0)
            snprintf(best, sizeof best, "%s", e->d_name);
    closedir(d);
    snprintf(path, sizeof path, "%s/%s", spool_dir(), best);
    return path;
}

static void test_torn_tail_every_offset(void **state)
{
    (void)state;
    /* the last record is 20 + 8 bytes ({"r":50}); cut it at every length from 1 to 27 bytes */
    for (int cut = 1; cut < 28; cut++) {
        teardown(NULL);
        setup(NULL);
        ea_spool *s = open_spool(EA_FSYNC_BATCH, 0, 0, 0);
        append_n(s, 50);
        ea_spool_close(s);
        char *p = last_segment_path();
        struct stat sb;
        assert_int_equal(stat(p, &sb), 0);
        assert_int_equal(truncate(p, sb.st_size - cut), 0);
        s = open_spool(EA_FSYNC_BATCH, 0, 0, 0);
        ea_spool_stats st;
        ea_spool_get_stats(s, &st);
        assert_int_equal(st.corrupt, 1);
        assert_int_equal(st.next_seq, 50); /* record 50 was torn: its number is reused */
        uint64_t seqs[60];
        assert_int_equal(drain(s, seqs, 60, 0), 49);
        assert_int_equal(seqs[48], 49);
        append_n(s, 2);
        assert_int_equal(drain(s, seqs, 60, 0), 2);
        assert_int_equal(seqs[0], 50);
        assert_int_equal(seqs[1], 51);
        ea_spool_close(s);
    }
}

static void flip_byte(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    unsigned char c;
    assert_int_equal(pread(fd, &c, 1, off), 1);
    c ^= 0x5a;
    assert_int_equal(pwrite(fd, &c, 1, off), 1);
    close(fd);
}

static void test_flipped_bytes_skip_and_count(void **state)
{
    (void)state;
    ea_spool *s = open_spool(EA_FSYNC_BATCH, 0, 0, 0);
    append_n(s, 100); /* records 1..9 are 27 bytes, 10..99 28, 100 is 29 */
    ea_spool_close(s);
    char *p = last_segment_path();
    flip_byte(p, 27 * 2 + 25);          /* payload of record 3 */
    flip_byte(p, 27 * 9 + 28 * 41 + 6); /* length field of record 51 */
    s = open_spool(EA_FSYNC_BATCH, 0, 0, 0);
    uint64_t seqs[100];
    size_t n = drain(s, seqs, 100, 1);
    assert_int_equal(n, 98);
    for (size_t i = 0; i < n; i++)
        assert_true(seqs[i] != 3 && seqs[i] != 51);
    ea_spool_stats st;
    ea_spool_get_stats(s, &st);
    assert_int_equal(st.corrupt, 2);
    assert_int_equal(st.acked_seq, 100); /* the holes do not block the watermark */
    /* rewinding does not count the same holes again */
    ea_spool_rewind(s);
    drain(s, NULL, 0, 0);
    ea_spool_get_stats(s, &st);
    assert_int_equal(st.corrupt, 2);
    ea_spool_close(s);
}

static void test_flipped_byte_in_last_record_of_old_segment(void **state)
{
    (void)state;
    ea_spool *s = open_spool(EA_FSYNC_BATCH, 0, 0, 4096);
    append_n(s, 400);
    ea_spool_close(s);
    /* corrupt the first segment's first record header magic */
    char path[600];
    snprintf(path, sizeof path, "%s/seg-%016x.log", spool_dir(), 1);
    flip_byte(path, 0);
    s = open_spool(EA_FSYNC_BATCH, 0, 0, 4096);
    uint64_t seqs[400];
    size_t n = drain(s, seqs, 400, 1);
    assert_int_equal(n, 399);
    assert_int_equal(seqs[0], 2);
    ea_spool_close(s);
}

static void test_drop_oldest_keeps_cap_and_counts(void **state)
{
    (void)state;
    ea_spool *s = open_spool(EA_FSYNC_NONE, 64 * 1024, EA_FULL_DROP_OLDEST, 0);
    append_n(s, 10000);
    ea_spool_stats st;
    ea_spool_get_stats(s, &st);
    assert_true(st.bytes <= 64 * 1024);
    assert_true(st.dropped_oldest > 0);
    uint64_t seqs[10000];
    size_t n = drain(s, seqs, 10000, 0);
    assert_int_equal(n + st.dropped_oldest, 10000);
    for (size_t i = 1; i < n; i++)
        assert_int_equal(seqs[i], seqs[i - 1] + 1);
    assert_int_equal(seqs[n - 1], 10000);
    ea_spool_close(s);
}

static void test_refuse_when_full(void **state)
{
    (void)state;
    ea_spool *s = open_spool(EA_FSYNC_NONE, 64 * 1024, EA_FULL_REFUSE, 0);
    char err[256];
    int refused = 0, accepted = 0;
    for (int i = 0; i < 5000; i++) {
        int r = ea_spool_append(s, "{\"x\":1}", 7, NULL, err, sizeof err);
        assert_true(r == 0 || r == -2);
        r == 0 ? accepted++ : refused++;
    }
    assert_true(refused > 0);
    ea_spool_stats st;
    ea_spool_get_stats(s, &st);
    assert_int_equal(st.refused, (uint64_t)refused);
    assert_true(st.bytes <= 64 * 1024);
    /* once delivered and acked, there is room again */
    ea_record_ref refs[1000];
    size_t n;
    while ((n = ea_spool_peek(s, refs, 1000))) {
        for (size_t i = 0; i < n; i++)
            ea_spool_ack(s, refs[i].seq);
        ea_spool_advance(s, n);
    }
    assert_int_equal(ea_spool_flush_acks(s), 0);
    assert_int_equal(ea_spool_append(s, "{\"x\":1}", 7, NULL, err, sizeof err), 0);
    ea_spool_close(s);
}

/* Child: appends forever in groups, reporting each durable seq on the pipe (the "ack to sender");
 * acks delivered records now and then so the ack file and trimming are exercised too. */
static void writer_child(int wfd, unsigned seed)
{
    srand(seed);
    ea_spool *s = open_spool(EA_FSYNC_BATCH, 0, 0, 8192);
    char err[256];
    for (;;) {
        int k = 1 + rand() % 50;
        for (int i = 0; i < k; i++) {
            char p[64];
            int len = snprintf(p, sizeof p, "{\"r\":%llu}", (unsigned long long)ea_spool_next_seq(s));
            if (ea_spool_append(s, p, (size_t)len, NULL, err, sizeof err) < 0)
                _exit(3);
        }
        if (ea_spool_sync(s) < 0)
            _exit(4);
        uint64_t d = ea_spool_durable_seq(s);
        if (write(wfd, &d, sizeof d) != sizeof d)
            _exit(5);
        if (rand() % 4 == 0) {
            ea_record_ref refs[64];
            size_t n = ea_spool_peek(s, refs, 64);
            for (size_t i = 0; i < n; i++)
                ea_spool_ack(s, refs[i].seq);
            ea_spool_advance(s, n);
            ea_spool_flush_acks(s);
        }
    }
}

static void test_kill9_rounds_lose_nothing_durable(void **state)
{
    (void)state;
    srand((unsigned)time(NULL));
    for (int round = 0; round < 40; round++) {
        int pfd[2];
        assert_int_equal(pipe(pfd), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(pfd[0]);
            writer_child(pfd[1], (unsigned)rand());
        }
        close(pfd[1]);
        struct timespec ts = {0, (long)(rand() % 30000) * 1000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        assert_true(WIFSIGNALED(status));
        uint64_t d, max_durable = 0;
        while (read(pfd[0], &d, sizeof d) == sizeof d)
            if (d > max_durable)
                max_durable = d;
        close(pfd[0]);
        ea_spool *s = open_spool(EA_FSYNC_BATCH, 0, 0, 8192);
        ea_spool_stats st;
        ea_spool_get_stats(s, &st);
        uint64_t first = st.acked_seq + 1;
        static uint64_t seqs[200000];
        size_t n = drain(s, seqs, 200000, 0);
        /* every durable record after the watermark is present, in order, with its payload */
        if (max_durable >= first) {
            assert_true(n >= max_durable - first + 1);
            for (uint64_t q = first; q <= max_durable; q++)
                assert_int_equal(seqs[q - first], q);
        }
        assert_int_equal(st.corrupt, 0);
        ea_spool_close(s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_replay_in_order_after_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack_watermark_persists_and_trims, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_order_acks_and_rewind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_every_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flipped_bytes_skip_and_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flipped_byte_in_last_record_of_old_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop_oldest_keeps_cap_and_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_when_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_rounds_lose_nothing_durable, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
