/*
 * loghome.h
 *		The log's transaction ids across clusters: event.xid, the home of the
 *		log, and the horizon below which readers find every event.
 */
#ifndef IE_LOGHOME_H
#define IE_LOGHOME_H

#include "access/transam.h"

extern void ie_loghome_init(void);
extern FullTransactionId ie_log_xid(void);
extern FullTransactionId ie_log_xmin(void);
extern bool ie_log_adopted(void);

#endif							/* IE_LOGHOME_H */
