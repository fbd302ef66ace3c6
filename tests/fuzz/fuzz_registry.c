/* tests/fuzz/fuzz_registry.c - fuzz target: a server_registry.txt through registry_parse
 * (common/registry.c). Oracles: a parsed registry holds 1..64 servers with valid,
 * distinct names, distinct host:port pairs and ports 1..65535, each found by
 * registry_find; written back as "name host port" lines it parses to the same servers and
 * the same cluster id; a refused text gets an error naming the file. */
#include <stdbool.h>
#include <string.h>

#include "../../common/errors.h"
#include "../../common/registry.h"
#include "fuzz.h"

static bool fz_reg_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > REGISTRY_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_' || s[i] == '.'))
            return false;
    return true;
}

static void fz_reg_check_servers(const struct registry *reg)
{
    FUZZ_CHECK(reg->n >= 1 && reg->n <= REGISTRY_MAX_SERVERS && reg->servers != NULL);
    for (int i = 0; i < reg->n; i++) {
        const struct registry_server *s = &reg->servers[i];
        FUZZ_CHECK(fz_reg_name_ok(s->name));
        size_t host_len = strlen(s->host);
        FUZZ_CHECK(host_len >= 1 && host_len <= REGISTRY_HOST_MAX && s->port >= 1);
        FUZZ_CHECK(s->host[0] != '#' && strpbrk(s->host, " \t\r\n\v\f") == NULL);
        FUZZ_CHECK(registry_find(reg, s->name) == i);
        for (int j = 0; j < i; j++)
            FUZZ_CHECK(strcmp(reg->servers[j].host, s->host) != 0 ||
                       reg->servers[j].port != s->port);
    }
}

/* Writes reg back as text and parses it again: the same servers, the same id. */
static void fz_reg_round_trip(const struct registry *reg)
{
    size_t cap = (size_t)reg->n * (REGISTRY_NAME_MAX + REGISTRY_HOST_MAX + 16) + 1;
    char *text = malloc(cap);
    FUZZ_CHECK(text != NULL);
    size_t len = 0;
    for (int i = 0; i < reg->n; i++)
        len += (size_t)snprintf(text + len, cap - len, "%s %s %u\n", reg->servers[i].name,
                                reg->servers[i].host, (unsigned)reg->servers[i].port);
    struct registry again;
    char err[256];
    FUZZ_CHECK(registry_parse(text, len, "again", &again, err, sizeof(err)) == RK_OK);
    FUZZ_CHECK(again.n == reg->n);
    for (int i = 0; i < reg->n; i++)
        FUZZ_CHECK(memcmp(&again.servers[i], &reg->servers[i], sizeof(again.servers[i])) == 0);
    FUZZ_CHECK(registry_cluster_id(&again) == registry_cluster_id(reg));
    registry_free(&again);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_INPUT)
        return 0;
    struct registry reg = { 0 };
    char err[512] = "";
    int rc = registry_parse((const char *)data, size, "fuzz.txt", &reg, err, sizeof(err));
    if (rc != RK_OK) {
        FUZZ_CHECK(rc == RK_ERR_INVAL || rc == RK_ERR_NOMEM);
        FUZZ_CHECK(strncmp(err, "fuzz.txt:", 9) == 0);
        FUZZ_CHECK(reg.servers == NULL && reg.n == 0);
        return 0;
    }
    fz_reg_check_servers(&reg);
    fz_reg_round_trip(&reg);
    registry_free(&reg);
    FUZZ_CHECK(reg.servers == NULL && reg.n == 0);
    return 0;
}
