/* tests/lincheck.c - the linearizability checker of lincheck.h: the history is split by
 * key, and each key's ops are searched for a linearization depth-first (Wing & Gong, with
 * Lowe's list of call/return entries and Porcupine's memo of (linearized set, state)). */
#include "lincheck.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/errors.h"

#define DEFAULT_MAX_STEPS 10000000LL
#define DEFAULT_MAX_MEMO ((size_t)512 << 20)
#define NEVER INT64_MAX   /* the completion of an op that may take effect at any later time */
#define REPORT_TAIL 10    /* linearized ops shown before the point of failure */
#define REPORT_CANDIDATES 12
#define NIL_STATE 0       /* value id 0: the key does not exist */

/* ---- a growable text buffer ---- */

struct text {
    char *s;
    size_t len, cap;
    bool oom;
};

static void text_add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text_add(struct text *t, const char *fmt, ...)
{
    if (t->oom)
        return;
    for (int attempt = 0; attempt < 2; attempt++) {
        size_t room = t->cap - t->len;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->s != NULL ? t->s + t->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < room) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = (t->cap + (size_t)n + 1) * 2;
        char *s = realloc(t->s, cap);
        if (s == NULL) {
            t->oom = true;
            return;
        }
        t->s = s;
        t->cap = cap;
    }
}

/* ---- ops as the search sees them ---- */

/* What an op requires of the key's state before it takes effect. */
enum need { NEED_ANY, NEED_NIL, NEED_EXISTS, NEED_VALUE };

enum lazy_kind { LAZY_NONE, LAZY_SET, LAZY_DEL };

struct kop {
    const struct lincheck_op *op;
    int64_t inv, cmp; /* cmp: NEVER if it may take effect at any later time */
    enum need need;
    int need_val;     /* NEED_VALUE: the value id read */
    int effect;       /* -1: leaves the state alone; else the value id it stores (0: nil) */
};

/* One entry of Lowe's list: the call or the return of finite op `fin`. */
struct entry {
    int64_t time;
    int fin;
    bool is_call;
    int match;        /* the other entry of the same op */
    int prev, next;
};

/* A value written to the key: its id is its index + 1 in the sorted array. */
struct value_info {
    const char *s;
    int writers;          /* ok and unknown sets that write it */
    bool observed;        /* some ok get read it */
    int readers;          /* ok gets that read it */
    int writer;           /* the index in fin of its only set, or -1 */
    int64_t first_read_done; /* the earliest completion of such a get */
};

/* One key's ops, prepared for the search. */
struct keyset {
    const struct lincheck_op *const *ops; /* the key's ops, sorted by invocation */
    size_t n;
    int64_t t0;
    struct value_info *values;
    int n_values;
    struct kop *fin;      /* ops with a (possibly NEVER) completion; bit i = fin[i] */
    int n_fin;
    struct kop *lazy[3];  /* [LAZY_SET]: unknown sets nobody read; [LAZY_DEL]: unknown deletes */
    int n_lazy[3];
    size_t dropped;
    struct rev_value *revs; /* the writes' revisions learned, sorted by revision */
    int n_revs;
};

/* A revision and the value its write wrote (as a rev read or a held cas told). */
struct rev_value {
    uint64_t rev;
    int value;
    const struct lincheck_op *op;
};

