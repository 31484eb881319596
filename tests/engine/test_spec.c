/* Tests for engine/spec: the presets, every layer keyword with its options,
 * comments, blank lines and line numbering, and one malformed spec per rule
 * (each GB_ESPEC with a message naming the line and what was expected);
 * shape misfits refused later by gb_model_new with GB_ESHAPE naming the
 * line; allocation-failure injection. Doubles as the usage example:
 *
 *     gb_spec_t *spec = gb_spec_parse("input 1 28 28\nconv 8 3 pad 1\n", &err);
 *     ... spec->input, spec->layers[i].kind / .units / .kernel / .line ...
 *     gb_spec_destroy(&spec);
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model.h"
#include "engine/spec.h"
#include "util/alloc.h"

static gb_spec_t *s_parse_ok(const char *text)
{
    gb_error_t err = {0};
    gb_spec_t *spec = gb_spec_parse(text, &err);
    if (!spec)
        fail_msg("gb_spec_parse(\"%s\"): %s", text, err.msg);
    assert_int_equal(err.code, 0);
    return spec;
}

static void s_expect_layer(const gb_layer_cfg_t *l, gb_layer_kind_t kind, int line, int units,
                           int kernel, int stride, int pad)
{
    assert_int_equal(l->kind, kind);
    assert_int_equal(l->line, line);
    assert_int_equal(l->units, units);
    assert_int_equal(l->kernel, kernel);
    assert_int_equal(l->stride, stride);
    assert_int_equal(l->pad, pad);
}

static void test_presets(void **state)
{
    (void)state;
    assert_non_null(gb_spec_preset("lenet"));
    assert_non_null(gb_spec_preset("mlp"));
    assert_null(gb_spec_preset("resnet"));
    assert_null(gb_spec_preset("LENET"));
    assert_null(gb_spec_preset(""));
    assert_null(gb_spec_preset(NULL));

    gb_spec_t *s = s_parse_ok("lenet");
    assert_string_equal(s->text, gb_spec_preset("lenet"));
    assert_int_equal(s->input.rank, 3);
    assert_int_equal(s->input.dim[0], 1);
    assert_int_equal(s->input.dim[1], 28);
    assert_int_equal(s->input.dim[2], 28);
    assert_int_equal(s->n_layers, 10);
    /* Line 1 is a comment, line 2 the input. */
    s_expect_layer(&s->layers[0], GB_LAYER_CONV2D, 3, 16, 5, 1, 0);
    s_expect_layer(&s->layers[1], GB_LAYER_RELU, 4, 0, 0, 1, 0);
    s_expect_layer(&s->layers[2], GB_LAYER_MAXPOOL2D, 5, 0, 2, 2, 0);
    s_expect_layer(&s->layers[3], GB_LAYER_CONV2D, 6, 32, 5, 1, 0);
    s_expect_layer(&s->layers[4], GB_LAYER_RELU, 7, 0, 0, 1, 0);
    s_expect_layer(&s->layers[5], GB_LAYER_MAXPOOL2D, 8, 0, 2, 2, 0);
    s_expect_layer(&s->layers[6], GB_LAYER_FLATTEN, 9, 0, 0, 1, 0);
    s_expect_layer(&s->layers[7], GB_LAYER_DENSE, 10, 128, 0, 1, 0);
    s_expect_layer(&s->layers[8], GB_LAYER_RELU, 11, 0, 0, 1, 0);
    s_expect_layer(&s->layers[9], GB_LAYER_DENSE, 12, 10, 0, 1, 0);
    gb_spec_destroy(&s);
    assert_null(s);

    s = s_parse_ok("mlp");
    assert_string_equal(s->text, gb_spec_preset("mlp"));
    assert_int_equal(s->n_layers, 4);
    s_expect_layer(&s->layers[0], GB_LAYER_FLATTEN, 3, 0, 0, 1, 0);
    s_expect_layer(&s->layers[1], GB_LAYER_DENSE, 4, 128, 0, 1, 0);
    s_expect_layer(&s->layers[2], GB_LAYER_RELU, 5, 0, 0, 1, 0);
    s_expect_layer(&s->layers[3], GB_LAYER_DENSE, 6, 10, 0, 1, 0);
    gb_spec_destroy(&s);
    /* NULL-safe. */
    gb_spec_destroy(&s);
    gb_spec_destroy(NULL);
}

