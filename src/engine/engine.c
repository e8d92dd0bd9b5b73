/* engine.c — engine-wide initialisation. */
#include "engine/engine.h"

#include <pthread.h>

#include "formats/formats.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

void engine_init(void)
{
    pthread_once(&init_once, formats_register_all);
}
