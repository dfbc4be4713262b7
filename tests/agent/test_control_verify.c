/*
 * test_control_verify.c: signed control documents. Keys and signatures come from the openssl CLI
 * (`openssl genpkey -algorithm ed25519`, `openssl pkeyutl -sign -rawin`), exactly as an operator
 * makes them (docs/agent-control.md); the agent's check must accept those and refuse any change.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "control/verify.h"

static char dir[64];
static const char payload[] = "{\"version\":7,\"routes\":[{\"match\":\"temp\",\"deadband\":0.5}]}";

static void run(const char *cmd)
{
    char full[1024];
    snprintf(full, sizeof full, "cd '%s' && %s", dir, cmd);
    if (system(full) != 0) fail_msg("command failed: %s", cmd);
}

static size_t read_file(const char *name, unsigned char *buf, size_t cap)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

static void path_of(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", dir, name);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/ea-verify-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    char path[128];
    path_of(path, sizeof path, "payload.json");
    FILE *f = fopen(path, "wb");
    fwrite(payload, 1, strlen(payload), f);
    fclose(f);
    run("openssl genpkey -algorithm ed25519 -out key.pem 2>/dev/null && "
        "openssl pkey -in key.pem -pubout -out pub.pem && "
        "openssl pkey -in key.pem -pubout -outform DER -out pub.der && "
        "openssl genpkey -algorithm ed25519 -out other.pem 2>/dev/null && "
        "openssl pkey -in other.pem -pubout -outform DER -out other.der && "
        "openssl pkeyutl -sign -inkey key.pem -rawin -in payload.json -out sig.bin");
    return sodium_init() < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

/* The raw key is the last 32 bytes of the DER SubjectPublicKeyInfo. */
static void raw_key(const char *der, unsigned char key[32])
{
    unsigned char buf[128];
    size_t n = read_file(der, buf, sizeof buf);
    assert_int_equal(n, 44);
    memcpy(key, buf + n - 32, 32);
}

static char *b64(const unsigned char *p, size_t n)
{
    size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
    char *s = malloc(cap);
    sodium_bin2base64(s, cap, p, n, sodium_base64_VARIANT_ORIGINAL);
    return s;
}

/* {"payload": b64(payload_bytes), "signature": b64(sig)} */
static char *document(const unsigned char *pl, size_t pl_len, const unsigned char *sig,
                      size_t sig_len)
{
    char *a = b64(pl, pl_len), *b = b64(sig, sig_len);
    size_t n = strlen(a) + strlen(b) + 64;
    char *doc = malloc(n);
    snprintf(doc, n, "{\"payload\": \"%s\",\n \"signature\": \"%s\"}", a, b);
    free(a);
    free(b);
    return doc;
}

static int verify(const char *doc, const unsigned char key[32], char *err, size_t errlen)
{
    char *out = NULL;
    size_t out_len = 0;
    int rc = ea_control_verify(doc, strlen(doc), key, &out, &out_len, err, errlen);
    if (rc == 0) {
        assert_int_equal(out_len, strlen(payload));
        assert_string_equal(out, payload);
    } else {
        assert_null(out);
    }
    free(out);
    return rc;
}

static void test_valid_signature_accepted(void **state)
{
    (void)state;
    unsigned char key[32], sig[128];
    raw_key("pub.der", key);
    size_t sl = read_file("sig.bin", sig, sizeof sig);
    assert_int_equal(sl, 64);
    char *doc = document((const unsigned char *)payload, strlen(payload), sig, sl);
    char err[256] = "";
    if (verify(doc, key, err, sizeof err) != 0) fail_msg("refused: %s", err);
    /* unknown members are ignored (not signed), member order does not matter */
    char *swapped = malloc(strlen(doc) + 64);
    char *a = b64((const unsigned char *)payload, strlen(payload)), *b = b64(sig, sl);
    sprintf(swapped, "{\"note\":{\"x\":[1,2,\"}\"]},\"signature\":\"%s\",\"payload\":\"%s\"}", b,
            a);
    assert_int_equal(verify(swapped, key, err, sizeof err), 0);
    free(a);
    free(b);
    free(swapped);
    free(doc);
}

static void test_flipped_byte_refused(void **state)
{
    (void)state;
    unsigned char key[32], sig[128];
    raw_key("pub.der", key);
    size_t sl = read_file("sig.bin", sig, sizeof sig);
    char err[256];
    unsigned char tampered[sizeof payload];
    memcpy(tampered, payload, sizeof payload);
    tampered[11] ^= 0x01; /* "version":7 -> 6 */
    char *doc = document(tampered, strlen(payload), sig, sl);
    assert_int_equal(verify(doc, key, err, sizeof err), -1);
    assert_non_null(strstr(err, "bad signature"));
    free(doc);
    sig[5] ^= 0x80; /* signature bit flipped */
    doc = document((const unsigned char *)payload, strlen(payload), sig, sl);
    assert_int_equal(verify(doc, key, err, sizeof err), -1);
    assert_non_null(strstr(err, "bad signature"));
    free(doc);
}

