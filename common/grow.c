/* common/grow.c - see grow.h. */
#include "grow.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

int rk_grow(void *items_ptr, size_t *cap, size_t need, size_t elem, size_t first)
{
    if (need <= *cap)
        return RK_OK;
    size_t c = *cap > 0 ? *cap : first;
    while (c < need) {
        if (c > SIZE_MAX / 2)
            return RK_ERR_NOMEM;
        c *= 2;
    }
    if (elem > 0 && c > SIZE_MAX / elem)
        return RK_ERR_NOMEM;
    void *items;
    memcpy(&items, items_ptr, sizeof(items)); /* any object pointer, read as void * */
    void *grown = realloc(items, c * elem);
    if (grown == NULL)
        return RK_ERR_NOMEM;
    memcpy(items_ptr, &grown, sizeof(grown));
    *cap = c;
    return RK_OK;
}
