/*
 * config/config.c: table-driven configuration (see config.h). One row per key gives its section,
 * name, type and where it lives in ea_config; file, environment and flags all go through
 * set_from_node/set_from_text below, so a key behaves the same wherever it is set.
 */
#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/yaml.h"
#include "util/log.h"

enum ktype { K_STR, K_INT, K_BOOL, K_SIZE, K_MS, K_FSYNC, K_FULL, K_LEVEL, K_KEY32, K_LIST, K_ROUTES, K_U32, K_MQTTV };

typedef struct key_def {
    const char *section, *key;
    int type;
    size_t off;
    const char *def, *doc;
} key_def;

#define O(f) offsetof(ea_config, f)
static const key_def keys[] = {
    {"agent", "port", K_STR, O(listen), "8080", "health and ingest HTTP server: PORT or IP:PORT"},
    {"agent", "device_id", K_STR, O(device_id), "", "device id added by the enrich filter"},
    {"agent", "site", K_STR, O(site), "", "site label added by the enrich filter"},
    {"agent", "log_level", K_LEVEL, O(log_level), "info", "error, warn, info or debug"},
    {"agent", "allow_root", K_BOOL, O(allow_root), "false", "run even when started as root"},
    {"agent", "secure_memory", K_BOOL, O(secure_memory), "false", "mlockall, no core dumps, not dumpable"},
    {"agent", "seccomp", K_BOOL, O(seccomp), "true", "install the system-call allow-list after start-up"},
    {"agent", "remote_config", K_BOOL, O(remote_config), "true", "accept signed desired config from the control topic"},
    {"spool", "dir", K_STR, O(spool.dir), "", "spool directory (required)"},
    {"spool", "fsync", K_FSYNC, O(spool.fsync_policy), "batch", "always, batch or none"},
    {"spool", "batch_ms", K_U32, O(spool.batch_ms), "10", "batch: fsync at most this long after the first unsynced record"},
    {"spool", "batch_records", K_U32, O(spool.batch_records), "1000", "batch: or once this many records wait"},
    {"spool", "max_bytes", K_SIZE, O(spool.max_bytes), "256MiB", "cap on spool disk use"},
    {"spool", "full_policy", K_FULL, O(spool.full_policy), "drop-oldest", "drop-oldest or refuse (ingest answers 503)"},
    {"spool", "segment_bytes", K_SIZE, O(spool.segment_bytes), "4MiB", "segment file size (at most max_bytes/4)"},
    {"http", "enabled", K_BOOL, O(http_enabled), "true", "serve POST /v1/ingest"},
    {"http", "token", K_STR, O(http_token), "", "bearer token required on /v1/ingest (empty: none)"},
    {"http", "max_body", K_SIZE, O(http_max_body), "1MiB", "largest request body (413 past it)"},
    {"http", "max_connections", K_INT, O(http_max_conns), "64", "open connections (503 past it)"},
    {"http", "timeout_ms", K_MS, O(http_timeout_ms), "10000", "a request must arrive within this (408)"},
    {"lineproto", "udp", K_STR, O(lp_udp), "", "UDP listen address for line protocol (empty: off)"},
    {"lineproto", "tcp", K_STR, O(lp_tcp), "", "TCP listen address for line protocol (empty: off)"},
    {"lineproto", "tcp_max_connections", K_INT, O(lp_tcp_max_conns), "64", "open TCP connections"},
    {"lineproto", "tcp_idle_ms", K_MS, O(lp_tcp_idle_ms), "300000", "close idle TCP connections after this"},
    {"mqtt_in", "url", K_STR, O(mqtt_in_url), "", "local broker for device topics, mqtt://IP:PORT (empty: off)"},
    {"mqtt_in", "topics", K_LIST, O(mqtt_in_topics), "", "topic filters to subscribe to (JSON payloads)"},
    {"mqtt_in", "mqtt_version", K_MQTTV, O(mqtt_in_version), "3.1.1", "MQTT protocol to the local broker: 3.1.1 or 5"},
    {"uplink", "url", K_STR, O(uplink.url), "", "mqtt://IP:PORT/TOPIC, mqtts://, http://IP:PORT/PATH or https://"},
    {"uplink", "client_id", K_STR, O(uplink.client_id), "", "MQTT client id (default edgeagent-<device_id>)"},
    {"uplink", "ca_file", K_STR, O(uplink.ca_file), "", "CA bundle for server verification"},
    {"uplink", "cert_file", K_STR, O(uplink.cert_file), "", "client certificate (PEM)"},
    {"uplink", "key_file", K_STR, O(uplink.key_file), "", "client key (PEM)"},
    {"uplink", "username", K_STR, O(uplink.username), "", "MQTT user name"},
    {"uplink", "password", K_STR, O(uplink.password), "", "MQTT password"},
    {"uplink", "bearer_token", K_STR, O(uplink.bearer_token), "", "HTTP uplink bearer token"},
    {"uplink", "status_topic", K_STR, O(uplink.status_topic), "", "LWT/online topic (default <topic>/status)"},
    {"uplink", "control_topic", K_STR, O(uplink.control_topic), "", "desired-config topic (empty: none)"},
    {"uplink", "keepalive_s", K_INT, O(uplink.keepalive_s), "30", "MQTT keepalive"},
    {"uplink", "max_inflight", K_INT, O(uplink.max_inflight), "64", "unacknowledged records in flight"},
    {"uplink", "mqtt_version", K_MQTTV, O(uplink.mqtt_version), "3.1.1", "MQTT protocol: 3.1.1 or 5 (--mqtt-version)"},
    {"uplink", "batch_max", K_INT, O(uplink.batch_max), "256", "HTTP: records per POST"},
    {"uplink", "gzip", K_BOOL, O(uplink.gzip), "true", "HTTP: gzip request bodies"},
    {"uplink", "backoff_min_ms", K_U32, O(uplink.backoff_min_ms), "500", "first reconnect delay"},
    {"uplink", "backoff_max_ms", K_U32, O(uplink.backoff_max_ms), "60000", "largest reconnect delay"},
    {"control", "public_key", K_KEY32, O(control_key), "", "ed25519 public key (base64 or hex) that signs desired config"},
    {"routes", "", K_ROUTES, O(routes), "", "list of routes: name, match, filters (see docs/agent-config.md)"},
};
#define NKEYS (sizeof keys / sizeof keys[0])

