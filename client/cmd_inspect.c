/* `glassbox-client inspect`: prints what a model file holds (spec, parameter
 * count, round, SHA-256 of the parameters, metadata) after the same checks a
 * load makes, so a user can tell two model files apart without loading them
 * into anything. */
#include "util/args.h"
#include "commands.h"
#include "util/json.h"
#include "net/snapshot.h"

#include <openssl/evp.h>
#include <stdio.h>

static int s_sha256_hex(const gb_snapshot_t *s, char hex[65])
{
    unsigned char md[32];
    unsigned int len = 0;
    if (!EVP_Digest(s->params, s->n_params * sizeof(float), md, &len, EVP_sha256(), NULL) ||
        len != 32)
        return -1;
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return 0;
}

int gb_cmd_inspect(int argc, char **argv)
{
    const char *model_file = NULL;
    bool json = false;
    gb_arg_t opts[] = {
        {"--model-file", GB_ARG_STRING, &model_file, 0, 0, NULL, "model file to describe (required)", false},
        {"--json", GB_ARG_FLAG, &json, 0, 0, NULL, "print one JSON object", false},
    };
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    gb_error_t err = {0};
    bool help = false;
    if (gb_args_parse(opts, n_opts, argc, argv, &help, &err)) {
        fprintf(stderr, "glassbox-client inspect: %s (see glassbox-client inspect --help)\n",
                err.msg);
        return 2;
    }
    if (help) {
        printf("usage: glassbox-client inspect --model-file FILE [--json]\n\n"
               "Checks a model file and prints its spec, parameter count, round, the SHA-256\n"
               "of its parameters and its metadata.\n\noptions:\n");
        gb_args_print_help(opts, n_opts);
        return 0;
    }
    if (!model_file) {
        fprintf(stderr, "glassbox-client inspect: --model-file is required\n");
        return 2;
    }
    gb_snapshot_t *s = NULL;
    if (gb_snapshot_load(model_file, &s, &err)) {
        fprintf(stderr, "glassbox-client inspect: %s\n", err.msg);
        return 1;
    }
    char hex[65];
    if (s_sha256_hex(s, hex)) {
        fprintf(stderr, "glassbox-client inspect: SHA-256 failed\n");
        gb_snapshot_destroy(&s);
        return 1;
    }
    if (json) {
        json_t *meta = json_object();
        for (size_t i = 0; meta && i < s->n_meta; i++) {
            /* keys are names from the file: repaired to UTF-8 as values are */
            json_t *k = gb_json_string(s->meta[i].key);
            if (!k || json_object_set_new(meta, json_string_value(k),
                                          gb_json_string(s->meta[i].value)) != 0) {
                json_decref(meta);
                meta = NULL;
            }
            json_decref(k);
        }
        json_t *o = json_pack("{s:I, s:I, s:s, s:o, s:o}", "parameters", (json_int_t)s->n_params,
                              "round", (json_int_t)s->round, "params_sha256", hex, "spec",
                              gb_json_string(s->spec), "metadata", meta);
        int rc = gb_json_print(stdout, o, &err);
        json_decref(o);
        if (rc) {
            fprintf(stderr, "glassbox-client inspect: %s\n", err.msg);
            gb_snapshot_destroy(&s);
            return 1;
        }
    } else {
        printf("parameters     %zu\nround          %llu\nparams sha256  %s\n", s->n_params,
               (unsigned long long)s->round, hex);
        for (size_t i = 0; i < s->n_meta; i++)
            printf("%-14s %s\n", s->meta[i].key, s->meta[i].value);
        printf("spec:\n%s", s->spec);
    }
    gb_snapshot_destroy(&s);
    return 0;
}
