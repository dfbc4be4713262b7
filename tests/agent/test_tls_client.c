/*
 * test_tls_client.c: the MQTT client over TLS (mbedTLS) against a REAL mosquitto with four TLS
 * listeners: a good server certificate, an EXPIRED one, one for the WRONG host name, and the good
 * one with require_certificate (client certificates). The PKI is made by the openssl CLI in the
 * test setup (`openssl ca` with a start/end date in the past makes the expired certificate).
 * Each bad case must be refused with its own clear reason.
 * Dialling an IP literal: two more listeners serve a certificate with only DNS:localhost and one
 * with only IP:::1 (the latter on [::1], with a second [::1] listener serving the IPv4-only
 * server certificate) when IPv6 loopback works: the address must be one of the certificate's
 * iPAddress SANs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "outputs/output.h"
#include "proto/mqtt_client.h"
#include "test_mqtt_broker.h"

static char pki[64];
static test_broker broker;
static int port_good, port_expired, port_wrong_host, port_client_cert;
static int port_dns_only, port_v6, port_v6_wrong; /* the last two 0 without IPv6 loopback */

static const char pki_script[] =
    "set -e\n"
    "ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $1 2>/dev/null; }\n"
    "ec ca.key; openssl req -x509 -new -key ca.key -out ca.crt -days 30 -subj /CN=edge-test-ca\n"
    "ec ca2.key; openssl req -x509 -new -key ca2.key -out ca2.crt -days 30 -subj /CN=other-ca\n"
    "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext\n"
    "printf 'subjectAltName=DNS:wrong.example\\n' > wrong.ext\n"
    "printf 'subjectAltName=DNS:localhost\\n' > dns.ext\n"
    "printf 'subjectAltName=IP:::1\\n' > v6.ext\n"
    "ec dns.key; openssl req -new -key dns.key -out dns.csr -subj /CN=localhost\n"
    "openssl x509 -req -in dns.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile "
    "dns.ext -out dns.crt 2>/dev/null\n"
    "ec v6.key; openssl req -new -key v6.key -out v6.csr -subj /CN=v6-broker\n"
    "openssl x509 -req -in v6.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile "
    "v6.ext -out v6.crt 2>/dev/null\n"
    "printf 'extendedKeyUsage=clientAuth\\n' > client.ext\n"
    "ec server.key; openssl req -new -key server.key -out server.csr -subj /CN=localhost\n"
    "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile "
    "san.ext -out server.crt 2>/dev/null\n"
    "ec wrong.key; openssl req -new -key wrong.key -out wrong.csr -subj /CN=wrong.example\n"
    "openssl x509 -req -in wrong.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile "
    "wrong.ext -out wrong.crt 2>/dev/null\n"
    "ec client.key; openssl req -new -key client.key -out client.csr -subj /CN=edge-1\n"
    "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile "
    "client.ext -out client.crt 2>/dev/null\n"
    "ec rogue.key; openssl req -new -key rogue.key -out rogue.csr -subj /CN=rogue\n"
    "openssl x509 -req -in rogue.csr -CA ca2.crt -CAkey ca2.key -CAcreateserial -days 30 -extfile "
    "client.ext -out rogue.crt 2>/dev/null\n"
    "ec expired.key; openssl req -new -key expired.key -out expired.csr -subj /CN=localhost\n"
    "touch index.txt; echo 1000 > serial\n"
    "printf "
    "'[ca]\\ndefault_ca=d\\n[d]\\ndatabase=index.txt\\nnew_certs_dir=.\\nserial=serial\\ndefault_"
    "md=sha256\\n"
    "policy=p\\nunique_subject=no\\n[p]\\ncommonName=supplied\\n' > ca.cnf\n"
    "openssl ca -batch -config ca.cnf -cert ca.crt -keyfile ca.key -in expired.csr -out "
    "expired.crt "
    "-startdate 20200101000000Z -enddate 20200201000000Z -extfile san.ext 2>/dev/null\n"
    "printf '127.0.0.1 localhost\\n' > hosts\n";

static void pki_path(char *out, size_t n, const char *file)
{
    snprintf(out, n, "%s/%s", pki, file);
}

/* A free TCP port on [::1], or 0 when IPv6 loopback is not available. */
static int free_port_v6(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    socklen_t l = sizeof sa;
    int port = 0;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &l) == 0)
        port = ntohs(sa.sin6_port);
    close(fd);
    return port;
}

