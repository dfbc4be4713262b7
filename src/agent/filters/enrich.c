/*
 * filters/enrich.c: adds tags: the device id and site from the agent config (unless overridden)
 * and fixed labels. Config: {} or {device_id: ID, site: NAME, labels: {KEY: VALUE}}; an empty
 * value leaves that tag out.
 */
#include <stdlib.h>
#include <string.h>

#include "filters/filter.h"

#define MAX_LABELS 16

struct ea_filter {
    char device_id[128], site[128];
    char key[MAX_LABELS][64], val[MAX_LABELS][128];
    int n;
};

static void destroy(ea_filter *f) { free(f); }

static int copy_str(char *dst, size_t cap, const char *s)
{
    if (!s)
        return 0;
    size_t len = strlen(s);
    if (len >= cap)
        return -1;
    memcpy(dst, s, len + 1);
    return 0;
}

static ea_filter *create(const ea_node *cfg, const ea_filter_env *env, char *err, size_t errlen)
{
    ea_filter *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    const char *dev = env ? env->device_id : NULL, *site = env ? env->site : NULL;
    if (cfg->type == EA_N_OBJ) {
        for (const ea_node *k = cfg->child; k; k = k->next) {
            if (!strcmp(k->key, "device_id") && k->type == EA_N_STR)
                dev = k->s;
            else if (!strcmp(k->key, "site") && k->type == EA_N_STR)
                site = k->s;
            else if (!strcmp(k->key, "labels") && k->type == EA_N_OBJ) {
                for (const ea_node *l = k->child; l; l = l->next)
                    if (l->type != EA_N_STR || f->n == MAX_LABELS || copy_str(f->key[f->n], 64, l->key) < 0 ||
                        copy_str(f->val[f->n], 128, l->s) < 0) {
                        ea_cfg_err(err, errlen, l, "enrich.labels: expected KEY: VALUE strings (at most %d)", MAX_LABELS);
                        destroy(f);
                        return NULL;
                    } else
                        f->n++;
            } else {
                ea_cfg_err(err, errlen, k, "enrich: unknown or mistyped key '%s' (device_id, site, labels)", k->key);
                destroy(f);
                return NULL;
            }
        }
    } else if (cfg->type != EA_N_NULL && !(cfg->type == EA_N_STR && cfg->slen == 0)) {
        ea_cfg_err(err, errlen, cfg, "enrich: expected a map {device_id, site, labels}");
        destroy(f);
        return NULL;
    }
    if (copy_str(f->device_id, sizeof f->device_id, dev) < 0 || copy_str(f->site, sizeof f->site, site) < 0) {
        ea_cfg_err(err, errlen, cfg, "enrich: device_id/site longer than 127 bytes");
        destroy(f);
        return NULL;
    }
    return f;
}

static int apply(ea_filter *f, ea_record *r, uint64_t now_ms)
{
    (void)now_ms;
    if (f->device_id[0])
        ea_rec_add_tag(r, "device_id", 9, f->device_id, strlen(f->device_id));
    if (f->site[0])
        ea_rec_add_tag(r, "site", 4, f->site, strlen(f->site));
    for (int i = 0; i < f->n; i++)
        ea_rec_add_tag(r, f->key[i], strlen(f->key[i]), f->val[i], strlen(f->val[i]));
    return EA_FILTER_PASS;
}

const ea_filter_ops ea_filter_enrich = {"enrich", create, apply, NULL, destroy};
