/* `glassbox-client enroll`: gets this client a certificate from the
 * coordinator with an enrollment token (client/enroll.h). */
#include <stdio.h>
#include <unistd.h>

#include "commands.h"
#include "enroll.h"
#include "util/args.h"

int gb_cmd_enroll(int argc, char **argv)
{
    const char *endpoint = NULL, *token_file = NULL, *ca_file = NULL, *out_dir = NULL;
    const char *name = NULL, *server_name = NULL;
    int timeout_s = 30;
    gb_arg_t opts[] = {
        {"--coordinator", GB_ARG_STRING, &endpoint, 0, 0, NULL, "tcp://HOST:PORT of the coordinator (required)", false},
        {"--token-file", GB_ARG_STRING, &token_file, 0, 0, NULL, "file holding the enrollment token (required)", false},
        {"--ca-file", GB_ARG_STRING, &ca_file, 0, 0, NULL, "the federation CA certificate, PEM (required)", false},
        {"--out", GB_ARG_STRING, &out_dir, 0, 0, NULL, "directory for NAME.key, NAME.crt, ca.crt (required)", false},
        {"--name", GB_ARG_STRING, &name, 0, 0, NULL, "this client's name (default: the host name)", false},
        {"--server-name", GB_ARG_STRING, &server_name, 0, 0, NULL, "name on the coordinator's certificate (default: HOST of --coordinator)", false},
        {"--timeout", GB_ARG_INT, &timeout_s, 1, 3600, NULL, "seconds to wait for the coordinator (default 30)", false},
    };
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    gb_error_t err = {0};
    bool help = false;
    if (gb_args_parse(opts, n_opts, argc, argv, &help, &err)) {
        fprintf(stderr, "glassbox-client enroll: %s (see glassbox-client enroll --help)\n",
                err.msg);
        return 2;
    }
    if (help) {
        printf("usage: glassbox-client enroll --coordinator tcp://HOST:7700 --token-file F "
               "--ca-file CA --out DIR [options]\n\n"
               "Makes a key (kept in DIR, 0600), sends a certificate request with the token\n"
               "and stores the certificate the coordinator's CA signs. The token and the\n"
               "request travel only to a coordinator whose certificate CA vouches for.\n\n"
               "options:\n");
        gb_args_print_help(opts, n_opts);
        return 0;
    }
    const char *missing = !endpoint ? "--coordinator" : !token_file ? "--token-file"
                        : !ca_file ? "--ca-file" : !out_dir ? "--out" : NULL;
    if (missing) {
        fprintf(stderr, "glassbox-client enroll: %s is required (see glassbox-client enroll "
                        "--help)\n", missing);
        return 2;
    }
    char host[256], hostname[256];
    if (gb_enroll_endpoint_host(endpoint, host, sizeof host, &err) != 0) {
        fprintf(stderr, "glassbox-client enroll: --coordinator: %s\n", err.msg);
        return 2;
    }
    if (!name) {
        if (gethostname(hostname, sizeof hostname) != 0) {
            fprintf(stderr, "glassbox-client enroll: no host name: give --name\n");
            return 2;
        }
        hostname[sizeof hostname - 1] = '\0';
        name = hostname;
    }
    gb_enroll_options_t o = {.endpoint = endpoint, .server_name = server_name ? server_name : host,
                             .ca_file = ca_file, .name = name, .out_dir = out_dir,
                             .timeout_ms = timeout_s * 1000};
    uint8_t *token = NULL;
    size_t token_len = 0;
    if (gb_enroll_token_read(token_file, &token, &token_len, &err) != 0) {
        fprintf(stderr, "glassbox-client enroll: %s\n", err.msg);
        return 1;
    }
    o.token = token;
    o.token_len = token_len;
    int rc = gb_enroll(&o, &err);
    gb_enroll_token_free(&token, token_len);
    if (rc != 0) {
        fprintf(stderr, "glassbox-client enroll: %s\n", err.msg);
        return 1;
    }
    printf("enrolled as %s: %s/%s.key, %s/%s.crt, %s/ca.crt\n", name, out_dir, name, out_dir,
           name, out_dir);
    return 0;
}