/* The shapes a spec yields, and their text in error messages. */
static void test_shape_size_and_format(void **state)
{
    (void)state;
    gb_shape_t img = {3, {1, 28, 28}}, seq = {2, {5, 7, 1}}, vec = {1, {10, 1, 1}};
    assert_int_equal(gb_shape_size(&img), 784);
    assert_int_equal(gb_shape_size(&seq), 35);
    assert_int_equal(gb_shape_size(&vec), 10);
    char buf[32];
    assert_ptr_equal(gb_shape_format(&img, buf, sizeof buf), buf);
    assert_string_equal(buf, "1x28x28");
    assert_string_equal(gb_shape_format(&seq, buf, sizeof buf), "5x7");
    assert_string_equal(gb_shape_format(&vec, buf, sizeof buf), "10");
    /* Truncated, always NUL-terminated, never past cap. */
    memset(buf, '#', sizeof buf);
    gb_shape_format(&img, buf, 5);
    assert_string_equal(buf, "1x28");
    assert_int_equal(buf[5], '#');
    memset(buf, '#', sizeof buf);
    gb_shape_format(&img, buf, 1);
    assert_string_equal(buf, "");
    assert_int_equal(buf[1], '#');
    /* cap 0 writes nothing. */
    memset(buf, '#', sizeof buf);
    gb_shape_format(&img, buf, 0);
    assert_int_equal(buf[0], '#');
}

static void test_kind_names(void **state)
{
    (void)state;
    static const char *const names[GB_LAYER_KIND_COUNT] = {
        [GB_LAYER_DENSE] = "dense",     [GB_LAYER_CONV2D] = "conv",
        [GB_LAYER_MAXPOOL2D] = "maxpool", [GB_LAYER_AVGPOOL2D] = "avgpool",
        [GB_LAYER_FLATTEN] = "flatten", [GB_LAYER_RELU] = "relu",
        [GB_LAYER_TANH] = "tanh",       [GB_LAYER_SIGMOID] = "sigmoid",
        [GB_LAYER_DROPOUT] = "dropout", [GB_LAYER_LSTM] = "lstm",
        [GB_LAYER_GRU] = "gru",         [GB_LAYER_EMBEDDING] = "embedding",
    };
    for (int k = 0; k < GB_LAYER_KIND_COUNT; k++)
        assert_string_equal(gb_layer_kind_name((gb_layer_kind_t)k), names[k]);
    assert_string_equal(gb_layer_kind_name(GB_LAYER_KIND_COUNT), "?");
    assert_string_equal(gb_layer_kind_name((gb_layer_kind_t)-1), "?");
}

/* Every keyword and option, comments (whole-line and trailing), blank and
 * whitespace-only lines, tabs, CRLF line ends and no final newline. */
