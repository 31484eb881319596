/* `glassbox-coordinator ca`: the federation's CA from the command line.
 *
 *   ca init   --dir DIR [--federation NAME] [--name COORDINATOR] [--days N]
 *   ca issue  --dir DIR --name NAME [--days N] [--out DIR2]
 *   ca revoke --dir DIR --name NAME
 *   ca list   --dir DIR
 *   ca crl    --dir DIR
 *
 * Each subcommand is a thin layer over net/pki.h: parse the options (exit 2
 * with a message on a bad flag, --help everywhere), call one function,
 * print what was done and where the files are. Private keys are never
 * printed; their paths are. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "net/pki.h"
#include "util/args.h"
#include "util/log.h"
#include "util/subcommand.h"
#include "util/time.h"

#define S_DEFAULT_CA_DAYS 3650
#define S_DEFAULT_CLIENT_DAYS 365

#define S_GROUP "glassbox-coordinator ca"

static int s_fail(const char *sub, const gb_error_t *err)
{
    fprintf(stderr, S_GROUP " %s: %s\n", sub, err->msg);
    return 1;
}

static int s_init(int argc, char **argv)
{
    const char *dir = NULL, *federation = "glassbox", *name = "localhost";
    int days = S_DEFAULT_CA_DAYS;
    gb_arg_t opts[] = {
        {"--dir", GB_ARG_STRING, &dir, 0, 0, NULL, "CA directory to create (must be new or empty)", false},
        {"--federation", GB_ARG_STRING, &federation, 0, 0, NULL, "federation name; the CA is '<name> CA' (default glassbox)", false},
        {"--name", GB_ARG_STRING, &name, 0, 0, NULL, "coordinator's host name, as clients will reach it (default localhost)", false},
        {"--days", GB_ARG_INT, &days, 1, GB_PKI_MAX_DAYS, NULL, "validity of the CA and coordinator certificates (default 3650)", false},
    };
    static const char *const req[] = {"--dir", NULL};
    int rc = gb_args_subcommand(S_GROUP, "init", "--dir DIR [options]",
                     "Creates the federation's CA: a CA key and certificate, the coordinator's\n"
                     "key and certificate, an empty revocation list and the registry.",
                     opts, 4, req, argc, argv);
    if (rc >= 0)
        return rc;
    gb_error_t err = {0};
    if (gb_ca_init(dir, federation, name, days, &err))
        return s_fail("init", &err);
    gb_ca_t *ca = gb_ca_open(dir, &err);
    if (!ca)
        return s_fail("init", &err);
    char until[GB_TIME_UTC_MAX] = "?";
    if (gb_ca_count(ca) > 0)
        gb_time_format_utc(gb_ca_entry(ca, 0)->not_after, until);
    printf("created the CA '%s CA' in %s\n"
           "  %s/%s          CA certificate: every client needs it (--ca-file)\n"
           "  %s/%s  coordinator '%s', valid until %s\n"
           "  %s/%s          revocation list\n"
           "  %s/%s, %s   private keys (mode 0600): they stay here\n",
           federation, dir, dir, GB_CA_CERT_FILE, dir, GB_CA_COORD_CERT_FILE, name, until, dir,
           GB_CA_CRL_FILE, dir, GB_CA_KEY_FILE, GB_CA_COORD_KEY_FILE);
    gb_ca_destroy(&ca);
    return 0;
}

static int s_issue(int argc, char **argv)
{
    const char *dir = NULL, *name = NULL, *out = NULL;
    int days = S_DEFAULT_CLIENT_DAYS;
    gb_arg_t opts[] = {
        {"--dir", GB_ARG_STRING, &dir, 0, 0, NULL, "CA directory", false},
        {"--name", GB_ARG_STRING, &name, 0, 0, NULL, "client name: [A-Za-z0-9][A-Za-z0-9._-]*, up to 64", false},
        {"--days", GB_ARG_INT, &days, 1, GB_PKI_MAX_DAYS, NULL, "validity in days (default 365)", false},
        {"--out", GB_ARG_STRING, &out, 0, 0, NULL, "where NAME.key and NAME.crt go (default DIR/clients)", false},
    };
    static const char *const req[] = {"--dir", "--name", NULL};
    int rc = gb_args_subcommand(S_GROUP, "issue", "--dir DIR --name NAME [options]",
                     "Makes a key and a client certificate for NAME, signed by the CA.", opts, 4,
                     req, argc, argv);
    if (rc >= 0)
        return rc;
    char out_dir[4096];
    if (!out) {
        int n = snprintf(out_dir, sizeof out_dir, "%s/%s", dir, GB_CA_CLIENTS_DIR);
        if (n < 0 || (size_t)n >= sizeof out_dir) {
            fprintf(stderr, "glassbox-coordinator ca issue: --dir is too long\n");
            return 2;
        }
        out = out_dir;
    }
    gb_error_t err = {0};
    gb_ca_t *ca = gb_ca_open(dir, &err);
    if (!ca)
        return s_fail("issue", &err);
    if (gb_ca_issue(ca, name, days, out, &err)) {
        gb_ca_destroy(&ca);
        return s_fail("issue", &err);
    }
    const gb_ca_entry_t *e = gb_ca_entry(ca, gb_ca_count(ca) - 1);
    char until[GB_TIME_UTC_MAX];
    gb_time_format_utc(e->not_after, until);
    printf("issued a certificate for '%s' (serial %s), valid until %s\n"
           "  %s/%s.crt\n  %s/%s.key (mode 0600)\n",
           name, e->serial, until, out, name, out, name);
    gb_ca_destroy(&ca);
    return 0;
}

static int s_revoke(int argc, char **argv)
{
    const char *dir = NULL, *name = NULL;
    gb_arg_t opts[] = {
        {"--dir", GB_ARG_STRING, &dir, 0, 0, NULL, "CA directory", false},
        {"--name", GB_ARG_STRING, &name, 0, 0, NULL, "client whose certificates to revoke", false},
    };
    static const char *const req[] = {"--dir", "--name", NULL};
    int rc = gb_args_subcommand(S_GROUP, "revoke", "--dir DIR --name NAME",
                     "Revokes every certificate issued to NAME and rewrites crl.pem. The\n"
                     "name cannot enroll again with a token; 'ca issue' may re-issue it.",
                     opts, 2, req, argc, argv);
    if (rc >= 0)
        return rc;
    gb_error_t err = {0};
    gb_ca_t *ca = gb_ca_open(dir, &err);
    if (!ca)
        return s_fail("revoke", &err);
    if (gb_ca_revoke(ca, name, &err)) {
        gb_ca_destroy(&ca);
        return s_fail("revoke", &err);
    }
    printf("revoked '%s'; %s/%s rewritten\n", name, dir, GB_CA_CRL_FILE);
    gb_ca_destroy(&ca);
    return 0;
}

static int s_list(int argc, char **argv)
{
    const char *dir = NULL;
    gb_arg_t opts[] = {
        {"--dir", GB_ARG_STRING, &dir, 0, 0, NULL, "CA directory", false},
    };
    static const char *const req[] = {"--dir", NULL};
    int rc = gb_args_subcommand(S_GROUP, "list", "--dir DIR",
                     "Lists every certificate the CA issued: name, serial, end of validity\n"
                     "and status (valid, expired, revoked).",
                     opts, 1, req, argc, argv);
    if (rc >= 0)
        return rc;
    gb_error_t err = {0};
    gb_ca_t *ca = gb_ca_open(dir, &err);
    if (!ca)
        return s_fail("list", &err);
    printf("%-24s %-32s %-20s %s\n", "NAME", "SERIAL", "NOT AFTER", "STATUS");
    for (size_t i = 0; i < gb_ca_count(ca); i++) {
        const gb_ca_entry_t *e = gb_ca_entry(ca, i);
        char until[GB_TIME_UTC_MAX];
        gb_time_format_utc(e->not_after, until);
        printf("%-24s %-32s %-20s %s%s\n", e->name, e->serial, until,
               gb_ca_entry_status(ca, e),
               strcmp(e->name, gb_ca_coordinator_name(ca)) == 0 ? " (coordinator)" : "");
    }
    gb_ca_destroy(&ca);
    return 0;
}

static int s_crl(int argc, char **argv)
{
    const char *dir = NULL;
    gb_arg_t opts[] = {
        {"--dir", GB_ARG_STRING, &dir, 0, 0, NULL, "CA directory", false},
    };
    static const char *const req[] = {"--dir", NULL};
    int rc = gb_args_subcommand(S_GROUP, "crl", "--dir DIR",
                     "Re-signs crl.pem with a fresh next-update date (it is valid for 365\n"
                     "days; peers refuse connections once it has expired).",
                     opts, 1, req, argc, argv);
    if (rc >= 0)
        return rc;
    gb_error_t err = {0};
    gb_ca_t *ca = gb_ca_open(dir, &err);
    if (!ca)
        return s_fail("crl", &err);
    if (gb_ca_update_crl(ca, &err)) {
        gb_ca_destroy(&ca);
        return s_fail("crl", &err);
    }
    printf("%s/%s re-signed, valid for %d days\n", dir, GB_CA_CRL_FILE, GB_PKI_CRL_DAYS);
    gb_ca_destroy(&ca);
    return 0;
}

static const gb_subcommand_t s_subs[] = {
    {"init", s_init, "create the CA and the coordinator's certificate"},
    {"issue", s_issue, "make a client's key and certificate"},
    {"revoke", s_revoke, "revoke a client's certificates and rewrite the CRL"},
    {"list", s_list, "list the certificates issued"},
    {"crl", s_crl, "re-sign the revocation list before it expires"},
};

static const gb_subcommand_set_t s_set = {
    .program = "glassbox-coordinator ca",
    .noun = "subcommand",
    .subs = s_subs,
    .n_subs = sizeof s_subs / sizeof s_subs[0],
    .width = 8,
    .footer = "'glassbox-coordinator ca <subcommand> --help' describes its options.",
};

int gb_cmd_ca(int argc, char **argv)
{
    return gb_subcommand_dispatch(&s_set, argc, argv);
}
