/* csv.c — the CSV reader for tabular data sets: comma-separated numbers, one example per
 * line, one column holding the integer class label (negative label_column counts from the
 * end), and an optional header line (a first line with a non-numeric field). Every row must
 * have the same number of fields; errors name the line and field. It deliberately reads only
 * plain numeric CSV: no quoting, no other separators, no missing values, no categorical
 * columns (encode those beforehand). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "data_internal.h"

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* Parses one field [b, e) as a number; false when it is not one. */
static bool parse_num(const char *b, const char *e, double *v)
{
    while (b < e && is_space(*b))
        b++;
    while (e > b && is_space(e[-1]))
        e--;
    if (b == e)
        return false;
    char *end = NULL;
    *v = strtod(b, &end);
    return end == e;
}

typedef struct csv_pass {
    const char *path;
    int label_column;    /* as given */
    int64_t fields;      /* per row, -1 until known */
    int64_t fields_line; /* the line that set it */
    int label;           /* resolved column */
    int64_t rows;
    kn_dataset *ds;      /* NULL in the counting pass */
} csv_pass;

/* Walks the whole text; counts rows (and checks everything) or fills ds. */
static kn_status walk(const char *text, size_t len, csv_pass *p, kn_error *err)
{
    const char *s = text, *end = text + len;
    if (len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) /* UTF-8 byte order mark */
        s += 3;
    int64_t line = 0;
    bool first = true;
    p->rows = 0;
    while (s < end) {
        line++;
        const char *eol = memchr(s, '\n', (size_t)(end - s));
        if (!eol)
            eol = end;
        const char *b = s;
        s = eol + 1;
        const char *t = b;
        while (t < eol && (is_space(*t) || *t == '\n'))
            t++;
        if (t == eol) /* blank line */
            continue;
        /* count fields and find the first non-numeric one */
        int64_t nf = 0, bad = -1;
        const char *bad_b = NULL, *bad_e = NULL;
        for (const char *f = b;; nf++) {
            const char *c = memchr(f, ',', (size_t)(eol - f));
            const char *fe = c ? c : eol;
            double v;
            if (bad < 0 && !parse_num(f, fe, &v)) {
                bad = nf;
                bad_b = f;
                bad_e = fe;
            }
            if (!c) {
                nf++;
                break;
            }
            f = c + 1;
        }
        bool header = first && bad >= 0;
        if (p->fields < 0) {
            p->fields = nf;
            p->fields_line = line;
            if (nf < 2)
                return kn_error_set(err, KN_ERR_FORMAT,
                                    "%s: line %lld has %lld field; a data set needs at least one feature column "
                                    "and a label column",
                                    p->path, (long long)line, (long long)nf);
            int lc = p->label_column < 0 ? (int)nf + p->label_column : p->label_column;
            if (p->label_column < -nf || p->label_column >= nf)
                return kn_error_set(err, KN_ERR_ARG, "%s: label column %d is outside the %lld columns (use 0..%lld, "
                                                     "or -1 for the last)",
                                    p->path, p->label_column, (long long)nf, (long long)nf - 1);
            p->label = lc;
        } else if (nf != p->fields) {
            return kn_error_set(err, KN_ERR_FORMAT,
                                "%s: line %lld has %lld fields but line %lld has %lld; every row needs the same "
                                "number of fields",
                                p->path, (long long)line, (long long)nf, (long long)p->fields_line,
                                (long long)p->fields);
        }
        first = false;
        if (header)
            continue;
        if (bad >= 0) {
            int w = (int)(bad_e - bad_b > 40 ? 40 : bad_e - bad_b);
            while (w > 0 && bad_b[w - 1] == '\r')
                w--;
            return kn_error_set(err, KN_ERR_FORMAT, "%s: line %lld, field %lld: '%.*s' is not a number%s", p->path,
                                (long long)line, (long long)bad + 1, w, bad_b,
                                memchr(bad_b, '"', (size_t)(bad_e - bad_b)) ? " (quoted fields are not supported)"
                                                                            : "");
        }
        if (p->ds) {
            float *x = (float *)p->ds->x + p->rows * (p->fields - 1);
            const char *f = b;
            for (int64_t k = 0; k < nf; k++) {
                const char *c = memchr(f, ',', (size_t)(eol - f));
                const char *fe = c ? c : eol;
                double v = 0;
                parse_num(f, fe, &v);
                if (k == p->label)
                    p->ds->y[p->rows] = (int32_t)v;
                else
                    *x++ = (float)v;
                f = fe + 1;
            }
        } else { /* check the label once, in the counting pass */
            const char *f = b;
            for (int64_t k = 0; k < p->label; k++)
                f = memchr(f, ',', (size_t)(eol - f)) + 1;
            const char *c = memchr(f, ',', (size_t)(eol - f));
            double v = 0;
            parse_num(f, c ? c : eol, &v);
            if (!(v >= 0 && v < INT32_MAX && v == floor(v)))
                return kn_error_set(err, KN_ERR_FORMAT,
                                    "%s: line %lld: the label (column %d) is %g; labels must be integers in "
                                    "[0, 2^31 - 1)",
                                    p->path, (long long)line, p->label, v);
        }
        p->rows++;
    }
    return KN_OK;
}

kn_status kn_dataset_load_csv(kn_dataset **out, const char *path, int label_column, kn_error *err)
{
    if (!out)
        return kn_error_set(err, KN_ERR_ARG, "kn_dataset_load_csv: NULL output pointer");
    *out = NULL;
    if (!path)
        return kn_error_set(err, KN_ERR_ARG, "kn_dataset_load_csv: NULL file path");
    FILE *f = fopen(path, "rb");
    if (!f)
        return kn_error_set(err, KN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat s;
    if (fstat(fileno(f), &s) != 0 || !S_ISREG(s.st_mode)) {
        fclose(f);
        return kn_error_set(err, KN_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)s.st_size >= SIZE_MAX - 1) {
        fclose(f);
        return kn_error_set(err, KN_ERR_OOM, "%s: too large to read", path);
    }
    size_t len = (size_t)s.st_size;
    char *text = kn__alloc(len + 1);
    if (!text) {
        fclose(f);
        return kn_error_set(err, KN_ERR_OOM, "%s: out of memory reading %zu bytes", path, len);
    }
    size_t got = fread(text, 1, len, f);
    fclose(f);
    if (got != len) {
        kn__free(text);
        return kn_error_set(err, KN_ERR_IO, "%s: read failed (%zu of %zu bytes)", path, got, len);
    }
    text[len] = 0;
    if (memchr(text, 0, len)) {
        kn__free(text);
        return kn_error_set(err, KN_ERR_FORMAT, "%s: contains NUL bytes; not a text CSV file", path);
    }
    csv_pass p = {path, label_column, -1, 0, 0, 0, NULL};
    kn_status st = walk(text, len, &p, err);
    if (!st && p.rows == 0)
        st = kn_error_set(err, KN_ERR_FORMAT, "%s: no data rows%s", path, p.fields > 0 ? " (only a header)" : "");
    kn_dataset *ds = NULL;
    if (!st)
        st = kn__dataset_new(&ds, p.rows, 1, (const int64_t[]){p.fields - 1}, KN_F32, true, path, err);
    if (!st) {
        p.ds = ds;
        p.fields = -1;
        st = walk(text, len, &p, err);
    }
    kn__free(text);
    if (st) {
        kn_dataset_free(ds);
        return st;
    }
    kn__dataset_set_classes(ds, 1);
    kn__dataset_set_name(ds, kn__path_base(path));
    *out = ds;
    return KN_OK;
}