static void test_full_grammar(void **state)
{
    (void)state;
    static const char text[] = "# a comment line\n"
                               "\n"
                               "  input 3 32 32   # trailing comment\n"
                               "conv 8 3 stride 2 pad 1\n"
                               "\t conv 4 5 pad 2 stride 1\r\n"
                               "   \t \n"
                               "maxpool 2 stride 1\n"
                               "avgpool 3\n"
                               "maxpool 2\n"
                               "flatten\n"
                               "dense 10\n"
                               "relu\n"
                               "tanh\n"
                               "sigmoid\n"
                               "dropout 0.25\n"
                               "dropout 0\n"
                               "#\n"
                               "dense 3";
    gb_spec_t *s = s_parse_ok(text);
    assert_string_equal(s->text, text);
    assert_int_equal(s->input.rank, 3);
    assert_int_equal(s->input.dim[0], 3);
    assert_int_equal(s->n_layers, 13);
    s_expect_layer(&s->layers[0], GB_LAYER_CONV2D, 4, 8, 3, 2, 1);
    s_expect_layer(&s->layers[1], GB_LAYER_CONV2D, 5, 4, 5, 1, 2);
    s_expect_layer(&s->layers[2], GB_LAYER_MAXPOOL2D, 7, 0, 2, 1, 0);
    s_expect_layer(&s->layers[3], GB_LAYER_AVGPOOL2D, 8, 0, 3, 3, 0);
    s_expect_layer(&s->layers[4], GB_LAYER_MAXPOOL2D, 9, 0, 2, 2, 0);
    s_expect_layer(&s->layers[5], GB_LAYER_FLATTEN, 10, 0, 0, 1, 0);
    s_expect_layer(&s->layers[6], GB_LAYER_DENSE, 11, 10, 0, 1, 0);
    s_expect_layer(&s->layers[7], GB_LAYER_RELU, 12, 0, 0, 1, 0);
    s_expect_layer(&s->layers[8], GB_LAYER_TANH, 13, 0, 0, 1, 0);
    s_expect_layer(&s->layers[9], GB_LAYER_SIGMOID, 14, 0, 0, 1, 0);
    assert_int_equal(s->layers[10].kind, GB_LAYER_DROPOUT);
    assert_int_equal(s->layers[10].line, 15);
    assert_true(s->layers[10].rate == 0.25f);
    assert_true(s->layers[11].rate == 0.0f);
    s_expect_layer(&s->layers[12], GB_LAYER_DENSE, 18, 3, 0, 1, 0);
    gb_spec_destroy(&s);

    /* Rank 1 and rank 2 inputs; unused dimensions are 1. */
    s = s_parse_ok("input 10\ndense 2\n");
    assert_int_equal(s->input.rank, 1);
    assert_int_equal(s->input.dim[0], 10);
    assert_int_equal(s->input.dim[1], 1);
    assert_int_equal(s->input.dim[2], 1);
    gb_spec_destroy(&s);
    s = s_parse_ok("input 5 7\ntanh\n");
    assert_int_equal(s->input.rank, 2);
    assert_int_equal(s->input.dim[0], 5);
    assert_int_equal(s->input.dim[1], 7);
    assert_int_equal(s->input.dim[2], 1);
    gb_spec_destroy(&s);

    /* The largest values accepted. */
    s = s_parse_ok("input 1000000\ndense 1000000\ndropout 0.999\n");
    assert_int_equal(s->layers[0].units, 1000000);
    gb_spec_destroy(&s);
}

/* More layers than the initial table (16) and exactly the maximum (4096). */
static void test_many_layers(void **state)
{
    (void)state;
    const int n = 4097;
    size_t cap = 16 + (size_t)n * 5 + 1;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t used = (size_t)snprintf(text, cap, "input 4\n");
    for (int i = 0; i < n - 1; i++)
        used += (size_t)snprintf(text + used, cap - used, "relu\n");
    gb_spec_t *s = s_parse_ok(text);
    assert_int_equal(s->n_layers, 4096);
    assert_int_equal(s->layers[4095].line, 4097);
    gb_spec_destroy(&s);

    used += (size_t)snprintf(text + used, cap - used, "relu\n");
    gb_error_t err = {0};
    assert_null(gb_spec_parse(text, &err));
    assert_int_equal(err.code, GB_ESPEC);
    assert_string_equal(err.msg, "spec line 4098: more than 4096 layers");
    free(text);
}

typedef struct {
    const char *text;
    const char *msg[3]; /* substrings the message must contain */
} s_bad_t;

