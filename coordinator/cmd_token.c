/* `glassbox-coordinator token`: enrollment tokens from the command line.
 *
 *   token create --dir DIR --uses N --ttl SECONDS [--out FILE]
 *   token list   --dir DIR
 *
 * `create` prints the new token alone on stdout (so a script can capture it)
 * or, with --out, writes it to FILE with mode 0600 and prints only its id;
 * the token appears nowhere else, the store keeps its SHA-256. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "commands.h"
#include "enroll_tokens.h"
#include "util/args.h"
#include "util/file.h"
#include "util/log.h"
#include "util/subcommand.h"
#include "util/time.h"

#define S_GROUP "glassbox-coordinator token"

static int s_create(int argc, char **argv)
{
    const char *dir = NULL, *out = NULL;
    int uses = 1;
    uint64_t ttl = 0;
    gb_arg_t opts[] = {
        {"--dir", GB_ARG_STRING, &dir, 0, 0, NULL, "CA directory (the store is DIR/tokens)", false},
        {"--uses", GB_ARG_INT, &uses, 1, GB_TOKENS_MAX_USES, NULL, "how many clients may enroll with it", false},
        {"--ttl", GB_ARG_U64, &ttl, 0, 0, NULL, "lifetime in seconds", false},
        {"--out", GB_ARG_STRING, &out, 0, 0, NULL, "write the token to this file (mode 0600) instead of stdout", false},
    };
    static const char *const req[] = {"--dir", "--uses", "--ttl", NULL};
    int rc = gb_args_subcommand(S_GROUP, "create", "--dir DIR --uses N --ttl SECONDS [--out FILE]",
                     "Makes an enrollment token: clients present it with a CSR to get a\n"
                     "certificate ('glassbox-client enroll --token-file F'). Only its hash\n"
                     "is stored; keep the token secret.",
                     opts, 4, req, argc, argv);
    if (rc >= 0)
        return rc;
    if (ttl < 1 || ttl > (uint64_t)GB_TOKENS_MAX_TTL_S) {
        fprintf(stderr,
                "glassbox-coordinator token create: --ttl: expected 1..%" PRId64
                " seconds, got %" PRIu64 "\n", GB_TOKENS_MAX_TTL_S, ttl);
        return 2;
    }
    gb_error_t err = {0};
    gb_tokens_t *store = gb_tokens_load(dir, &err);
    if (!store) {
        fprintf(stderr, "glassbox-coordinator token create: %s\n", err.msg);
        return 1;
    }
    char token[GB_TOKEN_HEX_LEN + 2], id[13];
    time_t now = time(NULL);
    rc = 1;
    if (gb_tokens_create(store, (uint32_t)uses, (int64_t)ttl, now, token, id, &err)) {
        fprintf(stderr, "glassbox-coordinator token create: %s\n", err.msg);
        goto out;
    }
    char until[GB_TIME_UTC_MAX];
    gb_time_format_utc((int64_t)now + (int64_t)ttl, until);
    if (out) {
        size_t len = strlen(token);
        token[len] = '\n';
        int w = gb_file_write_atomic(out, token, len + 1, 0600, &err);
        if (w) {
            /* The hash is stored but nobody has the token: it is useless, not dangerous. */
            fprintf(stderr, "glassbox-coordinator token create: %s (token %s is stored but "
                            "lost; it expires %s)\n", err.msg, id, until);
            goto out;
        }
        printf("token %s written to %s (mode 0600): %d use(s), expires %s\n", id, out, uses,
               until);
    } else {
        printf("%s\n", token);
        fprintf(stderr, "token %s: %d use(s), expires %s\n", id, uses, until);
    }
    rc = 0;
out:
    OPENSSL_cleanse(token, sizeof token);
    gb_tokens_destroy(&store);
    return rc;
}

static int s_list(int argc, char **argv)
{
    const char *dir = NULL;
    gb_arg_t opts[] = {
        {"--dir", GB_ARG_STRING, &dir, 0, 0, NULL, "CA directory (the store is DIR/tokens)", false},
    };
    static const char *const req[] = {"--dir", NULL};
    int rc = gb_args_subcommand(S_GROUP, "list", "--dir DIR",
                     "Lists the enrollment tokens by id (never the tokens themselves).", opts, 1,
                     req, argc, argv);
    if (rc >= 0)
        return rc;
    gb_error_t err = {0};
    gb_tokens_t *store = gb_tokens_load(dir, &err);
    if (!store) {
        fprintf(stderr, "glassbox-coordinator token list: %s\n", err.msg);
        return 1;
    }
    time_t now = time(NULL);
    printf("%-12s  %-20s  %-20s  %-11s  %s\n", "ID", "CREATED", "EXPIRES", "USES LEFT",
           "STATUS");
    for (size_t i = 0; i < gb_tokens_count(store); i++) {
        const gb_token_info_t *t = gb_tokens_get(store, i);
        char created[GB_TIME_UTC_MAX], expires[GB_TIME_UTC_MAX], uses[24];
        gb_time_format_utc(t->created, created);
        gb_time_format_utc(t->expires, expires);
        snprintf(uses, sizeof uses, "%" PRIu32 "/%" PRIu32, t->uses_left, t->uses);
        printf("%-12s  %-20s  %-20s  %-11s  %s\n", t->id, created, expires, uses,
               gb_token_status(t, now));
    }
    gb_tokens_destroy(&store);
    return 0;
}

static const gb_subcommand_t s_subs[] = {
    {"create", s_create, "make an enrollment token (printed once; only its hash is kept)"},
    {"list", s_list, "list the tokens: id, expiry, uses left"},
};

static const gb_subcommand_set_t s_set = {
    .program = "glassbox-coordinator token",
    .noun = "subcommand",
    .subs = s_subs,
    .n_subs = sizeof s_subs / sizeof s_subs[0],
    .width = 8,
    .footer = "'glassbox-coordinator token <subcommand> --help' describes its options.",
};

int gb_cmd_token(int argc, char **argv)
{
    return gb_subcommand_dispatch(&s_set, argc, argv);
}