static void test_wrong_key_refused(void **state)
{
    (void)state;
    unsigned char other[32], sig[128];
    raw_key("other.der", other);
    size_t sl = read_file("sig.bin", sig, sizeof sig);
    char *doc = document((const unsigned char *)payload, strlen(payload), sig, sl);
    char err[256];
    assert_int_equal(verify(doc, other, err, sizeof err), -1);
    assert_non_null(strstr(err, "bad signature"));
    free(doc);
}

static void test_malformed_documents_refused(void **state)
{
    (void)state;
    unsigned char key[32], sig[128];
    raw_key("pub.der", key);
    size_t sl = read_file("sig.bin", sig, sizeof sig);
    char *pl = b64((const unsigned char *)payload, strlen(payload)), *sg = b64(sig, sl);
    char doc[2048], err[256];
    static const struct {
        const char *fmt;
        const char *why;
    } cases[] = {
        {"{\"payload\":\"%s\"}%.0s", "unsigned"},
        {"{\"payload\":\"%s\",\"signature\":\"%s!!\"}", "signature"},
        {"{\"payload\":\"%s@@\",\"signature\":\"%s\"}", "payload"},
        {"{\"payload\":\"%s\",\"signature\":\"%.20s\"}", "signature"},
        {"{\"payload\":\"%s\",\"signature\":\"%s\",\"payload\":\"eA==\"}", "duplicate"},
        {"{\"payload\":\"%s\",\"signature\":\"\\u0041%s\"}", "escapes"},
        {"[\"%s\",\"%s\"]", "not a JSON object"},
        {"{\"payload\":\"%s\",\"signature\":\"%s\"} x", "trailing"},
        {"{\"payload\":\"%s\",\"signature\":\"%s\"", "expected"},
        {"{\"payload\":\"%s\" \"signature\":\"%s\"}", "expected"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(doc, sizeof doc, cases[i].fmt, pl, sg);
        err[0] = '\0';
        if (verify(doc, key, err, sizeof err) != -1) fail_msg("case %zu accepted: %s", i, doc);
        if (!strstr(err, cases[i].why))
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].why);
    }
    /* oversized */
    size_t big = EA_CONTROL_MAX_DOC + 1;
    char *huge = calloc(1, big + 1);
    memset(huge, ' ', big);
    char *out = NULL;
    size_t out_len;
    assert_int_equal(ea_control_verify(huge, big, key, &out, &out_len, err, sizeof err), -1);
    assert_non_null(strstr(err, "limit"));
    free(huge);
    free(pl);
    free(sg);
}

static void test_pinned_key_formats(void **state)
{
    (void)state;
    unsigned char want[32], got[32];
    raw_key("pub.der", want);
    char path[128], err[256];
    path_of(path, sizeof path, "pub.pem");
    assert_int_equal(ea_control_load_pubkey(path, got, err, sizeof err), 0);
    assert_memory_equal(got, want, 32);
    path_of(path, sizeof path, "pub.der");
    assert_int_equal(ea_control_load_pubkey(path, got, err, sizeof err), 0);
    assert_memory_equal(got, want, 32);
    run("tail -c 32 pub.der > pub.raw && base64 pub.raw > pub.b64");
    path_of(path, sizeof path, "pub.raw");
    assert_int_equal(ea_control_load_pubkey(path, got, err, sizeof err), 0);
    assert_memory_equal(got, want, 32);
    path_of(path, sizeof path, "pub.b64");
    assert_int_equal(ea_control_load_pubkey(path, got, err, sizeof err), 0);
    assert_memory_equal(got, want, 32);
    /* a private key or an RSA key is not a pinned ed25519 public key */
    path_of(path, sizeof path, "key.pem");
    assert_int_equal(ea_control_load_pubkey(path, got, err, sizeof err), -1);
    assert_non_null(strstr(err, "not an ed25519 public key"));
    path_of(path, sizeof path, "missing.pem");
    assert_int_equal(ea_control_load_pubkey(path, got, err, sizeof err), -1);
    assert_non_null(strstr(err, "missing.pem"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_signature_accepted),
        cmocka_unit_test(test_flipped_byte_refused),
        cmocka_unit_test(test_wrong_key_refused),
        cmocka_unit_test(test_malformed_documents_refused),
        cmocka_unit_test(test_pinned_key_formats),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
