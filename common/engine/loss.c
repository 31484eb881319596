/* Softmax cross-entropy and mean squared error (see loss.h). Sums are kept in
 * double so the loss of a large batch does not lose digits. */
#include "engine/loss.h"
#include "engine/activations.h"

#include <math.h>

double gb_loss_softmax_ce(const float *logits, const int32_t *labels, int rows, int classes,
                          float scale, float *dlogits)
{
    double total = 0.0;
    for (int r = 0; r < rows; r++) {
        const float *z = logits + (size_t)r * classes;
        float mx = z[0];
        for (int c = 1; c < classes; c++)
            mx = z[c] > mx ? z[c] : mx;
        /* sum exp(z - max) >= 1, so the log below is finite for any finite z. */
        double sum = 0.0;
        for (int c = 0; c < classes; c++)
            sum += exp((double)z[c] - mx);
        double lse = mx + log(sum);
        total += lse - z[labels[r]];
        if (dlogits) {
            float *g = dlogits + (size_t)r * classes;
            for (int c = 0; c < classes; c++)
                g[c] = (float)(exp((double)z[c] - lse) * scale);
            g[labels[r]] -= scale;
        }
    }
    return total;
}

double gb_loss_mse(const float *y, const float *target, int rows, int cols, float scale,
                   float *dy)
{
    double total = 0.0;
    const double inv = 1.0 / cols;
    for (int r = 0; r < rows; r++) {
        double row = 0.0;
        for (int c = 0; c < cols; c++) {
            size_t i = (size_t)r * cols + c;
            double d = (double)y[i] - target[i];
            row += d * d;
            if (dy)
                dy[i] = (float)(2.0 * d * inv * scale);
        }
        total += row * inv;
    }
    return total;
}