static const s_bad_t s_bad[] = {
    /* unknown layer */
    {"input 4\nsoftmax\n",
     {"spec line 2: unknown layer 'softmax'", "expected one of conv, maxpool"}},
    {"input 4\nDense 3\n", {"spec line 2: unknown layer 'Dense'"}},
    /* missing arguments */
    {"input 4\ndense\n", {"spec line 2: dense expects units (e.g. 'dense 128'), got 0 arguments"}},
    {"input 1 8 8\nconv 3\n", {"spec line 2: conv expects out_channels kernel [stride S] [pad P]"}},
    {"input 1 8 8\nconv\n", {"spec line 2: conv expects out_channels kernel"}},
    {"input 1 8 8\nmaxpool\n", {"spec line 2: maxpool expects kernel [stride S]"}},
    {"input 1 8 8\navgpool\n", {"spec line 2: avgpool expects kernel [stride S]"}},
    {"input 4\ndropout\n", {"spec line 2: dropout expects a probability (e.g. 'dropout 0.5')"}},
    /* not an integer */
    {"input 4\ndense 1.5\n", {"spec line 2: dense: units must be an integer", "got '1.5'"}},
    {"input 4\ndense ten\n", {"spec line 2", "units must be an integer", "got 'ten'"}},
    {"input 4\ndense 12x\n", {"spec line 2", "got '12x'"}},
    {"input 1 8 8\nconv 3 x\n", {"spec line 2: conv: kernel must be an integer", "got 'x'"}},
    {"input 1 8 8\nconv 3 3 stride two\n", {"spec line 2: conv: stride must be an integer"}},
    {"input 1 8.5 8\nrelu\n", {"spec line 1: input: a dimension must be an integer", "got '8.5'"}},
    {"input 4\ndense 99999999999999999999\n", {"spec line 2", "units must be an integer"}},
    /* negative or zero, and too large */
    {"input 4\ndense -4\n",
     {"spec line 2: dense: units must be an integer in 1..1000000", "got '-4'"}},
    {"input 4\ndense 0\n", {"spec line 2", "in 1..1000000", "got '0'"}},
    {"input 4\ndense 1000001\n", {"spec line 2", "got '1000001'"}},
    {"input 1 8 8\nconv 3 3 pad -1\n", {"spec line 2: conv: pad must be an integer in 0..1000000"}},
    {"input 1 8 8\nconv 3 3 stride 0\n", {"spec line 2: conv: stride must be an integer in 1.."}},
    {"input 1 8 8\nconv 3 3 stride 2 stride 3\n", {"spec line 2: conv: 'stride' given twice"}},
    {"input 1 8 8\nmaxpool 2 stride 2 stride 1\n", {"spec line 2: maxpool: 'stride' given twice"}},
    {"input 1 8 8\nconv -3 3\n", {"spec line 2: conv: out_channels must be an integer in 1.."}},
    {"input 1 8 8\nmaxpool 0\n", {"spec line 2: maxpool: kernel must be an integer in 1.."}},
    {"input 1 8 8\navgpool 2 stride -2\n", {"spec line 2: avgpool: stride must be an integer"}},
    {"input 0 8 8\nrelu\n", {"spec line 1: input: a dimension must be an integer in 1..", "'0'"}},
    {"input 1 -8 8\nrelu\n", {"spec line 1", "got '-8'"}},
    /* extra tokens */
    {"input 4\nrelu 1\n", {"spec line 2: relu expects no arguments, got 1 argument"}},
    {"input 4\nflatten x y\n", {"spec line 2: flatten expects no arguments, got 2 arguments"}},
    {"input 4\ntanh now\n", {"spec line 2: tanh expects no arguments"}},
    {"input 4\nsigmoid 2\n", {"spec line 2: sigmoid expects no arguments"}},
    {"input 4\ndense 4 4\n", {"spec line 2: dense expects units", "got 2 arguments"}},
    {"input 4\ndropout 0.5 0.5\n", {"spec line 2: dropout expects a probability", "got 2"}},
    {"input 1 2 3 4\nrelu\n", {"spec line 1: input expects 1 to 3 dimensions"}},
    /* option without a value (a stray positional counts as one) */
    {"input 1 8 8\nconv 3 3 stride\n", {"spec line 2: conv: option 'stride' needs a value"}},
    {"input 1 8 8\nconv 3 3 stride 2 pad\n", {"spec line 2: conv: option 'pad' needs a value"}},
    {"input 1 8 8\nconv 3 3 4\n", {"spec line 2: conv: option '4' needs a value"}},
    {"input 1 8 8\nmaxpool 2 stride\n", {"spec line 2: maxpool: option 'stride' needs a value"}},
    {"input 1 8 8\navgpool 2 3\n", {"spec line 2: avgpool: option '3' needs a value"}},
    /* unknown option */
    {"input 1 8 8\nconv 3 3 dilation 2\n",
     {"spec line 2: conv: unexpected 'dilation', expected stride or pad"}},
    {"input 1 8 8\nmaxpool 2 pad 1\n", {"spec line 2: maxpool: unexpected 'pad', expected stride"}},
    {"input 1 8 8\navgpool 2 Stride 1\n", {"spec line 2: avgpool: unexpected 'Stride'"}},
    /* missing input line */
    {"dense 4\n", {"spec line 1: expected 'input C H W', 'input T F' or 'input N' first",
                   "got 'dense'"}},
    {"# comment\n\nconv 3 3\ninput 1 8 8\n", {"spec line 3: expected 'input C H W'", "got 'conv'"}},
    {"input\nrelu\n", {"spec line 1: input expects 1 to 3 dimensions"}},
    /* a second input line */
    {"input 4\ndense 2\ninput 2\n", {"spec line 3: a second 'input' line"}},
    {"input 4\ninput 4\n", {"spec line 2: a second 'input' line"}},
    /* empty spec, or no layers */
    {"", {"spec: empty, expected an 'input' line and layers"}},
    {"\n\n   \n# nothing here\n", {"spec: empty"}},
    {"input 4\n", {"spec: no layers after the 'input' line"}},
    {"input 4\n# dense 2\n", {"no layers"}},
    /* dropout probability out of range */
    {"input 4\ndropout 1\n", {"spec line 2: dropout probability must be in [0, 1), got '1'"}},
    {"input 4\ndropout 1.5\n", {"spec line 2: dropout probability must be in [0, 1)"}},
    {"input 4\ndropout -0.1\n", {"spec line 2", "got '-0.1'"}},
    {"input 4\ndropout nan\n", {"spec line 2", "got 'nan'"}},
    {"input 4\ndropout inf\n", {"spec line 2", "got 'inf'"}},
    {"input 4\ndropout 0.5x\n", {"spec line 2", "got '0.5x'"}},
    {"input 4\ndropout half\n", {"spec line 2", "got 'half'"}},
    /* the error names the right line among comments and blank lines */
    {"# c\n\ninput 4\n\n# c\ndense 3\n\nrelu x\n", {"spec line 8: relu expects no arguments"}},
    /* an input too large */
    {"input 1000 1000 1000\nrelu\n", {"spec line 1: input too large"}},
};

