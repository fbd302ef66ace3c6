/* common/grow.h - the one growable-array helper: arrays that double when they fill up
 * (the core's queues and log, the storage's line index, buffers, readers). */
#ifndef RK_GROW_H
#define RK_GROW_H

#include <stddef.h>

/* Makes the array *items_ptr points to (e.g. &r->outbox) hold at least need elements of
 * elem bytes: its capacity *cap doubles, starting from first when it is 0. RK_OK, or
 * RK_ERR_NOMEM with the array and *cap unchanged. */
int rk_grow(void *items_ptr, size_t *cap, size_t need, size_t elem, size_t first);

#endif
