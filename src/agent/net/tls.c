/*
 * net/tls.c: mbedTLS 2.28 client sessions on non-blocking sockets (see tls.h). mbedTLS instead of
 * OpenSSL for footprint: the static agent carries only the TLS 1.2 client, X.509 and the ciphers it
 * uses (measured in docs/DESIGN.md "edgeagent uplink").
 */
#include "net/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <mbedtls/asn1.h>
#include <mbedtls/oid.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct ea_tls_config {
    mbedtls_ssl_config conf;
    mbedtls_x509_crt ca, own_cert;
    mbedtls_pk_context own_key;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_ssl_session saved; /* last successful session, offered for resumption */
    int have_saved;
};

struct ea_tls {
    mbedtls_ssl_context ssl;
    ea_tls_config *cfg;
    unsigned char offered_master[48]; /* master secret of the session offered for resumption */
    int offered;
    int resumed;
    int fd;
    int has_client_cert;
    int ip_len;           /* 4 or 16 when the peer is addressed by an IP literal, else 0 */
    unsigned char ip[16]; /* that address, matched against the certificate's iPAddress SANs */
    int ip_mismatch;      /* the peer certificate has no iPAddress SAN equal to ip */
    char host[64];        /* the literal as written, for the failure line */
    size_t pending_write; /* length of a write that returned WANT_*, to repeat exactly */
};

static void describe_mbedtls(int rc, char *out, size_t outlen)
{
    char buf[120];
    mbedtls_strerror(rc, buf, sizeof buf);
    snprintf(out, outlen, "%s (-0x%04x)", buf, (unsigned)-rc);
}

ea_tls_config *ea_tls_config_new(const char *ca_file, const char *cert_file, const char *key_file,
                                 char *err, size_t errlen)
{
    char why[160];
    ea_tls_config *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "TLS: out of memory");
        return NULL;
    }
    mbedtls_ssl_config_init(&c->conf);
    mbedtls_x509_crt_init(&c->ca);
    mbedtls_x509_crt_init(&c->own_cert);
    mbedtls_pk_init(&c->own_key);
    mbedtls_entropy_init(&c->entropy);
    mbedtls_ctr_drbg_init(&c->drbg);
    mbedtls_ssl_session_init(&c->saved);
    int rc = mbedtls_ctr_drbg_seed(&c->drbg, mbedtls_entropy_func, &c->entropy,
                                   (const unsigned char *)"edgeagent", 9);
    if (rc != 0) {
        describe_mbedtls(rc, why, sizeof why);
        snprintf(err, errlen, "TLS: random generator: %s", why);
        goto fail;
    }
    if (!ca_file) ca_file = EA_TLS_DEFAULT_CA;
    rc = mbedtls_x509_crt_parse_file(&c->ca, ca_file);
    if (rc < 0 || c->ca.version == 0) {
        describe_mbedtls(rc, why, sizeof why);
        snprintf(err, errlen, "TLS: CA file %s: %s", ca_file,
                 rc < 0 ? why : "no certificate could be parsed");
        goto fail;
    }
    if ((cert_file == NULL) != (key_file == NULL)) {
        snprintf(err, errlen, "TLS: a client certificate needs both cert_file and key_file");
        goto fail;
    }
    if (cert_file) {
        if ((rc = mbedtls_x509_crt_parse_file(&c->own_cert, cert_file)) != 0) {
            describe_mbedtls(rc, why, sizeof why);
            snprintf(err, errlen, "TLS: client certificate %s: %s", cert_file, why);
            goto fail;
        }
        if ((rc = mbedtls_pk_parse_keyfile(&c->own_key, key_file, NULL)) != 0) {
            describe_mbedtls(rc, why, sizeof why);
            snprintf(err, errlen, "TLS: client key %s: %s", key_file, why);
            goto fail;
        }
    }
    rc = mbedtls_ssl_config_defaults(&c->conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                     MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc != 0) {
        describe_mbedtls(rc, why, sizeof why);
        snprintf(err, errlen, "TLS: configuration: %s", why);
        goto fail;
    }
    mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_ca_chain(&c->conf, &c->ca, NULL);
    mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &c->drbg);
    mbedtls_ssl_conf_min_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    if (cert_file && (rc = mbedtls_ssl_conf_own_cert(&c->conf, &c->own_cert, &c->own_key)) != 0) {
        describe_mbedtls(rc, why, sizeof why);
        snprintf(err, errlen, "TLS: client certificate %s and key %s: %s", cert_file, key_file,
                 why);
        goto fail;
    }
    return c;
fail:
    ea_tls_config_free(c);
    return NULL;
}