static int setup(void **state)
{
    (void)state;
    snprintf(pki, sizeof pki, "/tmp/ea-pki-XXXXXX");
    if (!mkdtemp(pki)) return -1;
    char script[128], cmd[256];
    pki_path(script, sizeof script, "make-pki.sh");
    FILE *f = fopen(script, "w");
    fputs(pki_script, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "cd '%s' && sh make-pki.sh", pki);
    if (system(cmd) != 0) return -1;
    port_good = test_free_port();
    port_expired = test_free_port();
    port_wrong_host = test_free_port();
    port_client_cert = test_free_port();
    port_dns_only = test_free_port();
    port_v6 = free_port_v6();
    port_v6_wrong = port_v6 ? free_port_v6() : 0;
    char extra[4096];
    snprintf(
        extra, sizeof extra,
        "listener %d 127.0.0.1\ncafile %s/ca.crt\ncertfile %s/server.crt\nkeyfile %s/server.key\n"
        "listener %d 127.0.0.1\ncafile %s/ca.crt\ncertfile %s/expired.crt\nkeyfile %s/expired.key\n"
        "listener %d 127.0.0.1\ncafile %s/ca.crt\ncertfile %s/wrong.crt\nkeyfile %s/wrong.key\n"
        "listener %d 127.0.0.1\ncafile %s/ca.crt\ncertfile %s/server.crt\nkeyfile "
        "%s/server.key\nrequire_certificate true\n",
        port_good, pki, pki, pki, port_expired, pki, pki, pki, port_wrong_host, pki, pki, pki,
        port_client_cert, pki, pki, pki);
    size_t n = strlen(extra);
    snprintf(extra + n, sizeof extra - n,
             "listener %d 127.0.0.1\ncafile %s/ca.crt\ncertfile %s/dns.crt\nkeyfile %s/dns.key\n",
             port_dns_only, pki, pki, pki);
    if (port_v6) {
        n = strlen(extra);
        snprintf(extra + n, sizeof extra - n,
                 "listener %d ::1\ncafile %s/ca.crt\ncertfile %s/v6.crt\nkeyfile %s/v6.key\n"
                 "listener %d ::1\ncafile %s/ca.crt\ncertfile %s/server.crt\nkeyfile "
                 "%s/server.key\n",
                 port_v6, pki, pki, pki, port_v6_wrong, pki, pki, pki);
    }
    return test_broker_start(&broker, extra);
}

static int teardown(void **state)
{
    (void)state;
    test_broker_stop(&broker);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", pki);
    return system(cmd);
}

typedef struct peer {
    ea_mqtt_client *c;
    int connects, disconnects;
    uint64_t acked;
    char why[256];
} peer;

static void p_connected(void *arg, int sp)
{
    (void)sp;
    ((peer *)arg)->connects++;
}

static void p_disconnected(void *arg, const char *why)
{
    peer *p = arg;
    p->disconnects++;
    snprintf(p->why, sizeof p->why, "%s", why);
}

static void p_acked(void *arg, uint64_t tag)
{
    (void)tag;
    ((peer *)arg)->acked++;
}

static int settled(void *arg)
{
    peer *p = arg;
    return p->connects > 0 || p->disconnects > 0;
}

static int acked_one(void *arg)
{
    return ((peer *)arg)->acked > 0;
}

/* Connects once to host:port over TLS; returns 1 if connected, 0 if refused (reason in p->why). */
static int tls_attempt_to(ea_loop *l, peer *p, const char *host, int port, const char *ca,
                          const char *cert, const char *key)
{
    char ca_path[128], cert_path[128], key_path[128], hosts[128];
    pki_path(ca_path, sizeof ca_path, ca);
    pki_path(cert_path, sizeof cert_path, cert ? cert : "");
    pki_path(key_path, sizeof key_path, key ? key : "");
    pki_path(hosts, sizeof hosts, "hosts");
    memset(p, 0, sizeof *p);
    ea_mqtt_client_config cfg = {
        .host = host,
        .port = (uint16_t)port,
        .tls = 1,
        .ca_file = ca_path,
        .cert_file = cert ? cert_path : NULL,
        .key_file = key ? key_path : NULL,
        .client_id = "tls-test",
        .clean_session = 1,
        .backoff_min_ms = 5000, /* one attempt inside the test window */
        .hosts_path = hosts,
    };
    ea_mqtt_client_events ev = {p_connected, p_disconnected, p_acked, NULL, p};
    char err[256];
    p->c = ea_mqtt_client_new(l, &cfg, &ev, err, sizeof err);
    if (!p->c) fail_msg("client: %s", err);
    ea_mqtt_client_start(p->c);
    assert_true(test_run_until(l, settled, p, 5000));
    return p->connects > 0;
}

static int tls_attempt(ea_loop *l, peer *p, int port, const char *ca, const char *cert,
                       const char *key)
{
    return tls_attempt_to(l, p, "localhost", port, ca, cert, key);
}

