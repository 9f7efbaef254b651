#include "layers/mixer.h"
#include "layers/attention.h"
#include "layers/gla.h"
#include "layers/lightning.h"
#include "layers/linear_attention.h"
#include "layers/rat.h"
#include "layers/titans.h"

#include <stdio.h>
#include <string.h>

static const hy_mixer_kind *const KINDS[] = {
    &hy_mixer_attn, &hy_mixer_gla,        &hy_mixer_lightning, &hy_mixer_linear,
    &hy_mixer_rat,  &hy_mixer_titans_mal, &hy_mixer_titans_mag};

const hy_mixer_kind *hy_mixer_find(const char *name) {
  for (size_t i = 0; i < sizeof KINDS / sizeof *KINDS; i++)
    if (!strcmp(KINDS[i]->name, name)) return KINDS[i];
  return NULL;
}

const char *hy_mixer_names(void) {
  static char names[256];
  if (!names[0])
    for (size_t i = 0, n = 0; i < sizeof KINDS / sizeof *KINDS; i++)
      n += (size_t)snprintf(names + n, sizeof names - n, "%s%s", i ? ", " : "", KINDS[i]->name);
  return names;
}
