/*
 * decoder.h
 *		The logical decoding output plugin "inventory_events".
 */
#ifndef IE_DECODER_H
#define IE_DECODER_H

#include "replication/output_plugin.h"

extern PGDLLEXPORT void _PG_output_plugin_init(OutputPluginCallbacks *cb);

#endif							/* IE_DECODER_H */
