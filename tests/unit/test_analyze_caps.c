/*
 * security.capability decoding: revision 2 and 3 blobs as setcap writes them (the revision 2 one
 * is taken from a real file: setcap on a temp file, read back with getxattr when the filesystem
 * allows), revision 1, and malformed blobs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cmocka.h>

#include "analyze/caps.h"

static void le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16),
    p[3] = (uint8_t)(v >> 24);
}

static void rev2_net_bind_ep(void **state)
{
    (void)state;
    uint8_t b[20] = {0};
    le32(b, 0x02000001);
    le32(b + 4, 1u << 10); /* cap_net_bind_service */
    es_caps c;
    assert_int_equal(es_caps_decode(b, sizeof b, &c), 0);
    assert_int_equal(c.revision, 2);
    assert_true(c.effective);
    assert_int_equal(c.permitted, 1u << 10);
    char t[256];
    es_caps_text(&c, t, sizeof t);
    assert_string_equal(t, "cap_net_bind_service=ep");
}

static void rev3_high_caps_and_inheritable(void **state)
{
    (void)state;
    uint8_t b[24] = {0};
    le32(b, 0x03000000);
    le32(b + 4, (1u << 13) | (1u << 12)); /* net_raw, net_admin */
    le32(b + 8, 1u << 12);                /* inheritable net_admin */
    le32(b + 12, 1u << (39 - 32));        /* cap_bpf */
    le32(b + 20, 1000);
    es_caps c;
    assert_int_equal(es_caps_decode(b, sizeof b, &c), 0);
    assert_int_equal(c.revision, 3);
    assert_int_equal(c.rootid, 1000);
    char t[256];
    es_caps_text(&c, t, sizeof t);
    assert_string_equal(t, "cap_net_admin=ip cap_net_raw,cap_bpf=p");
    assert_string_equal(es_cap_name(40), "cap_checkpoint_restore");
    assert_null(es_cap_name(41));
}

static void rev1_and_malformed(void **state)
{
    (void)state;
    uint8_t b[24] = {0};
    le32(b, 0x01000000);
    le32(b + 4, 1u << 7);
    es_caps c;
    assert_int_equal(es_caps_decode(b, 12, &c), 0);
    assert_int_equal(c.permitted, 1u << 7);
    assert_int_equal(es_caps_decode(b, 20, &c), -1); /* rev1 must be 12 bytes */
    assert_int_equal(es_caps_decode(b, 3, &c), -1);
    assert_int_equal(es_caps_decode(NULL, 0, &c), -1);
    le32(b, 0x04000000);
    assert_int_equal(es_caps_decode(b, 24, &c), -1);
    le32(b, 0x02000100); /* undefined flag bits */
    assert_int_equal(es_caps_decode(b, 20, &c), -1);
}

/* The blob the kernel stores for `setcap cap_net_raw+ep`, when we can make one here. */
static void real_setcap_blob(void **state)
{
    (void)state;
    char path[] = "/tmp/es-caps-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "setcap cap_net_raw+ep %s 2>/dev/null", path);
    uint8_t b[64];
    ssize_t n = -1;
    if (system(cmd) == 0) n = getxattr(path, "security.capability", b, sizeof b);
    unlink(path);
    if (n <= 0) skip();
    es_caps c;
    assert_int_equal(es_caps_decode(b, (size_t)n, &c), 0);
    char t[256];
    es_caps_text(&c, t, sizeof t);
    assert_string_equal(t, "cap_net_raw=ep");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rev2_net_bind_ep),
        cmocka_unit_test(rev3_high_caps_and_inheritable),
        cmocka_unit_test(rev1_and_malformed),
        cmocka_unit_test(real_setcap_blob),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
