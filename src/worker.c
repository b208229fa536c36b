/*
 * worker.c
 *		Background workers: the launcher and the per-database publishers.
 *
 * When the library is preloaded, _PG_init registers the launcher. Once
 * recovery has finished (never on a standby) it starts one publisher per
 * database named in inventory_events.database (a comma-separated list) as a
 * dynamic background worker, restarts one that exits (a crash, or
 * pg_terminate_backend), and stops or starts them for publisher_stop() and
 * publisher_start().
 *
 * A publisher loops: in a transaction of its own it calls
 * inventory_events.publish() (which reads the event log from its checkpoint
 * and sends what changed to every channel that is due), every
 * inventory_events.expire_interval expire_reservations(), and every
 * inventory_events.maintenance_interval recon_reevaluate() and
 * refresh_metrics(), and every inventory_events.housekeeping_interval
 * take_snapshots() and apply_retention() (SQL objects 0.3.0 and later); then
 * it sleeps
 * on its latch. A transaction that appended events sets that latch when it
 * commits (a transaction callback), so a change reaches listeners within
 * milliseconds and writers never pay for NOTIFY; with nothing to do the
 * worker sleeps for inventory_events.publisher_naptime, or until a
 * throttled channel is due. While the extension is not installed in its
 * database it waits. Its memory is reset every loop.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "commands/dbcommands.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"
#include "funcapi.h"

#include "catalog.h"
#include "guc.h"
#include "log.h"
#include "loghome.h"
#include "reserve.h"
#include "shmem.h"
#include "worker.h"
#include "writer.h"

PGDLLEXPORT void ie_launcher_main(Datum arg);
PGDLLEXPORT void ie_publisher_main(Datum arg);

static int	ie_publisher_naptime = 1000;	/* ms */
static int	ie_expire_interval = 60;	/* s, 0: never */
static int	ie_publish_batch = 10000;	/* events per publish() call */
static int	ie_publisher_delay = 20;	/* ms between two runs, to batch commits */
static int	ie_maintenance_interval = 10;	/* s, 0: never */
static int	ie_housekeeping_interval = 3600;	/* s, 0: never */
static int	ie_snapshot_events = 1000;	/* read by take_snapshots() */
static int	ie_retain_publications = 30 * 86400;	/* s, -1: keep; read by apply_retention() */
static int	ie_retain_dead_letters = 90 * 86400;
static int	ie_retain_resolved_exceptions = 90 * 86400;
static int	ie_retain_recon_runs = 400 * 86400;
static int	ie_retain_keys = 90 * 86400;

/*
 * Streams take_snapshots() folds per housekeeping run: a first run over a
 * large log does not hold the publisher for long (the rest follow at the next
 * runs, furthest behind first).
 */
#define IE_SNAPSHOT_BATCH 10000

/* Events recon_reevaluate() reads per maintenance run. */
#define IE_RECON_BATCH 100000

/* Set when this transaction appended an event: wake the publisher at commit. */
static bool appended_in_xact = false;

static void
note_append(void)
{
	appended_in_xact = true;
}

static void
wake_publisher_at_commit(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT && appended_in_xact && ie_shared != NULL)
	{
		/*
		 * Unlocked reads: at worst a latch of a worker that just exited is
		 * set, which wakes nobody who minds. The callback runs after the
		 * commit is visible, so the woken worker finds the events.
		 */
		for (int i = 0; i < ie_shared->npublishers; i++)
		{
			IePublisherSlot *slot = &ie_shared->publishers[i];
			Latch	   *latch = slot->latch;

			if (latch != NULL && slot->database_oid == MyDatabaseId)
				SetLatch(latch);
		}
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT)
		appended_in_xact = false;
}

