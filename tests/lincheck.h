/* tests/lincheck.h - a linearizability checker for histories of a key-value store
 * (get/set/delete on string keys, the registers with a revision of rev/cas/cad, and
 * setex/cas --ttl/expire/ttl with times to live longer than the history):
 * Wing & Gong / Lowe search with memoisation, one key at a time (P-compositionality), as
 * in the Porcupine checker. */
#ifndef RK_LINCHECK_H
#define RK_LINCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LINCHECK_KEY_MAX 64
#define LINCHECK_VAL_MAX 64

/* REV reads a key's revision and value; CAS sets it if its revision is `rev` (0: absent);
 * CAD deletes it if its revision is `rev`. A revision names the write that made the
 * value: the checker learns which (from rev reads and held cas answers) and checks a
 * compare against the value that write wrote. */
/* EXPIRE gives an existing key a new deadline (found: it answered OK, the key existed;
 * false: nil) and changes nothing else; TTL reads whether the key exists (found: a
 * number of seconds; false: nil). With ttl_ms > 0, a SET is a setex and a CAS a cas
 * --ttl. The checker models no expiry: every ttl_ms must outlast the history (counted
 * from the op's invocation to the last invocation or completion), else the history is
 * malformed; then setex and cas --ttl are a set and a cas, and EXPIRE a "touch". */
enum lincheck_kind { LINCHECK_GET, LINCHECK_SET, LINCHECK_DELETE, LINCHECK_REV, LINCHECK_CAS,
                     LINCHECK_CAD, LINCHECK_EXPIRE, LINCHECK_TTL };

/* OK: the reply was received. FAILED: the operation definitely had no effect (a write
 * that was never sent, or a read that got no answer); failed ops are dropped.
 * UNKNOWN: a write that may or may not have taken effect, at any time after its
 * invocation (its complete_ns is ignored). An unknown get is dropped like a failed one. */
enum lincheck_outcome { LINCHECK_OK, LINCHECK_FAILED, LINCHECK_UNKNOWN };

enum lincheck_verdict {
    LINCHECK_LINEARIZABLE,
    LINCHECK_VIOLATION,     /* some key's history has no linearization */
    LINCHECK_INCONCLUSIVE,  /* no violation found, but a search ran out of budget */
};

/* One operation as a client saw it. found: for a get, a value was read (false: nil);
 * for a delete, the answer was OK, i.e. the key existed (false: nil). value: for a set,
 * the value written; for a get that found one, the value read. Times are from one
 * monotonic clock, in nanoseconds. */
struct lincheck_op {
    int client;
    enum lincheck_kind kind;
    enum lincheck_outcome outcome;
    bool found;
    char key[LINCHECK_KEY_MAX];
    char value[LINCHECK_VAL_MAX];
    uint64_t rev;       /* REV found: the revision read; CAS, CAD: the one compared */
    bool held;          /* CAS, CAD answered: the compare held (OK), or not (FAILED) */
    uint64_t got_rev;   /* CAS held: its new revision; a failed compare: the key's (0: absent) */
    int64_t ttl_ms;     /* SET, CAS: setex, cas --ttl if > 0; EXPIRE: the new time to live */
    int64_t invoke_ns;
    int64_t complete_ns;
};

struct lincheck_options {
    long long max_steps_per_key;  /* search steps before a key is inconclusive; 0: 10^7 */
    size_t max_memo_bytes;        /* memo table size before that; 0: 512 MiB */
    bool search_only;             /* skip the quick stale-read certificate (self-tests) */
};

struct lincheck_result {
    enum lincheck_verdict verdict;
    int keys;                 /* keys checked */
    int keys_inconclusive;
    int keys_violating;
    long long steps;          /* search steps over all keys */
    long long max_key_steps;  /* the most any one key needed */
    size_t ops_searched;      /* ops with a bounded window */
    size_t ops_open;          /* unknown writes that may take effect at any later time */
    size_t ops_dropped;       /* failed ops and unknown reads */
    char key[LINCHECK_KEY_MAX]; /* the first key that was not linearizable (or inconclusive) */
    char *explanation;        /* malloc'ed report for that key; NULL when linearizable */
};

/* Checks ops[0..n) (any order). Returns 0 with *out filled, or a negative RK_ERR_* code:
 * RK_ERR_INVAL for a malformed op (an unterminated key or value, a bad kind, or an ok op
 * that completes before it is invoked; the reason is in out->explanation), RK_ERR_NOMEM.
 * Either way, free *out with lincheck_result_free. */
int lincheck_check(const struct lincheck_op *ops, size_t n, const struct lincheck_options *opt,
                   struct lincheck_result *out);
void lincheck_result_free(struct lincheck_result *r);

const char *lincheck_verdict_name(enum lincheck_verdict v);
/* One line, e.g. 'c3 set k1 "c3-17" ok [1.250 .. 1.262 ms]'; times are relative to t0_ns. */
void lincheck_format_op(const struct lincheck_op *op, int64_t t0_ns, char *out, size_t outlen);

#endif
