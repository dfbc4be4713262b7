/*
 * Readiness and HTTP probes against an app in a sandbox, from the host: sockets are created in the
 * container's network namespace (es_sandbox_socket), so 127.0.0.1:PORT is the app's own loopback
 * even when several sandboxes use the same port side by side. HTTP goes through libcurl with an
 * open-socket callback; we never parse HTTP ourselves.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/sandbox.h"

#define SB_BODY_MAX (1u << 20)

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static int try_connect(es_sandbox *sb, int port, es_error *err)
{
    int fd = es_sandbox_socket(sb, AF_INET, SOCK_STREAM, err);
    if (fd < 0) return -2;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) return fd;
    close(fd);
    return -1;
}

int es_sandbox_connect_tcp(es_sandbox *sb, int port, int timeout_ms, es_error *err)
{
    long long end = now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    for (;;) {
        int fd = try_connect(sb, port, err);
        if (fd >= 0 || fd == -2) return fd >= 0 ? fd : -1;
        if (!es_sandbox_alive(sb)) {
            int code = 0;
            es_sandbox_wait(sb, 0, &code, NULL);
            return es_err(err, ES_EPROBE,
                          "the app exited with code %d before 127.0.0.1:%d was ready", code, port);
        }
        if (now_ms() >= end)
            return es_err(err, ES_EPROBE, "127.0.0.1:%d not ready after %d ms (connection refused)",
                          port, timeout_ms);
        sleep_ms(50);
    }
}

typedef struct {
    es_sandbox *sb;
    char *buf;
    size_t len;
} http_ctx;

static curl_socket_t open_in_netns(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr)
{
    (void)purpose;
    http_ctx *c = clientp;
    es_error e;
    memset(&e, 0, sizeof e);
    int fd = es_sandbox_socket(c->sb, addr->family, addr->socktype, &e);
    return fd < 0 ? CURL_SOCKET_BAD : fd;
}

static size_t collect_body(char *data, size_t size, size_t nmemb, void *userp)
{
    http_ctx *c = userp;
    size_t n = size * nmemb, room = SB_BODY_MAX - c->len;
    size_t take = n < room ? n : room;
    if (take) {
        c->buf = es_xrealloc(c->buf, c->len + take + 1);
        memcpy(c->buf + c->len, data, take);
        c->len += take;
        c->buf[c->len] = '\0';
    }
    return n;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

int es_sandbox_http_get(es_sandbox *sb, int port, const char *path, int timeout_ms, long *status,
                        char **body, size_t *body_len, es_error *err)
{
    long long start = now_ms();
    int fd = es_sandbox_connect_tcp(sb, port, timeout_ms, err);
    if (fd < 0) return -1;
    close(fd);
    pthread_once(&curl_once, curl_init_once);
    CURL *h = curl_easy_init();
    if (!h) return es_err(err, ES_EFAIL, "curl_easy_init failed");
    http_ctx c = {sb, NULL, 0};
    es_cleanup_free char *url = es_xasprintf("http://127.0.0.1:%d%s%s", port,
                                             path && path[0] == '/' ? "" : "/", path ? path : "");
    long left = timeout_ms < 0 ? 0 : (long)(timeout_ms - (now_ms() - start));
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_in_netns);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, &c);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &c);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, left > 1000 ? left : 1000L);
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK) {
        free(c.buf);
        return es_err(err, ES_EPROBE, "GET %s: %s", url, curl_easy_strerror(rc));
    }
    *status = code;
    if (body)
        *body = c.buf ? c.buf : es_xstrdup("");
    else
        free(c.buf);
    if (body_len) *body_len = c.len;
    return 0;
}
