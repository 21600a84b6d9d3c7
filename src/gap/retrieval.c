/* Cross-domain retrieval: k nearest neighbours of the A rows in the pooled
 * rows, the fraction from B, and the contact-sheet PNG that shows them. The
 * thumbnails themselves are made by the caller (this file reads no dataset). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gap/gap_internal.h"
#include "segda/gap.h"

sd_status sd_gap_retrieval(const float *x, const uint8_t *domain, int n, int d, int k,
                           sd_gap_metric metric, int *nbr, double *frac)
{
    if (!x || !domain || !frac || n <= 0 || d <= 0)
        return sd_fail(SD_ERR_ARG, "retrieval: empty features (n %d, d %d)", n, d);
    if ((unsigned)metric >= SD_GAP_METRIC_COUNT)
        return sd_fail(SD_ERR_ARG, "retrieval: unknown metric %d", (int)metric);
    if (k < 1 || k > n - 1)
        return sd_fail(SD_ERR_ARG, "retrieval: k = %d neighbours, expected 1..%d (rows - 1)", k, n - 1);
    int nq = 0;
    for (int i = 0; i < n; i++)
        nq += domain[i] == 0;
    if (nq == 0)
        return sd_fail(SD_ERR_DATA, "retrieval: no rows of domain A to query with");
    sd_status st = SD_OK;
    float *xs = NULL, *dist = sd_malloc(sizeof(float) * (size_t)n * n);
    int *best = sd_malloc(sizeof(int) * (k + 1));
    if (!dist || !best) {
        st = SD_ERR_NOMEM;
        goto done;
    }
    const float *use = x;
    if (metric == SD_GAP_METRIC_COSINE) {
        /* On unit rows |a - b|^2 = 2 - 2 cos(a, b): the same order as cosine. */
        if (!(xs = sd_malloc(sizeof(float) * (size_t)n * d))) {
            st = SD_ERR_NOMEM;
            goto done;
        }
        for (int i = 0; i < n; i++) {
            double s = 0;
            for (int j = 0; j < d; j++)
                s += (double)x[(size_t)i * d + j] * x[(size_t)i * d + j];
            float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
            for (int j = 0; j < d; j++)
                xs[(size_t)i * d + j] = x[(size_t)i * d + j] * inv;
        }
        use = xs;
    }
    if ((st = sd_gap_sqdist(use, n, d, dist)) != SD_OK)
        goto done;
    long other = 0;
    int q = 0;
    for (int i = 0; i < n; i++) {
        if (domain[i] != 0)
            continue;
        const float *row = dist + (size_t)i * n;
        int m = 0; /* best[0..m) sorted by (distance, index) */
        for (int j = 0; j < n; j++) {
            if (j == i)
                continue;
            if (m == k && row[j] >= row[best[k - 1]])
                continue; /* ties keep the lower index, which came first */
            int p = m < k ? m++ : k - 1;
            while (p > 0 && row[best[p - 1]] > row[j]) {
                best[p] = best[p - 1];
                p--;
            }
            best[p] = j;
        }
        for (int t = 0; t < k; t++) {
            other += domain[best[t]] != 0;
            if (nbr)
                nbr[(size_t)q * k + t] = best[t];
        }
        q++;
    }
    *frac = (double)other / ((double)nq * k);
done:
    free(xs);
    free(dist);
    free(best);
    return st;
}

static const uint8_t domain_color[2][3] = {{255, 127, 14}, {31, 119, 180}};

enum { SHEET_BORDER = 4, SHEET_PAD = 4, SHEET_GAP = 16 };

static void put_tile(sd_image *sheet, const sd_image *t, int x0, int y0, const uint8_t *frame, int mx, int my)
{
    uint8_t *px = sheet->data;
    int W = sheet->w, tw = t->w + 2 * SHEET_BORDER, th = t->h + 2 * SHEET_BORDER;
    for (int y = 0; y < th; y++)
        for (int x = 0; x < tw; x++) {
            uint8_t *o = px + ((size_t)(y0 + y) * W + x0 + x) * 3;
            int ix = x - SHEET_BORDER, iy = y - SHEET_BORDER;
            if (ix < 0 || iy < 0 || ix >= t->w || iy >= t->h)
                memcpy(o, frame, 3);
            else
                memcpy(o, (const uint8_t *)t->data + ((size_t)iy * t->w + ix) * 3, 3);
        }
    if (mx < 0 || my < 0 || mx >= t->w || my >= t->h)
        return;
    static const uint8_t mark[3] = {255, 0, 255};
    for (int r = -4; r <= 4; r++) {
        int cx[2] = {mx + r, mx}, cy[2] = {my, my + r};
        for (int a = 0; a < 2; a++)
            if (cx[a] >= 0 && cy[a] >= 0 && cx[a] < t->w && cy[a] < t->h)
                memcpy(px + ((size_t)(y0 + SHEET_BORDER + cy[a]) * W + x0 + SHEET_BORDER + cx[a]) * 3, mark, 3);
    }
}

sd_status sd_gap_contact_sheet(const char *path, const sd_image *const *thumb, const uint8_t *domain,
                               const int *query, int n_query, const int *nbr, int k, const int *mark)
{
    if (!path || !thumb || !domain || !query || !nbr || n_query < 1 || k < 1)
        return sd_fail(SD_ERR_ARG, "contact sheet %s: nothing to draw (%d queries, k %d)",
                       path ? path : "(null)", n_query, k);
    const sd_image *t0 = thumb[query[0]];
    if (!t0 || t0->c != 3 || t0->depth != 8 || t0->w < 1 || t0->h < 1)
        return sd_fail(SD_ERR_ARG, "contact sheet %s: thumbnails must be 8-bit RGB", path);
    int tw = t0->w, th = t0->h;
    for (int q = 0; q < n_query; q++)
        for (int t = -1; t < k; t++) {
            int r = t < 0 ? query[q] : nbr[(size_t)q * k + t];
            const sd_image *im = thumb[r];
            if (!im || im->w != tw || im->h != th || im->c != 3 || im->depth != 8)
                return sd_fail(SD_ERR_ARG, "contact sheet %s: thumbnail of row %d is not %dx%d 8-bit RGB",
                               path, r, tw, th);
        }
    int cw = tw + 2 * SHEET_BORDER, ch = th + 2 * SHEET_BORDER;
    int W = SHEET_PAD + cw + SHEET_GAP + k * (cw + SHEET_PAD), H = SHEET_PAD + n_query * (ch + SHEET_PAD);
    sd_image sheet;
    sd_status st = sd_image_alloc(&sheet, W, H, 3, 8);
    if (st)
        return st;
    memset(sheet.data, 255, (size_t)W * H * 3);
    for (int q = 0; q < n_query; q++) {
        int y0 = SHEET_PAD + q * (ch + SHEET_PAD);
        for (int t = -1; t < k; t++) {
            int r = t < 0 ? query[q] : nbr[(size_t)q * k + t];
            int x0 = t < 0 ? SHEET_PAD : SHEET_PAD + cw + SHEET_GAP + t * (cw + SHEET_PAD);
            put_tile(&sheet, thumb[r], x0, y0, domain_color[domain[r] != 0], mark ? mark[2 * r] : -1,
                     mark ? mark[2 * r + 1] : -1);
        }
    }
    st = sd_png_write(path, &sheet);
    sd_image_free(&sheet);
    return st;
}