static void kop_fill(struct kop *k, const struct lincheck_op *op, int64_t cmp, enum need need,
                     int need_val, int effect)
{
    k->op = op;
    k->inv = op->invoke_ns;
    k->cmp = cmp;
    k->need = need;
    k->need_val = need_val;
    k->effect = effect;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The id of value s (1..n_values), or 0 if no ok or unknown set wrote it. */
static int value_id(const struct keyset *ks, const char *s)
{
    int lo = 0, hi = ks->n_values - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(s, ks->values[mid].s);
        if (c == 0)
            return mid + 1;
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return 0;
}

/* A set, or a cas that held or may have: it writes its value. */
static bool counts_as_write(const struct lincheck_op *op)
{
    if (op->outcome == LINCHECK_FAILED)
        return false;
    return op->kind == LINCHECK_SET ||
           (op->kind == LINCHECK_CAS && (op->outcome == LINCHECK_UNKNOWN || op->held));
}

static bool is_read(const struct lincheck_op *op)
{
    return op->kind == LINCHECK_GET || op->kind == LINCHECK_REV;
}

/* An expire or a ttl: it needs the key to exist (found) or to be absent, and changes
 * nothing the register model holds (an expire's deadline is beyond the history). */
static bool is_existence_op(const struct lincheck_op *op)
{
    return op->kind == LINCHECK_EXPIRE || op->kind == LINCHECK_TTL;
}

/* Failed ops, reads that got no answer, and expires of unknown outcome (which change
 * nothing whether or not they took effect). */
static bool is_dropped(const struct lincheck_op *op)
{
    return op->outcome == LINCHECK_FAILED ||
           ((is_read(op) || is_existence_op(op)) && op->outcome != LINCHECK_OK);
}

/* Builds ks->values from the sets and marks which values ok gets read. */
static int collect_values(struct keyset *ks)
{
    const char **strs = malloc((ks->n + 1) * sizeof(*strs));
    if (strs == NULL)
        return RK_ERR_NOMEM;
    int m = 0;
    for (size_t i = 0; i < ks->n; i++)
        if (counts_as_write(ks->ops[i]))
            strs[m++] = ks->ops[i]->value;
    qsort(strs, (size_t)m, sizeof(*strs), cmp_str_ptr);
    ks->values = calloc((size_t)m + 1, sizeof(*ks->values));
    if (ks->values == NULL) {
        free(strs);
        return RK_ERR_NOMEM;
    }
    int u = 0;
    for (int i = 0; i < m; i++) {
        if (u == 0 || strcmp(ks->values[u - 1].s, strs[i]) != 0)
            ks->values[u++] =
                (struct value_info){.s = strs[i], .first_read_done = NEVER, .writer = -1};
        ks->values[u - 1].writers++;
    }
    ks->n_values = u;
    free(strs);
    for (size_t i = 0; i < ks->n; i++) {
        const struct lincheck_op *op = ks->ops[i];
        if (!is_read(op) || op->outcome != LINCHECK_OK || !op->found)
            continue;
        int id = value_id(ks, op->value);
        if (id == 0)
            continue;
        struct value_info *v = &ks->values[id - 1];
        v->observed = true;
        v->readers++;
        if (op->complete_ns < v->first_read_done)
            v->first_read_done = op->complete_ns;
    }
    return RK_OK;
}

static int cmp_rev(const void *a, const void *b)
{
    const struct rev_value *x = a, *y = b;
    return x->rev < y->rev ? -1 : x->rev > y->rev;
}

/* The revisions learned: a rev read gives one with the value read; a held cas, its new
 * revision with the value it wrote. */
static int collect_revs(struct keyset *ks)
{
    ks->revs = calloc(ks->n + 1, sizeof(*ks->revs));
    if (ks->revs == NULL)
        return RK_ERR_NOMEM;
    for (size_t i = 0; i < ks->n; i++) {
        const struct lincheck_op *op = ks->ops[i];
        bool read = op->kind == LINCHECK_REV && op->outcome == LINCHECK_OK && op->found;
        bool cas = op->kind == LINCHECK_CAS && op->outcome == LINCHECK_OK && op->held;
        if (read || cas)
            ks->revs[ks->n_revs++] = (struct rev_value){
                .rev = read ? op->rev : op->got_rev, .value = value_id(ks, op->value), .op = op };
    }
    qsort(ks->revs, (size_t)ks->n_revs, sizeof(*ks->revs), cmp_rev);
    return RK_OK;
}

/* The value id revision rev names: NIL_STATE for 0, -1 if no op told it. */
static int value_of_rev(const struct keyset *ks, uint64_t rev)
{
    if (rev == 0)
        return NIL_STATE;
    int lo = 0, hi = ks->n_revs - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (ks->revs[mid].rev == rev)
            return ks->revs[mid].value;
        if (ks->revs[mid].rev < rev)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* What an op that found the key at revision rev needs of the state: absent (0), the
 * value that revision's write wrote, or (a revision nobody told) that the key exists. */
static enum need need_of_rev(const struct keyset *ks, uint64_t rev, int *value)
{
    *value = value_of_rev(ks, rev);
    if (*value == NIL_STATE)
        return NEED_NIL;
    return *value > 0 ? NEED_VALUE : NEED_EXISTS;
}

/* True if only one (ok or unknown) set writes value id: then it must take effect before
 * every get that read the value, and once it is overwritten nobody can read it again. */
static bool unique_value(const struct keyset *ks, int id)
{
    return id != NIL_STATE && ks->values[id - 1].writers == 1;
}

/* A cas or cad. Answered: if it held, it needed the value of the revision it compared
 * and wrote its value (or deleted); if not, it saw the key at the revision it was told. Of
 * unknown outcome: a cas whose value someone read took effect, by that read; one nobody
 * read matters only if it made an absent key exist (it compared 0): a lazy set; any
 * other one is dropped (had it taken effect, its value would have been replaced unseen).
 * An unknown cad is a lazy delete (its compare is not checked: weaker, never wrong). */
static void classify_compare(struct keyset *ks, const struct lincheck_op *op)
{
    bool cas = op->kind == LINCHECK_CAS;
    int need_val;
    if (op->outcome == LINCHECK_OK && !op->held) {
        enum need need = need_of_rev(ks, op->got_rev, &need_val);
        kop_fill(&ks->fin[ks->n_fin++], op, op->complete_ns, need, need_val, -1);
        return;
    }
    enum need need = need_of_rev(ks, op->rev, &need_val);
    if (!cas) {
        if (op->outcome == LINCHECK_OK)
            kop_fill(&ks->fin[ks->n_fin++], op, op->complete_ns, need, need_val, NIL_STATE);
        else
            kop_fill(&ks->lazy[LAZY_DEL][ks->n_lazy[LAZY_DEL]++], op, NEVER, NEED_ANY, 0,
                     NIL_STATE);
        return;
    }
    int id = value_id(ks, op->value);
    const struct value_info *v = &ks->values[id - 1];
    int64_t by = op->outcome == LINCHECK_OK ? op->complete_ns : NEVER;
    if (unique_value(ks, id) && v->first_read_done < by)
        by = v->first_read_done;
    if (op->outcome == LINCHECK_OK || v->observed)
        kop_fill(&ks->fin[ks->n_fin++], op, by, need, need_val, id);
    else if (need == NEED_NIL)
        kop_fill(&ks->lazy[LAZY_SET][ks->n_lazy[LAZY_SET]++], op, NEVER, NEED_ANY, 0, id);
    else
        ks->dropped++;
    if (unique_value(ks, id) && (op->outcome == LINCHECK_OK || v->observed))
        ks->values[id - 1].writer = ks->n_fin - 1;
}

/* Sorts the kept ops into finite ones and the two lazy kinds. A set of a unique value
 * must take effect before every get of it, so it completes by the first of them (for an
 * unknown set, that is its only bound). An unknown set nobody read only matters right
 * before a delete that answered OK, and an unknown delete only right before an op that
 * needs the key absent: the search places those "lazily", where needed (see try_step). */
static int classify(struct keyset *ks)
{
    ks->fin = calloc(ks->n + 1, sizeof(*ks->fin));
    ks->lazy[LAZY_SET] = calloc(ks->n + 1, sizeof(struct kop));
    ks->lazy[LAZY_DEL] = calloc(ks->n + 1, sizeof(struct kop));
    if (ks->fin == NULL || ks->lazy[LAZY_SET] == NULL || ks->lazy[LAZY_DEL] == NULL)
        return RK_ERR_NOMEM;
    for (size_t i = 0; i < ks->n; i++) {
        const struct lincheck_op *op = ks->ops[i];
        bool ok = op->outcome == LINCHECK_OK;
        if (is_dropped(op)) {
            ks->dropped++;
        } else if (op->kind == LINCHECK_CAS || op->kind == LINCHECK_CAD) {
            classify_compare(ks, op);
        } else if (is_existence_op(op)) {
            kop_fill(&ks->fin[ks->n_fin++], op, op->complete_ns,
                     op->found ? NEED_EXISTS : NEED_NIL, 0, -1);
        } else if (is_read(op)) {
            int id = op->found ? value_id(ks, op->value) : NIL_STATE;
            if (op->found && id == NIL_STATE)
                id = -1; /* never written: matches no state (quick_violation reports it) */
            kop_fill(&ks->fin[ks->n_fin++], op, op->complete_ns,
                     op->found ? NEED_VALUE : NEED_NIL, id, -1);
        } else if (op->kind == LINCHECK_SET) {
            int id = value_id(ks, op->value);
            const struct value_info *v = &ks->values[id - 1];
            int64_t by = ok ? op->complete_ns : NEVER;
            if (unique_value(ks, id) && v->first_read_done < by)
                by = v->first_read_done;
            if (!ok && !v->observed)
                kop_fill(&ks->lazy[LAZY_SET][ks->n_lazy[LAZY_SET]++], op, NEVER, NEED_ANY, 0, id);
            else
                kop_fill(&ks->fin[ks->n_fin++], op, by, NEED_ANY, 0, id);
            if (unique_value(ks, id) && (ok || v->observed))
                ks->values[id - 1].writer = ks->n_fin - 1;
        } else if (ok) {
            kop_fill(&ks->fin[ks->n_fin++], op, op->complete_ns,
                     op->found ? NEED_EXISTS : NEED_NIL, 0, NIL_STATE);
        } else {
            kop_fill(&ks->lazy[LAZY_DEL][ks->n_lazy[LAZY_DEL]++], op, NEVER, NEED_ANY, 0,
                     NIL_STATE);
        }
    }
    return RK_OK;
}

static void keyset_free(struct keyset *ks)
{
    free(ks->values);
    free(ks->revs);
    free(ks->fin);
    free(ks->lazy[LAZY_SET]);
    free(ks->lazy[LAZY_DEL]);
}

/* ---- formatting ---- */

static double rel_ms(int64_t t, int64_t t0)
{
    return (double)(t - t0) / 1e6;
}

static const char *outcome_name(enum lincheck_outcome o)
{
    return o == LINCHECK_OK ? "ok" : o == LINCHECK_FAILED ? "failed" : "unknown";
}

/* The revision ops: "rev k -> 12 "v"", "cas k 12 "v" -> OK 15", "cad k 12 -> FAILED 15". */
static void format_rev_op(const struct lincheck_op *op, char *what, size_t len)
{
    bool ok = op->outcome == LINCHECK_OK;
    char key_ttl[LINCHECK_KEY_MAX + 24];
    if (op->ttl_ms > 0)
        snprintf(key_ttl, sizeof(key_ttl), "%lld %s", (long long)op->ttl_ms, op->key);
    else
        snprintf(key_ttl, sizeof(key_ttl), "%s", op->key);
    unsigned long long rev = op->rev, got = op->got_rev;
    if (op->kind == LINCHECK_REV && ok && op->found)
        snprintf(what, len, "rev %s -> %llu \"%s\"", op->key, rev, op->value);
    else if (op->kind == LINCHECK_REV)
        snprintf(what, len, "rev %s%s", op->key, ok ? " -> nil" : "");
    else if (op->kind == LINCHECK_CAS)
        snprintf(what, len, "cas %s%s %llu \"%s\"%s %s%.0llu",
                 op->ttl_ms > 0 ? "--ttl(ms) " : "", key_ttl, rev, op->value,
                 ok ? " ->" : "", !ok ? "" : op->held ? "OK " : "FAILED ", ok ? got : 0);
    else
        snprintf(what, len, "cad %s %llu%s %s%.0llu", op->key, rev, ok ? " ->" : "",
                 !ok ? "" : op->held ? "OK" : "FAILED ", ok && !op->held ? got : 0);
}

void lincheck_format_op(const struct lincheck_op *op, int64_t t0_ns, char *out, size_t outlen)
{
    char what[2 * LINCHECK_VAL_MAX + 64];
    bool ok = op->outcome == LINCHECK_OK;
    if (op->kind == LINCHECK_EXPIRE)
        snprintf(what, sizeof(what), "expire(ms) %s %lld%s", op->key, (long long)op->ttl_ms,
                 !ok ? "" : op->found ? " -> OK" : " -> nil");
    else if (op->kind == LINCHECK_TTL)
        snprintf(what, sizeof(what), "ttl %s%s", op->key,
                 !ok ? "" : op->found ? " -> (a number)" : " -> nil");
    else if (op->kind >= LINCHECK_REV)
        format_rev_op(op, what, sizeof(what));
    else if (op->kind == LINCHECK_SET && op->ttl_ms > 0)
        snprintf(what, sizeof(what), "setex(ms) %s %lld \"%s\"", op->key,
                 (long long)op->ttl_ms, op->value);
    else if (op->kind == LINCHECK_SET)
        snprintf(what, sizeof(what), "set %s \"%s\"", op->key, op->value);
    else if (op->kind == LINCHECK_GET && ok && op->found)
        snprintf(what, sizeof(what), "get %s -> \"%s\"", op->key, op->value);
    else if (op->kind == LINCHECK_GET)
        snprintf(what, sizeof(what), "get %s%s", op->key, ok ? " -> nil" : "");
    else
        snprintf(what, sizeof(what), "delete %s%s", op->key,
                 !ok ? "" : op->found ? " -> OK" : " -> nil");
    if (ok)
        snprintf(out, outlen, "c%d %s ok [%.3f .. %.3f ms]", op->client, what,
                 rel_ms(op->invoke_ns, t0_ns), rel_ms(op->complete_ns, t0_ns));
    else
        snprintf(out, outlen, "c%d %s %s [%.3f .. ? ms]", op->client, what,
                 outcome_name(op->outcome), rel_ms(op->invoke_ns, t0_ns));
}

const char *lincheck_verdict_name(enum lincheck_verdict v)
{
    switch (v) {
    case LINCHECK_LINEARIZABLE:
        return "linearizable";
    case LINCHECK_VIOLATION:
        return "NOT linearizable";
    case LINCHECK_INCONCLUSIVE:
        return "inconclusive";
    }
    return "?";
}

static void add_op_line(struct text *t, const char *prefix, const struct lincheck_op *op,
                        int64_t t0, const char *suffix)
{
    char line[3 * LINCHECK_VAL_MAX + 96];
    lincheck_format_op(op, t0, line, sizeof(line));
    text_add(t, "%s%s%s\n", prefix, line, suffix);
}

static void add_state(struct text *t, const struct keyset *ks, int state)
{
    if (state == NIL_STATE)
        text_add(t, "nil (absent)");
    else
        text_add(t, "\"%s\"", ks->values[state - 1].s);
}

/* ---- checks that need no search ---- */

/* A get that read a value no ok or unknown set of this key wrote, or an unknown set
 * whose value was read before the set was even invoked. */
/* One revision given for two different values: a revision names one write. */
static bool rev_conflict(const struct keyset *ks, struct text *t)
{
    for (int i = 1; i < ks->n_revs; i++) {
        const struct rev_value *a = &ks->revs[i - 1], *b = &ks->revs[i];
        if (a->rev != b->rev || a->value == b->value)
            continue;
        text_add(t, "key \"%s\": revision %llu names two different values:\n", a->op->key,
                 (unsigned long long)a->rev);
        add_op_line(t, "  ", a->op, ks->t0, "");
        add_op_line(t, "  ", b->op, ks->t0, "");
        return true;
    }
    return false;
}

static bool quick_violation(const struct keyset *ks, struct text *t)
{
    if (rev_conflict(ks, t))
        return true;
    for (size_t i = 0; i < ks->n; i++) {
        const struct lincheck_op *op = ks->ops[i];
        if (!is_read(op) || op->outcome != LINCHECK_OK || !op->found ||
            value_id(ks, op->value) != 0)
            continue;
        text_add(t, "key \"%s\": a get read \"%s\", which no set of this key wrote:\n",
                 op->key, op->value);
        add_op_line(t, "  ", op, ks->t0, "");
        for (size_t j = 0; j < ks->n; j++)
            if (ks->ops[j]->kind == LINCHECK_SET && strcmp(ks->ops[j]->value, op->value) == 0)
                add_op_line(t, "  only this failed set wrote it: ", ks->ops[j], ks->t0, "");
        return true;
    }
    for (int i = 0; i < ks->n_fin; i++) {
        const struct kop *k = &ks->fin[i];
        if (k->cmp >= k->inv)
            continue;
        text_add(t, "key \"%s\": \"%s\" was read before the only set that wrote it began:\n",
                 k->op->key, k->op->value);
        add_op_line(t, "  ", k->op, ks->t0, "");
        for (size_t j = 0; j < ks->n; j++)
            if (ks->ops[j]->kind == LINCHECK_GET && ks->ops[j]->outcome == LINCHECK_OK &&
                ks->ops[j]->found && strcmp(ks->ops[j]->value, k->op->value) == 0 &&
                ks->ops[j]->complete_ns == k->cmp)
                add_op_line(t, "  read by: ", ks->ops[j], ks->t0, "");
        return true;
    }
    return false;
}

static int cmp_kop_inv(const void *a, const void *b)
{
    const struct kop *x = *(const struct kop *const *)a, *y = *(const struct kop *const *)b;
    return x->inv < y->inv ? -1 : x->inv > y->inv;
}

/* The index of the first of w[0..n) (sorted by inv) invoked after t. */
static int first_invoked_after(struct kop *const *w, int n, int64_t t)
{
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (w[mid]->inv > t)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* A certificate for the commonest anomaly: a get read a value whose only set had
 * certainly been overwritten by another write before the get began (a stale read, or a
 * write applied twice). w: the writes known to take effect by their (finite) completion,
 * i.e. the ok ones and the unknown sets whose value was read, sorted by invocation;
 * min_at[i]: the one of w[i..] that completed first. */
static bool report_stale_read(const struct keyset *ks, struct kop *const *w, const int *min_at,
                              int n_w, struct text *t)
{
    for (int i = 0; i < ks->n_fin; i++) {
        const struct kop *r = &ks->fin[i];
        if (!is_read(r->op) || r->need != NEED_VALUE || !unique_value(ks, r->need_val))
            continue;
        int wi = ks->values[r->need_val - 1].writer;
        if (wi < 0)
            continue;
        const struct kop *first = &ks->fin[wi];
        int j = first_invoked_after(w, n_w, first->cmp);
        if (j >= n_w || w[min_at[j]]->cmp >= r->inv)
            continue;
        text_add(t, "key \"%s\": NOT linearizable: a stale read (or a write applied twice). "
                    "This get:\n", r->op->key);
        add_op_line(t, "    ", r->op, ks->t0, "");
        text_add(t, "  read the value of this set (the only one that wrote it)%s:\n",
                 first->cmp < first->op->complete_ns || first->op->outcome != LINCHECK_OK
                     ? ", which took effect by the first get of it" : "");
        add_op_line(t, "    ", first->op, ks->t0, "");
        text_add(t, "  but this write began after that and %s before the get began:\n",
                 w[min_at[j]]->op->outcome == LINCHECK_OK ? "ended"
                                                          : "was seen by a get that ended");
        add_op_line(t, "    ", w[min_at[j]]->op, ks->t0, "");
        return true;
    }
    return false;
}

static bool stale_read(const struct keyset *ks, struct text *t)
{
    struct kop **w = malloc(((size_t)ks->n_fin + 1) * sizeof(*w));
    int *min_at = malloc(((size_t)ks->n_fin + 1) * sizeof(*min_at));
    int n_w = 0;
    bool found = false;
    if (w != NULL && min_at != NULL) {
        for (int i = 0; i < ks->n_fin; i++)
            if (ks->fin[i].effect >= 0) /* the writes: sets, deletes, held compares */
                w[n_w++] = &ks->fin[i];
        qsort(w, (size_t)n_w, sizeof(*w), cmp_kop_inv);
        for (int i = n_w - 1; i >= 0; i--)
            min_at[i] = i + 1 < n_w && w[min_at[i + 1]]->cmp < w[i]->cmp ? min_at[i + 1] : i;
        found = report_stale_read(ks, w, min_at, n_w, t);
    }
    free(w);
    free(min_at);
    return found;
}

/* ---- the memo: (linearized set, lazy ops used, state) ---- */

struct memo_ent {
    uint64_t hash;
    size_t off;        /* its words in the arena */
    int32_t first_word, n_words, state, used_set, used_del;
};

struct memo {
    struct memo_ent *ents;
    size_t n, cap;
    uint32_t *slots;   /* open addressing: ent index + 1, 0 = empty */
    size_t n_slots;    /* a power of two, at least 2 * n */
    uint64_t *arena;
    size_t arena_len, arena_cap;
    size_t max_bytes;
};

static size_t memo_bytes(const struct memo *m)
{
    return m->cap * sizeof(*m->ents) + m->n_slots * sizeof(*m->slots) +
           m->arena_cap * sizeof(*m->arena);
}

static void memo_free(struct memo *m)
{
    free(m->ents);
    free(m->slots);
    free(m->arena);
}

static int memo_grow_slots(struct memo *m)
{
    size_t n_slots = m->n_slots == 0 ? 1024 : m->n_slots * 2;
    uint32_t *slots = calloc(n_slots, sizeof(*slots));
    if (slots == NULL)
        return RK_ERR_NOMEM;
    for (size_t i = 0; i < m->n; i++) {
        size_t s = (size_t)m->ents[i].hash & (n_slots - 1);
        while (slots[s] != 0)
            s = (s + 1) & (n_slots - 1);
        slots[s] = (uint32_t)(i + 1);
    }
    free(m->slots);
    m->slots = slots;
    m->n_slots = n_slots;
    return RK_OK;
}

static int memo_reserve(struct memo *m, size_t words)
{
    if (m->n + 1 > m->cap) {
        size_t cap = m->cap == 0 ? 1024 : m->cap * 2;
        struct memo_ent *e = realloc(m->ents, cap * sizeof(*e));
        if (e == NULL)
            return RK_ERR_NOMEM;
        m->ents = e;
        m->cap = cap;
    }
    if (m->arena_len + words > m->arena_cap) {
        size_t cap = (m->arena_cap + words) * 2;
        uint64_t *a = realloc(m->arena, cap * sizeof(*a));
        if (a == NULL)
            return RK_ERR_NOMEM;
        m->arena = a;
        m->arena_cap = cap;
    }
    if (2 * (m->n + 1) > m->n_slots && memo_grow_slots(m) != RK_OK)
        return RK_ERR_NOMEM;
    return memo_bytes(m) > m->max_bytes ? RK_ERR_TOOBIG : RK_OK;
}

static bool memo_same(const struct memo *m, const struct memo_ent *e, const struct memo_ent *key,
                      const uint64_t *words)
{
    return e->hash == key->hash && e->state == key->state && e->used_set == key->used_set &&
           e->used_del == key->used_del && e->first_word == key->first_word &&
           e->n_words == key->n_words &&
           memcmp(m->arena + e->off, words, (size_t)key->n_words * sizeof(*words)) == 0;
}

/* Adds key (whose words follow) unless present: 1 added, 0 present, <0 an RK_ERR_*. */
static int memo_insert(struct memo *m, struct memo_ent *key, const uint64_t *words)
{
    if (m->n_slots > 0) {
        size_t s = (size_t)key->hash & (m->n_slots - 1);
        while (m->slots[s] != 0) {
            if (memo_same(m, &m->ents[m->slots[s] - 1], key, words))
                return 0;
            s = (s + 1) & (m->n_slots - 1);
        }
    }
    int rc = memo_reserve(m, (size_t)key->n_words);
    if (rc != RK_OK)
        return rc;
    key->off = m->arena_len;
    if (key->n_words > 0)
        memcpy(m->arena + m->arena_len, words, (size_t)key->n_words * sizeof(*words));
    m->arena_len += (size_t)key->n_words;
    m->ents[m->n] = *key;
    size_t s = (size_t)key->hash & (m->n_slots - 1);
    while (m->slots[s] != 0)
        s = (s + 1) & (m->n_slots - 1);
    m->slots[s] = (uint32_t)(++m->n);
    return 1;
}

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* ---- the search ---- */

struct frame {
    int entry;        /* the call entry linearized */
    int prev_state;
    enum lazy_kind lazy; /* a lazy op placed right before it, if any */
    int lazy_idx;
};

struct search {
    const struct keyset *ks;
    struct entry *ent;     /* 2 * n_fin entries, then the head sentinel */
    int head;
    uint64_t *bits;        /* linearized finite ops */
    int n_words;
    int first_zero, last_one;
    uint64_t hash_bits;    /* xor of mix64(i) over the linearized ops */
    int state;
    int used[3];           /* lazy ops placed, per kind: always the earliest-invoked ones */
    int *unread;           /* per value id: its ok gets not yet linearized */
    struct frame *stack;
    int depth;
    struct memo memo;
    long long steps, max_steps;
    /* the deepest point reached, for the report */
    int best_depth, best_state;
    int best_used[3];
    uint64_t *best_bits;
    struct frame best_tail[REPORT_TAIL];
    int best_tail_n;
};

static bool bit_test(const uint64_t *bits, int i)
{
    return (bits[i / 64] >> (i % 64)) & 1u;
}

static void bit_set(struct search *s, int i)
{
    s->bits[i / 64] |= (uint64_t)1 << (i % 64);
    s->hash_bits ^= mix64((uint64_t)i);
    if (i > s->last_one)
        s->last_one = i;
    while (s->first_zero < s->ks->n_fin && bit_test(s->bits, s->first_zero))
        s->first_zero++;
}

static void bit_clear(struct search *s, int i)
{
    s->bits[i / 64] &= ~((uint64_t)1 << (i % 64));
    s->hash_bits ^= mix64((uint64_t)i);
    if (i < s->first_zero)
        s->first_zero = i;
    while (s->last_one >= 0 && !bit_test(s->bits, s->last_one))
        s->last_one--;
}

static int entry_cmp(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    if (x->time != y->time)
        return x->time < y->time ? -1 : 1;
    if (x->is_call != y->is_call) /* equal times overlap: calls first */
        return x->is_call ? -1 : 1;
    return x->fin - y->fin;
}

/* Lowe's list: every finite op's call and return, sorted by time, linked in a ring. */
static int build_entries(struct search *s)
{
    const struct keyset *ks = s->ks;
    int n = 2 * ks->n_fin;
    s->ent = calloc((size_t)n + 1, sizeof(*s->ent));
    int *call_at = calloc((size_t)ks->n_fin + 1, sizeof(int));
    if (s->ent == NULL || call_at == NULL) {
        free(call_at);
        return RK_ERR_NOMEM;
    }
    for (int i = 0; i < ks->n_fin; i++) {
        s->ent[2 * i] = (struct entry){.time = ks->fin[i].inv, .fin = i, .is_call = true};
        s->ent[2 * i + 1] = (struct entry){.time = ks->fin[i].cmp, .fin = i, .is_call = false};
    }
    qsort(s->ent, (size_t)n, sizeof(*s->ent), entry_cmp);
    for (int p = 0; p < n; p++)
        if (s->ent[p].is_call)
            call_at[s->ent[p].fin] = p;
    for (int p = 0; p < n; p++) {
        if (!s->ent[p].is_call) {
            s->ent[p].match = call_at[s->ent[p].fin];
            s->ent[call_at[s->ent[p].fin]].match = p;
        }
        s->ent[p].prev = p == 0 ? n : p - 1;
        s->ent[p].next = p + 1;
    }
    s->head = n;
    s->ent[n].prev = n == 0 ? n : n - 1;
    s->ent[n].next = n == 0 ? n : 0;
    free(call_at);
    return RK_OK;
}

static void unlink_entry(struct entry *ent, int e)
{
    ent[ent[e].prev].next = ent[e].next;
    ent[ent[e].next].prev = ent[e].prev;
}

static void relink_entry(struct entry *ent, int e)
{
    ent[ent[e].prev].next = e;
    ent[ent[e].next].prev = e;
}

static void lift(struct search *s, int call)
{
    unlink_entry(s->ent, call);
    unlink_entry(s->ent, s->ent[call].match);
}

static void unlift(struct search *s, int call)
{
    relink_entry(s->ent, s->ent[call].match);
    relink_entry(s->ent, call);
}

/* The earliest completion among the ops not yet linearized: the first return entry at
 * or after call entry e (every entry before e is a call). */
static int64_t frontier(const struct search *s, int e)
{
    for (; e != s->head; e = s->ent[e].next)
        if (!s->ent[e].is_call)
            return s->ent[e].time;
    return NEVER;
}

/* Writing over the current value while a get of it is still to come would strand that
 * get for good if nobody else writes the value: such a step is pruned. */
static bool strands_a_read(const struct search *s, int next_state)
{
    return next_state != s->state && unique_value(s->ks, s->state) && s->unread[s->state] > 0;
}

static bool allows(const struct kop *k, int state)
{
    switch (k->need) {
    case NEED_ANY:
        return true;
    case NEED_NIL:
        return state == NIL_STATE;
    case NEED_EXISTS:
        return state != NIL_STATE;
    case NEED_VALUE:
        return state == k->need_val;
    }
    return false;
}

static int after(const struct kop *k, int state)
{
    return k->effect < 0 ? state : k->effect;
}

/* True if the next lazy op of this kind may take effect before call entry e's op. Any
 * of them invoked by then is as good as any other (none of them ever has to complete),
 * so the earliest-invoked one is taken. */
static bool lazy_ready(const struct search *s, enum lazy_kind kind, int e)
{
    int i = s->used[kind];
    return i < s->ks->n_lazy[kind] && s->ks->lazy[kind][i].inv <= frontier(s, e);
}

/* Can op k (call entry e) take effect now? Sets the state after it and the lazy op that
 * must take effect right before it: an unread unknown set before an op that found the
 * key (a delete, an expire, a ttl, a failed compare), or an unknown delete before an op
 * that found it absent. Which unread set it is does not matter: no op needs its value. */
static bool try_step(const struct search *s, const struct kop *k, int e, int *next_state,
                     enum lazy_kind *lazy)
{
    *lazy = LAZY_NONE;
    if (allows(k, s->state)) {
        *next_state = after(k, s->state);
        return !strands_a_read(s, *next_state);
    }
    if (strands_a_read(s, NIL_STATE))
        return false;
    int base = NIL_STATE; /* the state right after the lazy op */
    if (k->need == NEED_EXISTS && lazy_ready(s, LAZY_SET, e)) {
        *lazy = LAZY_SET;
        base = s->ks->lazy[LAZY_SET][s->used[LAZY_SET]].effect; /* its (unread) value */
    } else if (k->need == NEED_NIL && lazy_ready(s, LAZY_DEL, e)) {
        *lazy = LAZY_DEL;
    } else {
        return false;
    }
    *next_state = after(k, base); /* an op that leaves the state alone keeps the value */
    return true;
}

/* 1 if (bits, used, next_state) is new (and now remembered), 0 if seen, <0 on error. */
static int remember(struct search *s, int next_state)
{
    struct memo_ent key = {0};
    int fw = s->first_zero / 64, lw = s->last_one < 0 ? -1 : s->last_one / 64;
    key.first_word = fw;
    key.n_words = lw >= fw ? lw - fw + 1 : 0;
    key.state = next_state;
    key.used_set = s->used[LAZY_SET];
    key.used_del = s->used[LAZY_DEL];
    key.hash = s->hash_bits ^ mix64(((uint64_t)(uint32_t)next_state << 32) ^
                                    ((uint64_t)(uint32_t)key.used_set << 16) ^
                                    (uint64_t)(uint32_t)key.used_del ^ 0x5bd1e995ULL);
    return memo_insert(&s->memo, &key, s->bits + fw);
}

static void note_best(struct search *s)
{
    if (s->depth <= s->best_depth)
        return;
    s->best_depth = s->depth;
    s->best_state = s->state;
    memcpy(s->best_used, s->used, sizeof(s->used));
    memcpy(s->best_bits, s->bits, (size_t)s->n_words * sizeof(*s->bits));
    s->best_tail_n = s->depth < REPORT_TAIL ? s->depth : REPORT_TAIL;
    memcpy(s->best_tail, s->stack + s->depth - s->best_tail_n,
           (size_t)s->best_tail_n * sizeof(*s->stack));
}

/* Linearizes call entry e if it may go now and leads somewhere new: 1 done, 0 not, <0 error. */
static int try_linearize(struct search *s, int e)
{
    const struct kop *k = &s->ks->fin[s->ent[e].fin];
    int next_state;
    enum lazy_kind lazy;
    if (!try_step(s, k, e, &next_state, &lazy))
        return 0;
    bit_set(s, s->ent[e].fin);
    if (lazy != LAZY_NONE)
        s->used[lazy]++;
    int rc = remember(s, next_state);
    if (rc <= 0) {
        bit_clear(s, s->ent[e].fin);
        if (lazy != LAZY_NONE)
            s->used[lazy]--;
        return rc;
    }
    if (k->need == NEED_VALUE && k->need_val > 0 && is_read(k->op))
        s->unread[k->need_val]--;
    s->stack[s->depth++] = (struct frame){.entry = e, .prev_state = s->state, .lazy = lazy,
                                          .lazy_idx = lazy != LAZY_NONE ? s->used[lazy] - 1 : -1};
    s->state = next_state;
    lift(s, e);
    note_best(s);
    return 1;
}

/* Undoes the last linearization; returns the entry to look at next. */
static int backtrack(struct search *s)
{
    struct frame f = s->stack[--s->depth];
    const struct kop *k = &s->ks->fin[s->ent[f.entry].fin];
    if (k->need == NEED_VALUE && k->need_val > 0 && is_read(k->op))
        s->unread[k->need_val]++;
    s->state = f.prev_state;
    bit_clear(s, s->ent[f.entry].fin);
    if (f.lazy != LAZY_NONE)
        s->used[f.lazy]--;
    unlift(s, f.entry);
    return s->ent[f.entry].next;
}

/* The search loop (Lowe's algorithm as in Porcupine's checkSingle). */
static enum lincheck_verdict run_search(struct search *s)
{
    int e = s->ent[s->head].next;
    while (s->ent[s->head].next != s->head) {
        if (++s->steps > s->max_steps)
            return LINCHECK_INCONCLUSIVE;
        if (s->ent[e].is_call) {
            int rc = try_linearize(s, e);
            if (rc < 0)
                return LINCHECK_INCONCLUSIVE;
            e = rc == 1 ? s->ent[s->head].next : s->ent[e].next;
        } else {
            if (s->depth == 0)
                return LINCHECK_VIOLATION;
            e = backtrack(s);
        }
    }
    return LINCHECK_LINEARIZABLE;
}

static int search_init(struct search *s, const struct keyset *ks, const struct lincheck_options *o)
{
    memset(s, 0, sizeof(*s));
    s->ks = ks;
    s->n_words = (ks->n_fin + 63) / 64 + 1;
    s->bits = calloc((size_t)s->n_words, sizeof(*s->bits));
    s->best_bits = calloc((size_t)s->n_words, sizeof(*s->best_bits));
    s->stack = calloc((size_t)ks->n_fin + 1, sizeof(*s->stack));
    s->unread = calloc((size_t)ks->n_values + 1, sizeof(*s->unread));
    if (s->bits == NULL || s->best_bits == NULL || s->stack == NULL || s->unread == NULL)
        return RK_ERR_NOMEM;
    for (int id = 1; id <= ks->n_values; id++)
        s->unread[id] = ks->values[id - 1].readers;
    s->last_one = -1;
    s->max_steps = o->max_steps_per_key;
    s->memo.max_bytes = o->max_memo_bytes;
    return build_entries(s);
}

static void search_free(struct search *s)
{
    free(s->ent);
    free(s->bits);
    free(s->best_bits);
    free(s->stack);
    free(s->unread);
    memo_free(&s->memo);
}

/* ---- the report of a failed search ---- */

static void add_frame(struct text *t, const struct search *s, const struct frame *f)
{
    const struct keyset *ks = s->ks;
    if (f->lazy == LAZY_SET)
        add_op_line(t, "    ", ks->lazy[LAZY_SET][f->lazy_idx].op, ks->t0,
                    "   (taken to happen here)");
    if (f->lazy == LAZY_DEL)
        add_op_line(t, "    ", ks->lazy[LAZY_DEL][f->lazy_idx].op, ks->t0,
                    "   (taken to happen here)");
    add_op_line(t, "    ", ks->fin[s->ent[f->entry].fin].op, ks->t0, "");
}

/* The first get of the value the key holds at the deepest point that is still to come,
 * if the value has a single writer (nothing may overwrite it before that get), or NULL. */
static const struct kop *pending_reader(const struct search *s)
{
    if (!unique_value(s->ks, s->best_state))
        return NULL;
    for (int i = 0; i < s->ks->n_fin; i++) {
        const struct kop *k = &s->ks->fin[i];
        if (k->need == NEED_VALUE && k->need_val == s->best_state && !bit_test(s->best_bits, i))
            return k;
    }
    return NULL;
}

/* Why op k cannot go next in state: one line. */
static void add_candidate(struct text *t, const struct search *s, const struct kop *k)
{
    char why[LINCHECK_VAL_MAX + 64];
    bool overwrites = after(k, s->best_state) != s->best_state;
    if (allows(k, s->best_state) && overwrites && pending_reader(s) != NULL)
        snprintf(why, sizeof(why), "   <- cannot: a get still to come reads the current value");
    else if (allows(k, s->best_state))
        snprintf(why, sizeof(why), "   <- possible next, but no continuation works");
    else if (k->need == NEED_VALUE)
        snprintf(why, sizeof(why), "   <- cannot: it read another value");
    else if (k->need == NEED_NIL)
        snprintf(why, sizeof(why), "   <- cannot: the key exists");
    else
        snprintf(why, sizeof(why), "   <- cannot: the key is absent");
    add_op_line(t, "    ", k->op, s->ks->t0, why);
}

static void explain(struct text *t, const struct search *s, enum lincheck_verdict v)
{
    const struct keyset *ks = s->ks;
    text_add(t, "key \"%s\": %s after %lld search steps (%d ops with a known window, %d/%d "
                "unknown sets/deletes that may take effect any time later, %zu dropped)\n",
             ks->ops[0]->key, lincheck_verdict_name(v), s->steps, ks->n_fin,
             ks->n_lazy[LAZY_SET], ks->n_lazy[LAZY_DEL], ks->dropped);
    text_add(t, "  longest linearizable prefix found: %d of %d ops; it ends with:\n",
             s->best_depth, ks->n_fin);
    if (s->best_tail_n == 0)
        text_add(t, "    (nothing)\n");
    for (int i = 0; i < s->best_tail_n; i++)
        add_frame(t, s, &s->best_tail[i]);
    text_add(t, "  after it the key holds ");
    add_state(t, ks, s->best_state);
    int64_t front = NEVER;
    for (int i = 0; i < ks->n_fin; i++)
        if (!bit_test(s->best_bits, i) && ks->fin[i].cmp < front)
            front = ks->fin[i].cmp;
    if (front == NEVER)
        text_add(t, ".\n");
    else
        text_add(t, "; the next op must take effect by %.3f ms, and none can:\n",
                 rel_ms(front, ks->t0));
    int shown = 0;
    for (int i = 0; i < ks->n_fin && shown < REPORT_CANDIDATES; i++) {
        if (bit_test(s->best_bits, i) || ks->fin[i].inv > front)
            continue;
        add_candidate(t, s, &ks->fin[i]);
        shown++;
    }
    const struct kop *reader = pending_reader(s);
    if (reader != NULL)
        add_op_line(t, "  the get still to come that reads the current value: ", reader->op, ks->t0,
                    "");
    text_add(t, "  unknown writes not placed by then: %d sets nobody read, %d deletes\n",
             ks->n_lazy[LAZY_SET] - s->best_used[LAZY_SET],
             ks->n_lazy[LAZY_DEL] - s->best_used[LAZY_DEL]);
}

/* ---- one key, then the whole history ---- */

struct key_outcome {
    enum lincheck_verdict verdict;
    long long steps;
    size_t searched, open, dropped;
};

static int check_key(const struct lincheck_op *const *ops, size_t n, int64_t t0,
                     const struct lincheck_options *o, struct text *t, struct key_outcome *res)
{
    struct keyset ks = {.ops = ops, .n = n, .t0 = t0};
    struct search s;
    memset(&s, 0, sizeof(s));
    memset(res, 0, sizeof(*res));
    int rc = collect_values(&ks);
    if (rc == RK_OK)
        rc = collect_revs(&ks);
    if (rc == RK_OK)
        rc = classify(&ks);
    if (rc == RK_OK) {
        res->searched = (size_t)ks.n_fin;
        res->open = (size_t)(ks.n_lazy[LAZY_SET] + ks.n_lazy[LAZY_DEL]);
        res->dropped = ks.dropped;
        for (int i = 0; i < ks.n_fin; i++)
            if (ks.fin[i].cmp == NEVER)
                res->open++, res->searched--;
    }
    if (rc == RK_OK && (quick_violation(&ks, t) || (!o->search_only && stale_read(&ks, t)))) {
        res->verdict = LINCHECK_VIOLATION;
    } else if (rc == RK_OK) {
        rc = search_init(&s, &ks, o);
        if (rc == RK_OK) {
            res->verdict = run_search(&s);
            res->steps = s.steps;
            if (res->verdict != LINCHECK_LINEARIZABLE)
                explain(t, &s, res->verdict);
            if (res->verdict == LINCHECK_INCONCLUSIVE)
                text_add(t, "  (the search stopped: budget of %lld steps or %zu MiB of memo "
                            "used up)\n", s.max_steps, s.memo.max_bytes >> 20);
        }
    }
    search_free(&s);
    keyset_free(&ks);
    return rc;
}

static int cmp_op_ptr(const void *a, const void *b)
{
    const struct lincheck_op *x = *(const struct lincheck_op *const *)a;
    const struct lincheck_op *y = *(const struct lincheck_op *const *)b;
    int c = strcmp(x->key, y->key);
    if (c != 0)
        return c;
    if (x->invoke_ns != y->invoke_ns)
        return x->invoke_ns < y->invoke_ns ? -1 : 1;
    return x < y ? -1 : x > y ? 1 : 0;
}

static bool op_malformed(const struct lincheck_op *op, struct text *t, size_t i)
{
    if (memchr(op->key, '\0', sizeof(op->key)) == NULL ||
        memchr(op->value, '\0', sizeof(op->value)) == NULL) {
        text_add(t, "op %zu: key or value not NUL-terminated\n", i);
        return true;
    }
    if ((int)op->kind < LINCHECK_GET || (int)op->kind > LINCHECK_TTL ||
        (int)op->outcome < LINCHECK_OK || (int)op->outcome > LINCHECK_UNKNOWN) {
        text_add(t, "op %zu: bad kind or outcome\n", i);
        return true;
    }
    if (op->outcome == LINCHECK_OK && op->complete_ns < op->invoke_ns) {
        text_add(t, "op %zu: completes before it is invoked\n", i);
        return true;
    }
    bool may_ttl = op->kind == LINCHECK_SET || op->kind == LINCHECK_CAS;
    if (op->ttl_ms < 0 || (op->ttl_ms > 0 && !may_ttl && op->kind != LINCHECK_EXPIRE) ||
        (op->kind == LINCHECK_EXPIRE && op->ttl_ms == 0)) {
        text_add(t, "op %zu: a time to live it cannot have\n", i);
        return true;
    }
    return false;
}

/* The checker models no expiry: a key given a deadline (setex, cas --ttl, expire) must
 * keep it past the history's end, counting from the op's invocation (no server starts
 * counting earlier). A failed op set no deadline. */
static bool ttl_too_short(const struct lincheck_op *ops, size_t n, struct text *t)
{
    int64_t end = INT64_MIN;
    for (size_t i = 0; i < n; i++) {
        if (ops[i].invoke_ns > end)
            end = ops[i].invoke_ns;
        if (ops[i].outcome == LINCHECK_OK && ops[i].complete_ns > end)
            end = ops[i].complete_ns;
    }
    for (size_t i = 0; i < n; i++) {
        const struct lincheck_op *op = &ops[i];
        if (op->ttl_ms <= 0 || op->outcome == LINCHECK_FAILED ||
            op->ttl_ms > (end - op->invoke_ns) / 1000000)
            continue;
        text_add(t, "op %zu: its time to live of %lld ms may end within the history (which "
                    "runs %.3f ms past its invocation); the checker models no expiry\n",
                 i, (long long)op->ttl_ms, (double)(end - op->invoke_ns) / 1e6);
        return true;
    }
    return false;
}

/* Adds one key's outcome to out. The report kept is that of the first key that is not
 * linearizable or, if none is, of the first inconclusive one; *report is taken or freed. */
static void merge_key(struct lincheck_result *out, const struct key_outcome *k, const char *key,
                      struct text *report)
{
    out->keys++;
    out->steps += k->steps;
    if (k->steps > out->max_key_steps)
        out->max_key_steps = k->steps;
    out->ops_searched += k->searched;
    out->ops_open += k->open;
    out->ops_dropped += k->dropped;
    if (k->verdict == LINCHECK_INCONCLUSIVE)
        out->keys_inconclusive++;
    if (k->verdict == LINCHECK_VIOLATION)
        out->keys_violating++;
    bool replaces = k->verdict == LINCHECK_VIOLATION ? out->verdict != LINCHECK_VIOLATION
                                                     : k->verdict == LINCHECK_INCONCLUSIVE &&
                                                           out->verdict == LINCHECK_LINEARIZABLE;
    if (!replaces) {
        free(report->s);
        return;
    }
    out->verdict = k->verdict;
    snprintf(out->key, sizeof(out->key), "%s", key);
    free(out->explanation);
    out->explanation = report->s;
}

int lincheck_check(const struct lincheck_op *ops, size_t n, const struct lincheck_options *opt,
                   struct lincheck_result *out)
{
    struct lincheck_options o = opt != NULL ? *opt : (struct lincheck_options){0};
    if (o.max_steps_per_key <= 0)
        o.max_steps_per_key = DEFAULT_MAX_STEPS;
    if (o.max_memo_bytes == 0)
        o.max_memo_bytes = DEFAULT_MAX_MEMO;
    memset(out, 0, sizeof(*out));
    struct text t = {0};
    int rc = RK_OK;
    for (size_t i = 0; i < n && rc == RK_OK; i++)
        if (op_malformed(&ops[i], &t, i))
            rc = RK_ERR_INVAL;
    if (rc == RK_OK && ttl_too_short(ops, n, &t))
        rc = RK_ERR_INVAL;
    const struct lincheck_op **sorted = rc == RK_OK ? malloc((n + 1) * sizeof(*sorted)) : NULL;
    if (rc == RK_OK && sorted == NULL)
        rc = RK_ERR_NOMEM;
    int64_t t0 = n > 0 ? ops[0].invoke_ns : 0;
    for (size_t i = 0; rc == RK_OK && i < n; i++) {
        sorted[i] = &ops[i];
        if (ops[i].invoke_ns < t0)
            t0 = ops[i].invoke_ns;
    }
    if (rc == RK_OK)
        qsort(sorted, n, sizeof(*sorted), cmp_op_ptr);
    for (size_t i = 0; rc == RK_OK && i < n;) {
        size_t j = i + 1;
        while (j < n && strcmp(sorted[j]->key, sorted[i]->key) == 0)
            j++;
        struct key_outcome k;
        struct text report = {0};
        rc = check_key(sorted + i, j - i, t0, &o, &report, &k);
        if (rc == RK_OK && report.oom)
            rc = RK_ERR_NOMEM;
        if (rc == RK_OK)
            merge_key(out, &k, sorted[i]->key, &report);
        else
            free(report.s);
        i = j;
    }
    free(sorted);
    if (rc == RK_ERR_INVAL) {
        out->explanation = t.s; /* what was malformed */
        return rc;
    }
    free(t.s);
    return rc;
}

void lincheck_result_free(struct lincheck_result *r)
{
    if (r == NULL)
        return;
    free(r->explanation);
    r->explanation = NULL;
}
