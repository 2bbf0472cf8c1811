/* plot.c — line charts rendered into a PNG (curves.png): panels side by side, each with a
 * bold title, a framed plot area with "nice" ticks (1, 2 or 5 × 10^k) and light grid lines,
 * anti-aliased 2-px polylines (solid or dashed) with a dot per point, axis labels (the y label
 * written vertically), and a legend placed in the plot corner its curves leave emptiest.
 * Text uses a built-in bitmap font: the ASCII glyphs of the public-domain X11 "misc-fixed"
 * 6x13 font, drawn with proportional spacing, at 2× scale in large images.
 * Not a general plotting library: linear axes only, no colour cycle (callers pick colours),
 * no fills, no text outside printable ASCII (other bytes are drawn as '?'). */
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "kiln/io.h"
#include "report.h"

/* ---- font ------------------------------------------------------------------------------ */
/* 12 rows per glyph (rows 0..9 above the baseline, 10..11 descenders), bit 7 = leftmost of
 * 5 columns; transcribed from 6x13.bdf ("Public domain font. Share and enjoy."), except '.'
 * and ':', redrawn as square dots on the baseline so "0.5" cannot be read as "0,5". */
#define FONT_ROWS 12
static const uint8_t font6x13[95][FONT_ROWS] = {
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /*   */
    {0x00, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x00, 0x20, 0x00, 0x00}, /* ! */
    {0x00, 0x50, 0x50, 0x50, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* " */
    {0x00, 0x00, 0x50, 0x50, 0xf8, 0x50, 0xf8, 0x50, 0x50, 0x00, 0x00, 0x00}, /* # */
    {0x00, 0x20, 0x78, 0xa0, 0xa0, 0x70, 0x28, 0x28, 0xf0, 0x20, 0x00, 0x00}, /* $ */
    {0x00, 0x48, 0xa8, 0x50, 0x10, 0x20, 0x40, 0x50, 0xa8, 0x90, 0x00, 0x00}, /* % */
    {0x00, 0x00, 0x40, 0xa0, 0xa0, 0x40, 0xa0, 0x98, 0x90, 0x68, 0x00, 0x00}, /* & */
    {0x00, 0x20, 0x20, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* ' */
    {0x10, 0x20, 0x20, 0x40, 0x40, 0x40, 0x40, 0x40, 0x20, 0x20, 0x10, 0x00}, /* ( */
    {0x40, 0x20, 0x20, 0x10, 0x10, 0x10, 0x10, 0x10, 0x20, 0x20, 0x40, 0x00}, /* ) */
    {0x00, 0x20, 0xa8, 0x70, 0xa8, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* * */
    {0x00, 0x00, 0x00, 0x20, 0x20, 0xf8, 0x20, 0x20, 0x00, 0x00, 0x00, 0x00}, /* + */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x30, 0x20, 0x40, 0x00}, /* , */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0xf8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* - */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x60, 0x60, 0x00, 0x00}, /* . */
    {0x00, 0x08, 0x08, 0x10, 0x10, 0x20, 0x40, 0x40, 0x80, 0x80, 0x00, 0x00}, /* / */
    {0x00, 0x20, 0x50, 0x88, 0x88, 0x88, 0x88, 0x88, 0x50, 0x20, 0x00, 0x00}, /* 0 */
    {0x00, 0x20, 0x60, 0xa0, 0x20, 0x20, 0x20, 0x20, 0x20, 0xf8, 0x00, 0x00}, /* 1 */
    {0x00, 0x70, 0x88, 0x88, 0x08, 0x10, 0x20, 0x40, 0x80, 0xf8, 0x00, 0x00}, /* 2 */
    {0x00, 0xf8, 0x08, 0x10, 0x20, 0x70, 0x08, 0x08, 0x88, 0x70, 0x00, 0x00}, /* 3 */
    {0x00, 0x10, 0x10, 0x30, 0x50, 0x50, 0x90, 0xf8, 0x10, 0x10, 0x00, 0x00}, /* 4 */
    {0x00, 0xf8, 0x80, 0x80, 0xb0, 0xc8, 0x08, 0x08, 0x88, 0x70, 0x00, 0x00}, /* 5 */
    {0x00, 0x70, 0x88, 0x80, 0x80, 0xf0, 0x88, 0x88, 0x88, 0x70, 0x00, 0x00}, /* 6 */
    {0x00, 0xf8, 0x08, 0x10, 0x10, 0x20, 0x20, 0x40, 0x40, 0x40, 0x00, 0x00}, /* 7 */
    {0x00, 0x70, 0x88, 0x88, 0x88, 0x70, 0x88, 0x88, 0x88, 0x70, 0x00, 0x00}, /* 8 */
    {0x00, 0x70, 0x88, 0x88, 0x88, 0x78, 0x08, 0x08, 0x88, 0x70, 0x00, 0x00}, /* 9 */
    {0x00, 0x00, 0x00, 0x00, 0x60, 0x60, 0x00, 0x00, 0x60, 0x60, 0x00, 0x00}, /* : */
    {0x00, 0x00, 0x00, 0x20, 0x70, 0x20, 0x00, 0x00, 0x30, 0x20, 0x40, 0x00}, /* ; */
    {0x00, 0x08, 0x10, 0x20, 0x40, 0x80, 0x40, 0x20, 0x10, 0x08, 0x00, 0x00}, /* < */
    {0x00, 0x00, 0x00, 0x00, 0xf8, 0x00, 0x00, 0xf8, 0x00, 0x00, 0x00, 0x00}, /* = */
    {0x00, 0x80, 0x40, 0x20, 0x10, 0x08, 0x10, 0x20, 0x40, 0x80, 0x00, 0x00}, /* > */
    {0x00, 0x70, 0x88, 0x88, 0x08, 0x10, 0x20, 0x20, 0x00, 0x20, 0x00, 0x00}, /* ? */
    {0x00, 0x70, 0x88, 0x88, 0x98, 0xa8, 0xa8, 0xb0, 0x80, 0x78, 0x00, 0x00}, /* @ */
    {0x00, 0x20, 0x50, 0x88, 0x88, 0x88, 0xf8, 0x88, 0x88, 0x88, 0x00, 0x00}, /* A */
    {0x00, 0xf0, 0x48, 0x48, 0x48, 0x70, 0x48, 0x48, 0x48, 0xf0, 0x00, 0x00}, /* B */
    {0x00, 0x70, 0x88, 0x80, 0x80, 0x80, 0x80, 0x80, 0x88, 0x70, 0x00, 0x00}, /* C */
    {0x00, 0xf0, 0x48, 0x48, 0x48, 0x48, 0x48, 0x48, 0x48, 0xf0, 0x00, 0x00}, /* D */
    {0x00, 0xf8, 0x80, 0x80, 0x80, 0xf0, 0x80, 0x80, 0x80, 0xf8, 0x00, 0x00}, /* E */
    {0x00, 0xf8, 0x80, 0x80, 0x80, 0xf0, 0x80, 0x80, 0x80, 0x80, 0x00, 0x00}, /* F */
    {0x00, 0x70, 0x88, 0x80, 0x80, 0x80, 0x98, 0x88, 0x88, 0x70, 0x00, 0x00}, /* G */
    {0x00, 0x88, 0x88, 0x88, 0x88, 0xf8, 0x88, 0x88, 0x88, 0x88, 0x00, 0x00}, /* H */
    {0x00, 0x70, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x70, 0x00, 0x00}, /* I */
    {0x00, 0x38, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x90, 0x60, 0x00, 0x00}, /* J */
    {0x00, 0x88, 0x88, 0x90, 0xa0, 0xc0, 0xa0, 0x90, 0x88, 0x88, 0x00, 0x00}, /* K */
    {0x00, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0xf8, 0x00, 0x00}, /* L */
    {0x00, 0x88, 0x88, 0xd8, 0xa8, 0xa8, 0x88, 0x88, 0x88, 0x88, 0x00, 0x00}, /* M */
    {0x00, 0x88, 0xc8, 0xc8, 0xa8, 0xa8, 0x98, 0x98, 0x88, 0x88, 0x00, 0x00}, /* N */
    {0x00, 0x70, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x70, 0x00, 0x00}, /* O */
    {0x00, 0xf0, 0x88, 0x88, 0x88, 0xf0, 0x80, 0x80, 0x80, 0x80, 0x00, 0x00}, /* P */
    {0x00, 0x70, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0xa8, 0x70, 0x08, 0x00}, /* Q */
    {0x00, 0xf0, 0x88, 0x88, 0x88, 0xf0, 0xa0, 0x90, 0x88, 0x88, 0x00, 0x00}, /* R */
    {0x00, 0x70, 0x88, 0x80, 0x80, 0x70, 0x08, 0x08, 0x88, 0x70, 0x00, 0x00}, /* S */
    {0x00, 0xf8, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x00, 0x00}, /* T */
    {0x00, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x70, 0x00, 0x00}, /* U */
    {0x00, 0x88, 0x88, 0x88, 0x88, 0x50, 0x50, 0x50, 0x20, 0x20, 0x00, 0x00}, /* V */
    {0x00, 0x88, 0x88, 0x88, 0x88, 0xa8, 0xa8, 0xa8, 0xa8, 0x50, 0x00, 0x00}, /* W */
    {0x00, 0x88, 0x88, 0x50, 0x50, 0x20, 0x50, 0x50, 0x88, 0x88, 0x00, 0x00}, /* X */
    {0x00, 0x88, 0x88, 0x50, 0x50, 0x20, 0x20, 0x20, 0x20, 0x20, 0x00, 0x00}, /* Y */
    {0x00, 0xf8, 0x08, 0x10, 0x10, 0x20, 0x40, 0x40, 0x80, 0xf8, 0x00, 0x00}, /* Z */
    {0x70, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x70, 0x00}, /* [ */
    {0x00, 0x80, 0x80, 0x40, 0x40, 0x20, 0x10, 0x10, 0x08, 0x08, 0x00, 0x00}, /* backslash */
    {0x70, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x70, 0x00}, /* ] */
    {0x00, 0x20, 0x50, 0x88, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* ^ */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf8, 0x00}, /* _ */
    {0x20, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* ` */
    {0x00, 0x00, 0x00, 0x00, 0x70, 0x08, 0x78, 0x88, 0x98, 0x68, 0x00, 0x00}, /* a */
    {0x00, 0x80, 0x80, 0x80, 0xf0, 0x88, 0x88, 0x88, 0x88, 0xf0, 0x00, 0x00}, /* b */
    {0x00, 0x00, 0x00, 0x00, 0x70, 0x88, 0x80, 0x80, 0x88, 0x70, 0x00, 0x00}, /* c */
    {0x00, 0x08, 0x08, 0x08, 0x78, 0x88, 0x88, 0x88, 0x88, 0x78, 0x00, 0x00}, /* d */
    {0x00, 0x00, 0x00, 0x00, 0x70, 0x88, 0xf8, 0x80, 0x88, 0x70, 0x00, 0x00}, /* e */
    {0x00, 0x30, 0x48, 0x40, 0x40, 0xf0, 0x40, 0x40, 0x40, 0x40, 0x00, 0x00}, /* f */
    {0x00, 0x00, 0x00, 0x00, 0x70, 0x88, 0x88, 0x88, 0x78, 0x08, 0x88, 0x70}, /* g */
    {0x00, 0x80, 0x80, 0x80, 0xb0, 0xc8, 0x88, 0x88, 0x88, 0x88, 0x00, 0x00}, /* h */
    {0x00, 0x00, 0x20, 0x00, 0x60, 0x20, 0x20, 0x20, 0x20, 0x70, 0x00, 0x00}, /* i */
    {0x00, 0x00, 0x10, 0x00, 0x30, 0x10, 0x10, 0x10, 0x10, 0x90, 0x90, 0x60}, /* j */
    {0x00, 0x80, 0x80, 0x80, 0x90, 0xa0, 0xc0, 0xa0, 0x90, 0x88, 0x00, 0x00}, /* k */
    {0x00, 0x60, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x70, 0x00, 0x00}, /* l */
    {0x00, 0x00, 0x00, 0x00, 0xd0, 0xa8, 0xa8, 0xa8, 0xa8, 0x88, 0x00, 0x00}, /* m */
    {0x00, 0x00, 0x00, 0x00, 0xb0, 0xc8, 0x88, 0x88, 0x88, 0x88, 0x00, 0x00}, /* n */
    {0x00, 0x00, 0x00, 0x00, 0x70, 0x88, 0x88, 0x88, 0x88, 0x70, 0x00, 0x00}, /* o */
    {0x00, 0x00, 0x00, 0x00, 0xf0, 0x88, 0x88, 0x88, 0xf0, 0x80, 0x80, 0x80}, /* p */
    {0x00, 0x00, 0x00, 0x00, 0x78, 0x88, 0x88, 0x88, 0x78, 0x08, 0x08, 0x08}, /* q */
    {0x00, 0x00, 0x00, 0x00, 0xb0, 0xc8, 0x80, 0x80, 0x80, 0x80, 0x00, 0x00}, /* r */
    {0x00, 0x00, 0x00, 0x00, 0x70, 0x88, 0x60, 0x10, 0x88, 0x70, 0x00, 0x00}, /* s */
    {0x00, 0x00, 0x40, 0x40, 0xf0, 0x40, 0x40, 0x40, 0x48, 0x30, 0x00, 0x00}, /* t */
    {0x00, 0x00, 0x00, 0x00, 0x88, 0x88, 0x88, 0x88, 0x98, 0x68, 0x00, 0x00}, /* u */
    {0x00, 0x00, 0x00, 0x00, 0x88, 0x88, 0x88, 0x50, 0x50, 0x20, 0x00, 0x00}, /* v */
    {0x00, 0x00, 0x00, 0x00, 0x88, 0x88, 0xa8, 0xa8, 0xa8, 0x50, 0x00, 0x00}, /* w */
    {0x00, 0x00, 0x00, 0x00, 0x88, 0x50, 0x20, 0x20, 0x50, 0x88, 0x00, 0x00}, /* x */
    {0x00, 0x00, 0x00, 0x00, 0x88, 0x88, 0x88, 0x98, 0x68, 0x08, 0x88, 0x70}, /* y */
    {0x00, 0x00, 0x00, 0x00, 0xf8, 0x10, 0x20, 0x40, 0x80, 0xf8, 0x00, 0x00}, /* z */
    {0x18, 0x20, 0x20, 0x20, 0x20, 0xc0, 0x20, 0x20, 0x20, 0x20, 0x18, 0x00}, /* { */
    {0x00, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x00, 0x00}, /* | */
    {0xc0, 0x20, 0x20, 0x20, 0x20, 0x18, 0x20, 0x20, 0x20, 0x20, 0xc0, 0x00}, /* } */
    {0x00, 0x48, 0xa8, 0x90, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* ~ */
};

/* Columns [lo, hi] a glyph occupies: digits keep the full cell (so numbers line up), other
 * glyphs are trimmed to their ink, a space is 3 columns wide. */
static const uint8_t *glyph(unsigned char c)
{
    return font6x13[(c < 32 || c > 126) ? '?' - 32 : c - 32];
}

static void glyph_cols(unsigned char c, int *lo, int *hi)
{
    *lo = 0;
    *hi = 4;
    if (c == ' ') {
        *hi = 2;
        return;
    }
    if (c >= '0' && c <= '9')
        return;
    const uint8_t *g = glyph(c);
    unsigned m = 0;
    for (int r = 0; r < FONT_ROWS; r++)
        m |= g[r];
    if (!m)
        return;
    while (!(m & (0x80u >> *lo)))
        (*lo)++;
    while (!(m & (0x80u >> *hi)))
        (*hi)--;
}

/* Width in pixels of s drawn at scale sc (bold adds a column to every glyph). */
static int text_width(const char *s, int sc, bool bold)
{
    int w = 0;
    for (; s && *s; s++) {
        int lo, hi;
        glyph_cols((unsigned char)*s, &lo, &hi);
        w += hi - lo + 2 + (bold ? 1 : 0);
    }
    return w > 0 ? (w - 1) * sc : 0;
}

/* ---- canvas ---------------------------------------------------------------------------- */
typedef struct rect {
    int x0, y0, x1, y1; /* [x0, x1) × [y0, y1) */
} rect;

typedef struct canvas {
    uint8_t *px; /* [h, w, 3] RGB */
    float *cov;  /* [h, w] coverage scratch for anti-aliased strokes */
    int w, h;
    rect clip;   /* every write is clipped to this */
} canvas;

static rect rect_and(rect a, rect b)
{
    rect r = {a.x0 > b.x0 ? a.x0 : b.x0, a.y0 > b.y0 ? a.y0 : b.y0, a.x1 < b.x1 ? a.x1 : b.x1,
              a.y1 < b.y1 ? a.y1 : b.y1};
    return r;
}

/* double → int without undefined behaviour for huge or NaN values. */
static int clampi(double v, int lo, int hi)
{
    if (!(v >= lo))
        return lo;
    if (v > hi)
        return hi;
    return (int)v;
}

static void put(canvas *cv, int x, int y, uint32_t rgb, float a)
{
    if (x < cv->clip.x0 || x >= cv->clip.x1 || y < cv->clip.y0 || y >= cv->clip.y1 || !(a > 0))
        return;
    if (a > 1)
        a = 1;
    uint8_t *p = cv->px + ((size_t)y * (size_t)cv->w + (size_t)x) * 3;
    for (int k = 0; k < 3; k++) {
        float c = (float)((rgb >> (16 - 8 * k)) & 0xff);
        p[k] = (uint8_t)(p[k] * (1 - a) + c * a + 0.5f);
    }
}

static void fill(canvas *cv, int x0, int y0, int x1, int y1, uint32_t rgb, float a)
{
    rect r = rect_and((rect){x0, y0, x1, y1}, cv->clip);
    for (int y = r.y0; y < r.y1; y++)
        for (int x = r.x0; x < r.x1; x++)
            put(cv, x, y, rgb, a);
}

/* Text with its cell's top-left corner at (x, y); vertical text reads bottom to top, its
 * cell's bottom-left corner at (x, y). */
static void draw_text(canvas *cv, int x, int y, const char *s, uint32_t rgb, int sc, bool bold, bool vertical)
{
    int pen = 0;
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        const uint8_t *g = glyph(c);
        int lo, hi;
        glyph_cols(c, &lo, &hi);
        int cols = hi - lo + 1 + (bold ? 1 : 0);
        for (int r = 0; r < FONT_ROWS; r++) {
            for (int k = 0; k < cols; k++) {
                int col = lo + k;
                bool on = (col <= hi && (g[r] & (0x80u >> col))) || (bold && col - 1 >= lo && (g[r] & (0x80u >> (col - 1))));
                if (!on)
                    continue;
                int u = (pen + k) * sc, v = r * sc;
                if (vertical)
                    fill(cv, x + v, y - u - sc, x + v + sc, y - u, rgb, 1);
                else
                    fill(cv, x + u, y + v, x + u + sc, y + v + sc, rgb, 1);
            }
        }
        pen += cols + 1;
    }
}

/* ---- anti-aliased strokes: coverage is accumulated (max) in cv->cov, then painted once,
 * so joints and overlapping dots of one series blend cleanly. -------------------------- */
static void cov_clear(canvas *cv, rect r)
{
    r = rect_and(r, cv->clip);
    for (int y = r.y0; y < r.y1; y++)
        for (int x = r.x0; x < r.x1; x++)
            cv->cov[(size_t)y * (size_t)cv->w + (size_t)x] = 0;
}

static void cov_paint(canvas *cv, rect r, uint32_t rgb)
{
    r = rect_and(r, cv->clip);
    for (int y = r.y0; y < r.y1; y++)
        for (int x = r.x0; x < r.x1; x++)
            put(cv, x, y, rgb, cv->cov[(size_t)y * (size_t)cv->w + (size_t)x]);
}

static rect cov_box(canvas *cv, rect r, double x0, double y0, double x1, double y1, double grow)
{
    r = rect_and(r, cv->clip);
    rect b = {clampi(floor(fmin(x0, x1) - grow), r.x0, r.x1), clampi(floor(fmin(y0, y1) - grow), r.y0, r.y1),
              clampi(ceil(fmax(x0, x1) + grow) + 1, r.x0, r.x1), clampi(ceil(fmax(y0, y1) + grow) + 1, r.y0, r.y1)};
    return b;
}

static void cov_max(canvas *cv, int x, int y, double c)
{
    if (c <= 0)
        return;
    float *p = &cv->cov[(size_t)y * (size_t)cv->w + (size_t)x];
    float f = c >= 1 ? 1.0f : (float)c;
    if (f > *p)
        *p = f;
}

/* A segment of half-width hw from a to b; each end is round (a joint) or butt (a dash end). */
static void cov_segment(canvas *cv, rect r, double ax, double ay, double bx, double by, double hw, bool round_a,
                        bool round_b)
{
    double dx = bx - ax, dy = by - ay, len = hypot(dx, dy);
    rect b = cov_box(cv, r, ax, ay, bx, by, hw + 2);
    double ux = len > 1e-9 ? dx / len : 1, uy = len > 1e-9 ? dy / len : 0;
    for (int y = b.y0; y < b.y1; y++) {
        for (int x = b.x0; x < b.x1; x++) {
            double px = x + 0.5 - ax, py = y + 0.5 - ay;
            double t = px * ux + py * uy, n = fabs(py * ux - px * uy), c;
            if (t < 0)
                c = round_a ? hw + 0.5 - hypot(t, n) : fmin(hw + 0.5 - n, 0.5 + t);
            else if (t > len)
                c = round_b ? hw + 0.5 - hypot(t - len, n) : fmin(hw + 0.5 - n, 0.5 - (t - len));
            else {
                c = hw + 0.5 - n;
                if (!round_a)
                    c = fmin(c, 0.5 + t);
                if (!round_b)
                    c = fmin(c, 0.5 + len - t);
            }
            cov_max(cv, x, y, c);
        }
    }
}

static void cov_disc(canvas *cv, rect r, double cx, double cy, double rad)
{
    rect b = cov_box(cv, r, cx, cy, cx, cy, rad + 2);
    for (int y = b.y0; y < b.y1; y++)
        for (int x = b.x0; x < b.x1; x++)
            cov_max(cv, x, y, rad + 0.5 - hypot(x + 0.5 - cx, y + 0.5 - cy));
}

/* A polyline through n points; dashed lines carry the dash phase across vertices and keep
 * round joints inside a dash. */
static void cov_polyline(canvas *cv, rect r, const double *px, const double *py, int n, double hw, bool dashed,
                         double on, double off)
{
    bool drawing = true;
    double left = on; /* length left in the current dash or gap */
    for (int i = 0; i + 1 < n; i++) {
        double ax = px[i], ay = py[i], bx = px[i + 1], by = py[i + 1];
        double len = hypot(bx - ax, by - ay);
        if (!dashed || !(len > 0) || !isfinite(len)) {
            cov_segment(cv, r, ax, ay, bx, by, hw, true, true);
            continue;
        }
        /* at most ~1e5 dash pieces per segment: coordinates are clamped to the canvas */
        double t = 0;
        while (t < len) {
            double step = fmin(left, len - t);
            if (drawing) {
                double t1 = t + step;
                bool start_joint = t == 0 && left < on; /* the dash began on the previous segment */
                bool end_joint = t1 >= len && step < left;
                cov_segment(cv, r, ax + (bx - ax) * t / len, ay + (by - ay) * t / len, ax + (bx - ax) * t1 / len,
                            ay + (by - ay) * t1 / len, hw, start_joint, end_joint);
            }
            t += step;
            left -= step;
            if (left <= 1e-9) {
                drawing = !drawing;
                left = drawing ? on : off;
            }
        }
    }
}

/* ---- axes ------------------------------------------------------------------------------ */
#define MAX_TICKS 12

typedef struct axis {
    double lo, hi;
    double tick[MAX_TICKS];
    char label[MAX_TICKS][32];
    int n;
} axis;

/* Pads [lo, hi] by 5% on each side; a single value gets ±5% of itself (±0.5 around zero),
 * no data at all gives [0, 1]. */
static void axis_range(axis *a, double lo, double hi, bool found)
{
    if (!found) {
        a->lo = 0;
        a->hi = 1;
        return;
    }
    double span = hi - lo;
    if (span > 0 && isfinite(span)) {
        a->lo = lo - 0.05 * span;
        a->hi = hi + 0.05 * span;
    } else {
        double h = lo != 0 ? 0.05 * fabs(lo) : 0.5;
        a->lo = lo - h;
        a->hi = lo + h;
        if (!(a->hi > a->lo)) {
            a->lo = lo - 1;
            a->hi = lo + 1;
        }
    }
    if (!isfinite(a->lo) || !isfinite(a->hi) || !(a->hi > a->lo) || !isfinite(a->hi - a->lo)) {
        a->lo = -1;
        a->hi = 1;
    }
}

/* "0.95", "1e-3", "2.5e6": a tick value written with as few characters as the step allows. */
static void format_tick(char *buf, size_t size, double v, double step, bool sci)
{
    if (v == 0) {
        snprintf(buf, size, "0");
        return;
    }
    char tmp[64];
    if (!sci) {
        int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
        snprintf(tmp, sizeof tmp, "%.*f", dec, v);
        char *dot = strchr(tmp, '.');
        if (dot) {
            char *end = tmp + strlen(tmp);
            while (end > dot + 1 && end[-1] == '0')
                *--end = 0;
            if (end == dot + 1)
                *dot = 0;
        }
        snprintf(buf, size, "%s", strcmp(tmp, "-0") ? tmp : "0");
        return;
    }
    int e = (int)floor(log10(fabs(v)));
    int dec = e - (int)floor(log10(step) + 1e-9);
    dec = dec < 0 ? 0 : dec > 6 ? 6 : dec;
    snprintf(tmp, sizeof tmp, "%.*e", dec, v);
    char *ep = strchr(tmp, 'e');
    if (!ep) {
        snprintf(buf, size, "%s", tmp);
        return;
    }
    int exp10 = atoi(ep + 1);
    *ep = 0;
    char *dot = strchr(tmp, '.');
    if (dot) {
        char *end = tmp + strlen(tmp);
        while (end > dot + 1 && end[-1] == '0')
            *--end = 0;
        if (end == dot + 1)
            *dot = 0;
    }
    snprintf(buf, size, "%se%d", tmp, exp10);
}

/* Chooses a step of 1, 2 or 5 × 10^k giving 4 to 6 ticks inside [lo, hi] (as close to 5 as
 * possible, the larger step on a tie); an integer axis (epochs) never steps below 1. */
static void axis_ticks(axis *a, bool integer)
{
    static const double mult[3] = {5, 2, 1};
    double span = a->hi - a->lo, best_step = 0, best_score = INFINITY;
    int k0 = (int)floor(log10(span));
    for (int k = k0 + 1; k >= k0 - 2; k--) {
        for (int m = 0; m < 3; m++) {
            double step = mult[m] * pow(10, k);
            if (!(step > 0) || !isfinite(step) || (integer && step < 1))
                continue;
            double cnt = floor(a->hi / step) - ceil(a->lo / step) + 1;
            if (!(cnt >= 1) || cnt > MAX_TICKS)
                continue;
            double score = fabs(cnt - 5) + (cnt < 4 || cnt > 6 ? 10 : 0);
            if (score < best_score) {
                best_score = score;
                best_step = step;
            }
        }
    }
    a->n = 0;
    if (best_step <= 0)
        return;
    double first = ceil(a->lo / best_step), maxabs = 0;
    int cnt = (int)(floor(a->hi / best_step) - first + 1);
    for (int i = 0; i < cnt && i < MAX_TICKS; i++) {
        double v = (first + i) * best_step;
        if (fabs(v) < best_step * 1e-6)
            v = 0;
        a->tick[a->n++] = v;
        maxabs = fmax(maxabs, fabs(v));
    }
    bool sci = maxabs >= 1e6 || best_step < 1e-4;
    for (int i = 0; i < a->n; i++)
        format_tick(a->label[i], sizeof a->label[i], a->tick[i], best_step, sci);
}

/* ---- one panel -------------------------------------------------------------------------- */
#define C_TEXT 0x000000u
#define C_FRAME 0x000000u
#define C_GRID 0xe3e3e3u
#define C_LEGEND_EDGE 0xccccccu

typedef struct scratch {
    double *px, *py; /* pixel coordinates of one series' finite points */
} scratch;

static bool finite_point(const kn__plot_series *s, int i)
{
    return isfinite(s->x[i]) && isfinite(s->y[i]);
}

/* Pixel coordinates of a series' finite points; returns their count. */
static int series_pixels(const kn__plot_series *s, const axis *ax, const axis *ay, double L, double R, double T,
                         double B, scratch *sc)
{
    int m = 0;
    for (int i = 0; i < s->n; i++) {
        if (!finite_point(s, i))
            continue;
        double x = L + 0.5 + (s->x[i] - ax->lo) / (ax->hi - ax->lo) * (R - L);
        double y = B + 0.5 - (s->y[i] - ay->lo) / (ay->hi - ay->lo) * (B - T);
        sc->px[m] = fmin(fmax(x, -1e5), 1e5);
        sc->py[m] = fmin(fmax(y, -1e5), 1e5);
        m++;
    }
    return m;
}

/* How many sample points of the panel's curves fall inside box (legend placement). */
static long curve_hits(const kn__plot_panel *p, const axis *ax, const axis *ay, int L, int R, int T, int B,
                       scratch *sc, rect box)
{
    long hits = 0;
    for (int s = 0; s < p->n_series; s++) {
        int m = series_pixels(&p->series[s], ax, ay, L, R, T, B, sc);
        for (int i = 0; i < m; i++) {
            double x1 = i + 1 < m ? sc->px[i + 1] : sc->px[i], y1 = i + 1 < m ? sc->py[i + 1] : sc->py[i];
            double len = hypot(x1 - sc->px[i], y1 - sc->py[i]);
            int steps = len > 2 ? clampi(len / 2, 1, 100000) : 1;
            for (int k = 0; k < steps; k++) {
                double x = sc->px[i] + (x1 - sc->px[i]) * k / steps, y = sc->py[i] + (y1 - sc->py[i]) * k / steps;
                hits += x >= box.x0 && x < box.x1 && y >= box.y0 && y < box.y1;
            }
        }
    }
    return hits;
}

static double marker_radius(int points, int L, int R, int sc)
{
    double spacing = points > 1 ? (double)(R - L) / (points - 1) : 1e9;
    return fmax(1.2 * sc + 0.6, fmin(3.5 * sc, 0.3 * spacing));
}

static void draw_panel(canvas *cv, const kn__plot_panel *p, rect panel, int sc, scratch *scr)
{
    cv->clip = panel;
    const int lh = FONT_ROWS * sc, tick = 4 * sc, gap = 3 * sc;
    const double hw = 1.1 * sc, dash_on = 7.0 * sc, dash_off = 4.0 * sc;

    /* data ranges over finite points */
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    bool found = false, integer_x = true;
    int max_points = 0;
    for (int s = 0; s < p->n_series; s++) {
        const kn__plot_series *se = &p->series[s];
        int m = 0;
        for (int i = 0; i < se->n; i++) {
            if (!finite_point(se, i))
                continue;
            found = true;
            m++;
            xlo = fmin(xlo, se->x[i]);
            xhi = fmax(xhi, se->x[i]);
            ylo = fmin(ylo, se->y[i]);
            yhi = fmax(yhi, se->y[i]);
            if (se->x[i] != floor(se->x[i]) || fabs(se->x[i]) > 1e15)
                integer_x = false;
        }
        if (m > max_points)
            max_points = m;
    }
    axis ax, ay;
    axis_range(&ax, xlo, xhi, found);
    axis_range(&ay, ylo, yhi, found);
    axis_ticks(&ax, found && integer_x);
    axis_ticks(&ay, false);

    /* layout: margins sized to the text they hold */
    bool has_title = p->title && *p->title, has_xlabel = p->xlabel && *p->xlabel, has_ylabel = p->ylabel && *p->ylabel;
    int ytick_w = 0;
    for (int i = 0; i < ay.n; i++) {
        int w = text_width(ay.label[i], sc, false);
        ytick_w = w > ytick_w ? w : ytick_w;
    }
    int last_xw = ax.n ? text_width(ax.label[ax.n - 1], sc, false) : 0;
    int L = panel.x0 + 10 * sc + (has_ylabel ? lh + 6 * sc : 0) + ytick_w + gap + tick;
    int R = panel.x1 - 1 - (last_xw / 2 + 6 * sc > 14 * sc ? last_xw / 2 + 6 * sc : 14 * sc);
    int T = panel.y0 + (has_title ? 10 * sc + lh + 6 * sc : 14 * sc);
    int B = panel.y1 - 1 - (8 * sc + (has_xlabel ? lh + 4 * sc : 0) + lh + gap + tick);
    bool text = true;
    if (R - L < 24 || B - T < 24) { /* too small for text: the curves alone */
        text = false;
        L = panel.x0 + 2;
        R = panel.x1 - 3;
        T = panel.y0 + 2;
        B = panel.y1 - 3;
        if (R - L < 4 || B - T < 4)
            return;
    }
    double xs = (R - L) / (ax.hi - ax.lo), ys = (B - T) / (ay.hi - ay.lo);
    rect inner = {L + 1, T + 1, R, B};

    /* grid */
    for (int i = 0; i < ax.n; i++) {
        int x = clampi(floor(L + 0.5 + (ax.tick[i] - ax.lo) * xs), -1, cv->w);
        if (x > L && x < R)
            fill(cv, x, T + 1, x + 1, B, C_GRID, 1);
    }
    for (int i = 0; i < ay.n; i++) {
        int y = clampi(floor(B + 0.5 - (ay.tick[i] - ay.lo) * ys), -1, cv->h);
        if (y > T && y < B)
            fill(cv, L + 1, y, R, y + 1, C_GRID, 1);
    }

    /* curves */
    for (int s = 0; s < p->n_series; s++) {
        const kn__plot_series *se = &p->series[s];
        int m = series_pixels(se, &ax, &ay, L, R, T, B, scr);
        double rad = marker_radius(m, L, R, sc);
        cov_clear(cv, inner);
        cov_polyline(cv, inner, scr->px, scr->py, m, hw, se->dashed, dash_on, dash_off);
        for (int i = 0; i < m; i++)
            cov_disc(cv, inner, scr->px[i], scr->py[i], rad);
        cov_paint(cv, inner, se->rgb);
    }

    /* frame and ticks */
    fill(cv, L, T, R + 1, T + 1, C_FRAME, 1);
    fill(cv, L, B, R + 1, B + 1, C_FRAME, 1);
    fill(cv, L, T, L + 1, B + 1, C_FRAME, 1);
    fill(cv, R, T, R + 1, B + 1, C_FRAME, 1);
    if (!text)
        return;
    int last_right = -1000000;
    for (int i = 0; i < ax.n; i++) {
        int x = clampi(floor(L + 0.5 + (ax.tick[i] - ax.lo) * xs), -1, cv->w);
        if (x < L || x > R)
            continue;
        fill(cv, x, B + 1, x + 1, B + 1 + tick, C_FRAME, 1);
        int w = text_width(ax.label[i], sc, false), x0 = x - w / 2;
        if (x0 < last_right + 4 * sc) /* would touch the previous label */
            continue;
        draw_text(cv, x0, B + 1 + tick + gap, ax.label[i], C_TEXT, sc, false, false);
        last_right = x0 + w;
    }
    int last_top = 1000000;
    for (int i = 0; i < ay.n; i++) {
        int y = clampi(floor(B + 0.5 - (ay.tick[i] - ay.lo) * ys), -1, cv->h);
        if (y < T || y > B)
            continue;
        fill(cv, L - tick, y, L, y + 1, C_FRAME, 1);
        int y0 = y - 5 * sc; /* digits fill rows 1..9: centre them on the tick */
        if (y0 + 11 * sc > last_top)
            continue;
        int w = text_width(ay.label[i], sc, false);
        draw_text(cv, L - tick - gap - w, y0, ay.label[i], C_TEXT, sc, false, false);
        last_top = y0;
    }
    if (has_xlabel) {
        int w = text_width(p->xlabel, sc, false);
        draw_text(cv, (L + R) / 2 - w / 2, B + 1 + tick + gap + lh + 4 * sc, p->xlabel, C_TEXT, sc, false, false);
    }
    if (has_ylabel) {
        int w = text_width(p->ylabel, sc, false);
        draw_text(cv, panel.x0 + 10 * sc, (T + B) / 2 + w / 2, p->ylabel, C_TEXT, sc, false, true);
    }
    if (has_title) {
        int w = text_width(p->title, sc, true);
        draw_text(cv, (L + R) / 2 - w / 2, T - 6 * sc - lh, p->title, C_TEXT, sc, true, false);
    }

    /* legend: the corner (then edge centre) its box hides the fewest curve samples in */
    int entries = 0, label_w = 0;
    for (int s = 0; s < p->n_series; s++) {
        const char *lab = p->series[s].label;
        if (lab && *lab) {
            entries++;
            int w = text_width(lab, sc, false);
            label_w = w > label_w ? w : label_w;
        }
    }
    if (!entries)
        return;
    const int pad = 7 * sc, row = lh + 3 * sc, swatch = 26 * sc, inset = 8 * sc;
    int bw = pad + swatch + 7 * sc + label_w + pad, bh = 2 * pad + entries * row - 3 * sc;
    if (bw > R - L - 2 * inset || bh > B - T - 2 * inset)
        return;
    int cx[6] = {R - inset - bw, L + inset + 1, L + inset + 1, R - inset - bw, (L + R - bw) / 2, (L + R - bw) / 2};
    int cy[6] = {T + inset + 1, T + inset + 1, B - inset - bh, B - inset - bh, T + inset + 1, B - inset - bh};
    int best = 0;
    long best_hits = -1;
    for (int c = 0; c < 6; c++) {
        rect box = {cx[c] - 3 * sc, cy[c] - 3 * sc, cx[c] + bw + 3 * sc, cy[c] + bh + 3 * sc};
        long h = curve_hits(p, &ax, &ay, L, R, T, B, scr, box);
        if (best_hits < 0 || h < best_hits) {
            best_hits = h;
            best = c;
        }
    }
    int lx = cx[best], ly = cy[best];
    /* white at 85% over the curves, a light edge, corners cut for a rounded look */
    fill(cv, lx + 1, ly, lx + bw - 1, ly + bh, 0xffffffu, 0.85f);
    fill(cv, lx, ly + 1, lx + 1, ly + bh - 1, 0xffffffu, 0.85f);
    fill(cv, lx + bw - 1, ly + 1, lx + bw, ly + bh - 1, 0xffffffu, 0.85f);
    fill(cv, lx + 2, ly, lx + bw - 2, ly + 1, C_LEGEND_EDGE, 1);
    fill(cv, lx + 2, ly + bh - 1, lx + bw - 2, ly + bh, C_LEGEND_EDGE, 1);
    fill(cv, lx, ly + 2, lx + 1, ly + bh - 2, C_LEGEND_EDGE, 1);
    fill(cv, lx + bw - 1, ly + 2, lx + bw, ly + bh - 2, C_LEGEND_EDGE, 1);
    put(cv, lx + 1, ly + 1, C_LEGEND_EDGE, 1);
    put(cv, lx + bw - 2, ly + 1, C_LEGEND_EDGE, 1);
    put(cv, lx + 1, ly + bh - 2, C_LEGEND_EDGE, 1);
    put(cv, lx + bw - 2, ly + bh - 2, C_LEGEND_EDGE, 1);
    int e = 0;
    for (int s = 0; s < p->n_series; s++) {
        const kn__plot_series *se = &p->series[s];
        if (!se->label || !*se->label)
            continue;
        int ty = ly + pad + e * row;
        double yc = ty + 6.5 * sc; /* middle of the lower-case letters */
        double x0 = lx + pad, x1 = lx + pad + swatch;
        rect sw = {lx + 1, ty - 2 * sc, lx + pad + swatch + 2 * sc, ty + lh};
        double sx[2] = {x0, x1}, sy[2] = {yc, yc};
        cov_clear(cv, sw);
        cov_polyline(cv, sw, sx, sy, 2, hw, se->dashed, dash_on, dash_off);
        cov_disc(cv, sw, (x0 + x1) / 2, yc, 3.5 * sc);
        cov_paint(cv, sw, se->rgb);
        draw_text(cv, lx + pad + swatch + 7 * sc, ty, se->label, C_TEXT, sc, false, false);
        e++;
    }
}

/* ---- PNG encoding into memory ------------------------------------------------------------ */
typedef struct png_job {
    png_structp png;
    png_infop info;
    unsigned char *data;
    size_t size, cap;
    bool oom;
    char msg[200];
} png_job;

static void png_job_error(png_structp png, png_const_charp msg)
{
    png_job *j = png_get_error_ptr(png);
    snprintf(j->msg, sizeof j->msg, "%s", msg ? msg : "unknown error");
    png_longjmp(png, 1);
}

static void png_job_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void png_job_write(png_structp png, png_bytep data, size_t len)
{
    png_job *j = png_get_io_ptr(png);
    if (len > j->cap - j->size) {
        size_t cap = j->cap ? j->cap : 65536;
        while (cap - j->size < len) {
            if (cap > SIZE_MAX / 2) {
                j->oom = true;
                png_error(png, "PNG data too large");
            }
            cap *= 2;
        }
        unsigned char *p = kn__realloc(j->data, j->size, cap);
        if (!p) {
            j->oom = true;
            png_error(png, "out of memory");
        }
        j->data = p;
        j->cap = cap;
    }
    memcpy(j->data + j->size, data, len);
    j->size += len;
}

static void png_job_flush(png_structp png) { (void)png; }

/* Encodes the canvas into j->data. libpng reports errors by longjmp; it lands here, so no
 * jump ever leaves this function. Everything the error path reads lives in *j. */
static kn_status encode_png(png_job *j, const canvas *cv, const char *path, kn_error *err)
{
    j->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, j, png_job_error, png_job_warning);
    if (!j->png)
        return kn_error_set(err, KN_ERR_OOM, "%s: cannot create a PNG writer (out of memory)", path);
    j->info = png_create_info_struct(j->png);
    if (!j->info) {
        png_destroy_write_struct(&j->png, NULL);
        return kn_error_set(err, KN_ERR_OOM, "%s: cannot create PNG info (out of memory)", path);
    }
    if (setjmp(png_jmpbuf(j->png))) {
        png_destroy_write_struct(&j->png, &j->info);
        return kn_error_set(err, j->oom ? KN_ERR_OOM : KN_ERR_IO, "%s: PNG encoding failed: %s", path, j->msg);
    }
    png_set_write_fn(j->png, j, png_job_write, png_job_flush);
    png_set_IHDR(j->png, j->info, (png_uint_32)cv->w, (png_uint_32)cv->h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(j->png, j->info);
    for (int y = 0; y < cv->h; y++)
        png_write_row(j->png, cv->px + (size_t)y * (size_t)cv->w * 3);
    png_write_end(j->png, j->info);
    png_destroy_write_struct(&j->png, &j->info);
    return KN_OK;
}

/* ---- entry ------------------------------------------------------------------------------- */
#define MIN_SIDE 16
#define MAX_SIDE 16384
#define MAX_PANELS 64

kn_status kn__plot_png(const char *path, const kn__plot_panel *panels, int n_panels, int width, int height,
                       kn_error *err)
{
    if (!path || !*path)
        return kn_error_set(err, KN_ERR_ARG, "plot: no output path");
    if (!panels || n_panels < 1 || n_panels > MAX_PANELS)
        return kn_error_set(err, KN_ERR_ARG, "plot %s: %d panels (expected 1..%d)", path, panels ? n_panels : 0,
                            MAX_PANELS);
    if (width < MIN_SIDE || width > MAX_SIDE || height < MIN_SIDE || height > MAX_SIDE)
        return kn_error_set(err, KN_ERR_ARG, "plot %s: image size %dx%d outside %d..%d", path, width, height, MIN_SIDE,
                            MAX_SIDE);
    int max_n = 0;
    for (int i = 0; i < n_panels; i++) {
        const kn__plot_panel *p = &panels[i];
        if (p->n_series < 0 || (p->n_series > 0 && !p->series))
            return kn_error_set(err, KN_ERR_ARG, "plot %s: panel %d has %d series and %s series array", path, i,
                                p->n_series, p->series ? "a" : "no");
        for (int s = 0; s < p->n_series; s++) {
            const kn__plot_series *se = &p->series[s];
            if (se->n < 0 || (se->n > 0 && (!se->x || !se->y)))
                return kn_error_set(err, KN_ERR_ARG, "plot %s: panel %d series %d (%s): %d points with %s", path, i,
                                    s, se->label ? se->label : "unlabelled", se->n,
                                    se->n < 0 ? "a negative count" : "a NULL x or y array");
            max_n = se->n > max_n ? se->n : max_n;
        }
    }

    canvas cv = {.w = width, .h = height, .clip = {0, 0, width, height}};
    png_job job = {0};
    size_t pixels = (size_t)width * (size_t)height;
    scratch scr = {0};
    cv.px = kn__alloc(pixels * 3);
    cv.cov = kn__alloc(pixels * sizeof(float));
    if (max_n > 0) {
        scr.px = kn__alloc(kn__mul_size((size_t)max_n, sizeof(double)));
        scr.py = kn__alloc(kn__mul_size((size_t)max_n, sizeof(double)));
    }
    kn_status st = KN_OK;
    if (!cv.px || !cv.cov || (max_n > 0 && (!scr.px || !scr.py))) {
        st = kn_error_set(err, KN_ERR_OOM, "plot %s: out of memory for a %dx%d image", path, width, height);
        goto done;
    }
    memset(cv.px, 0xff, pixels * 3);
    /* 1× text, 2× once panels are large (height ≥ 800, panel width ≥ 700) */
    int sc = (height >= 800 && width / n_panels >= 700) ? 2 : 1;
    for (int i = 0; i < n_panels; i++) {
        rect panel = {(int)((int64_t)width * i / n_panels), 0, (int)((int64_t)width * (i + 1) / n_panels), height};
        draw_panel(&cv, &panels[i], panel, sc, &scr);
    }
    cv.clip = (rect){0, 0, width, height};

    st = encode_png(&job, &cv, path, err);
    if (st == KN_OK)
        st = kn_write_file_atomic(path, job.data, job.size, err);
done:
    kn__free(job.data);
    kn__free(cv.px);
    kn__free(cv.cov);
    kn__free(scr.px);
    kn__free(scr.py);
    return st;
}
