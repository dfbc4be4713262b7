/*
 * inputs/http_parser.c: strict HTTP/1.1 request-head parser (rules in http_parser.h). It never
 * reads past len and never writes past the fixed fields of ea_http_req; everything it does not
 * understand is an error with a status code, not a guess.
 */
#include "inputs/http_parser.h"

#include <string.h>
#include <strings.h>

static const char *find_crlf(const char *p, const char *end)
{
    for (; p + 1 < end; p++)
        if (p[0] == '\r' && p[1] == '\n')
            return p;
    return NULL;
}

static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int bad(int *status, const char **why, int st, const char *w)
{
    *status = st;
    *why = w;
    return -1;
}

/* Case-insensitive token search in a comma-separated header value. */
static int has_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok);
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == tl && strncasecmp(v + s, tok, tl) == 0)
            return 1;
    }
    return 0;
}

static int parse_request_line(const char *p, const char *eol, ea_http_req *req, int *status, const char **why)
{
    const char *sp1 = memchr(p, ' ', (size_t)(eol - p));
    if (!sp1 || sp1 == p || (size_t)(sp1 - p) >= sizeof req->method)
        return bad(status, why, 400, "malformed request line");
    for (const char *q = p; q < sp1; q++)
        if (!is_tchar((unsigned char)*q))
            return bad(status, why, 400, "malformed method");
    memcpy(req->method, p, (size_t)(sp1 - p));
    req->method[sp1 - p] = 0;
    const char *t = sp1 + 1;
    const char *sp2 = memchr(t, ' ', (size_t)(eol - t));
    if (!sp2 || sp2 == t || *t != '/')
        return bad(status, why, 400, "malformed request target");
    const char *qm = memchr(t, '?', (size_t)(sp2 - t));
    const char *pend = qm ? qm : sp2;
    if ((size_t)(pend - t) >= sizeof req->path)
        return bad(status, why, 400, "request target too long");
    for (const char *q = t; q < sp2; q++)
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
            return bad(status, why, 400, "invalid character in request target");
    memcpy(req->path, t, (size_t)(pend - t));
    req->path[pend - t] = 0;
    const char *ver = sp2 + 1;
    if (eol - ver != 8 || memcmp(ver, "HTTP/1.", 7) != 0)
        return bad(status, why, eol - ver == 8 && memcmp(ver, "HTTP/", 5) == 0 ? 505 : 400, "unsupported HTTP version");
    if (ver[7] != '0' && ver[7] != '1')
        return bad(status, why, 505, "unsupported HTTP version");
    req->minor = ver[7] - '0';
    req->keep_alive = req->minor == 1;
    return 0;
}

static int parse_content_length(const char *v, size_t n, size_t *out)
{
    if (n == 0 || n > 18)
        return -1;
    size_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        x = x * 10 + (size_t)(v[i] - '0');
    }
    *out = x;
    return 0;
}

int ea_http_parse_head(const char *buf, size_t len, size_t max_head, size_t max_body, ea_http_req *req, int *status,
                       const char **why)
{
    memset(req, 0, sizeof *req);
    const char *end = buf + (len < max_head ? len : max_head);
    /* the head ends at the first empty line */
    const char *p = buf, *eol = find_crlf(p, end);
    if (!eol)
        return len >= max_head ? bad(status, why, 431, "request head too large") : 0;
    if (eol == p)
        return bad(status, why, 400, "empty request line");
    if (parse_request_line(p, eol, req, status, why) < 0)
        return -1;
    int nheaders = 0, have_cl = 0, have_te = 0, chunked = 0;
    size_t cl = 0;
    p = eol + 2;
    for (;;) {
        eol = find_crlf(p, end);
        if (!eol)
            return len >= max_head ? bad(status, why, 431, "request head too large") : 0;
        if (eol == p)
            break;
        if (*p == ' ' || *p == '\t')
            return bad(status, why, 400, "obsolete header line folding");
        if (++nheaders > EA_HTTP_MAX_HEADERS)
            return bad(status, why, 431, "too many headers");
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon || colon == p)
            return bad(status, why, 400, "malformed header line");
        for (const char *q = p; q < colon; q++)
            if (!is_tchar((unsigned char)*q))
                return bad(status, why, 400, "invalid header name");
        size_t nl = (size_t)(colon - p);
        const char *v = colon + 1, *ve = eol;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        for (const char *q = v; q < ve; q++)
            if ((unsigned char)*q < 0x20 && *q != '\t')
                return bad(status, why, 400, "control character in header value");
        size_t vl = (size_t)(ve - v);
        if (nl == 14 && !strncasecmp(p, "Content-Length", 14)) {
            size_t x;
            if (parse_content_length(v, vl, &x) < 0 || (have_cl && x != cl))
                return bad(status, why, 400, "invalid Content-Length");
            have_cl = 1;
            cl = x;
        } else if (nl == 17 && !strncasecmp(p, "Transfer-Encoding", 17)) {
            have_te = 1;
            chunked = has_token(v, vl, "chunked");
        } else if (nl == 10 && !strncasecmp(p, "Connection", 10)) {
            if (has_token(v, vl, "close"))
                req->keep_alive = 0;
            else if (has_token(v, vl, "keep-alive"))
                req->keep_alive = 1;
        } else if (nl == 6 && !strncasecmp(p, "Expect", 6)) {
            if (vl == 12 && !strncasecmp(v, "100-continue", 12))
                req->expect_continue = 1;
            else
                return bad(status, why, 417, "unsupported Expect");
        } else if (nl == 13 && !strncasecmp(p, "Authorization", 13)) {
            size_t n = vl < sizeof req->auth - 1 ? vl : sizeof req->auth - 1;
            memcpy(req->auth, v, n);
            req->auth[n] = 0;
        }
        p = eol + 2;
    }
    if (have_te && have_cl)
        return bad(status, why, 400, "both Transfer-Encoding and Content-Length");
    if (have_te)
        return chunked ? bad(status, why, 411, "chunked bodies are not accepted: send Content-Length")
                       : bad(status, why, 501, "unsupported Transfer-Encoding");
    if (cl > max_body)
        return bad(status, why, 413, "body larger than the limit");
    req->content_length = cl;
    req->head_len = (size_t)(eol + 2 - buf);
    return 1;
}

const char *ea_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Status";
    }
}
