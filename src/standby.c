/*
 * standby.c
 *		Functions that change stock run on the primary only.
 *
 * On a hot standby every reading function works on the replayed data, and
 * every function that would append an event, reserve or publish refuses
 * first, with SQLSTATE 25006 and a hint naming the primary the standby
 * streams from (as its WAL receiver reports it), before it takes a lock or
 * reads anything. A read-only transaction on the primary gets the same
 * SQLSTATE. PostgreSQL would refuse these writes anyway, but only deep
 * inside, with a message about a transaction id or a row lock.
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "replication/walreceiver.h"
#include "storage/spin.h"
#include "utils/builtins.h"

#include "standby.h"

void
ie_require_writable(const char *function)
{
	if (RecoveryInProgress())
	{
		char		host[NI_MAXHOST];
		int			port;

		/* The WAL receiver's view of its primary; empty when not streaming. */
		host[0] = '\0';
		port = 0;
		if (WalRcv != NULL)
		{
			SpinLockAcquire(&WalRcv->mutex);
			if (WalRcv->walRcvState == WALRCV_STREAMING)
			{
				strlcpy(host, WalRcv->sender_host, sizeof(host));
				port = WalRcv->sender_port;
			}
			SpinLockRelease(&WalRcv->mutex);
		}
		if (host[0] != '\0')
			ereport(ERROR,
					(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
					 errmsg("cannot execute %s on a standby server", function),
					 errdetail("Stock changes only on the primary server; a standby serves reads."),
					 errhint("Run it on the primary server, host \"%s\" port %d.", host, port)));
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot execute %s during recovery", function),
				 errdetail("This server is a standby that is not streaming from a primary, or a recovery that has not ended."),
				 errhint("Run it on the primary server, or wait for the recovery to end.")));
	}
	if (XactReadOnly)
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot execute %s in a read-only transaction", function)));
}

/*
 * inventory_events.require_writable(function text): the same check, for the
 * functions written in SQL and PL/pgSQL, as their first step.
 */
PG_FUNCTION_INFO_V1(ie_require_writable_sql);
Datum
ie_require_writable_sql(PG_FUNCTION_ARGS)
{
	ie_require_writable(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	PG_RETURN_VOID();
}
