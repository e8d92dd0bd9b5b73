/* formats.c — the table of format drivers (see formats.h). */
#include "formats/formats.h"

#include <stddef.h>

#define DRIVER(name) extern const BlockDriver bdrv_##name;
#include "formats/drivers.def"
#undef DRIVER

void formats_register_all(void)
{
    const BlockDriver *const all[] = {
#define DRIVER(name) &bdrv_##name,
#include "formats/drivers.def"
#undef DRIVER
    };
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        bdrv_register(all[i]);
    }
}