static int errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int ea_parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || v < 0)
        return -1;
    while (*end == ' ')
        end++;
    static const struct {
        const char *sfx;
        double mul;
    } u[] = {{"", 1},           {"b", 1},           {"k", 1024},        {"kb", 1e3},  {"kib", 1024},
             {"m", 1048576.0},  {"mb", 1e6},        {"mib", 1048576.0}, {"g", 1073741824.0},
             {"gb", 1e9},       {"gib", 1073741824.0}};
    char low[8];
    size_t n = strlen(end);
    if (n >= sizeof low)
        return -1;
    for (size_t i = 0; i <= n; i++)
        low[i] = (char)tolower((unsigned char)end[i]);
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++)
        if (!strcmp(low, u[i].sfx)) {
            double r = v * u[i].mul;
            if (r > 1e18)
                return -1;
            *out = (uint64_t)r;
            return 0;
        }
    return -1;
}

static const char *dup_str(ea_config *c, const char *s) { return ea_arena_strndup(&c->arena, s, strlen(s)); }

/* Sets key d from text; why gets a description of the expected form on failure. */
static int set_from_text(ea_config *c, const key_def *d, const char *v, const char **why)
{
    char *base = (char *)c + d->off;
    char *end;
    switch (d->type) {
    case K_STR: {
        const char *s = *v ? dup_str(c, v) : NULL;
        if (*v && !s)
            return *why = "out of memory", -1;
        *(const char **)base = s;
        return 0;
    }
    case K_INT:
    case K_U32:
    case K_MS: {
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (!*v || *end || errno || x < 0 || x > 2147483647)
            return *why = "expected a whole number >= 0", -1;
        if (d->type == K_INT)
            *(int *)base = (int)x;
        else
            *(uint32_t *)base = (uint32_t)x;
        return 0;
    }
    case K_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes"))
            *(int *)base = 1;
        else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no"))
            *(int *)base = 0;
        else
            return *why = "expected true or false", -1;
        return 0;
    case K_SIZE:
        if (ea_parse_size(v, (uint64_t *)base) < 0)
            return *why = "expected a size such as 1048576, 512KiB, 256MiB, 1GiB", -1;
        return 0;
    case K_FSYNC: {
        int p = ea_spool_parse_fsync(v);
        if (p < 0)
            return *why = "expected always, batch or none", -1;
        *(int *)base = p;
        return 0;
    }
    case K_FULL: {
        int p = ea_spool_parse_full(v);
        if (p < 0)
            return *why = "expected drop-oldest or refuse", -1;
        *(int *)base = p;
        return 0;
    }
    case K_MQTTV:
        if (!strcmp(v, "3.1.1"))
            *(int *)base = 4;
        else if (!strcmp(v, "5"))
            *(int *)base = 5;
        else
            return *why = "expected 3.1.1 or 5 (the MQTT protocol version)", -1;
        return 0;
    case K_LEVEL: {
        int p = ea_log_parse_level(v);
        if (p < 0)
            return *why = "expected error, warn, info or debug", -1;
        *(int *)base = p;
        return 0;
    }
    case K_KEY32: {
        size_t n = 0;
        unsigned char key[64];
        if (!*v) {
            c->have_control_key = 0;
            return 0;
        }
        if ((sodium_hex2bin(key, sizeof key, v, strlen(v), NULL, &n, NULL) != 0 || n != 32) &&
            (sodium_base642bin(key, sizeof key, v, strlen(v), NULL, &n, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
             n != 32))
            return *why = "expected a 32-byte ed25519 public key in base64 or hex", -1;
        memcpy(c->control_key, key, 32);
        c->have_control_key = 1;
        return 0;
    }
    default:
        return *why = "cannot be set from text", -1;
    }
}

static int set_from_node(ea_config *c, const key_def *d, const ea_node *n, const char **why)
{
    if (d->type == K_ROUTES) {
        if (n->type != EA_N_ARR && n->type != EA_N_NULL)
            return *why = "expected a list of routes", -1;
        c->routes = n->type == EA_N_ARR ? n : NULL;
        return 0;
    }
    if (d->type == K_LIST) {
        if (n->type == EA_N_NULL) {
            *(const ea_node **)((char *)c + d->off) = NULL;
            return 0;
        }
        if (n->type != EA_N_ARR)
            return *why = "expected a list of strings", -1;
        for (const ea_node *x = n->child; x; x = x->next)
            if (x->type != EA_N_STR)
                return *why = "expected a list of strings", -1;
        *(const ea_node **)((char *)c + d->off) = n;
        return 0;
    }
    char tmp[64];
    const char *text;
    switch (n->type) {
    case EA_N_STR: text = n->s; break;
    case EA_N_BOOL: text = n->b ? "true" : "false"; break;
    case EA_N_NULL: text = ""; break;
    case EA_N_NUM:
        if (n->is_int)
            snprintf(tmp, sizeof tmp, "%lld", (long long)n->i);
        else
            snprintf(tmp, sizeof tmp, "%.17g", n->num);
        text = tmp;
        break;
    default: return *why = "expected a single value, not a list or map", -1;
    }
    if (d->type == K_BOOL && n->type != EA_N_BOOL && n->type != EA_N_NULL)
        return *why = "expected true or false", -1;
    return set_from_text(c, d, text, why);
}

static const key_def *find_key(const char *section, const char *key)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (!strcmp(keys[i].section, section) && !strcmp(keys[i].key, key))
            return &keys[i];
    return NULL;
}

