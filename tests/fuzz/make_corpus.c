/* Seed corpus generator for the fuzz targets: gb_make_corpus OUTDIR writes
 * OUTDIR/<target>/<seed> for the envelope, chunk, snapshot, idx and csv
 * targets. Built in the fuzz build only.
 *
 * The seeds are generated once and committed under tests/fuzz/corpus/, not
 * made at build time: a fuzz run then starts from the same bytes on every
 * machine and after every change, so a seed that stops decoding after a
 * codec change shows up as a corpus regression (the ctest fuzz/<name>_seeds)
 * instead of silently becoming a different seed. Run it again, and commit
 * the result, when a message gains fields:
 *
 *     build-fuzz/tests/gb_make_corpus tests/fuzz/corpus
 *
 * The envelopes are the valid fixtures of the unit tests
 * (tests/net/envelope_fixture.h), one per body, plus the variants the
 * decoder treats specially; each is small, so the fuzzer mutates fields
 * rather than bulk data. Chunk seeds are frames as fuzz_chunk.c reads them:
 * a 2-byte big-endian length, then the frame. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "envelope_fixture.h"
#include "net/chunk.h"
#include "net/envelope.h"
#include "net/snapshot.h"
#include "util/alloc.h"

static const char *s_out;

static void s_die(const char *what, const char *why)
{
    fprintf(stderr, "gb_make_corpus: %s: %s\n", what, why);
    exit(1);
}

static void s_mkdir(const char *target)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", s_out, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        s_die(path, strerror(errno));
}

static void s_write(const char *target, const char *name, const void *data, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/%s", s_out, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0)
        s_die(path, strerror(errno));
}

/* ---- envelope ------------------------------------------------------------ */

static const char *const s_kind_names[GBFIX_KINDS] = {
    "join", "welcome", "task", "update", "eval_result", "ack", "error", "heartbeat",
    "publication", "chunk", "enroll_request", "enroll_response"};

/* Packs f (checking it with the real encoder first) and writes it. */
static void s_envelope(const char *name, gbfix_t *f, bool must_validate)
{
    size_t len;
    uint8_t *buf = gbfix_pack(f, &len);
    gb_error_t err;
    if (must_validate && gb_envelope_validate(&f->env, NULL, &err) != 0)
        s_die(name, err.msg);
    s_write("envelope", name, buf, len);
    free(buf);
}

static void s_envelopes(void)
{
    s_mkdir("envelope");
    char name[64];
    gbfix_t f;
    for (int kind = 0; kind < GBFIX_KINDS; kind++) {
        gbfix_init(&f, kind);
        snprintf(name, sizeof name, "%s.bin", s_kind_names[kind]);
        s_envelope(name, &f, true);
    }
    gbfix_init(&f, GBFIX_TASK);
    f.task.train = 0, f.task.train_config = NULL, f.task.explain = NULL;
    s_envelope("task_evaluate_only.bin", &f, true);
    gbfix_init(&f, GBFIX_UPDATE);
    f.update.explanation = NULL;
    f.update.n_metrics = 0;
    s_envelope("update_plain.bin", &f, true);
    gbfix_init(&f, GBFIX_ERROR);
    f.error.code = (Glassbox__ErrorCode)99; /* from a newer peer: read as internal */
    s_envelope("error_unknown_code.bin", &f, false);
    gbfix_init(&f, GBFIX_CHUNK_KIND);
    f.chunk.count = 3, f.chunk.index = 1, f.chunk.total_bytes = 300, f.chunk.offset = 100;
    f.chunk.sha256.len = 0;
    s_envelope("chunk_middle.bin", &f, true);
}

/* ---- chunk --------------------------------------------------------------- */

/* Appends one frame (2-byte length + bytes) to a growing buffer. */
typedef struct {
    uint8_t *data; /* frames so far */
    size_t len;    /* bytes used */
} s_frames_t;

static void s_frame(s_frames_t *fr, const uint8_t *frame, size_t len)
{
    if (len > 0xffff)
        s_die("chunk seed", "frame too long");
    fr->data = realloc(fr->data, fr->len + 2 + len);
    if (!fr->data)
        s_die("chunk seed", "out of memory");
    fr->data[fr->len] = (uint8_t)(len >> 8);
    fr->data[fr->len + 1] = (uint8_t)len;
    memcpy(fr->data + fr->len + 2, frame, len);
    fr->len += 2 + len;
}

/* Cuts envelope `kind` into chunks of chunk_size and appends their frames;
 * `dup` >= 0 repeats that chunk (a broken transfer, for the refusal paths). */
static void s_transfer(s_frames_t *fr, gb_chunker_t *c, int kind, int dup)
{
    gbfix_t f;
    gbfix_init(&f, kind);
    size_t len;
    uint8_t *whole = gbfix_pack(&f, &len);
    gb_error_t err;
    if (gb_chunker_start(c, whole, len, NULL, &err) != 0)
        s_die("chunker", err.msg);
    size_t cap = gb_chunker_buffer_size(c);
    uint8_t *buf = malloc(cap);
    size_t flen;
    int rc;
    for (uint64_t seq = 1, i = 0; (rc = gb_chunker_next(c, seq, buf, cap, &flen, &err)) == 1;
         seq++, i++) {
        s_frame(fr, buf, flen);
        if ((int)i == dup)
            s_frame(fr, buf, flen);
    }
    if (rc < 0)
        s_die("chunker", err.msg);
    free(buf);
    free(whole);
}

