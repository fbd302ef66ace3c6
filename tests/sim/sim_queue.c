/* tests/sim/sim_queue.c - the simulator's event queue: a binary min-heap ordered by
 * simulated time, ties broken by push order, so a seed always replays the same order. */
#include <stdlib.h>
#include <string.h>

#include "sim_internal.h"

void sim_queue_init(struct sim_queue *q)
{
    memset(q, 0, sizeof(*q));
}

void sim_queue_free(struct sim_queue *q)
{
    for (size_t i = 0; i < q->n; i++)
        raft_msg_free_entries(&q->heap[i].msg);
    free(q->heap);
    memset(q, 0, sizeof(*q));
}

static bool sim_queue_before(const struct sim_event *a, const struct sim_event *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void sim_queue_swap(struct sim_event *a, struct sim_event *b)
{
    struct sim_event t = *a;
    *a = *b;
    *b = t;
}

void sim_queue_push(struct sim_queue *q, struct sim_event *ev)
{
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 256;
        struct sim_event *grown = realloc(q->heap, cap * sizeof(*grown));
        if (grown == NULL)
            abort(); /* a test program: out of memory is fatal */
        q->heap = grown;
        q->cap = cap;
    }
    ev->seq = q->next_seq++;
    size_t i = q->n++;
    q->heap[i] = *ev;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!sim_queue_before(&q->heap[i], &q->heap[parent]))
            break;
        sim_queue_swap(&q->heap[i], &q->heap[parent]);
        i = parent;
    }
}

bool sim_queue_pop(struct sim_queue *q, struct sim_event *out)
{
    if (q->n == 0)
        return false;
    *out = q->heap[0];
    q->heap[0] = q->heap[--q->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, min = i;
        if (l < q->n && sim_queue_before(&q->heap[l], &q->heap[min]))
            min = l;
        if (r < q->n && sim_queue_before(&q->heap[r], &q->heap[min]))
            min = r;
        if (min == i)
            break;
        sim_queue_swap(&q->heap[i], &q->heap[min]);
        i = min;
    }
    return true;
}

const struct sim_event *sim_queue_peek(const struct sim_queue *q)
{
    return q->n ? &q->heap[0] : NULL;
}
