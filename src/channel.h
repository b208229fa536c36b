/*
 * channel.h
 *		Channel rules and availability: what a channel may show for a sku.
 */
#ifndef IE_CHANNEL_H
#define IE_CHANNEL_H

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "storage/lock.h"
#include "utils/date.h"
#include "utils/snapshot.h"

/* A sourcing location of a channel. */
typedef struct IeSource
{
	text	   *location;
	int32		priority;		/* lower first */
} IeSource;

/* A channel's settings, as read from inventory_events.channel. */
typedef struct IeChannel
{
	text	   *code;
	int64		buffer_fixed;
	Datum		buffer_pct;		/* numeric */
	Datum		allocation_pct; /* numeric */
	bool		full_allocation;	/* allocation_pct = 100 */
	bool		no_pct_buffer;	/* buffer_pct = 0 */
	bool		has_cap;
	int64		cap;
	int64		publish_interval_us;
	bool		allow_backorders;
	bool		allow_split;
	bool		velocity_buffer;
	int64		velocity_window_us;
	int			nsources;
	IeSource   *sources;		/* by priority, then location code */
	bool		has_listings;	/* sells only what channel_item lists */
} IeChannel;

/* Where the channel sells a sku, and under which identifier. */
typedef struct IeListing
{
	bool		sells;			/* the channel has no listings, or lists the sku */
	text	   *channel_sku;	/* its listing's identifier; NULL: the channel has no listings */
} IeListing;

/* The stock of one stream at a location, as reservations see it. */
typedef struct IeLotStock
{
	text	   *lot;			/* '' without lots */
	int64		available;
	bool		expired;
	bool		has_expiry;
	DateADT		expires_on;
} IeLotStock;

/* A sku at one location: its streams in first-expiry-first-out order, and ATP. */
typedef struct IeLocationStock
{
	text	   *location;
	int32		priority;
	int64		atp;			/* available of unexpired lots - safety stock, >= 0 */
	int			nlots;
	IeLotStock *lots;
} IeLocationStock;

/* A kit's bill of materials; a plain sku is its own single component. */
typedef struct IeComponents
{
	bool		is_kit;
	int			n;
	text	  **sku;
	int64	   *per_unit;
} IeComponents;

extern bool ie_channel_load(text *code, IeChannel *ch);
extern void ie_channel_require(text *code, IeChannel *ch);
extern bool ie_channel_has_listings(text *code, Snapshot snapshot);
extern bool ie_channel_listing(const IeChannel *ch, text *sku, Snapshot snapshot, IeChannel *rules,
							   IeListing *listing);
extern text *ie_listing_sku(const IeChannel *ch, text *channel_sku, Snapshot snapshot);
extern int64 ie_channel_rules(const IeChannel *ch, int64 pool, int64 velocity_buffer);
extern int64 ie_velocity_buffer(const IeChannel *ch, text *sku, Snapshot snapshot);
extern void ie_location_stock(text *sku, text *location, Snapshot snapshot, IeLocationStock *out);
extern int64 ie_channel_pool(const IeChannel *ch, text *sku, Snapshot snapshot, IeLocationStock *locs);
extern int64 ie_sku_channel_availability(const IeChannel *ch, text *sku, Snapshot snapshot,
										 IeLocationStock *locs, int64 *pool, int64 *vbuf);
extern void ie_components(text *sku, IeComponents *out);
extern void ie_sku_components(text *sku, IeComponents *out);
extern List *ie_stream_tags(text *sku, text *location, Snapshot *snapshot, List *tags);

#endif							/* IE_CHANNEL_H */