static int section_known(const char *s)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (!strcmp(keys[i].section, s))
            return 1;
    return 0;
}

static void list_keys(const char *section, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = 0;
    for (size_t i = 0; i < NKEYS && n + 1 < cap; i++)
        if (!strcmp(keys[i].section, section))
            n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? ", " : "", keys[i].key);
}

void ea_config_defaults(ea_config *c)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < NKEYS; i++) {
        const char *why;
        if (keys[i].type != K_ROUTES && keys[i].type != K_LIST)
            set_from_text(c, &keys[i], keys[i].def, &why);
    }
}

void ea_config_free(ea_config *c) { ea_arena_free(&c->arena); }

int ea_config_apply_tree(ea_config *c, const ea_node *root, char *err, size_t errlen)
{
    if (!root || root->type != EA_N_OBJ)
        return errf(err, errlen, "line %d: expected a map of sections (agent, spool, http, ...)", root ? root->line : 1);
    for (const ea_node *s = root->child; s; s = s->next) {
        if (!strcmp(s->key, "routes")) {
            const char *why;
            if (set_from_node(c, find_key("routes", ""), s, &why) < 0)
                return errf(err, errlen, "line %d: routes: %s", s->line, why);
            continue;
        }
        if (!section_known(s->key))
            return errf(err, errlen,
                        "line %d: unknown section '%s' (known: agent, spool, http, lineproto, mqtt_in, uplink, control, "
                        "routes)",
                        s->line, s->key);
        if (s->type == EA_N_NULL)
            continue;
        if (s->type != EA_N_OBJ)
            return errf(err, errlen, "line %d: section '%s' must be a map of keys", s->line, s->key);
        for (const ea_node *k = s->child; k; k = k->next) {
            const key_def *d = find_key(s->key, k->key);
            if (!d) {
                char known[512];
                list_keys(s->key, known, sizeof known);
                return errf(err, errlen, "line %d: unknown key '%s.%s' (known: %s)", k->line, s->key, k->key, known);
            }
            const char *why;
            if (set_from_node(c, d, k, &why) < 0)
                return errf(err, errlen, "line %d: %s.%s: %s", k->line, s->key, k->key, why);
        }
    }
    return 0;
}

