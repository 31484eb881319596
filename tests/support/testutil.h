/* Helpers shared by the cmocka tests: temporary files and directories, paths
 * to the source and build trees, float comparisons, and a look at how long
 * an event loop would sleep. Test-only code. */
#ifndef GB_TESTUTIL_H
#define GB_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>

#include "data/dataset.h"
#include "glassbox.pb-c.h"
#include "engine/model.h"
#include "net/event_loop.h"

/* A fresh directory under /tmp, removed with its files by gb_test_rmtree.
 * Returns a malloc'd path. */
char *gb_test_mkdtemp(void);
void gb_test_rmtree(const char *dir);

/* dir/name, malloc'd. */
char *gb_test_path(const char *dir, const char *name);

/* The permission bits (st_mode & 07777) of path; the test fails when it
 * cannot be looked at. */
unsigned gb_test_mode(const char *path);

/* All of path's bytes (at most 64 MiB, NUL-terminated as gb_file_read_all
 * does) in a buffer to free with gb_free, their count in *len; the test
 * fails when it cannot be read. */
uint8_t *gb_test_read(const char *path, size_t *len);

/* Writes len bytes to dir/name; returns a malloc'd full path. */
char *gb_test_write_file(const char *dir, const char *name, const void *data, size_t len);

/* Writes the CSV text (NUL-terminated) to dir/file and puts the data set
 * name that loads it, "csv:" and the path, in name[0..cap) (the test fails
 * when it does not fit). Returns the malloc'd path. */
char *gb_test_write_csv(const char *dir, const char *file, const char *text, char *name,
                        size_t cap);

/* Path of a file in the source tree (GB_SOURCE_DIR or ".") or the build tree
 * (GB_BINARY_DIR or "."); malloc'd. */
char *gb_test_source_path(const char *rel);
char *gb_test_binary_path(const char *rel);

/* Largest |a-b| / max(|a|, |b|, floor) over n floats. */
double gb_test_max_rel_diff(const float *a, const float *b, size_t n, double floor);

/* True when the path exists. */
int gb_test_exists(const char *path);

/* xorshift64: a test's own reproducible stream of 64-bit values; *state is
 * the test's seed (non-zero) and advances. */
uint64_t gb_test_xorshift(uint64_t *state);

/* Uniform in [-1, 1) from that stream (53 bits). */
double gb_test_xorshift_unif(uint64_t *state);

/* idx[0..n) = a random permutation of 0..n-1 drawn from that stream. */
void gb_test_xorshift_shuffle(uint64_t *state, size_t *idx, size_t n);

/* Fails the test unless |got - ref| is within half an ulp of got (got is
 * ref correctly rounded to float), with a sliver for the reference's own
 * double rounding; `where` names the value in the message. */
void gb_test_assert_correctly_rounded(float got, double ref, size_t where);

/* A one-class Explanation laid out in its own storage, for tests that need
 * a valid message without a merger. */
typedef struct {
    Glassbox__Explanation x;             /* the message; x.classes points at cp */
    Glassbox__ClassAttribution c, *cp;   /* its one class */
    Glassbox__Tensor t;                  /* the class's map */
    uint32_t shape[3];                   /* t's shape */
} gb_test_explanation_t;

/* Fills e: method, class cls with count samples (clients 0, round 0) and
 * the map v, shape[0..rank) (rank 1..3; v borrowed: floats are the wire's
 * little-endian bytes on the hosts Glassbox runs on). The caller sets any
 * other field; e must not move while x is used. */
void gb_test_explanation_one(gb_test_explanation_t *e, Glassbox__ExplainMethod method,
                             uint32_t cls, uint64_t count, const float *v,
                             const uint32_t *shape, size_t rank);

/* Classes of gb_test_blobs. */
#define GB_TEST_BLOB_CLASSES 3

/* A small synthetic classification set of n 1x4x4 float "images": sample i
 * is of class i % 3, and its class adds 1 to row `class` over U(-0.5, 0.5)
 * noise drawn from seed. The caller frees it (gb_dataset_destroy). */
gb_dataset_t *gb_test_blobs(int64_t n, uint64_t seed);

/* A federation's CA in ca_dir (`ca init`: the coordinator's name
 * "localhost", 30 days) and certificates for the n clients
 * <prefix><first> .. <prefix><first + n - 1> in out_dir (`ca issue`); the
 * test fails when any of it fails. */
void gb_test_ca_make(const char *ca_dir, const char *federation, const char *out_dir,
                     const char *prefix, int first, int n);

/* A model of spec, initialised from seed and planned for batch samples
 * and threads; the test fails, naming the spec, when any of it fails.
 * Free with gb_model_destroy. */
gb_model_t *gb_test_model(const char *spec, int batch, int threads, uint64_t seed);

/* Floats of one sample into m, and out of it. */
size_t gb_test_model_in_size(const gb_model_t *m);
size_t gb_test_model_out_size(const gb_model_t *m);

/* One turn of loop with a poll that does not wait and finds nothing ready
 * (afterwards the loop polls for real again): returns the timeout in ms the
 * loop asked its poll for (-1: none), what an idle loop would sleep. Timers
 * and sources due already are called in that turn. Fails the test when the
 * turn fails. */
long gb_test_loop_wait_ms(gb_event_loop_t *loop);

/* The JSON document in path, parsed by jansson (the library Glassbox writes
 * it with), or the test fails naming the file and jansson's complaint. The
 * caller json_decref()s it. */
json_t *gb_test_json_read(const char *path);

/* The object of doc's "classes" array whose "class_name" is name; the test
 * fails without one. Borrowed from doc. */
json_t *gb_test_json_class(json_t *doc, const char *name);

/* doc's integer member key (the test fails when it is not an integer). */
long long gb_test_json_int(json_t *obj, const char *key);

#endif
