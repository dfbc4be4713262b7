/*
 * net/tls.h: a non-blocking TLS client over mbedTLS 2.28 for the uplinks, and the "stream" the
 * outputs read and write through (plain TCP or TLS, one code path above it).
 *
 * One ea_tls_config per output (CA chain, optional client certificate and key, random generator);
 * one ea_tls session per connection. The server is always verified (certificate chain against the
 * CA file and host name); a failed verification is reported as one clear line:
 *   "TLS: certificate verify failed: expired" / "hostname mismatch" / "unknown CA" / ...
 *
 * Invariants: every call returns instead of blocking (EA_IO_WANT_READ / EA_IO_WANT_WRITE); a write
 * that returned WANT is repeated by the caller with the same leading bytes (the outputs only ever
 * append to their transmit buffers), which mbedTLS requires.
 * Host check: a name is matched by mbedTLS against the certificate's DNS names (SAN dNSName, else
 * CN); an IPv4/IPv6 literal (which mbedTLS 2.28 cannot match) is matched here against the
 * certificate's iPAddress SANs only, and sent without SNI. A certificate without a matching IP SAN
 * is refused with "TLS: certificate verify failed: no IP SAN matching ADDR" (docs/agent-tls.md).
 */
#ifndef EA_NET_TLS_H
#define EA_NET_TLS_H

#include <stddef.h>
#include <sys/types.h>

#define EA_IO_ERROR (-1)
#define EA_IO_WANT_READ (-2)
#define EA_IO_WANT_WRITE (-3)

#define EA_TLS_DEFAULT_CA "/etc/ssl/certs/ca-certificates.crt"

typedef struct ea_tls_config ea_tls_config;
typedef struct ea_tls ea_tls;

/* ca_file NULL = EA_TLS_DEFAULT_CA; cert_file and key_file both set or both NULL. */
ea_tls_config *ea_tls_config_new(const char *ca_file, const char *cert_file, const char *key_file,
                                 char *err, size_t errlen);
void ea_tls_config_free(ea_tls_config *c);

ea_tls *ea_tls_new(ea_tls_config *c, int fd, const char *hostname, char *err, size_t errlen);
/* 0 when the handshake is complete, EA_IO_WANT_*, or EA_IO_ERROR with the reason in err. */
int ea_tls_handshake(ea_tls *t, char *err, size_t errlen);
void ea_tls_free(ea_tls *t); /* does not close the fd */
/* 1 when the completed handshake resumed the config's previous session. */
int ea_tls_resumed(const ea_tls *t);

/* A connection the outputs talk through: tls NULL = plain TCP. */
typedef struct ea_stream {
    int fd;
    ea_tls *tls;
    char err[160]; /* reason of the last EA_IO_ERROR */
} ea_stream;

/* > 0 bytes, 0 = peer closed, EA_IO_WANT_READ / EA_IO_WANT_WRITE, EA_IO_ERROR (reason in s->err).
 */
ssize_t ea_stream_read(ea_stream *s, void *buf, size_t len);
ssize_t ea_stream_write(ea_stream *s, const void *buf, size_t len);

#endif
