/*
 * stock.h
 *		Stock positions derived from the event log: the stock row of a stream
 *		and the C trigger that maintains it.
 */
#ifndef IE_STOCK_H
#define IE_STOCK_H

#include "storage/itemptr.h"

#include "types.h"

typedef struct IeStockRow
{
	bool		exists;
	StockPosition pos;
	int64		safety_stock;
	int64		version;
	ItemPointerData tid;		/* of the row read, when it exists */
} IeStockRow;

extern void ie_read_stock(const IeStreamKey *key, IeStockRow *row);
extern void ie_stock_expect_append(int64 event_id);

#endif							/* IE_STOCK_H */
