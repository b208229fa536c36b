/*
 * worker.h
 *		Background workers: the launcher and the per-database publisher.
 */
#ifndef IE_WORKER_H
#define IE_WORKER_H

extern void ie_worker_init(void);

#endif							/* IE_WORKER_H */
