/*
 * inputs/convert.c: JSON object -> record and InfluxDB line protocol -> record (see convert.h).
 * Line protocol rules followed (from the InfluxDB v2 reference): measurement escapes ',' and ' ';
 * tag keys/values and field keys escape ',', '=' and ' '; string field values are double-quoted
 * with '\"' and '\\' escapes; integers end in 'i', unsigned in 'u'; booleans t/T/true/True/TRUE and
 * f/F/false/False/FALSE; an optional integer timestamp (ns) ends the line.
 */
#include "inputs/convert.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *fmt, const char *a, long b)
{
    if (err && errlen)
        snprintf(err, errlen, fmt, a, b);
    return -1;
}

/* ------------------------------------------------------------------ JSON */

static int scalar_text(const ea_node *v, char *tmp, size_t cap, const char **s, size_t *n)
{
    if (v->type == EA_N_STR) {
        *s = v->s;
        *n = v->slen;
        return 0;
    }
    if (v->type == EA_N_NUM || v->type == EA_N_BOOL) {
        size_t l = v->rawlen < cap ? v->rawlen : cap - 1;
        memcpy(tmp, v->raw, l);
        *s = tmp;
        *n = l;
        return 0;
    }
    return -1;
}

static int add_json_field(ea_record *r, const char *k, size_t kl, const ea_node *v, char *err, size_t errlen)
{
    if (v->type == EA_N_NULL)
        return 0;
    ea_field *f = ea_rec_add_field(r, k, kl);
    if (!f)
        return fail(err, errlen, "record too large at field '%s'%.0ld", k, 0);
    switch (v->type) {
    case EA_N_NUM:
        if (v->is_int) {
            f->type = EA_V_INT;
            f->i = v->i;
        } else {
            f->type = EA_V_FLOAT;
            f->f = v->num;
        }
        return 0;
    case EA_N_BOOL:
        f->type = EA_V_BOOL;
        f->b = v->b;
        return 0;
    case EA_N_STR:
        f->type = EA_V_STR;
        f->str = v->s;
        f->slen = (uint32_t)v->slen;
        return 0;
    default:
        f->type = EA_V_RAW;
        f->str = v->raw;
        f->slen = (uint32_t)v->rawlen;
        return 0;
    }
}

int ea_json_to_record(const ea_node *obj, ea_record *r, char *err, size_t errlen)
{
    if (!obj || obj->type != EA_N_OBJ)
        return fail(err, errlen, "expected a JSON object%s%.0ld", "", 0);
    for (const ea_node *m = obj->child; m; m = m->next) {
        const char *k = m->key;
        if (!strcmp(k, "measurement") || !strcmp(k, "name")) {
            if (m->type != EA_N_STR || m->slen == 0 || ea_rec_set_measurement(r, m->s, m->slen) < 0)
                return fail(err, errlen, "'%s' must be a non-empty string%.0ld", k, 0);
        } else if (!strcmp(k, "ts") || !strcmp(k, "timestamp") || !strcmp(k, "time")) {
            if (m->type != EA_N_NUM || !m->is_int)
                return fail(err, errlen, "'%s' must be an integer%.0ld", k, 0);
            r->ts = m->i;
            r->has_ts = 1;
        } else if (!strcmp(k, "tags") && m->type == EA_N_OBJ) {
            for (const ea_node *t = m->child; t; t = t->next) {
                char tmp[64];
                const char *s;
                size_t n;
                if (scalar_text(t, tmp, sizeof tmp, &s, &n) < 0)
                    return fail(err, errlen, "tag '%s' must be a string, number or boolean%.0ld", t->key, 0);
                if (ea_rec_add_tag(r, t->key, t->klen, s, n) < 0)
                    return fail(err, errlen, "record too large at tag '%s'%.0ld", t->key, 0);
            }
        } else if (!strcmp(k, "fields") && m->type == EA_N_OBJ) {
            for (const ea_node *f = m->child; f; f = f->next)
                if (add_json_field(r, f->key, f->klen, f, err, errlen) < 0)
                    return -1;
        } else if (m->type == EA_N_STR) {
            if (ea_rec_add_tag(r, k, m->klen, m->s, m->slen) < 0)
                return fail(err, errlen, "record too large at tag '%s'%.0ld", k, 0);
        } else if (add_json_field(r, k, m->klen, m, err, errlen) < 0)
            return -1;
    }
    if (r->nfields == 0)
        return fail(err, errlen, "record has no fields (numbers, booleans or a \"fields\" object)%s%.0ld", "", 0);
    return 0;
}

/* ------------------------------------------------------------------ line protocol */

/* Reads an escaped token up to one of `stops` (unescaped); unescapes `escapable` characters.
 * Returns the copy in the record's arena. */
static const char *lp_token(ea_record *r, const char **pp, const char *end, const char *stops, size_t *outlen)
{
    char tmp[1024];
    size_t n = 0;
    const char *p = *pp;
    while (p < end && !strchr(stops, *p)) {
        char c = *p++;
        if (c == '\\' && p < end && (strchr(stops, *p) || *p == '\\' || *p == '=' || *p == ',' || *p == ' '))
            c = *p++;
        if (n == sizeof tmp)
            return NULL;
        tmp[n++] = c;
    }
    *pp = p;
    *outlen = n;
    return ea_rec_strdup(r, tmp, n);
}

