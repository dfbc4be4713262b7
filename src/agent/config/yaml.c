/*
 * config/yaml.c: parser for the YAML subset in yaml.h. Two passes: split the text into logical
 * lines (indent, content, line number; comments and blank lines dropped), then build the tree by
 * recursive descent over indentation. Hand-written because libyaml is not needed for this subset
 * and would add to the static binary; the subset is small enough to specify in docs/agent-config.md.
 */
#include "config/yaml.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LINES 4096
#define MAX_DEPTH 16

typedef struct yline {
    int indent, lineno;
    char *text; /* content after the indent, comment stripped, trailing spaces removed */
} yline;

typedef struct yp {
    ea_arena *a;
    yline *lines;
    int n, i;
    char *err;
    size_t errlen;
    int failed;
} yp;

static void *yfail(yp *y, int line, const char *fmt, ...)
{
    if (!y->failed && y->err && y->errlen) {
        int k = snprintf(y->err, y->errlen, "line %d: ", line);
        if (k >= 0 && (size_t)k < y->errlen) { /* else the prefix alone was cut off: stop there */
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(y->err + k, y->errlen - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    y->failed = 1;
    return NULL;
}

/* Strips a comment: '#' at the start or after a space, outside quotes. */
static void strip_comment(char *s)
{
    char q = 0;
    for (char *p = s; *p; p++) {
        if (q) {
            if (*p == '\\' && q == '"' && p[1])
                p++;
            else if (*p == q)
                q = 0;
        } else if (*p == '"' || *p == '\'')
            q = *p;
        else if (*p == '#' && (p == s || p[-1] == ' ')) {
            *p = 0;
            break;
        }
    }
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\r'))
        s[--n] = 0;
}

static int split_lines(yp *y, const char *text, size_t len)
{
    y->lines = ea_arena_alloc(y->a, MAX_LINES * sizeof *y->lines);
    if (!y->lines)
        return yfail(y, 0, "config too large"), -1;
    int lineno = 0;
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t l = nl ? (size_t)(nl - (text + pos)) : len - pos;
        lineno++;
        char *s = ea_arena_strndup(y->a, text + pos, l);
        pos += l + 1;
        if (!s)
            return yfail(y, lineno, "config too large"), -1;
        if (memchr(s, 0, l))
            return yfail(y, lineno, "NUL byte"), -1;
        int ind = 0;
        while (s[ind] == ' ')
            ind++;
        if (s[ind] == '\t')
            return yfail(y, lineno, "tab in indentation (use spaces)"), -1;
        strip_comment(s);
        if (!s[ind])
            continue;
        if (!strcmp(s + ind, "---") && y->n == 0)
            continue;
        if (!strcmp(s + ind, "---") || !strcmp(s + ind, "..."))
            return yfail(y, lineno, "multiple documents are not supported"), -1;
        if (y->n == MAX_LINES)
            return yfail(y, lineno, "more than %d lines", MAX_LINES), -1;
        y->lines[y->n++] = (yline){ind, lineno, s + ind};
    }
    return 0;
}

static ea_node *new_node(yp *y, int type, int line)
{
    ea_node *n = ea_arena_alloc(y->a, sizeof *n);
    if (!n)
        return yfail(y, line, "config too large");
    n->type = type;
    n->line = line;
    return n;
}

/* Plain or quoted scalar text -> node. */
static ea_node *scalar(yp *y, const char *s, int line)
{
    size_t n = strlen(s);
    if (s[0] == '&' || s[0] == '*' || s[0] == '!')
        return yfail(y, line, "anchors, aliases and tags are not supported");
    if ((s[0] == '|' || s[0] == '>') && (n == 1 || s[1] == '-' || s[1] == '+'))
        return yfail(y, line, "block scalars (| and >) are not supported; use a quoted string");
    ea_node *v = new_node(y, EA_N_STR, line);
    if (!v)
        return NULL;
    if (s[0] == '"' || s[0] == '\'') {
        char q = s[0];
        char *out = ea_arena_alloc(y->a, n + 1);
        if (!out)
            return yfail(y, line, "config too large");
        size_t k = 0, i = 1;
        for (; i < n && !(s[i] == q && !(q == '\'' && s[i + 1] == '\'')); i++) {
            char c = s[i];
            if (q == '\'' && c == '\'') { /* '' inside single quotes */
                i++;
            } else if (q == '"' && c == '\\') {
                char e = s[++i];
                c = e == 'n' ? '\n' : e == 't' ? '\t' : e == '"' ? '"' : e == '\\' ? '\\' : e == '/' ? '/' : 0;
                if (!c)
                    return yfail(y, line, "unsupported escape \\%c in double-quoted string", e ? e : ' ');
            }
            out[k++] = c;
        }
        if (i >= n)
            return yfail(y, line, "unterminated quoted string");
        if (i + 1 != n)
            return yfail(y, line, "text after the closing quote");
        out[k] = 0;
        v->s = out;
        v->slen = k;
        return v;
    }
    if (!strcmp(s, "true") || !strcmp(s, "false")) {
        v->type = EA_N_BOOL;
        v->b = s[0] == 't';
        return v;
    }
    if (!strcmp(s, "null") || !strcmp(s, "~")) {
        v->type = EA_N_NULL;
        return v;
    }
    if (strchr("-+.0123456789", s[0])) {
        char *end;
        errno = 0;
        long long iv = strtoll(s, &end, 10);
        if (!*end && !errno) {
            v->type = EA_N_NUM;
            v->is_int = 1;
            v->i = iv;
            v->num = (double)iv;
            return v;
        }
        double d = strtod(s, &end);
        if (!*end && isfinite(d)) {
            v->type = EA_N_NUM;
            v->num = d;
            return v;
        }
    }
    v->s = ea_arena_strndup(y->a, s, n);
    v->slen = n;
    return v->s ? v : yfail(y, line, "config too large");
}

/* Finds the ": " (or final ':') separating a key, outside quotes; NULL if the text is no key. */
static char *key_sep(char *s)
{
    char q = 0;
    for (char *p = s; *p; p++) {
        if (q) {
            if (*p == '\\' && q == '"' && p[1])
                p++;
            else if (*p == q)
                q = 0;
        } else if ((*p == '"' || *p == '\'') && p == s)
            q = *p;
        else if (*p == ':' && (p[1] == ' ' || p[1] == 0))
            return p;
        else if (*p == '[' || *p == '{')
            return NULL;
    }
    return NULL;
}

static ea_node *flow(yp *y, char *s, int line);

/* Splits a flow collection body on commas outside quotes/brackets. */
static ea_node *flow_items(yp *y, char *body, int line, int is_map)
{
    ea_node *c = new_node(y, is_map ? EA_N_OBJ : EA_N_ARR, line);
    if (!c)
        return NULL;
    ea_node **tail = &c->child;
    char *p = body;
    while (*p == ' ')
        p++;
    if (!*p)
        return c;
    for (;;) {
        char *start = p, q = 0;
        int depth = 0;
        for (; *p; p++) {
            if (q) {
                if (*p == q)
                    q = 0;
            } else if (*p == '"' || *p == '\'')
                q = *p;
            else if (*p == '[' || *p == '{')
                depth++;
            else if (*p == ']' || *p == '}')
                depth--;
            else if (*p == ',' && depth == 0)
                break;
        }
        char last = *p;
        *p = 0;
        while (*start == ' ')
            start++;
        size_t l = strlen(start);
        while (l && start[l - 1] == ' ')
            start[--l] = 0;
        if (!l)
            return yfail(y, line, "empty item in flow collection");
        ea_node *item;
        if (is_map) {
            char *sep = key_sep(start);
            if (!sep)
                return yfail(y, line, "expected 'key: value' in flow map");
            *sep = 0;
            char *val = sep + 1;
            while (*val == ' ')
                val++;
            ea_node *k = scalar(y, start, line);
            if (!k)
                return NULL;
            item = *val == '[' || *val == '{' ? flow(y, val, line) : scalar(y, val, line);
            if (!item)
                return NULL;
            if (k->type != EA_N_STR)
                return yfail(y, line, "flow map keys must be strings");
            item->key = k->s;
            item->klen = k->slen;
        } else
            item = *start == '[' || *start == '{' ? flow(y, start, line) : scalar(y, start, line);
        if (!item)
            return NULL;
        *tail = item;
        tail = &item->next;
        if (!last)
            break;
        p++;
    }
    return c;
}

static ea_node *flow(yp *y, char *s, int line)
{
    size_t n = strlen(s);
    char open = s[0], close = open == '[' ? ']' : '}';
    if (n < 2 || s[n - 1] != close)
        return yfail(y, line, "unterminated flow collection (must close on the same line)");
    s[n - 1] = 0;
    return flow_items(y, s + 1, line, open == '{');
}

static ea_node *value_text(yp *y, char *s, int line)
{
    if (*s == '[' || *s == '{')
        return flow(y, s, line);
    return scalar(y, s, line);
}

static ea_node *parse_block(yp *y, int indent, int depth);

static int is_item(const char *t) { return t[0] == '-' && (t[1] == ' ' || t[1] == 0); }

static ea_node *parse_list(yp *y, int indent, int depth)
{
    ea_node *list = new_node(y, EA_N_ARR, y->lines[y->i].lineno);
    if (!list)
        return NULL;
    ea_node **tail = &list->child;
    while (y->i < y->n && y->lines[y->i].indent == indent && is_item(y->lines[y->i].text)) {
        yline *l = &y->lines[y->i];
        char *rest = l->text + 1;
        int off = 1;
        while (*rest == ' ')
            rest++, off++;
        ea_node *item;
        if (!*rest) {
            y->i++;
            if (y->i < y->n && y->lines[y->i].indent > indent)
                item = parse_block(y, y->lines[y->i].indent, depth + 1);
            else
                item = new_node(y, EA_N_NULL, l->lineno);
        } else if (is_item(rest) || key_sep(rest)) {
            /* "- key: v" / "- - x": the rest is a block starting at its own column */
            l->indent = indent + off;
            l->text = rest;
            item = parse_block(y, l->indent, depth + 1);
        } else {
            item = value_text(y, rest, l->lineno);
            y->i++;
        }
        if (!item)
            return NULL;
        *tail = item;
        tail = &item->next;
    }
    if (y->i < y->n && y->lines[y->i].indent > indent)
        return yfail(y, y->lines[y->i].lineno, "unexpected indentation");
    return list;
}

static ea_node *parse_map(yp *y, int indent, int depth)
{
    ea_node *map = new_node(y, EA_N_OBJ, y->lines[y->i].lineno);
    if (!map)
        return NULL;
    ea_node **tail = &map->child;
    while (y->i < y->n && y->lines[y->i].indent == indent && !is_item(y->lines[y->i].text)) {
        yline *l = &y->lines[y->i];
        char *sep = key_sep(l->text);
        if (!sep)
            return yfail(y, l->lineno, "expected 'key: value' or 'key:'");
        *sep = 0;
        ea_node *k = scalar(y, l->text, l->lineno);
        if (!k)
            return NULL;
        if (k->type != EA_N_STR || !k->slen)
            return yfail(y, l->lineno, "keys must be non-empty strings");
        for (ea_node *c = map->child; c; c = c->next)
            if (!strcmp(c->key, k->s))
                return yfail(y, l->lineno, "duplicate key '%s' (first at line %d)", k->s, c->line);
        char *val = sep + 1;
        while (*val == ' ')
            val++;
        ea_node *v;
        y->i++;
        if (*val)
            v = value_text(y, val, l->lineno);
        else if (y->i < y->n && y->lines[y->i].indent > indent)
            v = parse_block(y, y->lines[y->i].indent, depth + 1);
        else if (y->i < y->n && y->lines[y->i].indent == indent && is_item(y->lines[y->i].text))
            v = parse_list(y, indent, depth + 1); /* "key:\n- a" at the same column */
        else
            v = new_node(y, EA_N_NULL, l->lineno);
        if (!v)
            return NULL;
        v->key = k->s;
        v->klen = k->slen;
        v->line = l->lineno; /* errors about a value name the line of its key */
        *tail = v;
        tail = &v->next;
    }
    if (y->i < y->n && y->lines[y->i].indent > indent)
        return yfail(y, y->lines[y->i].lineno, "unexpected indentation");
    return map;
}

static ea_node *parse_block(yp *y, int indent, int depth)
{
    if (depth > MAX_DEPTH)
        return yfail(y, y->lines[y->i].lineno, "nesting deeper than %d", MAX_DEPTH);
    if (is_item(y->lines[y->i].text))
        return parse_list(y, indent, depth);
    return parse_map(y, indent, depth);
}

ea_node *ea_yaml_parse(ea_arena *a, const char *text, size_t len, char *err, size_t errlen)
{
    yp y = {.a = a, .err = err, .errlen = errlen};
    if (split_lines(&y, text, len) < 0)
        return NULL;
    if (y.n == 0)
        return new_node(&y, EA_N_OBJ, 1);
    if (y.lines[0].indent != 0)
        return yfail(&y, y.lines[0].lineno, "the document must start at column 1");
    ea_node *root = parse_block(&y, 0, 0);
    if (!root)
        return NULL;
    if (y.i < y.n)
        return yfail(&y, y.lines[y.i].lineno, "unexpected indentation");
    if (root->type != EA_N_OBJ)
        return yfail(&y, 1, "the document must be a map of sections");
    return root;
}