static void s_chunks(void)
{
    s_mkdir("chunk");
    gb_error_t err;
    gb_chunker_t *small = gb_chunker_new(40, &err);
    gb_chunker_t *mid = gb_chunker_new(128, &err);
    if (!small || !mid)
        s_die("chunker", err.msg);
    s_frames_t fr = {0};
    s_transfer(&fr, small, GBFIX_HEARTBEAT, -1);
    s_write("chunk", "heartbeat_in_chunks.bin", fr.data, fr.len);
    fr.len = 0;
    s_transfer(&fr, mid, GBFIX_UPDATE, -1);
    s_write("chunk", "update_in_chunks.bin", fr.data, fr.len);
    fr.len = 0;
    s_transfer(&fr, small, GBFIX_ACK, -1);
    s_transfer(&fr, small, GBFIX_ERROR, -1);
    s_write("chunk", "two_transfers.bin", fr.data, fr.len);
    fr.len = 0;
    s_transfer(&fr, small, GBFIX_JOIN, 1);
    s_write("chunk", "duplicate_chunk.bin", fr.data, fr.len);
    fr.len = 0;
    gbfix_t f;
    gbfix_init(&f, GBFIX_CHUNK_KIND);
    size_t len;
    uint8_t *one = gbfix_pack(&f, &len);
    s_frame(&fr, one, len);
    s_write("chunk", "single_chunk.bin", fr.data, fr.len);
    free(one);
    free(fr.data);
    gb_chunker_destroy(&small);
    gb_chunker_destroy(&mid);
}

/* ---- snapshot ------------------------------------------------------------ */

static void s_snapshot(const char *name, const char *spec, uint64_t round, int with_meta)
{
    size_t n = 0;
    gb_error_t err;
    if (gb_model_count_params(spec, &n, &err) != 0)
        s_die(name, err.msg);
    float *p = malloc((n ? n : 1) * sizeof *p);
    for (size_t i = 0; i < n; i++)
        p[i] = 0.01f * (float)((int)(i % 41) - 20);
    gb_snapshot_t *s = gb_snapshot_new(spec, p, n, round, &err);
    if (!s || (with_meta && (gb_snapshot_meta_set(s, "dataset", "fashion-mnist", &err) != 0 ||
                             gb_snapshot_meta_set(s, "trained_samples", "6000", &err) != 0)))
        s_die(name, err.msg);
    uint8_t *buf = NULL;
    size_t len = 0;
    if (gb_snapshot_encode(s, &buf, &len, &err) != 0)
        s_die(name, err.msg);
    s_write("snapshot", name, buf, len);
    gb_free(buf);
    gb_snapshot_destroy(&s);
    free(p);
}

static void s_snapshots(void)
{
    s_mkdir("snapshot");
    s_snapshot("dense.gbm", GBFIX_MODEL_SPEC, 3, 1);
    s_snapshot("conv.gbm", "input 1 6 6\nconv 2 3\nrelu\nmaxpool 2\nflatten\ndense 3\n", 0, 0);
    s_snapshot("gru.gbm", "input 3 2\ngru 3\ndense 2\n", 9, 1);
}

/* ---- idx and csv --------------------------------------------------------- */

static void s_idx(void)
{
    s_mkdir("idx");
    const uint8_t images[] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3,
                              0, 255, 17, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    s_write("idx", "images_2x2x3.idx", images, sizeof images);
    const uint8_t labels[] = {0, 0, 8, 1, 0, 0, 0, 5, 0, 9, 3, 3, 7};
    s_write("idx", "labels_5.idx", labels, sizeof labels);
}

static void s_csv(void)
{
    s_mkdir("csv");
    const char plain[] = "temp,humidity,label\n21.5,0.4,0\n-3,1e-3,1\n+2,  7 ,2\n";
    s_write("csv", "plain.csv", plain, sizeof plain - 1);
    const char quoted[] = "\xef\xbb\xbf\"a,b\",\"say \"\"hi\"\"\",y\r\n\"1\",2.5,0\r\n3,4,1";
    s_write("csv", "quoted_bom_crlf.csv", quoted, sizeof quoted - 1);
    const char one[] = "x\n1\n\n";
    s_write("csv", "one_column.csv", one, sizeof one - 1);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gb_make_corpus OUTDIR  (e.g. tests/fuzz/corpus)\n");
        return 2;
    }
    s_out = argv[1];
    if (mkdir(s_out, 0755) != 0 && errno != EEXIST)
        s_die(s_out, strerror(errno));
    s_envelopes();
    s_chunks();
    s_snapshots();
    s_idx();
    s_csv();
    return 0;
}
