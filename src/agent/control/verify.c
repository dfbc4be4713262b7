/*
 * control/verify.c: ed25519 check of signed control documents (format in verify.h and
 * docs/agent-control.md). libsodium does the cryptography (crypto_sign_verify_detached) and the
 * base64 (sodium_base642bin); this file only finds the two members in the JSON object. That scan is
 * deliberately narrow: the two members must be plain strings without escapes (base64 needs none),
 * so no general JSON parser is on the path of unauthenticated bytes.
 */
#include "control/verify.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct scan {
    const char *p;
    size_t len, pos;
} scan;

static void skip_ws(scan *s)
{
    while (s->pos < s->len && (s->p[s->pos] == ' ' || s->p[s->pos] == '\t' ||
                               s->p[s->pos] == '\n' || s->p[s->pos] == '\r'))
        s->pos++;
}

static int peek(scan *s)
{
    return s->pos < s->len ? (unsigned char)s->p[s->pos] : -1;
}

/* A JSON string; *has_escape set if it contains a backslash. Returns 0 or -1. */
static int scan_string(scan *s, const char **start, size_t *n, int *has_escape)
{
    if (peek(s) != '"') return -1;
    s->pos++;
    *start = s->p + s->pos;
    *has_escape = 0;
    while (s->pos < s->len) {
        unsigned char c = (unsigned char)s->p[s->pos];
        if (c == '"') {
            *n = (size_t)(s->p + s->pos - *start);
            s->pos++;
            return 0;
        }
        if (c < 0x20) return -1;
        if (c == '\\') {
            *has_escape = 1;
            s->pos++;
        }
        s->pos++;
    }
    return -1;
}

/* Skips any JSON value of an ignored member, respecting strings and nesting (bounded depth). */
static int skip_value(scan *s)
{
    int depth = 0;
    while (s->pos < s->len) {
        int c = peek(s);
        if (c == '"') {
            const char *st;
            size_t n;
            int esc;
            if (scan_string(s, &st, &n, &esc) < 0) return -1;
            if (depth == 0) return 0;
            continue;
        }
        if (c == '{' || c == '[') {
            if (++depth > 64) return -1;
        } else if (c == '}' || c == ']') {
            if (depth == 0) return 0;
            if (--depth == 0) {
                s->pos++;
                return 0;
            }
        } else if (c == ',' && depth == 0) {
            return 0;
        }
        s->pos++;
    }
    return -1;
}

typedef struct members {
    const char *payload, *signature;
    size_t payload_len, signature_len;
} members;

static int find_members(const char *doc, size_t len, members *m, char *err, size_t errlen)
{
    scan s = {doc, len, 0};
    memset(m, 0, sizeof *m);
    skip_ws(&s);
    if (peek(&s) != '{') {
        snprintf(err, errlen, "control document: not a JSON object (offset %zu)", s.pos);
        return -1;
    }
    s.pos++;
    skip_ws(&s);
    int empty = peek(&s) == '}';
    while (!empty) {
        skip_ws(&s);
        const char *key;
        size_t klen;
        int esc;
        if (scan_string(&s, &key, &klen, &esc) < 0) {
            snprintf(err, errlen, "control document: expected a member name at offset %zu", s.pos);
            return -1;
        }
        skip_ws(&s);
        if (peek(&s) != ':') {
            snprintf(err, errlen, "control document: expected ':' at offset %zu", s.pos);
            return -1;
        }
        s.pos++;
        skip_ws(&s);
        int is_payload = klen == 7 && memcmp(key, "payload", 7) == 0;
        int is_sig = klen == 9 && memcmp(key, "signature", 9) == 0;
        if (is_payload || is_sig) {
            const char **dst = is_payload ? &m->payload : &m->signature;
            size_t *dlen = is_payload ? &m->payload_len : &m->signature_len;
            if (*dst) {
                snprintf(err, errlen, "control document: duplicate \"%s\" member at offset %zu",
                         is_payload ? "payload" : "signature", s.pos);
                return -1;
            }
            if (scan_string(&s, dst, dlen, &esc) < 0 || esc) {
                snprintf(
                    err, errlen,
                    "control document: \"%s\" must be a base64 string without escapes (offset %zu)",
                    is_payload ? "payload" : "signature", s.pos);
                return -1;
            }
        } else if (skip_value(&s) < 0) {
            snprintf(err, errlen, "control document: malformed value at offset %zu", s.pos);
            return -1;
        }
        skip_ws(&s);
        if (peek(&s) == ',') {
            s.pos++;
            continue;
        }
        if (peek(&s) == '}') break;
        snprintf(err, errlen, "control document: expected ',' or '}' at offset %zu", s.pos);
        return -1;
    }
    s.pos++;
    skip_ws(&s);
    if (s.pos != s.len) {
        snprintf(err, errlen, "control document: trailing bytes at offset %zu", s.pos);
        return -1;
    }
    if (!m->signature) {
        snprintf(err, errlen, "control document: unsigned (no \"signature\" member)");
        return -1;
    }
    if (!m->payload) {
        snprintf(err, errlen, "control document: no \"payload\" member");
        return -1;
    }
    return 0;
}

