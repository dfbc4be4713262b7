/* edgeslim pack: static binaries -> distroless-static style image (see lib/pack/pack.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pack/pack.h"
#include "util/progress.h"

static const char *default_ca = "/etc/ssl/certs/ca-certificates.crt";

static void help(void)
{
    printf("Usage: edgeslim pack BINARY... -o IMAGE [OPTIONS]\n\n"
           "Packs statically linked binaries into a scratch image: the binaries (in /usr/local/bin),\n"
           "/etc/passwd and /etc/group with root and nonroot (65532), /home/nonroot, /tmp and, with\n"
           "--ca-certs, a CA bundle. Binaries for several architectures give a multi-platform index.\n"
           "Output is deterministic (mtimes from SOURCE_DATE_EPOCH, else 0).\n\n"
           "Options:\n"
           "  -o, --output IMAGE      oci:DIR[:REF], oci-archive:PATH[:REF] or docker-archive:PATH\n"
           "                          (docker-archive holds one platform only)\n"
           "      --ca-certs[=FILE]   ship a CA bundle as /etc/ssl/certs/ca-certificates.crt\n"
           "                          (default FILE: %s)\n"
           "      --user UID[:GID]    numeric user to run as (default 65532:65532)\n"
           "      --port P[/PROTO]    expose a port (repeatable)\n"
           "      --env K=V           add an environment variable (repeatable)\n"
           "      --label K=V         add a label (repeatable)\n"
           "      --entrypoint CMD    JSON array or space-separated (default: the first binary)\n"
           "      --cmd CMD           JSON array or space-separated\n"
           "      --platform P        pack only the binaries for os/arch[/variant]\n"
           "      --bin-dir DIR       where binaries go in the image (default /usr/local/bin)\n"
           "      --compress C        gzip (default), zstd or none\n"
           "      --json              print the result as JSON\n"
           "  -h, --help              this help\n\n"
           "Exit codes: docs/exit-codes.md. Example:\n"
           "  edgeslim pack build/bin/edgeagent build-arm64/bin/edgeagent --ca-certs --port 8080 \\\n"
           "      -o oci-archive:edgeagent.tar:latest\n",
           default_ca);
}

typedef struct {
    const char **v;
    size_t n;
} strv;

static void push(strv *s, const char *x)
{
    s->v = es_xrealloc(s->v, (s->n + 1) * sizeof *s->v);
    s->v[s->n++] = x;
}

int cmd_pack(int argc, char **argv)
{
    enum { O_CA = 256, O_USER, O_PORT, O_ENV, O_LABEL, O_EP, O_CMD, O_PLAT, O_BINDIR, O_COMP, O_JSON };
    static const struct option opts[] = {
        {"output", required_argument, 0, 'o'}, {"ca-certs", optional_argument, 0, O_CA},
        {"user", required_argument, 0, O_USER}, {"port", required_argument, 0, O_PORT},
        {"env", required_argument, 0, O_ENV},   {"label", required_argument, 0, O_LABEL},
        {"entrypoint", required_argument, 0, O_EP}, {"cmd", required_argument, 0, O_CMD},
        {"platform", required_argument, 0, O_PLAT}, {"bin-dir", required_argument, 0, O_BINDIR},
        {"compress", required_argument, 0, O_COMP}, {"json", no_argument, 0, O_JSON},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    es_pack_opts o;
    es_pack_opts_default(&o);
    const char *out = NULL;
    int json = 0, ca_given = 0, c, rc = ES_OK;
    strv ports = {0}, env = {0}, labels = {0};
    es_error err = {0};
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        /* optarg is NULL for a bare --ca-certs: the default, filled in after the loop (not tested here,
         * or clang's analyzer carries "optarg may be NULL" into the required_argument cases) */
        case O_CA: o.ca_bundle = optarg, ca_given = 1; break;
        case O_USER: {
            char *end;
            unsigned long u = strtoul(optarg, &end, 10), g = u;
            if (*end == ':') g = strtoul(end + 1, &end, 10);
            if (*end || u > 0x7fffffffUL || g > 0x7fffffffUL) {
                rc = cli_usage_error("pack", "--user wants UID[:GID] as numbers, got '%s'", optarg);
                goto done;
            }
            o.uid = (unsigned)u, o.gid = (unsigned)g;
            break;
        }
        case O_PORT: push(&ports, optarg); break;
        case O_ENV:
            if (!strchr(optarg, '=')) {
                rc = cli_usage_error("pack", "--env wants K=V, got '%s'", optarg);
                goto done;
            }
            push(&env, optarg);
            break;
        case O_LABEL: push(&labels, optarg); break;
        case O_EP:
        case O_CMD: {
            json_t *a = cli_command_array(optarg);
            if (!a) {
                rc = cli_usage_error("pack", "%s: not a JSON array of strings: %s",
                                     c == O_EP ? "--entrypoint" : "--cmd", optarg);
                goto done;
            }
            json_t **slot = c == O_EP ? &o.entrypoint : &o.cmd;
            json_decref(*slot);
            *slot = a;
            break;
        }
        case O_PLAT: o.only_platform = optarg; break;
        case O_BINDIR: o.bin_dir = optarg; break;
        case O_COMP:
            if (es_compression_parse(optarg, &o.write.compression) < 0) {
                rc = cli_usage_error("pack", "--compress wants gzip, zstd or none, got '%s'", optarg);
                goto done;
            }
            break;
        case O_JSON: json = 1; break;
        case 'h': help(); goto done;
        default: rc = cli_usage_error("pack", "unknown option"); goto done;
        }
    }
    if (ca_given && !o.ca_bundle) o.ca_bundle = default_ca;
    if (!out) {
        rc = cli_usage_error("pack", "missing -o IMAGE");
        goto done;
    }
    if (optind >= argc) {
        rc = cli_usage_error("pack", "no binaries given");
        goto done;
    }
    o.binaries = (const char *const *)argv + optind;
    o.n_binaries = (size_t)(argc - optind);
    o.ports = ports.v, o.n_ports = ports.n;
    o.env = env.v, o.n_env = env.n;
    o.labels = labels.v, o.n_labels = labels.n;
    if (json) es_progress_enable(0);

    es_pack_result res;
    if (es_pack(&o, out, &res, &err) < 0) {
        rc = cli_fail("pack", &err);
        goto done;
    }
    if (json) {
        json_t *j = json_object(), *plats = json_array();
        json_object_set_new(j, "image", json_string(out));
        json_object_set_new(j, "digest", json_string(res.digest.s));
        for (size_t i = 0; i < res.n_platforms; i++) {
            es_pack_platform *p = &res.platforms[i];
            char name[100];
            snprintf(name, sizeof name, "%s/%s%s%s", p->os, p->arch, *p->variant ? "/" : "", p->variant);
            json_t *pj = json_object();
            json_object_set_new(pj, "platform", json_string(name));
            json_object_set_new(pj, "binaries", json_integer((json_int_t)p->n_binaries));
            json_object_set_new(pj, "layer_size", json_integer(p->layer_size));
            json_object_set_new(pj, "layer_uncompressed_size", json_integer(p->layer_uncompressed));
            json_array_append_new(plats, pj);
        }
        json_object_set_new(j, "platforms", plats);
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
        puts(s);
        free(s);
        json_decref(j);
    } else {
        printf("%s  %s\n", out, res.digest.s);
        for (size_t i = 0; i < res.n_platforms; i++) {
            es_pack_platform *p = &res.platforms[i];
            char a[32], b[32];
            cli_human_bytes(p->layer_size, a, sizeof a);
            cli_human_bytes(p->layer_uncompressed, b, sizeof b);
            printf("  linux/%s%s%s: %zu binar%s, layer %s compressed, %s uncompressed\n", p->arch,
                   *p->variant ? "/" : "", p->variant, p->n_binaries, p->n_binaries == 1 ? "y" : "ies",
                   a, b);
        }
    }
done:
    json_decref(o.entrypoint);
    json_decref(o.cmd);
    free(ports.v);
    free(env.v);
    free(labels.v);
    return rc;
}
