/* common/registry.h - server_registry.txt: one server per line as "name host port".
 * Blank lines and '#' comments are allowed. Errors name the file and line. */
#ifndef RK_REGISTRY_H
#define RK_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REGISTRY_NAME_MAX 63
#define REGISTRY_HOST_MAX 255
#define REGISTRY_MAX_SERVERS 64

struct registry_server {
    char name[REGISTRY_NAME_MAX + 1];
    char host[REGISTRY_HOST_MAX + 1];
    uint16_t port;
};

struct registry {
    struct registry_server *servers;
    int n;
};

/* Parses text (len bytes). path is used only in error messages, which look like
 * "logs/server_registry.txt:3: port 'abc' is not a number 1..65535".
 * Rejects duplicate names and duplicate host:port pairs, and an empty registry.
 * Returns RK_OK, or RK_ERR_INVAL / RK_ERR_NOMEM with the message in err. */
int registry_parse(const char *text, size_t len, const char *path, struct registry *out,
                   char *err, size_t errlen);
/* Reads and parses a file; a missing file is RK_ERR_NOTFOUND ("PATH: No such file..."). */
int registry_load(const char *path, struct registry *out, char *err, size_t errlen);
/* Whether name is a valid server name: 1..REGISTRY_NAME_MAX letters, digits, '-', '_'
 * and '.'. */
bool registry_name_valid(const char *name);
/* Position of name in the registry, or -1. */
int registry_find(const struct registry *reg, const char *name);
void registry_free(struct registry *reg);
/* The cluster id peers send in HELLO_PEER (docs/protocol.md): the 64-bit FNV-1a hash of
 * the lines "name host port\n" sorted by name. Servers reading the same registry agree on
 * it, whatever the order or comments of its lines; one of another cluster does not. */
uint64_t registry_cluster_id(const struct registry *reg);

#endif
