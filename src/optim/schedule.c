/* Learning-rate schedules: DeepLab's poly decay and a linear warm-up.
 * Pure functions of the iteration, so a resumed run gets the same rates. */
#include <math.h>

#include "segda/optim.h"

sd_lr_schedule sd_lr_poly(float base_lr, int64_t max_iters, float power)
{
    sd_lr_schedule s = {0};
    s.base_lr = base_lr;
    s.max_iters = max_iters;
    s.power = power;
    return s;
}

float sd_lr_at(const sd_lr_schedule *s, int64_t it)
{
    if (it < 0)
        it = 0;
    double lr = s->base_lr;
    if (s->max_iters > 0) {
        if (it >= s->max_iters)
            return 0.0f;
        if (s->power != 0.0f && it >= s->hold_iters && s->hold_iters < s->max_iters)
            lr *= pow(1.0 - (double)(it - s->hold_iters) / (double)(s->max_iters - s->hold_iters), (double)s->power);
    }
    if (s->warmup_iters > 0 && it < s->warmup_iters) {
        double r = s->warmup_ratio;
        lr *= r + (1.0 - r) * (double)it / (double)s->warmup_iters;
    }
    return (float)lr;
}