void ea_tls_config_free(ea_tls_config *c)
{
    if (!c) return;
    mbedtls_ssl_config_free(&c->conf);
    mbedtls_x509_crt_free(&c->ca);
    mbedtls_x509_crt_free(&c->own_cert);
    mbedtls_pk_free(&c->own_key);
    mbedtls_ctr_drbg_free(&c->drbg);
    mbedtls_entropy_free(&c->entropy);
    mbedtls_ssl_session_free(&c->saved);
    free(c);
}

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    int fd = *(int *)ctx;
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
    if (n >= 0) return (int)n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return MBEDTLS_ERR_SSL_WANT_WRITE;
    if (errno == EPIPE || errno == ECONNRESET) return MBEDTLS_ERR_NET_CONN_RESET;
    return MBEDTLS_ERR_NET_SEND_FAILED;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    int fd = *(int *)ctx;
    ssize_t n = recv(fd, buf, len, 0);
    if (n >= 0) return (int)n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return MBEDTLS_ERR_SSL_WANT_READ;
    if (errno == ECONNRESET) return MBEDTLS_ERR_NET_CONN_RESET;
    return MBEDTLS_ERR_NET_RECV_FAILED;
}

/* 4 or 16 with the address in out when host is an IPv4 or IPv6 literal (an IPv6 zone "%eth0"
 * is ignored), else 0. */
static int ip_literal(const char *host, unsigned char out[16])
{
    char buf[INET6_ADDRSTRLEN + 1];
    size_t n = strcspn(host, "%");
    if (n >= sizeof buf) return 0;
    memcpy(buf, host, n);
    buf[n] = '\0';
    if (inet_pton(AF_INET, buf, out) == 1) return 4;
    if (inet_pton(AF_INET6, buf, out) == 1) return 16;
    return 0;
}

/* 1 when one of crt's subjectAltName entries is an iPAddress ([7] OCTET STRING, 4 or 16 bytes)
 * equal to ip. mbedTLS keeps every GeneralName of the extension raw in subject_alt_names. */
static int has_ip_san(const mbedtls_x509_crt *crt, const unsigned char *ip, int ip_len)
{
    if (!(crt->ext_types & MBEDTLS_X509_EXT_SUBJECT_ALT_NAME)) return 0;
    for (const mbedtls_x509_sequence *s = &crt->subject_alt_names; s; s = s->next) {
        if (s->buf.p == NULL) continue;
        if (s->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7) && s->buf.len == (size_t)ip_len &&
            memcmp(s->buf.p, ip, (size_t)ip_len) == 0)
            return 1;
    }
    return 0;
}

/* Verify callback of a session to an IP literal: runs for every certificate of the chain after
 * mbedTLS checked it; the peer's own certificate (depth 0) must name the address. */
static int verify_peer(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    ea_tls *t = arg;
    if (depth == 0 && !has_ip_san(crt, t->ip, t->ip_len)) {
        t->ip_mismatch = 1;
        *flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
    }
    return 0;
}

ea_tls *ea_tls_new(ea_tls_config *c, int fd, const char *hostname, char *err, size_t errlen)
{
    char why[160];
    ea_tls *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "TLS: out of memory");
        return NULL;
    }
    t->fd = fd;
    t->has_client_cert = c->own_cert.version != 0;
    t->ip_len = ip_literal(hostname, t->ip);
    snprintf(t->host, sizeof t->host, "%s", hostname);
    mbedtls_ssl_init(&t->ssl);
    int rc = mbedtls_ssl_setup(&t->ssl, &c->conf);
    /* An IP literal: no SNI (RFC 6066 allows no addresses there) and no DNS-name check, which
     * mbedTLS 2.28 would fail; verify_peer checks the iPAddress SANs instead. The chain, dates
     * and key usage are verified as for a name. */
    if (rc == 0) rc = mbedtls_ssl_set_hostname(&t->ssl, t->ip_len ? NULL : hostname);
    if (rc == 0 && t->ip_len) mbedtls_ssl_set_verify(&t->ssl, verify_peer, t);
    if (rc != 0) {
        describe_mbedtls(rc, why, sizeof why);
        snprintf(err, errlen, "TLS: session setup for %s: %s", hostname, why);
        ea_tls_free(t);
        return NULL;
    }
    mbedtls_ssl_set_bio(&t->ssl, &t->fd, bio_send, bio_recv, NULL);
    t->cfg = c;
    if (c->have_saved && mbedtls_ssl_set_session(&t->ssl, &c->saved) == 0) {
        memcpy(t->offered_master, c->saved.master, sizeof t->offered_master);
        t->offered = 1;
    }
    return t;
}

/* The one-line reason of a failed chain/host verification. */
static void describe_verify_failure(const ea_tls *t, uint32_t flags, char *out, size_t outlen)
{
    const char *what;
    if (flags & MBEDTLS_X509_BADCERT_EXPIRED)
        what = "expired";
    else if (flags & MBEDTLS_X509_BADCERT_FUTURE)
        what = "not yet valid";
    else if ((flags & MBEDTLS_X509_BADCERT_CN_MISMATCH) && t->ip_mismatch) {
        snprintf(out, outlen, "TLS: certificate verify failed: no IP SAN matching %s", t->host);
        return;
    } else if (flags & MBEDTLS_X509_BADCERT_CN_MISMATCH)
        what = "hostname mismatch";
    else if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
        what = "unknown CA";
    else if (flags & MBEDTLS_X509_BADCERT_REVOKED)
        what = "revoked";
    else
        what = NULL;
    if (what) {
        snprintf(out, outlen, "TLS: certificate verify failed: %s", what);
        return;
    }
    char info[200];
    mbedtls_x509_crt_verify_info(info, sizeof info, "", flags);
    char *nl = strchr(info, '\n');
    if (nl) *nl = '\0';
    snprintf(out, outlen, "TLS: certificate verify failed: %s", info);
}

