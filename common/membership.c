/* common/membership.c - cluster configurations and their text form (see membership.h). */
#include "membership.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

void membership_from_registry(const struct registry *reg, struct membership *out)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < reg->n && i < MEMBERSHIP_MAX; i++) {
        struct member *m = &out->m[out->n++];
        m->id = i;
        m->role = MEMBER_VOTER;
        snprintf(m->name, sizeof(m->name), "%s", reg->servers[i].name);
        snprintf(m->host, sizeof(m->host), "%s", reg->servers[i].host);
        m->port = reg->servers[i].port;
    }
}

const struct member *membership_by_id(const struct membership *ms, int id)
{
    for (int i = 0; i < ms->n; i++)
        if (ms->m[i].id == id)
            return &ms->m[i];
    return NULL;
}

const struct member *membership_by_name(const struct membership *ms, const char *name)
{
    for (int i = 0; i < ms->n; i++)
        if (strcmp(ms->m[i].name, name) == 0)
            return &ms->m[i];
    return NULL;
}

int membership_voters(const struct membership *ms)
{
    int voters = 0;
    for (int i = 0; i < ms->n; i++)
        voters += ms->m[i].role == MEMBER_VOTER;
    return voters;
}

int membership_free_id(const struct membership *ms)
{
    for (int id = 0; id < MEMBERSHIP_MAX; id++)
        if (membership_by_id(ms, id) == NULL)
            return id;
    return -1;
}

int membership_add(struct membership *ms, const struct member *m)
{
    if (m->id < 0 || m->id >= MEMBERSHIP_MAX || membership_by_id(ms, m->id) != NULL ||
        membership_by_name(ms, m->name) != NULL)
        return RK_ERR_INVAL;
    if (ms->n == MEMBERSHIP_MAX)
        return RK_ERR_TOOBIG;
    int at = ms->n;
    while (at > 0 && ms->m[at - 1].id > m->id)
        at--;
    memmove(&ms->m[at + 1], &ms->m[at], (size_t)(ms->n - at) * sizeof(ms->m[0]));
    ms->m[at] = *m;
    ms->n++;
    return RK_OK;
}

void membership_remove(struct membership *ms, int id)
{
    for (int i = 0; i < ms->n; i++) {
        if (ms->m[i].id != id)
            continue;
        memmove(&ms->m[i], &ms->m[i + 1], (size_t)(ms->n - i - 1) * sizeof(ms->m[0]));
        ms->n--;
        return;
    }
}

static bool member_equal(const struct member *a, const struct member *b)
{
    return a->id == b->id && a->role == b->role && a->port == b->port &&
           strcmp(a->name, b->name) == 0 && strcmp(a->host, b->host) == 0;
}

bool membership_equal(const struct membership *a, const struct membership *b)
{
    if (a->n != b->n)
        return false;
    for (int i = 0; i < a->n; i++)
        if (!member_equal(&a->m[i], &b->m[i]))
            return false;
    return true;
}

int membership_encode(const struct membership *ms, char *out, size_t outlen)
{
    size_t len = 0;
    if (outlen > 0)
        out[0] = '\0';
    for (int i = 0; i < ms->n; i++) {
        const struct member *m = &ms->m[i];
        int w = snprintf(out + len, outlen - len, "%d %s %s %s %u\n", m->id,
                         m->role == MEMBER_VOTER ? "voter" : "learner", m->name, m->host,
                         (unsigned)m->port);
        if (w < 0 || (size_t)w >= outlen - len)
            return -1;
        len += (size_t)w;
    }
    return (int)len;
}

/* One line "ID ROLE NAME HOST PORT" into m. false if it is not one. */
static bool parse_member(const char *line, struct member *m)
{
    char role[16], name[REGISTRY_NAME_MAX + 2], host[REGISTRY_HOST_MAX + 2], extra[2];
    unsigned id, port;
    if (sscanf(line, "%u %15s %64s %256s %u %1s", &id, role, name, host, &port, extra) != 5)
        return false;
    if (id >= MEMBERSHIP_MAX || port < 1 || port > 65535 || !registry_name_valid(name) ||
        strlen(host) > REGISTRY_HOST_MAX)
        return false;
    if (strcmp(role, "voter") != 0 && strcmp(role, "learner") != 0)
        return false;
    *m = (struct member){ .id = (int)id, .port = (uint16_t)port,
                          .role = role[0] == 'v' ? MEMBER_VOTER : MEMBER_LEARNER };
    memcpy(m->name, name, strlen(name) + 1); /* lengths checked above */
    memcpy(m->host, host, strlen(host) + 1);
    return true;
}

int membership_decode(const char *text, size_t len, struct membership *out, char *err,
                      size_t errlen)
{
    memset(out, 0, sizeof(*out));
    char line[REGISTRY_NAME_MAX + REGISTRY_HOST_MAX + 64];
    size_t pos = 0;
    for (int no = 1; pos < len; no++) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        if (nl == NULL)
            return rk_fail(err, errlen, RK_ERR_CORRUPT, "configuration line %d is not ended", no);
        size_t n = (size_t)(nl - (text + pos));
        if (n >= sizeof(line) || memchr(text + pos, '\0', n) != NULL)
            return rk_fail(err, errlen, RK_ERR_CORRUPT, "configuration line %d is malformed", no);
        memcpy(line, text + pos, n);
        line[n] = '\0';
        struct member m;
        if (!parse_member(line, &m))
            return rk_fail(err, errlen, RK_ERR_CORRUPT, "configuration line %d is not "
                           "'ID voter|learner NAME HOST PORT': '%.80s'", no, line);
        if ((out->n > 0 && m.id <= out->m[out->n - 1].id) || membership_add(out, &m) != RK_OK)
            return rk_fail(err, errlen, RK_ERR_CORRUPT, "configuration line %d: id %d or "
                           "name '%s' out of order or repeated", no, m.id, m.name);
        pos += n + 1;
    }
    return RK_OK;
}
