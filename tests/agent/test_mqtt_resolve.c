/*
 * test_mqtt_resolve.c: uplink URL parsing and host resolution without getaddrinfo(): numeric
 * addresses, a hosts(5) file, and DNS A queries over UDP against a REAL DNS server (dnsmasq,
 * started by the test on a private loopback address, port 53), including a CNAME chain and a
 * name that does not exist. Then an MQTT client connects to mosquitto by a DNS name.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "net/tcp.h"
#include "proto/mqtt_client.h"
#include "test_mqtt_broker.h"

#define DNS_IP "127.83.0.1"

static char dir[64];
static pid_t dnsmasq_pid;

static void path_of(char *out, size_t n, const char *f)
{
    snprintf(out, n, "%s/%s", dir, f);
}

static int dns_listening(void)
{
    /* dnsmasq is up once it answers our own resolver */
    char resolv[128], err[256];
    path_of(resolv, sizeof resolv, "resolv.conf");
    ea_addr a;
    return ea_tcp_resolve("broker.test", 1, &a, "/dev/null", resolv, err, sizeof err) == 0;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/ea-dns-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    char p[128];
    path_of(p, sizeof p, "resolv.conf");
    FILE *f = fopen(p, "w");
    fprintf(f, "# test\nsearch example\nnameserver " DNS_IP "\n");
    fclose(f);
    path_of(p, sizeof p, "hosts");
    f = fopen(p, "w");
    fprintf(f, "# comment\n::1 ip6-only\n10.1.2.3   gateway.local gw  # trailing "
               "comment\n127.0.0.1 localhost\n");
    fclose(f);
    char dns_hosts[160];
    path_of(p, sizeof p,
            "dns-hosts"); /* dnsmasq's own data: a --cname target must come from a hosts file */
    snprintf(dns_hosts, sizeof dns_hosts, "--addn-hosts=%s", p);
    f = fopen(p, "w");
    fprintf(f, "192.0.2.7 far.test\n");
    fclose(f);
    dnsmasq_pid = fork();
    if (dnsmasq_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 1);
        dup2(fd, 2);
        execlp("dnsmasq", "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--no-resolv",
               "--no-hosts", "--bind-interfaces", "--listen-address=" DNS_IP, "--port=53",
               "--user=root", "--address=/broker.test/127.0.0.1", dns_hosts,
               "--cname=alias.test,far.test", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 300 && !dns_listening(); i++)
        test_sleep_ms(10);
    return dns_listening() ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    kill(dnsmasq_pid, SIGTERM);
    waitpid(dnsmasq_pid, NULL, 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

static void test_url_parsing(void **state)
{
    (void)state;
    ea_url u;
    char err[256];
    assert_int_equal(ea_url_parse("mqtts://broker.local/site/1/data", &u, err, sizeof err), 0);
    assert_string_equal(u.scheme, "mqtts");
    assert_string_equal(u.host, "broker.local");
    assert_int_equal(u.port, 8883);
    assert_string_equal(u.path, "site/1/data");
    assert_int_equal(u.tls, 1);
    assert_int_equal(ea_url_parse("mqtt://10.0.0.1:1884/t", &u, err, sizeof err), 0);
    assert_int_equal(u.port, 1884);
    assert_int_equal(u.tls, 0);
    assert_int_equal(ea_url_parse("http://[::1]:8080/v1/in?x=1", &u, err, sizeof err), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 8080);
    assert_string_equal(u.path, "/v1/in?x=1");
    assert_int_equal(ea_url_parse("https://h", &u, err, sizeof err), 0);
    assert_int_equal(u.port, 443);
    assert_string_equal(u.path, "");
    static const char *bad[] = {"ftp://h/x",          "mqtt//h/x",        "mqtt://:1883/t",
                                "mqtt://h:0/t",       "mqtt://h:65536/t", "mqtt://h:12a/t",
                                "mqtt://user:pw@h/t", "http://[::1/x",    "mqtt://h:/t"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (ea_url_parse(bad[i], &u, err, sizeof err) == 0) fail_msg("accepted %s", bad[i]);
}

static void expect_ip(const char *host, const char *want)
{
    char hosts[128], resolv[128], err[256], got[80], w[80];
    path_of(hosts, sizeof hosts, "hosts");
    path_of(resolv, sizeof resolv, "resolv.conf");
    ea_addr a;
    if (ea_tcp_resolve(host, 1883, &a, hosts, resolv, err, sizeof err) != 0)
        fail_msg("%s: %s", host, err);
    ea_addr_format(&a, got, sizeof got);
    snprintf(w, sizeof w, "%s:1883", want);
    assert_string_equal(got, w);
}

static void test_numeric_and_hosts_file(void **state)
{
    (void)state;
    expect_ip("192.0.2.1", "192.0.2.1");
    expect_ip("::1", "[::1]");
    expect_ip("gateway.local", "10.1.2.3");
    expect_ip("GW", "10.1.2.3"); /* names are case-insensitive */
    expect_ip("localhost", "127.0.0.1");
}

static void test_dns_a_and_cname(void **state)
{
    (void)state;
    expect_ip("broker.test", "127.0.0.1");
    expect_ip("far.test", "192.0.2.7");
    expect_ip("alias.test", "192.0.2.7"); /* CNAME answer followed by the A record */
    char hosts[128], resolv[128], err[256];
    path_of(hosts, sizeof hosts, "hosts");
    path_of(resolv, sizeof resolv, "resolv.conf");
    ea_addr a;
    assert_int_equal(ea_tcp_resolve("ip6-only", 1, &a, hosts, resolv, err, sizeof err),
                     -1); /* no IPv4 anywhere */
    assert_int_equal(ea_tcp_resolve("nothing.invalid", 1, &a, hosts, resolv, err, sizeof err), -1);
    assert_non_null(strstr(err, "nothing.invalid"));
    assert_int_equal(ea_tcp_resolve("bad..name", 1, &a, hosts, resolv, err, sizeof err), -1);
}

static int is_up(void *arg)
{
    return ea_mqtt_client_connected(arg);
}

static void test_mqtt_connects_by_dns_name(void **state)
{
    (void)state;
    test_broker b = {0};
    assert_int_equal(test_broker_start(&b, NULL), 0);
    char hosts[128], resolv[128], err[256];
    path_of(hosts, sizeof hosts, "hosts");
    path_of(resolv, sizeof resolv, "resolv.conf");
    ea_loop *l = ea_loop_new();
    ea_mqtt_client_config cfg = {.host = "broker.test",
                                 .port = (uint16_t)b.port,
                                 .client_id = "dns",
                                 .hosts_path = hosts,
                                 .resolv_path = resolv};
    ea_mqtt_client *c = ea_mqtt_client_new(l, &cfg, NULL, err, sizeof err);
    assert_non_null(c);
    ea_mqtt_client_start(c);
    assert_true(test_run_until(l, is_up, c, 5000));
    ea_mqtt_client_free(c);
    ea_loop_free(l);
    test_broker_stop(&b);
}

typedef struct order {
    int timer_fired, timer_fired_before_failure, failures;
    char why[320];
} order;

static void order_timer(ea_loop *l, void *arg)
{
    (void)l;
    ((order *)arg)->timer_fired = 1;
}

static void order_disconnected(void *arg, const char *why)
{
    order *o = arg;
    if (o->failures++ == 0) {
        o->timer_fired_before_failure = o->timer_fired;
        snprintf(o->why, sizeof o->why, "%s", why);
    }
}

static int order_failed(void *arg)
{
    return ((order *)arg)->failures > 0;
}

/* A nameserver that never answers (a UDP socket of ours that reads nothing) must not stall the
 * loop: other work runs while the query waits, and the failure arrives later as an event. */
static void test_dns_wait_does_not_block_the_loop(void **state)
{
    (void)state;
    int hole = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(53)};
    inet_pton(AF_INET, "127.83.0.9", &sa.sin_addr);
    assert_int_equal(bind(hole, (struct sockaddr *)&sa, sizeof sa), 0);
    char resolv[128], hosts[128], err[256];
    path_of(resolv, sizeof resolv, "resolv-hole.conf");
    path_of(hosts, sizeof hosts, "hosts");
    FILE *f = fopen(resolv, "w");
    fprintf(f, "nameserver 127.83.0.9\n");
    fclose(f);
    ea_loop *l = ea_loop_new();
    order o = {0};
    ea_mqtt_client_config cfg = {.host = "silent.test",
                                 .port = 1883,
                                 .client_id = "dns-hole",
                                 .hosts_path = hosts,
                                 .resolv_path = resolv,
                                 .backoff_min_ms = 60000};
    ea_mqtt_client_events ev = {NULL, order_disconnected, NULL, NULL, &o};
    ea_mqtt_client *c = ea_mqtt_client_new(l, &cfg, &ev, err, sizeof err);
    assert_non_null(c);
    ea_mqtt_client_start(c);
    assert_int_equal(o.failures, 0); /* start() returned while the query is outstanding */
    ea_loop_timer(l, 1, order_timer, &o);
    assert_true(test_run_until(l, order_failed, &o, 10000));
    assert_int_equal(o.timer_fired_before_failure, 1);
    assert_non_null(strstr(o.why, "resolve silent.test"));
    ea_mqtt_client_free(c);
    ea_loop_free(l);
    close(hole);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_parsing),
        cmocka_unit_test(test_numeric_and_hosts_file),
        cmocka_unit_test(test_dns_a_and_cname),
        cmocka_unit_test(test_mqtt_connects_by_dns_name),
        cmocka_unit_test(test_dns_wait_does_not_block_the_loop),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
