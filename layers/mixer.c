#include "layers/mixer.h"
#include "layers/attention.h"

#include <string.h>

static const hy_mixer_kind *const KINDS[] = {&hy_mixer_attn};

const hy_mixer_kind *hy_mixer_find(const char *name) {
  for (size_t i = 0; i < sizeof KINDS / sizeof *KINDS; i++)
    if (!strcmp(KINDS[i]->name, name)) return KINDS[i];
  return NULL;
}

const char *hy_mixer_names(void) { return "attn"; }