static void test_good_server_certificate(void **state)
{
    (void)state;
    ea_loop *l = ea_loop_new();
    peer p;
    if (!tls_attempt(l, &p, port_good, "ca.crt", NULL, NULL)) fail_msg("refused: %s", p.why);
    assert_int_equal(ea_mqtt_client_publish(p.c, "tls/data", "{\"t\":1}", 7, 1, 0, 1), 1);
    assert_true(test_run_until(l, acked_one, &p, 5000));
    ea_mqtt_client_stats st;
    ea_mqtt_client_stats_get(p.c, &st);
    assert_int_equal(st.tls_resumed, 0); /* first contact: full handshake */
    /* reconnect: the abbreviated handshake resumes the verified session */
    ea_mqtt_client_abort(p.c);
    p.connects = 0;
    ea_mqtt_client_start(p.c);
    assert_true(test_run_until(l, settled, &p, 5000));
    assert_int_equal(p.connects, 1);
    ea_mqtt_client_stats_get(p.c, &st);
    assert_int_equal(st.tls_resumed, 1);
    ea_mqtt_client_free(p.c);
    ea_loop_free(l);
}

static void test_expired_certificate_refused(void **state)
{
    (void)state;
    ea_loop *l = ea_loop_new();
    peer p;
    assert_false(tls_attempt(l, &p, port_expired, "ca.crt", NULL, NULL));
    assert_string_equal(p.why, "TLS: certificate verify failed: expired");
    ea_mqtt_client_free(p.c);
    ea_loop_free(l);
}

static void test_wrong_hostname_refused(void **state)
{
    (void)state;
    ea_loop *l = ea_loop_new();
    peer p;
    assert_false(tls_attempt(l, &p, port_wrong_host, "ca.crt", NULL, NULL));
    assert_string_equal(p.why, "TLS: certificate verify failed: hostname mismatch");
    ea_mqtt_client_free(p.c);
    ea_loop_free(l);
}

static void test_unknown_ca_refused(void **state)
{
    (void)state;
    ea_loop *l = ea_loop_new();
    peer p;
    assert_false(tls_attempt(l, &p, port_good, "ca2.crt", NULL, NULL));
    assert_string_equal(p.why, "TLS: certificate verify failed: unknown CA");
    ea_mqtt_client_free(p.c);
    ea_loop_free(l);
}

static void test_client_certificate_required(void **state)
{
    (void)state;
    ea_loop *l = ea_loop_new();
    peer p;
    assert_false(tls_attempt(l, &p, port_client_cert, "ca.crt", NULL, NULL));
    assert_string_equal(
        p.why, "TLS: client certificate required by the server (set cert_file and key_file)");
    ea_mqtt_client_free(p.c);
    /* a client certificate from a CA the broker does not trust */
    assert_false(tls_attempt(l, &p, port_client_cert, "ca.crt", "rogue.crt", "rogue.key"));
    assert_string_equal(p.why, "TLS: client certificate refused by the server");
    ea_mqtt_client_free(p.c);
    if (!tls_attempt(l, &p, port_client_cert, "ca.crt", "client.crt", "client.key"))
        fail_msg("refused with a client certificate: %s", p.why);
    ea_mqtt_client_free(p.c);
    ea_loop_free(l);
}

/* server.crt names DNS:localhost and IP:127.0.0.1: dialling the address verifies by the IP SAN. */
static void test_ip_literal_matches_ip_san(void **state)
{
    (void)state;
    ea_loop *l = ea_loop_new();
    peer p;
    if (!tls_attempt_to(l, &p, "127.0.0.1", port_good, "ca.crt", NULL, NULL))
        fail_msg("refused: %s", p.why);
    assert_int_equal(ea_mqtt_client_publish(p.c, "tls/ip", "{\"t\":1}", 7, 1, 0, 1), 1);
    assert_true(test_run_until(l, acked_one, &p, 5000));
    ea_mqtt_client_free(p.c);
    /* still a verified chain: an IP SAN from a CA we do not trust is no good */
    assert_false(tls_attempt_to(l, &p, "127.0.0.1", port_good, "ca2.crt", NULL, NULL));
    assert_string_equal(p.why, "TLS: certificate verify failed: unknown CA");
    ea_mqtt_client_free(p.c);
    ea_loop_free(l);
}

/* dns.crt names only DNS:localhost: fine by name, refused by address (a DNS name is never taken
 * for an address, and the address is never compared with the CN). */
static void test_ip_literal_without_ip_san_refused(void **state)
{
    (void)state;
    ea_loop *l = ea_loop_new();
    peer p;
    if (!tls_attempt_to(l, &p, "localhost", port_dns_only, "ca.crt", NULL, NULL))
        fail_msg("refused by name: %s", p.why);
    ea_mqtt_client_free(p.c);
    assert_false(tls_attempt_to(l, &p, "127.0.0.1", port_dns_only, "ca.crt", NULL, NULL));
    assert_string_equal(p.why, "TLS: certificate verify failed: no IP SAN matching 127.0.0.1");
    ea_mqtt_client_free(p.c);
    ea_loop_free(l);
}