void
ie_worker_init(void)
{
	BackgroundWorker w;

	RegisterXactCallback(wake_publisher_at_commit, NULL);
	ie_event_appended_hook = note_append;

	DefineCustomIntVariable("inventory_events.publisher_naptime",
							"Longest sleep of the publisher between two checks of the event log.",
							"Commits that append events wake it at once; this bounds the wait otherwise.",
							&ie_publisher_naptime, 1000, 10, 3600 * 1000, PGC_SIGHUP,
							GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("inventory_events.expire_interval",
							"How often the publisher releases expired reservations (0: never).",
							NULL,
							&ie_expire_interval, 60, 0, 24 * 3600, PGC_SIGHUP,
							GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("inventory_events.maintenance_interval",
							"How often the publisher refreshes the metrics and re-evaluates reconciliation lines hit by late events (0: never).",
							"Runs refresh_metrics() and recon_reevaluate(), each isolated, with SQL objects 0.3.0 or later.",
							&ie_maintenance_interval, 10, 0, 24 * 3600, PGC_SIGHUP,
							GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("inventory_events.housekeeping_interval",
							"How often the publisher snapshots streams and applies the retention settings (0: never).",
							"Runs take_snapshots() and apply_retention(), each isolated, with SQL objects 0.3.0 or later.",
							&ie_housekeeping_interval, 3600, 0, 7 * 24 * 3600, PGC_SIGHUP,
							GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("inventory_events.snapshot_events",
							"Events a stream gathers after its newest snapshot before take_snapshots() takes another.",
							"Bounds the events verify(), rebuild() and as-of positions read per stream.",
							&ie_snapshot_events, 1000, 1, INT_MAX, PGC_SUSET,
							0, NULL, NULL, NULL);
	DefineCustomIntVariable("inventory_events.retain_publications",
							"How long publications are kept (-1: for ever); each sku's newest per channel is always kept.",
							NULL,
							&ie_retain_publications, 30 * 86400, -1, INT_MAX, PGC_SUSET,
							GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("inventory_events.retain_dead_letters",
							"How long dead letters are kept (-1: for ever).",
							NULL,
							&ie_retain_dead_letters, 90 * 86400, -1, INT_MAX, PGC_SUSET,
							GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("inventory_events.retain_resolved_exceptions",
							"How long exceptions are kept after they are resolved (-1: for ever).",
							NULL,
							&ie_retain_resolved_exceptions, 90 * 86400, -1, INT_MAX, PGC_SUSET,
							GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("inventory_events.retain_recon_runs",
							"How long reconciliation runs are kept (-1: for ever).",
							"A source's newest run, and runs with an unresolved line beyond tolerance, are always kept.",
							&ie_retain_recon_runs, 400 * 86400, -1, INT_MAX, PGC_SUSET,
							GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("inventory_events.retain_keys",
							"How long idempotency keys are kept (-1: for ever); after it a key may be used for a new event.",
							NULL,
							&ie_retain_keys, 90 * 86400, -1, INT_MAX, PGC_SUSET,
							GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("inventory_events.publisher_delay",
							"Least time between two runs of the publisher.",
							"Commits in the meantime are published together: fewer, larger publisher transactions.",
							&ie_publisher_delay, 20, 0, 10000, PGC_SIGHUP,
							GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("inventory_events.publish_batch",
							"Events the publisher reads from the log per transaction.",
							NULL,
							&ie_publish_batch, 10000, 1, 1000000, PGC_SIGHUP,
							0, NULL, NULL, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;

	memset(&w, 0, sizeof(w));
	/* A connection to no database: it reads none, but shows in pg_stat_activity. */
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	/* Never on a standby: the launcher starts when recovery has finished. */
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = 5;
	strlcpy(w.bgw_library_name, "inventory_events", BGW_MAXLEN);
	strlcpy(w.bgw_function_name, "ie_launcher_main", BGW_MAXLEN);
	strlcpy(w.bgw_name, "inventory_events launcher", BGW_MAXLEN);
	strlcpy(w.bgw_type, "inventory_events launcher", BGW_MAXLEN);
	RegisterBackgroundWorker(&w);
}

/* The slots for the databases of inventory_events.database, once per server start. */
static void
fill_slots(void)
{
	char	   *raw = pstrdup(ie_database ? ie_database : "postgres");
	List	   *names = NIL;
	ListCell   *lc;

	LWLockAcquire(ie_shared->lock, LW_EXCLUSIVE);
	ie_shared->launcher_latch = MyLatch;
	if (ie_shared->npublishers == 0)
	{
		if (!SplitGUCList(raw, ',', &names))
			ereport(LOG,
					(errmsg("inventory_events: invalid list in inventory_events.database: \"%s\"", ie_database)));
		foreach(lc, names)
		{
			IePublisherSlot *slot;

			if (ie_shared->npublishers == IE_MAX_DATABASES)
			{
				ereport(LOG,
						(errmsg("inventory_events: serving only the first %d databases of inventory_events.database",
								IE_MAX_DATABASES)));
				break;
			}
			slot = &ie_shared->publishers[ie_shared->npublishers++];
			memset(slot, 0, sizeof(*slot));
			strlcpy(slot->database, (char *) lfirst(lc), NAMEDATALEN);
			slot->enabled = true;
			slot->state = "not started";
		}
	}
	LWLockRelease(ie_shared->lock);
}

static BackgroundWorkerHandle *
start_publisher(int i)
{
	BackgroundWorker w;
	BackgroundWorkerHandle *handle;

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = BGW_NEVER_RESTART;	/* the launcher restarts it */
	strlcpy(w.bgw_library_name, "inventory_events", BGW_MAXLEN);
	strlcpy(w.bgw_function_name, "ie_publisher_main", BGW_MAXLEN);
	snprintf(w.bgw_name, BGW_MAXLEN, "inventory_events publisher for %s", ie_shared->publishers[i].database);
	strlcpy(w.bgw_type, "inventory_events publisher", BGW_MAXLEN);
	w.bgw_main_arg = Int32GetDatum(i);
	w.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&w, &handle))
	{
		ereport(LOG,
				(errmsg("inventory_events: could not start the publisher for database \"%s\"",
						ie_shared->publishers[i].database),
				 errhint("Raise max_worker_processes.")));
		return NULL;
	}
	return handle;
}

void
ie_launcher_main(Datum arg)
{
	BackgroundWorkerHandle *handles[IE_MAX_DATABASES] = {0};
	TimestampTz last_start[IE_MAX_DATABASES] = {0};

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("inventory_events launcher");
	fill_slots();

	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		for (int i = 0; i < ie_shared->npublishers; i++)
		{
			pid_t		pid;
			bool		running = handles[i] != NULL &&
				GetBackgroundWorkerPid(handles[i], &pid) != BGWH_STOPPED;
			bool		enabled;

			LWLockAcquire(ie_shared->lock, LW_SHARED);
			enabled = ie_shared->publishers[i].enabled;
			LWLockRelease(ie_shared->lock);

			if (enabled && !running &&
				TimestampDifferenceExceeds(last_start[i], now, ie_publisher_naptime))
			{
				/* Started, or restarted after an exit, at most once per naptime. */
				handles[i] = start_publisher(i);
				last_start[i] = now;
			}
			else if (!enabled && running)
				TerminateBackgroundWorker(handles[i]);
		}
		/* Woken by publisher_start()/_stop() and by our workers starting or exiting. */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 ie_publisher_naptime, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

static void
publisher_detach(int code, Datum arg)
{
	IePublisherSlot *slot = &ie_shared->publishers[DatumGetInt32(arg)];

	LWLockAcquire(ie_shared->lock, LW_EXCLUSIVE);
	slot->latch = NULL;
	slot->pid = 0;
	slot->state = "stopped";
	LWLockRelease(ie_shared->lock);
	if (ie_shared->launcher_latch)
		SetLatch(ie_shared->launcher_latch);
}

static void
set_state(IePublisherSlot *slot, const char *state)
{
	LWLockAcquire(ie_shared->lock, LW_EXCLUSIVE);
	slot->state = state;
	LWLockRelease(ie_shared->lock);
}

/*
 * True when the extension is installed, and then it stays so until this
 * transaction ends. DROP EXTENSION locks the extension object exclusively
 * before it drops anything, so holding a share lock on it keeps a concurrent
 * DROP from pulling functions and tables out from under publish() (which
 * would fail the step, or deadlock on the tables both touch); the drop waits
 * for this step instead. The second look after the lock sees a drop that
 * committed while we waited.
 */
static bool
extension_locked(void)
{
	Oid			extension = get_extension_oid("inventory_events", true);

	if (!OidIsValid(extension))
		return false;
	LockDatabaseObject(ExtensionRelationId, extension, 0, AccessShareLock);
	if (get_extension_oid("inventory_events", true) == extension)
		return true;
	UnlockDatabaseObject(ExtensionRelationId, extension, 0, AccessShareLock);
	return false;
}

/*
 * Consecutive failures of the whole publisher step, and when to try it again
 * (the backoff holds whatever wakes the worker meanwhile). The "failing" flags
 * say a streak may be open in worker_error: true at start, for a streak that
 * an earlier process recorded.
 */
static int	publish_failures = 0;
static TimestampTz publish_next_try = 0;
static bool publish_failing = true;
static bool expire_failing = true;
static bool metrics_failing = true;
static bool reconcile_failing = true;
static bool snapshot_failing = true;
static bool retention_failing = true;
static bool partitions_failing = true;

static const char *const waiting_for_library = "waiting for a library that serves the installed SQL objects";

/*
 * Records a failure of a worker task in inventory_events.worker_error (SQL
 * objects 0.3.0 and later), in the current transaction, through SPI.
 */
static void
record_worker_error(const char *task, ErrorData *edata)
{
	Oid			types[4] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', edata->detail ? ' ' : 'n'};

	if (ie_catalog()->sql_version < IE_SQL_0_3_0)
		return;
	values[0] = CStringGetTextDatum(task);
	values[1] = CStringGetTextDatum(unpack_sql_state(edata->sqlerrcode));
	values[2] = CStringGetTextDatum(edata->message ? edata->message : "");
	values[3] = edata->detail ? CStringGetTextDatum(edata->detail) : (Datum) 0;
	if (SPI_execute_with_args("SELECT inventory_events.record_worker_error($1, '', $2, $3, $4)",
							  4, types, values, nulls, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "inventory_events.record_worker_error() failed");
}

/*
 * Runs one SQL statement of a worker task in a subtransaction: an error is
 * logged and recorded in worker_error, and the step goes on. False on error.
 */
static void
run_task_sql(void *sql)
{
	if (SPI_execute((const char *) sql, false, 0) < 0)
		elog(ERROR, "SPI_execute failed: %s", (const char *) sql);
}

static bool
run_task_isolated(const char *task, const char *sql)
{
	ErrorData  *edata = ie_subxact_run(run_task_sql, unconstify(char *, sql), CurrentMemoryContext, NULL);

	if (edata == NULL)
		return true;
	ereport(LOG,
			(errcode(edata->sqlerrcode),
			 errmsg("inventory_events: %s failed: %s", sql, edata->message),
			 edata->detail ? errdetail_internal("%s", edata->detail) : 0));
	record_worker_error(task, edata);
	return false;
}

/*
 * Ends a task's streak of failures of the whole step (channel ''), when one
 * may be open: after a failure in this process, and once after the process
 * starts (a streak recorded by an earlier process).
 */
static void
clear_worker_error(const char *task, bool *failing)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];

	if (!*failing)
		return;
	*failing = false;
	if (ie_catalog()->sql_version < IE_SQL_0_3_0)
		return;
	values[0] = CStringGetTextDatum(task);
	if (SPI_execute_with_args("UPDATE inventory_events.worker_error SET cleared_at = clock_timestamp()"
							  " WHERE task = $1 AND channel = '' AND cleared_at IS NULL",
							  1, types, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not clear the %s error of the publisher", task);
}

/*
 * publish() in a subtransaction. A failure of the whole step (each channel is
 * isolated inside publish() itself) is recorded, and the step is tried again
 * after a backoff: 1 s, doubling, at most 5 minutes; never a restart loop.
 * Returns true when there is more to read at once.
 */
static bool
publish_isolated(IePublisherSlot *slot, long *timeout, int64 *publications)
{
	char		sql[128];
	bool		isnull;
	bool		more;
	Datum		due;

	snprintf(sql, sizeof(sql),
			 "SELECT events, publications, next_due_ms FROM inventory_events.publish(%d)", ie_publish_batch);
	if (!run_task_isolated("publish", sql))
	{
		long		backoff = Min(300 * 1000L, 1000L << Min(publish_failures, 9));

		publish_failures++;
		publish_failing = true;
		publish_next_try = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), backoff);
		*timeout = Min(*timeout, backoff);
		return false;
	}
	if (SPI_processed != 1)
		elog(ERROR, "inventory_events.publish() returned no row");
	more = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) >= ie_publish_batch;
	*publications = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	due = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
	if (!isnull)
		*timeout = Max(1, Min(*timeout, (long) DatumGetInt64(due)));
	publish_failures = 0;
	publish_next_try = 0;
	clear_worker_error("publish", &publish_failing);
	return more;
}

/* Runs one isolated task and opens or ends its streak in worker_error. */
static void
run_task(const char *task, const char *activity, const char *sql, bool *failing)
{
	pgstat_report_activity(STATE_RUNNING, activity);
	if (run_task_isolated(task, sql))
		clear_worker_error(task, failing);
	else
		*failing = true;
}

/*
 * A worker step's transaction: SPI and a snapshot for its statements, its
 * activity shown in pg_stat_activity; ended with its statistics reported.
 */
static void
step_begin(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

static void
step_end(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * Is a periodic task due (every interval_s seconds since *last; 0: never)?
 * When it is not, lowers *timeout to when it will be.
 */
static bool
periodic_due(int interval_s, TimestampTz last, long *timeout)
{
	long		interval_ms = interval_s * 1000L;
	TimestampTz now = GetCurrentTimestamp();
	long		secs;
	int			usecs;

	if (interval_s <= 0)
		return false;
	if (TimestampDifferenceExceeds(last, now, interval_ms))
		return true;
	TimestampDifference(now, TimestampTzPlusMilliseconds(last, interval_ms), &secs, &usecs);
	*timeout = Max(1, Min(*timeout, secs * 1000L + usecs / 1000));
	return false;
}

/*
 * One isolated task, in a transaction of its own, if the extension's SQL
 * objects are (still) there and at least of version since.
 */
static void
housekeeping_task(const char *task, const char *activity, const char *sql, IeSqlVersion since,
				  bool *failing)
{
	step_begin("inventory_events housekeeping");
	/* The SQL objects may have changed since the publisher step looked. */
	if (extension_locked() && ie_catalog()->sql_version >= since)
		run_task(task, activity, sql, failing);
	step_end();
}

/*
 * Reservations past their expires_at released, every expire_interval,
 * isolated and run whether or not the publications could be, in a
 * transaction of its own after the publisher step's has committed: waiting
 * for a lock there (before, expiry ran in the step's transaction) kept the
 * step's publications and its lock on publisher_checkpoint uncommitted, and
 * a transaction holding a sku lock that then called publish() deadlocked
 * with the worker. The worker takes each reservation's locks only if they
 * are free (ie_expiry_skips_busy, set when it starts).
 */
static void
expire_step(long *timeout, TimestampTz *last_expire)
{
	if (!periodic_due(ie_expire_interval, *last_expire, timeout))
		return;
	housekeeping_task("expire", "inventory_events.expire_reservations()",
					  "SELECT inventory_events.expire_reservations()", IE_SQL_0_1_0, &expire_failing);
	*last_expire = GetCurrentTimestamp();
}

/*
 * The log's partitions ahead of need, every maintenance_interval, in a
 * transaction of its own (with nothing to make, create_partitions() reads
 * only the partition list). Its lock on the log is waited for at most 2 s:
 * SQL readers of the log would queue behind it. Not until the database has
 * written to the log (a restore in progress brings its own partitions), or
 * subscribes to another's (a subscriber never writes to it, and so is never
 * adopted): so it runs whether or not the publisher does.
 */
static void
partitions_step(long *timeout, TimestampTz *last_partitions)
{
	if (!periodic_due(ie_maintenance_interval, *last_partitions, timeout))
		return;
	housekeeping_task("partitions", "inventory_events.create_partitions()",
					  "SET LOCAL lock_timeout = '2s';"
					  " SELECT inventory_events.create_partitions()"
					  "  WHERE inventory_events.log_adopted()"
					  "     OR EXISTS (SELECT FROM pg_catalog.pg_subscription s WHERE s.subdbid = "
					  "                (SELECT d.oid FROM pg_catalog.pg_database d"
					  "                  WHERE d.datname = pg_catalog.current_database()))",
					  IE_SQL_0_3_0, &partitions_failing);
	*last_partitions = GetCurrentTimestamp();
	*timeout = Min(*timeout, ie_maintenance_interval * 1000L);
}

/*
 * The maintenance task, every inventory_events.maintenance_interval (SQL
 * objects 0.3.0 and later): reconciliation lines hit by late events get
 * their new versions, then the metrics are refreshed (so they count those
 * versions). Each statement is isolated: one failing does not stop the other
 * or the publisher. It runs in a transaction of its own, after the publisher
 * step's has committed: publications and their NOTIFY do not wait for it,
 * and its snapshot does not hold back the log's horizon for the publisher's
 * transaction. Lowers *timeout to the next run.
 *
 * The housekeeping, every inventory_events.housekeeping_interval, the same
 * way: stream snapshots (take_snapshots()), then the retention settings
 * (apply_retention()).
 */
static void
maintenance_step(long *timeout, TimestampTz *last_maintenance, TimestampTz *last_housekeeping)
{
	if (periodic_due(ie_maintenance_interval, *last_maintenance, timeout))
	{
		step_begin("inventory_events maintenance");
		/* The SQL objects may have changed since the publisher step looked. */
		if (extension_locked() && ie_catalog()->sql_version >= IE_SQL_0_3_0)
		{
			run_task("reconcile", "inventory_events.recon_reevaluate()",
					 "SELECT inventory_events.recon_reevaluate(" CppAsString2(IE_RECON_BATCH) ")",
					 &reconcile_failing);
			run_task("metrics", "inventory_events.refresh_metrics()",
					 "SELECT inventory_events.refresh_metrics()", &metrics_failing);
		}
		step_end();
		*last_maintenance = GetCurrentTimestamp();
		*timeout = Min(*timeout, ie_maintenance_interval * 1000L);
	}
	if (periodic_due(ie_housekeeping_interval, *last_housekeeping, timeout))
	{
		/*
		 * A transaction each: take_snapshots() holds its lock on
		 * stream_snapshot (which a history rewrite waits for) to its commit,
		 * not while the retention runs.
		 */
		housekeeping_task("snapshot", "inventory_events.take_snapshots()",
						  "SELECT inventory_events.take_snapshots(NULL, " CppAsString2(IE_SNAPSHOT_BATCH) ")",
						  IE_SQL_0_3_0, &snapshot_failing);
		housekeeping_task("retention", "inventory_events.apply_retention()",
						  "SELECT inventory_events.apply_retention()", IE_SQL_0_3_0, &retention_failing);
		*last_housekeeping = GetCurrentTimestamp();
		*timeout = Min(*timeout, ie_housekeeping_interval * 1000L);
	}
}

/*
 * One publisher step in its own transaction. Returns true when there is more
 * to read at once; lowers *timeout when a throttled channel is due sooner.
 */
static bool
publisher_step(IePublisherSlot *slot, long *timeout, TimestampTz *last_expire,
			   TimestampTz *last_maintenance, TimestampTz *last_housekeeping, TimestampTz *last_partitions)
{
	bool		more = false;
	bool		ready = false;
	bool		extension_ready = false;
	int64		publications = 0;
	char	   *installed;

	step_begin("inventory_events.publish()");

	if (!extension_locked())
		set_state(slot, "waiting for CREATE EXTENSION inventory_events");
	else if (!ie_sql_version_served(&installed))
	{
		if (slot->state != waiting_for_library)
			ereport(LOG,
					(errmsg("inventory_events: the publisher of database \"%s\" waits: library %s cannot serve version %s of the extension's SQL objects",
							slot->database, IE_VERSION_STR, installed ? installed : "(none)"),
					 errhint("Install the shared library of inventory_events %s or later, then restart the server.",
							 installed ? installed : IE_VERSION_STR)));
		set_state(slot, waiting_for_library);
	}
	else if (!ie_log_adopted())
	{
		/*
		 * Not written here since CREATE EXTENSION or a restore: a restore
		 * may still be loading the publisher's own tables, so write nothing
		 * yet. The first append or reservation adopts the log.
		 */
		extension_ready = true;
		set_state(slot, "waiting for the first write in this database (new, restored or moved here)");
	}
	else
	{
		TimestampTz now = GetCurrentTimestamp();

		extension_ready = true;
		if (now >= publish_next_try)
			more = publish_isolated(slot, timeout, &publications);
		else
		{
			/* Backing off after a failed step, whatever woke us. */
			long		secs;
			int			usecs;

			TimestampDifference(now, publish_next_try, &secs, &usecs);
			*timeout = Max(1, Min(*timeout, secs * 1000L + usecs / 1000));
		}

		ready = true;
		LWLockAcquire(ie_shared->lock, LW_EXCLUSIVE);
		slot->state = publish_failures > 0 ? "publish() failed: see inventory_events.worker_error" : "idle";
		slot->runs++;
		slot->publications += publications;
		slot->last_run = GetCurrentTimestamp();
		LWLockRelease(ie_shared->lock);
	}

	step_end();
	if (ready)
		expire_step(timeout, last_expire);
	if (extension_ready)
		partitions_step(timeout, last_partitions);
	if (ready)
		maintenance_step(timeout, last_maintenance, last_housekeeping);
	return more;
}

void
ie_publisher_main(Datum arg)
{
	int			i = DatumGetInt32(arg);
	IePublisherSlot *slot = &ie_shared->publishers[i];
	char		database[NAMEDATALEN];
	MemoryContext loop_cxt;
	TimestampTz last_expire = 0;
	TimestampTz last_maintenance = 0;
	TimestampTz last_housekeeping = 0;
	TimestampTz last_partitions = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	LWLockAcquire(ie_shared->lock, LW_EXCLUSIVE);
	strlcpy(database, slot->database, NAMEDATALEN);
	slot->pid = MyProcPid;
	slot->latch = MyLatch;
	slot->started_at = GetCurrentTimestamp();
	slot->state = "starting";
	LWLockRelease(ie_shared->lock);
	before_shmem_exit(publisher_detach, Int32GetDatum(i));

	BackgroundWorkerInitializeConnection(database, NULL, 0);
	pgstat_report_appname("inventory_events publisher");

	/*
	 * Every step reads what committed before it (READ COMMITTED): publish()
	 * reads the last sequence numbers, take_snapshots() must see a history
	 * rewrite that committed before its lock. A server-wide
	 * default_transaction_isolation does not apply to the worker.
	 */
	SetConfigOption("default_transaction_isolation", "read committed", PGC_SUSET, PGC_S_OVERRIDE);
	ie_expiry_skips_busy = true;
	LWLockAcquire(ie_shared->lock, LW_EXCLUSIVE);
	slot->database_oid = MyDatabaseId;
	LWLockRelease(ie_shared->lock);

	loop_cxt = AllocSetContextCreate(TopMemoryContext, "inventory_events publisher loop",
									 ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		long		timeout = ie_publisher_naptime;
		MemoryContext old;
		bool		more;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		MemoryContextReset(loop_cxt);
		old = MemoryContextSwitchTo(loop_cxt);
		more = publisher_step(slot, &timeout, &last_expire, &last_maintenance, &last_housekeeping,
							  &last_partitions);
		MemoryContextSwitchTo(old);
		if (more)
			continue;

		/*
		 * Let commits gather for publisher_delay (a wake-up meanwhile stays
		 * set), then sleep until woken, a throttled channel is due, or the
		 * naptime is over.
		 */
		if (ie_publisher_delay > 0)
			(void) WaitLatch(NULL, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, ie_publisher_delay, PG_WAIT_EXTENSION);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(1, timeout - ie_publisher_delay), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

static IePublisherSlot *
find_slot(const char *database)
{
	for (int i = 0; i < ie_shared->npublishers; i++)
		if (strcmp(ie_shared->publishers[i].database, database) == 0)
			return &ie_shared->publishers[i];
	return NULL;
}

/* publisher_start(database) / publisher_stop(database): true when it serves that database. */
static Datum
set_enabled(FunctionCallInfo fcinfo, bool enabled)
{
	char	   *database;
	IePublisherSlot *slot;

	ie_require_preload(enabled ? "publisher_start()" : "publisher_stop()");
	database = PG_ARGISNULL(0) ? get_database_name(MyDatabaseId) : text_to_cstring(PG_GETARG_TEXT_PP(0));
	LWLockAcquire(ie_shared->lock, LW_EXCLUSIVE);
	slot = find_slot(database);
	if (slot)
		slot->enabled = enabled;
	LWLockRelease(ie_shared->lock);
	if (slot && ie_shared->launcher_latch)
		SetLatch(ie_shared->launcher_latch);
	PG_RETURN_BOOL(slot != NULL);
}

PG_FUNCTION_INFO_V1(ie_publisher_start);
Datum
ie_publisher_start(PG_FUNCTION_ARGS)
{
	return set_enabled(fcinfo, true);
}

PG_FUNCTION_INFO_V1(ie_publisher_stop);
Datum
ie_publisher_stop(PG_FUNCTION_ARGS)
{
	return set_enabled(fcinfo, false);
}

/* publisher_status(): one row per database served. */
PG_FUNCTION_INFO_V1(ie_publisher_status);
Datum
ie_publisher_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	ie_require_preload("publisher_status()");
	ie_init_materialized_srf(fcinfo);
	LWLockAcquire(ie_shared->lock, LW_SHARED);
	for (int i = 0; i < ie_shared->npublishers; i++)
	{
		IePublisherSlot *s = &ie_shared->publishers[i];
		Datum		values[8];
		bool		nulls[8] = {false, false, s->pid == 0, false, s->started_at == 0, s->last_run == 0, false, false};

		values[0] = CStringGetTextDatum(s->database);
		values[1] = BoolGetDatum(s->enabled);
		values[2] = Int32GetDatum(s->pid);
		values[3] = CStringGetTextDatum(s->state ? s->state : "not started");
		values[4] = TimestampTzGetDatum(s->started_at);
		values[5] = TimestampTzGetDatum(s->last_run);
		values[6] = Int64GetDatum((int64) s->runs);
		values[7] = Int64GetDatum((int64) s->publications);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(ie_shared->lock);
	return (Datum) 0;
}