static void forget_session(ea_tls_config *c)
{
    mbedtls_ssl_session_free(&c->saved);
    mbedtls_ssl_session_init(&c->saved);
    c->have_saved = 0;
}

/* Keeps the new session for the next connection (abbreviated handshake: no certificate exchange,
 * no key agreement). A resumed session was verified when it was first established, for the same
 * host name: each output has its own config. A resumed session keeps its master secret (a full
 * handshake derives a new one), which is how resumption is detected. */
static void remember_session(ea_tls *t)
{
    ea_tls_config *c = t->cfg;
    forget_session(c);
    if (mbedtls_ssl_get_session(&t->ssl, &c->saved) == 0) c->have_saved = 1;
    t->resumed = t->offered && c->have_saved &&
                 memcmp(c->saved.master, t->offered_master, sizeof t->offered_master) == 0;
}

int ea_tls_resumed(const ea_tls *t)
{
    return t->resumed;
}

int ea_tls_handshake(ea_tls *t, char *err, size_t errlen)
{
    int rc = mbedtls_ssl_handshake(&t->ssl);
    if (rc == 0) {
        remember_session(t);
        return 0;
    }
    if (rc == MBEDTLS_ERR_SSL_WANT_READ) return EA_IO_WANT_READ;
    if (rc == MBEDTLS_ERR_SSL_WANT_WRITE) return EA_IO_WANT_WRITE;
    forget_session(t->cfg); /* a stale session must not be offered again */
    uint32_t flags = mbedtls_ssl_get_verify_result(&t->ssl);
    if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED && flags != 0) {
        describe_verify_failure(t, flags, err, errlen);
    } else if (t->ssl.client_auth &&
               (rc == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE || rc == MBEDTLS_ERR_NET_CONN_RESET ||
                rc == MBEDTLS_ERR_SSL_CONN_EOF)) {
        /* the server asked for a client certificate (CertificateRequest) and then hung up */
        snprintf(err, errlen, "TLS: client certificate %s",
                 t->has_client_cert ? "refused by the server"
                                    : "required by the server (set cert_file and key_file)");
    } else if (rc == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE) {
        snprintf(err, errlen, "TLS: handshake refused by the server (fatal alert)");
    } else {
        char why[160];
        describe_mbedtls(rc, why, sizeof why);
        snprintf(err, errlen, "TLS: handshake failed: %s", why);
    }
    return EA_IO_ERROR;
}

void ea_tls_free(ea_tls *t)
{
    if (!t) return;
    mbedtls_ssl_free(&t->ssl);
    mbedtls_platform_zeroize(t->offered_master, sizeof t->offered_master);
    free(t);
}

static ssize_t tls_result(ea_stream *s, int rc, const char *op)
{
    if (rc == MBEDTLS_ERR_SSL_WANT_READ) return EA_IO_WANT_READ;
    if (rc == MBEDTLS_ERR_SSL_WANT_WRITE) return EA_IO_WANT_WRITE;
    if (rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) return 0;
    char why[120];
    describe_mbedtls(rc, why, sizeof why);
    snprintf(s->err, sizeof s->err, "TLS %s: %s", op, why);
    return EA_IO_ERROR;
}

ssize_t ea_stream_read(ea_stream *s, void *buf, size_t len)
{
    if (s->tls) {
        int rc = mbedtls_ssl_read(&s->tls->ssl, buf, len);
        return rc >= 0 ? rc : tls_result(s, rc, "read");
    }
    ssize_t n = recv(s->fd, buf, len, 0);
    if (n >= 0) return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return EA_IO_WANT_READ;
    snprintf(s->err, sizeof s->err, "read: %s", strerror(errno));
    return EA_IO_ERROR;
}

ssize_t ea_stream_write(ea_stream *s, const void *buf, size_t len)
{
    if (s->tls) {
        ea_tls *t = s->tls;
        if (t->pending_write && t->pending_write <= len)
            len = t->pending_write;
        else if (len > 16384)
            len = 16384;
        int rc = mbedtls_ssl_write(&t->ssl, buf, len);
        if (rc >= 0) {
            t->pending_write = 0;
            return rc;
        }
        if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
            t->pending_write = len;
        return tls_result(s, rc, "write");
    }
    ssize_t n = send(s->fd, buf, len, MSG_NOSIGNAL);
    if (n >= 0) return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return EA_IO_WANT_WRITE;
    snprintf(s->err, sizeof s->err, "write: %s", strerror(errno));
    return EA_IO_ERROR;
}