int ea_config_load_file(ea_config *c, const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return errf(err, errlen, "%s: cannot open: %s", path, strerror(e));
    }
    if (sb.st_size > (1 << 20)) {
        close(fd);
        return errf(err, errlen, "%s: larger than 1 MiB", path);
    }
    char *text = ea_arena_alloc(&c->arena, (size_t)sb.st_size + 1);
    ssize_t got = text ? read(fd, text, (size_t)sb.st_size) : -1;
    close(fd);
    if (got != (ssize_t)sb.st_size)
        return errf(err, errlen, "%s: cannot read", path);
    char why[400];
    ea_node *root = ea_yaml_parse(&c->arena, text, (size_t)got, why, sizeof why);
    if (!root || ea_config_apply_tree(c, root, why, sizeof why) < 0)
        return errf(err, errlen, "%s: %s", path, root ? why : why);
    return 0;
}

int ea_config_set(ea_config *c, const char *dotted, const char *value, char *err, size_t errlen)
{
    char sec[32];
    const char *dot = strchr(dotted, '.');
    if (!dot || (size_t)(dot - dotted) >= sizeof sec)
        return errf(err, errlen, "'%s': expected SECTION.KEY", dotted);
    memcpy(sec, dotted, (size_t)(dot - dotted));
    sec[dot - dotted] = 0;
    const key_def *d = find_key(sec, dot + 1);
    if (!d || d->type == K_ROUTES || d->type == K_LIST)
        return errf(err, errlen, "'%s': unknown key (or not settable from the command line)", dotted);
    const char *why;
    if (set_from_text(c, d, value, &why) < 0)
        return errf(err, errlen, "%s=%s: %s", dotted, value, why);
    return 0;
}

int ea_config_apply_env(ea_config *c, char *err, size_t errlen)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].type == K_ROUTES || keys[i].type == K_LIST)
            continue;
        char name[96];
        int n = snprintf(name, sizeof name, "EDGEAGENT_%s_%s", keys[i].section, keys[i].key);
        for (int k = 0; k < n; k++)
            name[k] = (char)toupper((unsigned char)name[k]);
        const char *v = getenv(name);
        if (!v)
            continue;
        const char *why;
        if (set_from_text(c, &keys[i], v, &why) < 0)
            return errf(err, errlen, "%s=%s: %s", name, v, why);
    }
    return 0;
}

int ea_config_validate(const ea_config *c, char *err, size_t errlen)
{
    if (!c->spool.dir)
        return errf(err, errlen, "spool.dir is required (--spool DIR, EDGEAGENT_SPOOL_DIR or spool.dir in the file)");
    if (c->uplink.url) {
        const char *u = c->uplink.url;
        if (strncmp(u, "mqtt://", 7) && strncmp(u, "mqtts://", 8) && strncmp(u, "http://", 7) &&
            strncmp(u, "https://", 8))
            return errf(err, errlen, "uplink.url '%s': expected mqtt://, mqtts://, http:// or https://", u);
    }
    if (c->spool.max_bytes < 65536)
        return errf(err, errlen, "spool.max_bytes: at least 64KiB");
    if (c->uplink.backoff_min_ms > c->uplink.backoff_max_ms)
        return errf(err, errlen, "uplink.backoff_min_ms is larger than uplink.backoff_max_ms");
    if (c->remote_config && c->uplink.control_topic && !c->have_control_key)
        return errf(err, errlen, "uplink.control_topic is set but control.public_key is not: desired config could not be verified");
    return 0;
}

void ea_config_print_keys(int fd)
{
    dprintf(fd, "| key | env | default | meaning |\n|---|---|---|---|\n");
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].type == K_ROUTES)
            continue;
        char env[96];
        int n = snprintf(env, sizeof env, "EDGEAGENT_%s_%s", keys[i].section, keys[i].key);
        for (int k = 0; k < n; k++)
            env[k] = (char)toupper((unsigned char)env[k]);
        dprintf(fd, "| `%s.%s` | `%s` | %s | %s |\n", keys[i].section, keys[i].key,
                keys[i].type == K_LIST ? "-" : env, *keys[i].def ? keys[i].def : "(none)", keys[i].doc);
    }
}