static void test_ipv6_literal(void **state)
{
    (void)state;
    if (!port_v6) {
        fprintf(stderr, "no IPv6 loopback here: IPv6 literal not tested\n");
        skip();
    }
    ea_loop *l = ea_loop_new();
    peer p;
    if (!tls_attempt_to(l, &p, "::1", port_v6, "ca.crt", NULL, NULL))
        fail_msg("refused: %s", p.why);
    ea_mqtt_client_free(p.c);
    /* server.crt's IP SAN is 127.0.0.1 (4 bytes): not ::1 */
    assert_false(tls_attempt_to(l, &p, "::1", port_v6_wrong, "ca.crt", NULL, NULL));
    assert_string_equal(p.why, "TLS: certificate verify failed: no IP SAN matching ::1");
    ea_mqtt_client_free(p.c);
    ea_loop_free(l);
}

static void test_bad_tls_files_refused_at_create(void **state)
{
    (void)state;
    ea_loop *l = ea_loop_new();
    char err[256], ca[128], cert[128];
    pki_path(ca, sizeof ca, "missing-ca.crt");
    ea_mqtt_client_config cfg = {
        .host = "localhost", .port = 1, .tls = 1, .ca_file = ca, .client_id = "x"};
    assert_null(ea_mqtt_client_new(l, &cfg, NULL, err, sizeof err));
    assert_non_null(strstr(err, "missing-ca.crt"));
    pki_path(ca, sizeof ca, "ca.crt");
    pki_path(cert, sizeof cert, "client.crt");
    cfg.ca_file = ca;
    cfg.cert_file = cert; /* no key */
    assert_null(ea_mqtt_client_new(l, &cfg, NULL, err, sizeof err));
    assert_non_null(strstr(err, "key"));
    ea_loop_free(l);
}

/* The output reports the reason through its state event (the core logs it and shows it in /health).
 */
typedef struct out_state {
    int downs;
    char why[256];
} out_state;

static void o_state(void *arg, int up, const char *why)
{
    out_state *s = arg;
    if (!up) {
        s->downs++;
        snprintf(s->why, sizeof s->why, "%s", why);
    }
}

static int o_down(void *arg)
{
    return ((out_state *)arg)->downs > 0;
}

static void test_output_reports_tls_reason(void **state)
{
    (void)state;
    ea_loop *l = ea_loop_new();
    char url[128], ca[128];
    snprintf(url, sizeof url, "mqtts://localhost:%d/edge/data", port_wrong_host);
    pki_path(ca, sizeof ca, "ca.crt");
    ea_output_config cfg = {.url = url,
                            .client_id = "tls-out",
                            .ca_file = ca,
                            .backoff_min_ms = 5000,
                            .backoff_max_ms = 5000};
    out_state s = {0, ""};
    ea_output_events ev = {.state = o_state, .arg = &s};
    char err[256];
    ea_output *o = ea_output_mqtt.create(&cfg, l, &ev, err, sizeof err);
    if (!o) fail_msg("create: %s", err);
    assert_true(test_run_until(l, o_down, &s, 5000));
    assert_string_equal(s.why, "TLS: certificate verify failed: hostname mismatch");
    assert_false(ea_output_mqtt.connected(o));
    ea_output_mqtt.destroy(o);

    /* the same through the output's URL with an address */
    snprintf(url, sizeof url, "mqtts://127.0.0.1:%d/edge/data", port_dns_only);
    s = (out_state){0, ""};
    o = ea_output_mqtt.create(&cfg, l, &ev, err, sizeof err);
    if (!o) fail_msg("create: %s", err);
    assert_true(test_run_until(l, o_down, &s, 5000));
    assert_string_equal(s.why, "TLS: certificate verify failed: no IP SAN matching 127.0.0.1");
    ea_output_mqtt.destroy(o);
    ea_loop_free(l);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_server_certificate),
        cmocka_unit_test(test_expired_certificate_refused),
        cmocka_unit_test(test_wrong_hostname_refused),
        cmocka_unit_test(test_unknown_ca_refused),
        cmocka_unit_test(test_client_certificate_required),
        cmocka_unit_test(test_ip_literal_matches_ip_san),
        cmocka_unit_test(test_ip_literal_without_ip_san_refused),
        cmocka_unit_test(test_ipv6_literal),
        cmocka_unit_test(test_bad_tls_files_refused_at_create),
        cmocka_unit_test(test_output_reports_tls_reason),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