static void test_malformed(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof s_bad / sizeof s_bad[0]; i++) {
        gb_error_t err = {0};
        gb_spec_t *s = gb_spec_parse(s_bad[i].text, &err);
        if (s)
            fail_msg("case %zu: \"%s\" parsed", i, s_bad[i].text);
        if (err.code != GB_ESPEC)
            fail_msg("case %zu: code %d (%s), want GB_ESPEC", i, err.code, err.msg);
        for (int k = 0; k < 3 && s_bad[i].msg[k]; k++)
            if (!strstr(err.msg, s_bad[i].msg[k]))
                fail_msg("case %zu: \"%s\": message '%s' lacks '%s'", i, s_bad[i].text, err.msg,
                         s_bad[i].msg[k]);
        /* And the same without an error buffer: no crash, still NULL. */
        assert_null(gb_spec_parse(s_bad[i].text, NULL));
        /* gb_model_new reports the spec error unchanged. */
        gb_error_t merr = {0};
        assert_null(gb_model_new(s_bad[i].text, &merr));
        assert_int_equal(merr.code, GB_ESPEC);
        assert_string_equal(merr.msg, err.msg);
    }
}

static void test_line_limits(void **state)
{
    (void)state;
    gb_error_t err = {0};
    /* A line of 511 characters is accepted, 512 is not. */
    char text[1200];
    memset(text, ' ', sizeof text);
    memcpy(text, "input 4\n", 8);
    memcpy(text + 8, "relu", 4);
    text[8 + 511] = '\n';
    text[8 + 512] = '\0';
    gb_spec_t *s = s_parse_ok(text);
    gb_spec_destroy(&s);
    text[8 + 511] = ' ';
    text[8 + 512] = '\n';
    text[8 + 513] = '\0';
    assert_null(gb_spec_parse(text, &err));
    assert_int_equal(err.code, GB_ESPEC);
    assert_string_equal(err.msg, "spec line 2: longer than 511 characters");

    /* 16 words on a line are accepted (then refused by the grammar), 17 are
     * too many. */
    assert_null(gb_spec_parse("input 4\nconv 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15\n", &err));
    assert_null(strstr(err.msg, "too many words"));
    assert_null(gb_spec_parse("input 4\nconv 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n", &err));
    assert_int_equal(err.code, GB_ESPEC);
    assert_string_equal(err.msg, "spec line 2: too many words");

    /* NULL text is an argument error, not a spec error. */
    assert_null(gb_spec_parse(NULL, &err));
    assert_int_equal(err.code, GB_EINVAL);
    assert_null(gb_spec_parse(NULL, NULL));
}

