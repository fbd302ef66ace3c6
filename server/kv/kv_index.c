/* server/kv/kv_index.c - the ordered index of kv_index.h: a plain B-tree (Bayer and
 * McCreight 1972; CLRS ch. 18) of item pointers, ordered by the keys key_of gives.
 *
 * Why a plain B-tree and not a B+tree: every item is held once, in a leaf or as a separator
 * in an inner node. A B+tree keeps all items in its leaves and copies of keys in its inner
 * nodes; without copying key bytes (which would cost far more than 8 bytes a slot) those
 * copies would be item pointers, and a separator's item may leave its leaf and be freed by
 * its owner while an inner node still points at it. A plain B-tree holds no such copies.
 * Its in-order walk needs no leaf links: the iterator keeps the path from the root.
 *
 * Fan-out: 30 items a node. A leaf is an 8-byte header and 30 pointers, 248 bytes (with
 * malloc's own 8 bytes a 256-byte chunk, four cache lines); an inner node adds 31 child
 * pointers, 496 bytes. A binary search in a node reads at most 5 items' keys. Nodes other
 * than the root hold 10 to 30 items: a split shares evenly, except that a split by an
 * item at a node's end (keys coming in order) leaves the half they will not reach two
 * thirds full, not half. At least 10 of every 11 items sit in leaves, so the tree costs
 * about 12.6 bytes an item after random inserts, 13 after ascending or descending ones,
 * never more than about 27. A seek walks at most KV_INDEX_MAX_DEPTH nodes (5 at 1M).
 *
 * Insertion adds to a leaf and splits full nodes bottom-up, the item between the halves
 * going up to the parent; it allocates every node the splits need before changing
 * anything, so running out of memory leaves the tree as it was. Removal puts the
 * predecessor (the last item of a leaf) in place of an inner node's item; a node left with
 * fewer than 10 items borrows one through the parent from a sibling that has more, or else
 * merges with a sibling, which may leave the parent short in turn; a root left empty gives
 * way to its only child, or to nothing. */
#include "kv_index.h"

#include <stdlib.h>
#include <string.h>

#include "../../common/errors.h"

#define MAX_ITEMS 30
#define MIN_ITEMS (MAX_ITEMS / 3)   /* a node other than the root never holds fewer */

struct kv_index_node {
    uint16_t count;
    bool leaf;
    const void *items[MAX_ITEMS];
    struct kv_index_node *children[]; /* inner nodes only: count + 1 of them */
};

struct kv_index {
    struct kv_index_node *root; /* NULL when empty */
    kv_index_key_fn key_of;
    size_t count;
    size_t bytes;               /* of all nodes, as allocated */
    int height;                 /* levels; 0 when empty */
};

/* The nodes from the root down to the one an operation works on, and at each the position
 * taken: the child descended into for the levels above, the item's place at the last. */
struct path {
    struct kv_index_node *nodes[KV_INDEX_MAX_DEPTH];
    uint16_t positions[KV_INDEX_MAX_DEPTH];
    int depth;
};

_Static_assert(MIN_ITEMS >= 10, "KV_INDEX_MAX_DEPTH is derived from 10 items a node at least");
_Static_assert(MAX_ITEMS >= 2 * MIN_ITEMS, "two short siblings must fit in one node");
_Static_assert(MAX_ITEMS < UINT16_MAX, "positions are uint16_t");

/* ---- keys ---- */

/* Plain byte order: memcmp on the common length, then the shorter first. */
static int compare_keys(const char *a, uint32_t a_len, const char *b, uint32_t b_len)
{
    uint32_t common = a_len < b_len ? a_len : b_len;
    int c = common > 0 ? memcmp(a, b, common) : 0;
    if (c != 0)
        return c;
    return a_len < b_len ? -1 : a_len > b_len;
}

static int compare_item(const struct kv_index *ix, const void *item, const char *key,
                        uint32_t key_len)
{
    const char *item_key;
    uint32_t item_key_len;
    ix->key_of(item, &item_key, &item_key_len);
    return compare_keys(item_key, item_key_len, key, key_len);
}

