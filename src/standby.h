/*
 * standby.h
 *		Functions that change stock run on the primary only.
 */
#ifndef IE_STANDBY_H
#define IE_STANDBY_H

extern void ie_require_writable(const char *function);

#endif							/* IE_STANDBY_H */
