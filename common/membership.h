/* common/membership.h - a cluster configuration (Raft thesis §4): which servers are
 * members, each with its node id (the number the Raft core and the peer messages use),
 * name and address, and whether it votes or is a learner, a member that receives the log
 * but neither votes nor counts toward a majority (thesis §4.2.1). A configuration
 * travels in RAFT_ENTRY_CONFIG log entries and in snapshots as text, one member a line:
 * "ID voter|learner NAME HOST PORT\n", in id order. server_registry.txt gives only the
 * first one of a new cluster (ids are the registry's line order, every server a voter). */
#ifndef RK_MEMBERSHIP_H
#define RK_MEMBERSHIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registry.h"

#define MEMBERSHIP_MAX REGISTRY_MAX_SERVERS /* node ids are 0 .. MEMBERSHIP_MAX-1 */
#define MEMBERSHIP_TEXT_MAX (MEMBERSHIP_MAX * (REGISTRY_NAME_MAX + REGISTRY_HOST_MAX + 32))

enum member_role { MEMBER_VOTER = 0, MEMBER_LEARNER = 1 };

struct member {
    int id;
    enum member_role role;
    char name[REGISTRY_NAME_MAX + 1];
    char host[REGISTRY_HOST_MAX + 1];
    uint16_t port;
};

struct membership {
    int n;                               /* members in m[0..n), in id order */
    struct member m[MEMBERSHIP_MAX];
};

/* The first configuration of a cluster: the registry's servers, ids in line order, all
 * voters. */
void membership_from_registry(const struct registry *reg, struct membership *out);
/* The member with this id or name, or NULL. */
const struct member *membership_by_id(const struct membership *ms, int id);
const struct member *membership_by_name(const struct membership *ms, const char *name);
int membership_voters(const struct membership *ms);
/* The lowest id no member has (what a server being added gets), or -1 if full. */
int membership_free_id(const struct membership *ms);
/* Adds m (kept in id order). RK_OK, RK_ERR_INVAL (its id or name is taken) or
 * RK_ERR_TOOBIG (full). */
int membership_add(struct membership *ms, const struct member *m);
/* Removes the member with this id (nothing if none). */
void membership_remove(struct membership *ms, int id);
bool membership_equal(const struct membership *a, const struct membership *b);

/* The text form into out (of outlen bytes; MEMBERSHIP_TEXT_MAX always fits). Returns its
 * length, or -1 if it does not fit. */
int membership_encode(const struct membership *ms, char *out, size_t outlen);
/* Parses the text form. RK_OK, or RK_ERR_CORRUPT with the line and problem in err. */
int membership_decode(const char *text, size_t len, struct membership *out, char *err,
                      size_t errlen);

#endif