static int lp_bool(const char *s, size_t n, int *b)
{
    static const char *t[] = {"t", "T", "true", "True", "TRUE"}, *f[] = {"f", "F", "false", "False", "FALSE"};
    for (int i = 0; i < 5; i++) {
        if (strlen(t[i]) == n && !memcmp(s, t[i], n))
            return *b = 1, 0;
        if (strlen(f[i]) == n && !memcmp(s, f[i], n))
            return *b = 0, 0;
    }
    return -1;
}

static int lp_number(const char *s, size_t n, ea_field *f)
{
    char tmp[64];
    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    char *end;
    errno = 0;
    if (tmp[n - 1] == 'i' || tmp[n - 1] == 'u') {
        if (n == 1)
            return -1;
        tmp[n - 1] = 0;
        if (s[n - 1] == 'u') {
            if (tmp[0] == '-')
                return -1;
            unsigned long long u = strtoull(tmp, &end, 10);
            if (*end || errno || end == tmp || u > INT64_MAX)
                return -1;
            f->i = (int64_t)u;
        } else {
            long long v = strtoll(tmp, &end, 10);
            if (*end || errno || end == tmp)
                return -1;
            f->i = v;
        }
        f->type = EA_V_INT;
        return 0;
    }
    double d = strtod(tmp, &end);
    if (*end || end == tmp || !isfinite(d) || !strchr("+-.0123456789", tmp[0]))
        return -1;
    f->type = EA_V_FLOAT;
    f->f = d;
    return 0;
}

static int lp_field_value(ea_record *r, const char **pp, const char *end, ea_field *f)
{
    const char *p = *pp;
    if (p < end && *p == '"') {
        char tmp[4096];
        size_t n = 0;
        p++;
        while (p < end && *p != '"') {
            char c = *p++;
            if (c == '\\' && p < end && (*p == '"' || *p == '\\'))
                c = *p++;
            if (n == sizeof tmp)
                return -1;
            tmp[n++] = c;
        }
        if (p >= end)
            return -1;
        p++;
        f->type = EA_V_STR;
        if (!(f->str = ea_rec_strdup(r, tmp, n)))
            return -1;
        f->slen = (uint32_t)n;
        *pp = p;
        return 0;
    }
    const char *s = p;
    while (p < end && *p != ',' && *p != ' ')
        p++;
    *pp = p;
    int b;
    if (lp_bool(s, (size_t)(p - s), &b) == 0) {
        f->type = EA_V_BOOL;
        f->b = b;
        return 0;
    }
    return lp_number(s, (size_t)(p - s), f);
}

int ea_lineproto_parse(const char *line, size_t len, ea_record *r, char *err, size_t errlen)
{
    const char *p = line, *end = line + len;
    if (end > p && end[-1] == '\r')
        end--;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (p == end || *p == '#')
        return 0;
    size_t n;
    const char *m = lp_token(r, &p, end, ", ", &n);
    if (!m || n == 0)
        return fail(err, errlen, "line protocol: missing measurement%s at byte %ld", "", (long)(p - line));
    r->measurement = m;
    r->mlen = (uint32_t)n;
    while (p < end && *p == ',') {
        p++;
        size_t kl, vl;
        const char *k = lp_token(r, &p, end, "=, ", &kl);
        if (!k || kl == 0 || p >= end || *p != '=')
            return fail(err, errlen, "line protocol: bad tag%s at byte %ld", "", (long)(p - line));
        p++;
        const char *v = lp_token(r, &p, end, ", ", &vl);
        if (!v || vl == 0)
            return fail(err, errlen, "line protocol: empty tag value%s at byte %ld", "", (long)(p - line));
        if (ea_rec_add_tag(r, k, kl, v, vl) < 0)
            return fail(err, errlen, "line protocol: too many tags%s at byte %ld", "", (long)(p - line));
    }
    if (p >= end || *p != ' ')
        return fail(err, errlen, "line protocol: expected a space before the fields%s at byte %ld", "", (long)(p - line));
    while (p < end && *p == ' ')
        p++;
    for (;;) {
        size_t kl;
        const char *k = lp_token(r, &p, end, "=, ", &kl);
        if (!k || kl == 0 || p >= end || *p != '=')
            return fail(err, errlen, "line protocol: bad field%s at byte %ld", "", (long)(p - line));
        p++;
        ea_field *f = ea_rec_add_field(r, k, kl);
        if (!f)
            return fail(err, errlen, "line protocol: too many fields%s at byte %ld", "", (long)(p - line));
        if (lp_field_value(r, &p, end, f) < 0)
            return fail(err, errlen, "line protocol: bad value for field '%s' at byte %ld", k, (long)(p - line));
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        break;
    }
    while (p < end && *p == ' ')
        p++;
    if (p < end) {
        const char *s = p;
        char tmp[32];
        while (p < end && *p != ' ')
            p++;
        size_t tl = (size_t)(p - s);
        char *e;
        if (tl >= sizeof tmp)
            return fail(err, errlen, "line protocol: bad timestamp%s at byte %ld", "", (long)(s - line));
        memcpy(tmp, s, tl);
        tmp[tl] = 0;
        errno = 0;
        long long ts = strtoll(tmp, &e, 10);
        if (*e || errno || e == tmp)
            return fail(err, errlen, "line protocol: bad timestamp%s at byte %ld", "", (long)(s - line));
        while (p < end && *p == ' ')
            p++;
        if (p < end)
            return fail(err, errlen, "line protocol: unexpected text after the timestamp%s at byte %ld", "", (long)(p - line));
        r->ts = ts;
        r->has_ts = 1;
    }
    return 1;
}