/* Shapes are checked when a model is built: GB_ESHAPE naming the line. */
static void test_shape_misfits(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *msg;
    } cases[] = {
        /* kernel larger than the input */
        {"input 1 4 4\nconv 2 5\n", "spec line 2: conv kernel 5 larger than the padded input 4x4"},
        {"input 1 8 8\nconv 2 3\nconv 2 7\n", "spec line 3: conv kernel 7 larger than"},
        /* pool larger than the input */
        {"input 1 4 4\nrelu\nmaxpool 5\n",
         "spec line 3: maxpool kernel 5 larger than the input 4x4"},
        {"input 2 6 3\navgpool 4\n", "spec line 2: avgpool kernel 4 larger than the input 6x3"},
        {"input 1 8 8\nmaxpool 2\nmaxpool 2\nmaxpool 2\nmaxpool 2\n",
         "spec line 5: maxpool kernel 2 larger than the input 1x1"},
        /* image layers on a flat or 2-D input */
        {"input 64\nconv 2 3\n", "spec line 2: conv needs an image input (channels height width), "
                                 "got shape 64"},
        {"input 1 8 8\nflatten\nconv 2 3\n", "spec line 3: conv needs an image input"},
        {"input 1 8 8\ndense 16\nmaxpool 2\n", "spec line 3: maxpool needs an image input"},
        {"input 8 8\navgpool 2\n", "spec line 2: avgpool needs an image input"},
        /* sizes whose products would overflow */
        {"input 1 1 1\nconv 1 65536 pad 65535\n", "spec line 2: conv too large"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* The grammar is fine... */
        gb_spec_t *s = s_parse_ok(cases[i].text);
        gb_spec_destroy(&s);
        /* ...the shapes are not. */
        gb_error_t err = {0};
        assert_null(gb_model_new(cases[i].text, &err));
        if (err.code != GB_ESHAPE || !strstr(err.msg, cases[i].msg))
            fail_msg("\"%s\": got %d '%s', want GB_ESHAPE '%s'", cases[i].text, err.code, err.msg,
                     cases[i].msg);
    }
}

/* Fails the k-th allocation for k = 1, 2, ... until gb_spec_parse succeeds
 * (a spec long enough to grow the layer table twice): each failure is
 * GB_ENOMEM with a message and leaks nothing (LeakSanitizer). */
static void test_alloc_failure(void **state)
{
    (void)state;
    char text[1024];
    size_t used = (size_t)snprintf(text, sizeof text, "input 4\n");
    for (int i = 0; i < 40; i++)
        used += (size_t)snprintf(text + used, sizeof text - used, "relu\n");
    long k;
    gb_spec_t *s = NULL;
    for (k = 1; k < 100; k++) {
        gb_error_t err = {0};
        gb_alloc_fail_after(k);
        s = gb_spec_parse(text, &err);
        gb_alloc_fail_after(0);
        if (s)
            break;
        assert_int_equal(err.code, GB_ENOMEM);
        assert_string_equal(err.msg, "out of memory parsing spec");
    }
    assert_non_null(s);
    assert_int_equal(s->n_layers, 40);
    /* spec, line buffer, text copy, and the table grown to 16, 32, 64. */
    assert_int_equal(k, 7);
    gb_spec_destroy(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_presets),
        cmocka_unit_test(test_shape_size_and_format),
        cmocka_unit_test(test_kind_names),
        cmocka_unit_test(test_full_grammar),
        cmocka_unit_test(test_many_layers),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_line_limits),
        cmocka_unit_test(test_shape_misfits),
        cmocka_unit_test(test_alloc_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
