/*
 * formats.h — the format drivers.  Each driver file defines one
 * `const BlockDriver bdrv_<name>` at its bottom; formats_register_all()
 * registers them all with the block layer (called by engine_init()).
 */
#ifndef IMGPIPE_FORMATS_FORMATS_H
#define IMGPIPE_FORMATS_FORMATS_H

#include "blocklayer/block_int.h"

void formats_register_all(void);

#endif