/* Binary search: the position of the item whose key equals key (*found true), else of the
 * first item with a greater key (count when none). */
static uint16_t node_search(const struct kv_index *ix, const struct kv_index_node *n,
                            const char *key, uint32_t key_len, bool *found)
{
    uint16_t lo = 0, hi = n->count;
    while (lo < hi) {
        uint16_t mid = (uint16_t)((lo + hi) / 2);
        int c = compare_item(ix, n->items[mid], key, key_len);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = (uint16_t)(mid + 1);
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

/* ---- nodes ---- */

static size_t node_size(bool leaf)
{
    size_t size = sizeof(struct kv_index_node);
    if (!leaf)
        size += (MAX_ITEMS + 1) * sizeof(struct kv_index_node *);
    return size;
}

static struct kv_index_node *node_new(struct kv_index *ix, bool leaf)
{
    struct kv_index_node *n = malloc(node_size(leaf));
    if (n == NULL)
        return NULL;
    n->count = 0;
    n->leaf = leaf;
    ix->bytes += node_size(leaf);
    return n;
}

static void node_free(struct kv_index *ix, struct kv_index_node *n)
{
    ix->bytes -= node_size(n->leaf);
    free(n);
}

static void free_subtree(struct kv_index *ix, struct kv_index_node *n)
{
    if (!n->leaf)
        for (uint16_t i = 0; i <= n->count; i++)
            free_subtree(ix, n->children[i]);
    node_free(ix, n);
}

/* memmove for runs of items and of children (the runs may overlap). */
static void move_items(const void **to, const void *const *from, size_t n)
{
    memmove(to, from, n * sizeof(*to));
}

static void move_children(struct kv_index_node **to, struct kv_index_node *const *from,
                          size_t n)
{
    memmove(to, from, n * sizeof(*to));
}

/* Puts item at pos and, in an inner node, right as the child after it. n is not full. */
static void node_insert_at(struct kv_index_node *n, uint16_t pos, const void *item,
                           struct kv_index_node *right)
{
    move_items(&n->items[pos + 1], &n->items[pos], (size_t)(n->count - pos));
    n->items[pos] = item;
    if (!n->leaf) {
        move_children(&n->children[pos + 2], &n->children[pos + 1], (size_t)(n->count - pos));
        n->children[pos + 1] = right;
    }
    n->count++;
}

/* Takes out the item at pos and, in an inner node, the child after it. */
static void node_remove_at(struct kv_index_node *n, uint16_t pos)
{
    move_items(&n->items[pos], &n->items[pos + 1], (size_t)(n->count - pos - 1));
    if (!n->leaf)
        move_children(&n->children[pos + 1], &n->children[pos + 2],
                      (size_t)(n->count - pos - 1));
    n->count--;
}

/* ---- lookup ---- */

/* Walks from the root towards key, recording the way in *path; stops at the node holding
 * it (true) or at the leaf where it would go (false). The tree is not empty. */
static bool descend(const struct kv_index *ix, const char *key, uint32_t key_len,
                    struct path *path)
{
    struct kv_index_node *n = ix->root;
    path->depth = 0;
    for (;;) {
        bool found;
        uint16_t pos = node_search(ix, n, key, key_len, &found);
        path->nodes[path->depth] = n;
        path->positions[path->depth] = pos;
        path->depth++;
        if (found)
            return true;
        if (n->leaf)
            return false;
        n = n->children[pos];
    }
}

struct kv_index *kv_index_new(kv_index_key_fn key_of)
{
    struct kv_index *ix = calloc(1, sizeof(*ix));
    if (ix == NULL)
        return NULL;
    ix->key_of = key_of;
    return ix;
}

void kv_index_free(struct kv_index *ix)
{
    if (ix == NULL)
        return;
    if (ix->root != NULL)
        free_subtree(ix, ix->root);
    free(ix);
}

const void *kv_index_find(const struct kv_index *ix, const char *key, uint32_t key_len)
{
    struct path path;
    if (ix->root == NULL || !descend(ix, key, key_len, &path))
        return NULL;
    const struct kv_index_node *n = path.nodes[path.depth - 1];
    return n->items[path.positions[path.depth - 1]];
}

size_t kv_index_count(const struct kv_index *ix)
{
    return ix->count;
}

size_t kv_index_bytes(const struct kv_index *ix)
{
    return ix->bytes;
}

/* ---- insertion ---- */

/* How many of a full node's items and the one coming in at pos stay in the left half of
 * a split (one goes up, the rest right). Evenly, but an item at either end suggests keys
 * coming in order, which would leave each half at a third: the half they do not reach
 * is left two thirds full instead. */
static uint16_t left_share(uint16_t pos)
{
    if (pos == MAX_ITEMS)
        return MAX_ITEMS - MIN_ITEMS;
    if (pos == 0)
        return MIN_ITEMS;
    return (MAX_ITEMS + 1) / 2;
}

/* n is full: splits its MAX_ITEMS items plus item (at pos, with right after it) between
 * n and the empty sibling, at least MIN_ITEMS each, and returns the item between them for
 * the parent. */
static const void *split_insert(struct kv_index_node *n, uint16_t pos, const void *item,
                                struct kv_index_node *right, struct kv_index_node *sibling)
{
    enum { TOTAL = MAX_ITEMS + 1 };
    uint16_t left_count = left_share(pos), right_count = (uint16_t)(TOTAL - left_count - 1);
    const void *items[TOTAL];
    struct kv_index_node *children[TOTAL + 1];
    move_items(items, n->items, pos);
    items[pos] = item;
    move_items(&items[pos + 1], &n->items[pos], (size_t)(MAX_ITEMS - pos));
    move_items(n->items, items, (size_t)left_count);
    move_items(sibling->items, &items[left_count + 1], (size_t)right_count);
    n->count = left_count;
    sibling->count = right_count;
    if (!n->leaf) {
        move_children(children, n->children, (size_t)(pos + 1));
        children[pos + 1] = right;
        move_children(&children[pos + 2], &n->children[pos + 1], (size_t)(MAX_ITEMS - pos));
        move_children(n->children, children, (size_t)(left_count + 1));
        move_children(sibling->children, &children[left_count + 1],
                      (size_t)(right_count + 1));
    }
    return items[left_count];
}

/* Allocates the nodes an insertion at the end of path needs, bottom-up: a sibling for each
 * full node from the leaf up, and a new root if the root is full too. The count, or -1
 * when out of memory (nothing is kept then). */
static int alloc_spares(struct kv_index *ix, const struct path *path,
                        struct kv_index_node **spares)
{
    int n_spares = 0;
    int d = path->depth - 1;
    for (; d >= 0 && path->nodes[d]->count == MAX_ITEMS; d--) {
        spares[n_spares] = node_new(ix, path->nodes[d]->leaf);
        if (spares[n_spares] == NULL)
            goto fail;
        n_spares++;
    }
    if (d < 0) { /* the root splits: the tree grows a level */
        if (ix->height == KV_INDEX_MAX_DEPTH)
            goto fail; /* cannot happen: see KV_INDEX_MAX_DEPTH */
        spares[n_spares] = node_new(ix, false);
        if (spares[n_spares] == NULL)
            goto fail;
        n_spares++;
    }
    return n_spares;
fail:
    while (n_spares > 0)
        node_free(ix, spares[--n_spares]);
    return -1;
}

/* Puts item into the leaf at the end of path, splitting full nodes upwards with the
 * spare nodes alloc_spares gave. */
static void insert_on_path(struct kv_index *ix, const struct path *path, const void *item,
                           struct kv_index_node **spares)
{
    struct kv_index_node *right = NULL; /* the child after item, above the leaf */
    for (int d = path->depth - 1; d >= 0; d--) {
        struct kv_index_node *n = path->nodes[d];
        if (n->count < MAX_ITEMS) {
            node_insert_at(n, path->positions[d], item, right);
            return;
        }
        struct kv_index_node *sibling = *spares++;
        item = split_insert(n, path->positions[d], item, right, sibling);
        right = sibling;
    }
    struct kv_index_node *root = *spares;
    root->items[0] = item;
    root->children[0] = ix->root;
    root->children[1] = right;
    root->count = 1;
    ix->root = root;
    ix->height++;
}

static int insert_first(struct kv_index *ix, const void *item)
{
    struct kv_index_node *leaf = node_new(ix, true);
    if (leaf == NULL)
        return RK_ERR_NOMEM;
    leaf->items[0] = item;
    leaf->count = 1;
    ix->root = leaf;
    ix->height = 1;
    ix->count = 1;
    return RK_OK;
}

int kv_index_insert(struct kv_index *ix, const void *item)
{
    if (ix->root == NULL)
        return insert_first(ix, item);
    const char *key;
    uint32_t key_len;
    ix->key_of(item, &key, &key_len);
    struct path path;
    if (descend(ix, key, key_len, &path))
        return RK_ERR_EXISTS;
    struct kv_index_node *spares[KV_INDEX_MAX_DEPTH + 1];
    if (alloc_spares(ix, &path, spares) < 0)
        return RK_ERR_NOMEM;
    insert_on_path(ix, &path, item, spares);
    ix->count++;
    return RK_OK;
}

/* ---- removal ---- */

/* The child at ci of parent is short of one item; its left sibling has one to spare:
 * the separator comes down to the child's front and the sibling's last item goes up. */
static void borrow_from_left(struct kv_index_node *parent, uint16_t ci)
{
    struct kv_index_node *n = parent->children[ci];
    struct kv_index_node *left = parent->children[ci - 1];
    move_items(&n->items[1], &n->items[0], n->count);
    n->items[0] = parent->items[ci - 1];
    if (!n->leaf) {
        move_children(&n->children[1], &n->children[0], (size_t)(n->count + 1));
        n->children[0] = left->children[left->count];
    }
    n->count++;
    parent->items[ci - 1] = left->items[left->count - 1];
    left->count--;
}

/* The same from the right sibling: the separator comes down to the child's end and the
 * sibling's first item goes up. */
static void borrow_from_right(struct kv_index_node *parent, uint16_t ci)
{
    struct kv_index_node *n = parent->children[ci];
    struct kv_index_node *right = parent->children[ci + 1];
    n->items[n->count] = parent->items[ci];
    if (!n->leaf)
        n->children[n->count + 1] = right->children[0];
    n->count++;
    parent->items[ci] = right->items[0];
    move_items(&right->items[0], &right->items[1], (size_t)(right->count - 1));
    if (!right->leaf)
        move_children(&right->children[0], &right->children[1], right->count);
    right->count--;
}

/* Joins the children at li and li + 1 of parent, with their separator between them, into
 * the one at li; frees the other. Together they hold at most MAX_ITEMS items. */
static void merge_children(struct kv_index *ix, struct kv_index_node *parent, uint16_t li)
{
    struct kv_index_node *left = parent->children[li];
    struct kv_index_node *right = parent->children[li + 1];
    left->items[left->count] = parent->items[li];
    move_items(&left->items[left->count + 1], right->items, right->count);
    if (!left->leaf)
        move_children(&left->children[left->count + 1], right->children,
                      (size_t)(right->count + 1));
    left->count = (uint16_t)(left->count + 1 + right->count);
    node_remove_at(parent, li);
    node_free(ix, right);
}

/* The child at ci of parent holds MIN_ITEMS - 1 items: borrow or merge. */
static void fix_short_child(struct kv_index *ix, struct kv_index_node *parent, uint16_t ci)
{
    struct kv_index_node *left = ci > 0 ? parent->children[ci - 1] : NULL;
    struct kv_index_node *right = ci < parent->count ? parent->children[ci + 1] : NULL;
    if (left != NULL && left->count > MIN_ITEMS)
        borrow_from_left(parent, ci);
    else if (right != NULL && right->count > MIN_ITEMS)
        borrow_from_right(parent, ci);
    else if (left != NULL)
        merge_children(ix, parent, (uint16_t)(ci - 1));
    else
        merge_children(ix, parent, ci);
}

/* An empty root gives way to its only child, or the tree becomes empty. */
static void shrink_root(struct kv_index *ix)
{
    struct kv_index_node *root = ix->root;
    if (root->count > 0)
        return;
    ix->root = root->leaf ? NULL : root->children[0];
    ix->height--;
    node_free(ix, root);
}

/* A leaf at the end of path lost an item: restores the node sizes from there up. */
static void rebalance(struct kv_index *ix, const struct path *path)
{
    for (int d = path->depth - 1; d > 0; d--) {
        if (path->nodes[d]->count >= MIN_ITEMS)
            return;
        fix_short_child(ix, path->nodes[d - 1], path->positions[d - 1]);
    }
    shrink_root(ix);
}

/* Extends path, which ends at position pos of an inner node, down to the last item of the
 * subtree left of that position (the item's predecessor). */
static void extend_to_predecessor(struct path *path)
{
    struct kv_index_node *n = path->nodes[path->depth - 1];
    n = n->children[path->positions[path->depth - 1]];
    for (;;) {
        path->nodes[path->depth] = n;
        path->positions[path->depth] = n->leaf ? (uint16_t)(n->count - 1) : n->count;
        path->depth++;
        if (n->leaf)
            return;
        n = n->children[n->count];
    }
}

bool kv_index_remove(struct kv_index *ix, const char *key, uint32_t key_len)
{
    struct path path;
    if (ix->root == NULL || !descend(ix, key, key_len, &path))
        return false;
    struct kv_index_node *holder = path.nodes[path.depth - 1];
    uint16_t pos = path.positions[path.depth - 1];
    if (!holder->leaf) {
        extend_to_predecessor(&path);
        struct kv_index_node *leaf = path.nodes[path.depth - 1];
        holder->items[pos] = leaf->items[leaf->count - 1];
    }
    node_remove_at(path.nodes[path.depth - 1], path.positions[path.depth - 1]);
    rebalance(ix, &path);
    ix->count--;
    return true;
}

/* ---- iteration ---- */

/* Pushes n and its first children down to a leaf, each at position 0. */
static void push_leftmost(struct kv_index_iter *it, const struct kv_index_node *n)
{
    for (;;) {
        it->nodes[it->depth] = n;
        it->positions[it->depth] = 0;
        it->depth++;
        if (n->leaf)
            return;
        n = n->children[0];
    }
}

/* The iterator's invariant: the top level's (node, position) is the next item when the
 * position is within the node; each level below it is an inner node whose item at its
 * position (if any) follows the subtree the level above walks. */
void kv_index_seek(const struct kv_index *ix, const char *key, uint32_t key_len, bool after,
                   struct kv_index_iter *it)
{
    it->depth = 0;
    const struct kv_index_node *n = ix->root;
    while (n != NULL) {
        bool found;
        uint16_t pos = node_search(ix, n, key, key_len, &found);
        if (found && after)
            pos++;
        it->nodes[it->depth] = n;
        it->positions[it->depth] = pos;
        it->depth++;
        if (n->leaf || (found && !after))
            return;
        n = n->children[pos];
    }
}

const void *kv_index_next(struct kv_index_iter *it)
{
    while (it->depth > 0 && it->positions[it->depth - 1] >= it->nodes[it->depth - 1]->count)
        it->depth--;
    if (it->depth == 0)
        return NULL;
    int top = it->depth - 1;
    const struct kv_index_node *n = it->nodes[top];
    const void *item = n->items[it->positions[top]++];
    if (!n->leaf)
        push_leftmost(it, n->children[it->positions[top]]);
    return item;
}
