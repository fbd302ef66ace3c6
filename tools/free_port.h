/* tools/free_port.h - free TCP ports on 127.0.0.1 for a cluster started by raft_bench or by
 * the tests' harness (tests/harness.c). */
#ifndef RK_FREE_PORT_H
#define RK_FREE_PORT_H

#include <stddef.h>
#include <stdint.h>

/* Picks n different ports that are free now: below the kernel's ephemeral range where it
 * can (a restarted server must be able to bind its port again, and an ephemeral port may
 * meanwhile become the source port of some outgoing connection), else any the kernel
 * gives. RK_OK, or RK_ERR_IO with the reason in err. */
int free_ports_pick(uint16_t *ports, int n, char *err, size_t errlen);

#endif
