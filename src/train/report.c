/* report.c — the feedback of a training run: the progress line (redrawn in place on a
 * terminal, plain lines otherwise), metrics.csv, curves.png (via plot.c), summary.json, and
 * the recipe/history text kept in checkpoint metadata. Every file is written atomically. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../core/alloc.h"
#include "kiln/io.h"
#include "report.h"
#include "session.h"

void kn__progress_init(kn__progress *p, bool on)
{
    p->on = on;
    p->tty = on && isatty(STDERR_FILENO);
    p->last_draw = 0;
}

static void fmt_time(double s, char *buf, size_t size)
{
    long t = s > 0 && s < 1e7 ? (long)(s + 0.5) : 0;
    if (t >= 3600)
        snprintf(buf, size, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, size, "%ld:%02ld", t / 60, t % 60);
}

void kn__progress_step(kn__progress *p, int epoch, int epochs, int64_t batch, int64_t batches, double loss, double acc,
                       double images_per_s, double elapsed)
{
    if (!p->tty)
        return;
    double now = kn__now();
    if (batch != batches && now - p->last_draw < 0.25)
        return;
    p->last_draw = now;
    char eta[32];
    fmt_time(batch ? elapsed * (double)(batches - batch) / (double)batch : 0, eta, sizeof eta);
    fprintf(stderr, "\r\033[Kepoch %d/%d  step %lld/%lld  loss %.4f  acc %.4f  %.0f img/s  ETA %s", epoch, epochs,
            (long long)batch, (long long)batches, loss, acc, images_per_s, eta);
    fflush(stderr);
}

void kn__progress_epoch(kn__progress *p, const kn_epoch_log *l, int epochs, int64_t batches, double eta)
{
    if (!p->on)
        return;
    char t[32], e[32];
    fmt_time(l->seconds, t, sizeof t);
    fmt_time(eta, e, sizeof e);
    fprintf(stderr, "%sepoch %d/%d  step %lld/%lld  loss %.4f  acc %.4f", p->tty ? "\r\033[K" : "", l->epoch, epochs,
            (long long)batches, (long long)batches, l->train_loss, l->train_acc);
    if (!isnan(l->val_acc))
        fprintf(stderr, "  val_loss %.4f  val_acc %.4f", l->val_loss, l->val_acc);
    if (!isnan(l->test_acc))
        fprintf(stderr, "  test_acc %.4f", l->test_acc);
    if (l->skipped_steps)
        fprintf(stderr, "  skipped %lld", (long long)l->skipped_steps);
    if (l->loss_scale > 0)
        fprintf(stderr, "  loss_scale %g (halved %lld, doubled %lld)", l->loss_scale, (long long)l->scale_halvings,
                (long long)l->scale_doublings);
    fprintf(stderr, "  %.0f img/s  %s  ETA %s  lr %.3g\n", l->images_per_s, t, e, l->lr);
    fflush(stderr);
}

/* A growing text buffer. */
typedef struct sbuf {
    char *s;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if (b->s && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap <= b->len + (size_t)n)
            cap *= 2;
        char *s = kn__realloc(b->s, b->cap, cap);
        if (!s) {
            b->oom = true;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
}

static kn_status sb_write(sbuf *b, const char *dir, const char *name, kn_error *err)
{
    kn_status st;
    if (b->oom) {
        st = kn_error_set(err, KN_ERR_OOM, "out of memory writing %s", name);
    } else {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        st = kn_write_file_atomic(path, b->s ? b->s : "", b->len, err);
    }
    kn__free(b->s);
    return st;
}

/* JSON numbers: NaN/inf become null. */
static void sb_num(sbuf *b, const char *key, double v, bool comma)
{
    if (isfinite(v))
        sb_printf(b, "  \"%s\": %.6g%s\n", key, v, comma ? "," : "");
    else
        sb_printf(b, "  \"%s\": null%s\n", key, comma ? "," : "");
}

kn_status kn__write_epoch_outputs(const char *dir, const kn_epoch_log *logs, int n, kn_error *err)
{
    sbuf b = {0};
    sb_printf(&b, "epoch,train_loss,train_accuracy,val_loss,val_accuracy,test_loss,test_accuracy,images_per_s,"
                  "seconds,lr,skipped_steps,loss_scale,scale_halvings,scale_doublings\n");
    for (int i = 0; i < n; i++) {
        const kn_epoch_log *l = &logs[i];
        sb_printf(&b, "%d,%.6f,%.6f,", l->epoch, l->train_loss, l->train_acc);
        if (isnan(l->val_acc))
            sb_printf(&b, ",,");
        else
            sb_printf(&b, "%.6f,%.6f,", l->val_loss, l->val_acc);
        if (isnan(l->test_acc))
            sb_printf(&b, ",,");
        else
            sb_printf(&b, "%.6f,%.6f,", l->test_loss, l->test_acc);
        sb_printf(&b, "%.1f,%.3f,%.6g,%lld,", l->images_per_s, l->seconds, l->lr, (long long)l->skipped_steps);
        if (l->loss_scale > 0)
            sb_printf(&b, "%.15g", l->loss_scale);
        sb_printf(&b, ",%lld,%lld\n", (long long)l->scale_halvings, (long long)l->scale_doublings);
    }
    kn_status st = sb_write(&b, dir, "metrics.csv", err);
    if (st)
        return st;

    double *buf = kn__alloc(sizeof(double) * (size_t)(7 * (n ? n : 1)));
    if (!buf)
        return kn_error_set(err, KN_ERR_OOM, "out of memory for curves.png");
    double *x = buf, *tl = buf + n, *vl = buf + 2 * n, *ta = buf + 3 * n, *va = buf + 4 * n, *sl = buf + 5 * n,
           *sa = buf + 6 * n;
    bool has_val = false, has_test = false;
    for (int i = 0; i < n; i++) {
        x[i] = logs[i].epoch;
        tl[i] = logs[i].train_loss;
        vl[i] = logs[i].val_loss;
        sl[i] = logs[i].test_loss;
        ta[i] = logs[i].train_acc;
        va[i] = logs[i].val_acc;
        sa[i] = logs[i].test_acc;
        has_val |= !isnan(va[i]);
        has_test |= !isnan(sa[i]);
    }
    /* train always; validation and test when the run has them */
    kn__plot_series loss[3] = {{"train", x, tl, n, 0x1f77b4, false}}, acc[3] = {{"train", x, ta, n, 0x1f77b4, false}};
    int ns = 1;
    if (has_val) {
        loss[ns] = (kn__plot_series){"validation", x, vl, n, 0xff7f0e, true};
        acc[ns++] = (kn__plot_series){"validation", x, va, n, 0xff7f0e, true};
    }
    if (has_test) {
        loss[ns] = (kn__plot_series){"test", x, sl, n, 0x2ca02c, true};
        acc[ns++] = (kn__plot_series){"test", x, sa, n, 0x2ca02c, true};
    }
    kn__plot_panel panels[2] = {{"Loss", "epoch", "cross-entropy loss", loss, ns},
                                {"Accuracy", "epoch", "accuracy", acc, ns}};
    char path[4096];
    snprintf(path, sizeof path, "%s/curves.png", dir);
    st = kn__plot_png(path, panels, 2, 1200, 500, err);
    kn__free(buf);
    return st;
}

kn_status kn__write_summary(const char *dir, const kn_train_result *res, const kn_epoch_log *logs, int n,
                            const kn_eval_result *test, kn_error *err)
{
    sbuf b = {0};
    sb_printf(&b, "{\n");
    sb_num(&b, "test_accuracy", test ? test->accuracy : NAN, true);
    sb_num(&b, "test_loss", test ? test->loss : NAN, true);
    sb_printf(&b, "  \"epochs\": %d,\n", res->epochs_done);
    sb_printf(&b, "  \"steps\": %lld,\n", (long long)res->steps);
    sb_printf(&b, "  \"skipped_steps\": %lld,\n", (long long)res->skipped_steps);
    if (res->loss_scale > 0) {
        sb_num(&b, "loss_scale", res->loss_scale, true);
        sb_printf(&b, "  \"loss_scale_halvings\": %lld,\n", (long long)res->scale_halvings);
        sb_printf(&b, "  \"loss_scale_doublings\": %lld,\n", (long long)res->scale_doublings);
    }
    sb_num(&b, "train_images_per_s", res->train_images_per_s, true);
    sb_num(&b, "seconds", res->seconds, true);
    sb_num(&b, "final_train_loss", n ? logs[n - 1].train_loss : NAN, true);
    sb_num(&b, "final_train_accuracy", n ? logs[n - 1].train_acc : NAN, true);
    sb_num(&b, "final_val_accuracy", n ? logs[n - 1].val_acc : NAN, true);
    sb_printf(&b, "  \"checkpoint\": \"model.safetensors\"\n}\n");
    return sb_write(&b, dir, "summary.json", err);
}

kn_status kn__recipe_string(const kn_recipe *r, char **out)
{
    sbuf b = {0};
    sb_printf(&b, "optimizer=%s lr=%.9g momentum=%.9g nesterov=%d weight_decay=%.9g beta1=%.9g beta2=%.9g eps=%.9g "
                  "batch=%d epochs=%d schedule=%s warmup=%.9g step_size=%d gamma=%.9g clip=%.9g accum=%d crop=%d "
                  "flip=%d val_split=%.9g",
              r->optimizer, r->lr, r->momentum, r->nesterov, r->weight_decay, r->beta1, r->beta2, r->eps, r->batch,
              r->epochs, r->schedule, r->warmup_epochs, r->step_size, r->gamma, r->clip_norm, r->accum, r->crop_pad,
              r->hflip, r->val_split);
    if (b.oom) {
        kn__free(b.s);
        return KN_ERR_OOM;
    }
    *out = b.s;
    return KN_OK;
}

kn_status kn__history_string(const kn_epoch_log *logs, int n, char **out)
{
    sbuf b = {0};
    sb_printf(&b, "%s", "");
    for (int i = 0; i < n; i++) {
        const kn_epoch_log *l = &logs[i];
        sb_printf(&b, "%d %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g %lld", l->epoch, l->train_loss,
                  l->train_acc, l->val_loss, l->val_acc, l->test_loss, l->test_acc, l->images_per_s, l->seconds, l->lr,
                  (long long)l->skipped_steps);
        /* loss scaling (FP16) as an optional tail, so older histories still parse */
        if (l->loss_scale > 0)
            sb_printf(&b, "|%.17g %lld %lld", l->loss_scale, (long long)l->scale_halvings,
                      (long long)l->scale_doublings);
        sb_printf(&b, "\n");
    }
    if (b.oom) {
        kn__free(b.s);
        return KN_ERR_OOM;
    }
    *out = b.s;
    return KN_OK;
}

kn_status kn__history_parse(const char *s, kn_epoch_log **logs, int *n, int *cap)
{
    while (*s) {
        kn_epoch_log l;
        int used = 0;
        long long skipped = 0;
        if (sscanf(s, "%d %lf %lf %lf %lf %lf %lf %lf %lf %lf %lld%n", &l.epoch, &l.train_loss, &l.train_acc,
                   &l.val_loss, &l.val_acc, &l.test_loss, &l.test_acc, &l.images_per_s, &l.seconds, &l.lr, &skipped,
                   &used) != 11)
            break;
        if (*n == *cap) {
            int c = *cap ? 2 * *cap : 16;
            kn_epoch_log *p = kn__realloc(*logs, (size_t)*cap * sizeof *p, (size_t)c * sizeof *p);
            if (!p)
                return KN_ERR_OOM;
            *logs = p;
            *cap = c;
        }
        l.skipped_steps = skipped;
        l.loss_scale = 0;
        l.scale_halvings = l.scale_doublings = 0;
        if (s[used] == '|') {
            long long h = 0, d = 0;
            int more = 0;
            if (sscanf(s + used + 1, "%lf %lld %lld%n", &l.loss_scale, &h, &d, &more) != 3)
                break;
            l.scale_halvings = h;
            l.scale_doublings = d;
            used += 1 + more;
        }
        (*logs)[(*n)++] = l;
        s += used;
        while (*s == '\n' || *s == ' ')
            s++;
    }
    return KN_OK;
}