static int decode_base64(const char *b64, size_t len, unsigned char *out, size_t cap,
                         size_t *outlen)
{
    const char *end = NULL;
    if (sodium_base642bin(out, cap, b64, len, NULL, outlen, &end, sodium_base64_VARIANT_ORIGINAL) !=
        0)
        return -1;
    return end == b64 + len ? 0 : -1;
}

int ea_control_verify(const void *doc, size_t len, const unsigned char pubkey[32],
                      char **payload_out, size_t *payload_len, char *err, size_t errlen)
{
    *payload_out = NULL;
    *payload_len = 0;
    if (len > EA_CONTROL_MAX_DOC) {
        snprintf(err, errlen, "control document: %zu bytes exceeds the %u-byte limit", len,
                 EA_CONTROL_MAX_DOC);
        return -1;
    }
    if (sodium_init() < 0) {
        snprintf(err, errlen, "control document: libsodium failed to initialise");
        return -1;
    }
    members m;
    if (find_members(doc, len, &m, err, errlen) < 0) return -1;
    unsigned char sig[crypto_sign_BYTES + 1];
    size_t siglen = 0;
    if (decode_base64(m.signature, m.signature_len, sig, sizeof sig, &siglen) < 0 ||
        siglen != crypto_sign_BYTES) {
        snprintf(err, errlen,
                 "control document: \"signature\" is not base64 of a %d-byte ed25519 signature",
                 crypto_sign_BYTES);
        return -1;
    }
    size_t cap = m.payload_len / 4 * 3 + 3;
    unsigned char *payload = malloc(cap + 1);
    if (!payload) {
        snprintf(err, errlen, "control document: out of memory");
        return -1;
    }
    size_t plen = 0;
    if (decode_base64(m.payload, m.payload_len, payload, cap, &plen) < 0) {
        free(payload);
        snprintf(err, errlen, "control document: \"payload\" is not valid base64");
        return -1;
    }
    if (crypto_sign_verify_detached(sig, payload, plen, pubkey) != 0) {
        free(payload);
        snprintf(err, errlen,
                 "control document: bad signature (not made by the pinned key over this payload)");
        return -1;
    }
    payload[plen] = '\0';
    *payload_out = (char *)payload;
    *payload_len = plen;
    return 0;
}

/* ------------------------------------------------------------------ pinned key */

static const unsigned char ed25519_spki_prefix[12] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
                                                      0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};

static int key_from_bytes(const unsigned char *b, size_t n, unsigned char pubkey[32])
{
    if (n == 32) {
        memcpy(pubkey, b, 32);
        return 0;
    }
    if (n == 44 && memcmp(b, ed25519_spki_prefix, sizeof ed25519_spki_prefix) == 0) {
        memcpy(pubkey, b + 12, 32);
        return 0;
    }
    return -1;
}

static int key_from_text(char *text, unsigned char pubkey[32])
{
    char *body = text;
    char *begin = strstr(text, "-----BEGIN PUBLIC KEY-----");
    if (begin) {
        body = begin + strlen("-----BEGIN PUBLIC KEY-----");
        char *end = strstr(body, "-----END PUBLIC KEY-----");
        if (!end) return -1;
        *end = '\0';
    }
    unsigned char der[64];
    size_t n = 0;
    const char *stop = NULL;
    if (sodium_base642bin(der, sizeof der, body, strlen(body), " \t\r\n", &n, &stop,
                          sodium_base64_VARIANT_ORIGINAL) != 0)
        return -1;
    while (*stop == ' ' || *stop == '\n' || *stop == '\r' || *stop == '\t')
        stop++;
    if (*stop != '\0') return -1;
    return key_from_bytes(der, n, pubkey);
}

int ea_control_load_pubkey(const char *path, unsigned char pubkey[32], char *err, size_t errlen)
{
    char buf[1024];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "control key %s: %s", path, strerror(errno));
        return -1;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0) {
        snprintf(err, errlen, "control key %s: %s", path, strerror(errno));
        return -1;
    }
    if (sodium_init() < 0) {
        snprintf(err, errlen, "control key %s: libsodium failed to initialise", path);
        return -1;
    }
    buf[n] = '\0';
    if (key_from_bytes((unsigned char *)buf, (size_t)n, pubkey) == 0 ||
        key_from_text(buf, pubkey) == 0)
        return 0;
    snprintf(err, errlen,
             "control key %s: not an ed25519 public key (raw 32 bytes, base64, or PEM/DER "
             "SubjectPublicKeyInfo)",
             path);
    return -1;
}
